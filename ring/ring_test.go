package ring

import (
	"crypto/md5"
	"errors"
	"hash/crc32"
	"net"
	"strconv"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
)

func TestNewErrors(t *testing.T) {
	one := []Server{{Addr: "10.0.0.1:11211"}}
	for _, tc := range []struct {
		name    string
		servers []Server
		cfg     Config
		is      error
	}{
		{"empty", nil, Config{}, ErrNoServers},
		{"empty ServerList", []Server{}, Config{Distribution: ServerList}, ErrNoServers},
		{"empty address", []Server{{}}, Config{}, nil},
		{"negative weight", []Server{{Addr: "a", Weight: -1}}, Config{}, nil},
		{"bad port", []Server{{Addr: "a:http"}}, Config{}, nil},
		{"port too big", []Server{{Addr: "a:65536"}}, Config{}, nil},
		{"no host", []Server{{Addr: ":11211"}}, Config{}, nil},
		{"bad brackets", []Server{{Addr: "[::1"}}, Config{}, nil},
		{"unknown distribution", one, Config{Distribution: numDistributions}, nil},
		{"unknown hash", one, Config{Hash: numHashes}, nil},
		{"ServerList with md5", one, Config{Distribution: ServerList, Hash: MD5}, nil},
		{"hash tag of one", one, Config{HashTag: "{"}, nil},
		{"twemproxy weights past 2^32", []Server{{Addr: "a:1", Weight: 1 << 31}, {Addr: "b:1", Weight: 1 << 31}}, Config{Distribution: Twemproxy}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.servers, tc.cfg)
			if err == nil {
				t.Fatalf("New = %v, want an error", r)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("New: %v, want %v", err, tc.is)
			}
		})
	}
}

func TestPickEdges(t *testing.T) {
	var zero Ring
	if got := zero.Pick("k"); got != -1 {
		t.Errorf("zero Ring: Pick = %d, want -1", got)
	}
	for d := range numDistributions {
		t.Run(d.String(), func(t *testing.T) {
			r, err := New([]Server{{Addr: "only:11300", Weight: 7}}, Config{Distribution: d})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"", "a", "key:1", "\xff"} {
				if got := r.Pick(k); got != 0 {
					t.Errorf("one server: Pick(%q) = %d", k, got)
				}
			}
		})
	}

	two := []Server{{Addr: "10.0.0.1"}, {Addr: "10.0.0.2"}}
	for _, tc := range []struct {
		name string
		a, b []Server
		cfg  Config
		same bool
	}{
		// libmemcached stores weight 0 as 1.
		{"weight 0 is 1", []Server{{Addr: "10.0.0.1", Weight: 0}, {Addr: "10.0.0.2", Weight: 0}}, []Server{{Addr: "10.0.0.1", Weight: 1}, {Addr: "10.0.0.2", Weight: 1}}, Config{}, true},
		{"port 11211 is implied", two, []Server{{Addr: "10.0.0.1:11211"}, {Addr: "10.0.0.2:11211"}}, Config{}, true},
		{"port 0 is 11211", two, []Server{{Addr: "10.0.0.1:0"}, {Addr: "10.0.0.2:0"}}, Config{Distribution: Ketama}, true},
		{"other port hashed", two, []Server{{Addr: "10.0.0.1:11212"}, {Addr: "10.0.0.2:11212"}}, Config{}, false},
		{"equal weights scale", []Server{{Addr: "a", Weight: 3}, {Addr: "b", Weight: 3}}, []Server{{Addr: "a"}, {Addr: "b"}}, Config{}, true},
		// libmemcached: a weight above 1 makes Ketama's points weighted.
		{"ketama weighted by weights", []Server{{Addr: "a", Weight: 2}, {Addr: "b"}}, []Server{{Addr: "a", Weight: 2}, {Addr: "b"}}, Config{Distribution: Ketama, Hash: MD5}, true},
		{"twemproxy name hashed", []Server{{Addr: "10.0.0.1:11211", Name: "n1"}, {Addr: "10.0.0.2:11211", Name: "n2"}}, []Server{{Addr: "n1"}, {Addr: "n2"}}, Config{Distribution: Twemproxy}, true},
		{"name ignored by libmemcached", []Server{{Addr: "10.0.0.1", Name: "n1"}, {Addr: "10.0.0.2", Name: "n2"}}, two, Config{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra, err := New(tc.a, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := New(tc.b, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			diff := 0
			for _, k := range testKeys(2000) {
				if ra.Pick(k) != rb.Pick(k) {
					diff++
				}
			}
			if tc.same && diff != 0 {
				t.Errorf("%d keys placed differently, want none", diff)
			}
			if !tc.same && diff == 0 {
				t.Errorf("every key placed alike, want differences")
			}
		})
	}
}

// TestWeightShare checks that weights share the keys out: a server of
// weight 0 gets points as one of weight 1 does, and one of weight 3
// about three times the keys.
func TestWeightShare(t *testing.T) {
	r, err := New([]Server{{Addr: "a", Weight: 3}, {Addr: "b", Weight: 1}, {Addr: "c", Weight: 0}}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var n [3]int
	keys := testKeys(20000)
	for _, k := range keys {
		n[r.Pick(k)]++
	}
	if n[0] < 2*n[1] || n[0] < 2*n[2] || n[1] == 0 || n[2] == 0 {
		t.Errorf("keys per server %v, want about 3:1:1", n)
	}
}

func TestHashTag(t *testing.T) {
	servers := []Server{{Addr: "a:1"}, {Addr: "b:1"}, {Addr: "c:1"}, {Addr: "d:1"}}
	r, err := New(servers, Config{Distribution: Twemproxy, HashTag: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := New(servers, Config{Distribution: Twemproxy})
	for _, tc := range []struct{ key, hashed string }{
		{"user:{42}:name", "42"},
		{"{42}", "42"},
		{"{}42", "{}42"},   // nothing between: the whole key
		{"x{42", "x{42"},   // no closing character
		{"a{b{c}d", "b{c"}, // from the first '{' to the next '}'
		{"no tag here", "no tag here"},
	} {
		if got, want := r.Pick(tc.key), plain.Pick(tc.hashed); got != want {
			t.Errorf("Pick(%q) = %d, want %d (the server of %q)", tc.key, got, want, tc.hashed)
		}
	}
}

func TestHashesMatchGo(t *testing.T) {
	for _, k := range testKeys(3000) {
		if got, want := md5Sum(k), md5.Sum([]byte(k)); got != want {
			t.Fatalf("md5Sum(%q) = %x, crypto/md5 %x", k, got, want)
		}
		if got, want := CRC32IEEE.SumString(k), crc32.ChecksumIEEE([]byte(k)); got != want {
			t.Fatalf("CRC32IEEE(%q) = %#x, hash/crc32 %#x", k, got, want)
		}
		if got, want := MD5.Sum([]byte(k)), MD5.SumString(k); got != want {
			t.Fatalf("MD5 of bytes and string differ for %q", k)
		}
	}
	// Lengths around MD5's block and padding boundaries.
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		if got, want := md5Sum(b), md5.Sum(b); got != want {
			t.Fatalf("md5Sum of %d bytes = %x, crypto/md5 %x", n, got, want)
		}
	}
	// Known values: MD5("") and one-at-a-time("a").
	if got := MD5.SumString(""); got != 0xd98c1dd4 {
		t.Errorf("MD5(\"\") = %#x, want 0xd98c1dd4", got)
	}
	for h := HashDefault; h < numHashes; h++ {
		if p, err := ParseHash(h.String()); h != HashDefault && (err != nil || p != h) {
			t.Errorf("ParseHash(%q) = %v, %v", h.String(), p, err)
		}
	}
	if _, err := ParseHash("murmur"); err == nil {
		t.Error("ParseHash(murmur): no error")
	}
}

// TestServerListMatchesGomemcache places 10k keys with gomemcache's
// ServerList and with a ServerList Ring: every key on the same server.
func TestServerListMatchesGomemcache(t *testing.T) {
	lists := [][]string{
		{"127.0.0.1:11211"},
		{"127.0.0.1:11211", "127.0.0.2:11211"},
		{"10.0.0.1:11211", "10.0.0.2:11212", "10.0.0.3:11213"},
		{"10.0.0.1:11211", "10.0.0.1:11211", "10.0.0.2:11211", "[::1]:11211"},
		{"10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3", "10.0.0.4:4", "/tmp/mc.sock"},
	}
	keys := testKeys(10000)
	keys = append(keys, string(make([]byte, 300)), string(make([]byte, 256))+"past 256 bytes")
	for _, list := range lists {
		t.Run(strconv.Itoa(len(list)), func(t *testing.T) {
			var sl memcache.ServerList
			if err := sl.SetServers(list...); err != nil {
				t.Fatal(err)
			}
			servers := make([]Server, len(list))
			for i, a := range list {
				servers[i] = Server{Addr: a}
			}
			r, err := New(servers, Config{Distribution: ServerList})
			if err != nil {
				t.Fatal(err)
			}
			addrs := make([]string, len(list))
			i := 0
			sl.Each(func(a net.Addr) error { addrs[i] = a.String(); i++; return nil })
			bad := 0
			for _, k := range keys {
				want, err := sl.PickServer(k)
				if err != nil {
					t.Fatal(err)
				}
				if got := addrs[r.Pick(k)]; got != want.String() {
					if bad++; bad <= 5 {
						t.Errorf("Pick(%q) = %s, gomemcache %s", k, got, want)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d keys on another server than gomemcache's", bad, len(keys))
			}
		})
	}
}

// TestTwemproxy checks what tells twemproxy's ketama from libmemcached's
// weighted one: over the same server strings and with MD5 as the key hash
// the two agree; its own default hash, names, an empty key and its server
// entries are its own.
func TestTwemproxy(t *testing.T) {
	keys := testKeys(10000)
	for name, list := range placementLists {
		if name == "ipv6-unix" {
			continue // twemproxy writes these hosts otherwise
		}
		servers := make([]Server, len(list))
		for i, s := range list {
			servers[i] = Server{Addr: s.addr, Weight: s.weight}
		}
		lm, err := New(servers, Config{Distribution: KetamaWeighted})
		if err != nil {
			t.Fatal(err)
		}
		tw, err := New(servers, Config{Distribution: Twemproxy, Hash: MD5})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys[1:] { // twemproxy hashes "" as 0
			if lm.Pick(k) != tw.Pick(k) {
				t.Fatalf("%s: Pick(%q): libmemcached's %d, twemproxy's %d", name, k, lm.Pick(k), tw.Pick(k))
			}
		}
	}

	var servers []Server
	for _, e := range []string{"127.0.0.1:11211:1", "127.0.0.1:11212:2 node2", "cache.example:22122:1"} {
		s, err := ParseTwemproxyServer(e)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	if want := (Server{Addr: "127.0.0.1:11212", Weight: 2, Name: "node2"}); servers[1] != want {
		t.Errorf("ParseTwemproxyServer = %+v, want %+v", servers[1], want)
	}
	r, err := New(servers, Config{Distribution: Twemproxy})
	if err != nil {
		t.Fatal(err)
	}
	if r.Hash() != FNV1a64 {
		t.Errorf("twemproxy's default hash is %v, want fnv1a_64", r.Hash())
	}
	ids := []string{"127.0.0.1", "node2", "cache.example:22122"}
	for i, s := range servers {
		if id, _ := s.id(Twemproxy); id != ids[i] {
			t.Errorf("server %d hashed as %q, want %q", i, id, ids[i])
		}
	}
	// An empty key hashes to 0: the server of the continuum's first point.
	if got, want := r.Pick(""), int(r.points[0].index); got != want {
		t.Errorf("Pick(\"\") = %d, want %d", got, want)
	}
	if s, _ := ParseTwemproxyServer("/var/run/mc.sock:1"); s.Addr != "/var/run/mc.sock" {
		t.Errorf("unix socket entry parsed as %+v", s)
	} else if id, _ := s.id(Twemproxy); id != "/var/run/mc.sock:" {
		t.Errorf("unix socket hashed as %q", id)
	}
	for _, bad := range []string{"", "host", "host:11211", "host:11211:0", "host:0:1", "host:x:1", "host:11211:1 ", ":1"} {
		if s, err := ParseTwemproxyServer(bad); err == nil {
			t.Errorf("ParseTwemproxyServer(%q) = %+v, want an error", bad, s)
		}
	}
}
