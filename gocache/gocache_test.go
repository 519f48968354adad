package gocache_test

import (
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// memccapable (libmemcached's memcapable) runs its 27 binary-protocol
// tests against gocache.
func TestMemccapable(t *testing.T) {
	bin := peer.Require(t, "memccapable")
	for _, loops := range []int{0, 2} {
		_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
		host, port, _ := net.SplitHostPort(addr)
		out, err := exec.Command(bin, "-h", host, "-p", port, "-b").CombinedOutput()
		passed := strings.Count(string(out), "[pass]")
		if err != nil || passed != 27 || strings.Contains(string(out), "[FAIL]") {
			t.Fatalf("memccapable, event loops %d: %v, %d passed\n%s", loops, err, passed, out)
		}
	}
}

// stats fetches a STAT group as a map.
func stats(t *testing.T, addr, group string) map[string]string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	(&gm.MCRequest{Opcode: gm.STAT, Key: []byte(group)}).Transmit(c)
	r := gm.NewReader(c)
	out := map[string]string{}
	for {
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != nil {
			t.Fatal(err)
		}
		if res.Status != gm.SUCCESS {
			t.Fatalf("STAT %q: %v", group, res.Status)
		}
		if len(res.Key) == 0 {
			return out
		}
		out[string(res.Key)] = string(res.Body)
	}
}

func do(t *testing.T, c net.Conn, r *gm.Reader, req gm.MCRequest) gm.MCResponse {
	t.Helper()
	if _, err := req.Transmit(c); err != nil {
		t.Fatal(err)
	}
	var res gm.MCResponse
	if err := r.ReadResponse(&res); err != nil {
		t.Fatal(err)
	}
	res.Body = bytes.Clone(res.Body)
	return res
}

func TestStats(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{Threads: 3, MaxConns: 77})
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := gm.NewReader(c)
	ext := make([]byte, 8)
	do(t, c, r, gm.MCRequest{Opcode: gm.SET, Key: []byte("a"), Extras: ext, Body: []byte("12345")})
	do(t, c, r, gm.MCRequest{Opcode: gm.GET, Key: []byte("a")})
	do(t, c, r, gm.MCRequest{Opcode: gm.GET, Key: []byte("b")})
	do(t, c, r, gm.MCRequest{Opcode: gm.DELETE, Key: []byte("b")})
	do(t, c, r, gm.MCRequest{Opcode: gm.TOUCH, Key: []byte("a"), Extras: make([]byte, 4)})
	// memcached counts no miss for a counter it creates.
	do(t, c, r, gm.MCRequest{Opcode: gm.INCREMENT, Key: []byte("ctr"), Extras: make([]byte, 20)})

	st := stats(t, addr, "")
	for name, want := range map[string]string{
		"cmd_get": "2", "get_hits": "1", "get_misses": "1", "cmd_set": "1", "delete_misses": "1",
		"cmd_touch": "1", "touch_hits": "1", "curr_items": "2", "total_items": "2", "threads": "3",
		"incr_misses": "0", "incr_hits": "0",
		"max_connections": "77", "limit_maxbytes": strconv.Itoa(cache.DefaultMaxBytes), "version": gocache.Version,
		"curr_connections": "2", "evictions": "0",
	} {
		if st[name] != want {
			t.Errorf("stat %s = %q, want %q", name, st[name], want)
		}
	}
	for _, name := range []string{"pid", "uptime", "time", "rusage_user", "rusage_system", "total_connections",
		"incr_hits", "incr_misses", "decr_hits", "decr_misses", "cas_hits", "cas_misses", "cas_badval",
		"bytes", "bytes_read", "bytes_written", "expired_unfetched", "evicted_unfetched", "reclaimed",
		"auth_cmds", "auth_errors", "rejected_connections", "store_too_large", "store_no_memory"} {
		if _, ok := st[name]; !ok {
			t.Errorf("stat %s missing", name)
		}
	}
	if n, _ := strconv.Atoi(st["bytes"]); n < 6 {
		t.Errorf("bytes = %s", st["bytes"])
	}
	set := stats(t, addr, "settings")
	if set["maxconns"] != "77" || set["item_size_max"] != "1048576" || set["evictions"] != "on" {
		t.Errorf("settings %v", set)
	}
	if items := stats(t, addr, "items"); items["items:1:number"] != "2" {
		t.Errorf("items %v", items)
	}
	stats(t, addr, "reset")
	// As memcached: counters start again, current values stay. The only
	// connection made since the reset is the one asking.
	st = stats(t, addr, "")
	for name, want := range map[string]string{
		"get_hits": "0", "cmd_get": "0", "total_items": "0", "total_connections": "1",
		"curr_items": "2",
	} {
		if st[name] != want {
			t.Errorf("after reset: stat %s = %q, want %q", name, st[name], want)
		}
	}
	if n, _ := strconv.Atoi(st["bytes_read"]); n == 0 || n > 100 {
		t.Errorf("after reset: bytes_read = %s, want only the STAT request", st["bytes_read"])
	}
}

// -m with eviction, -M refusing, -I limiting, through the protocol.
func TestLimits(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 10_000)
	for _, tc := range []struct {
		name    string
		cfg     cache.Config
		want    gm.Status
		evicted bool
	}{
		{"evicts", cache.Config{MaxBytes: 1 << 20}, gm.SUCCESS, true},
		{"refuses", cache.Config{MaxBytes: 1 << 20, NoEvict: true}, gm.ENOMEM, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := gocachetest.Start(t, gocache.Config{Cache: tc.cfg})
			c, _ := net.Dial("tcp", addr)
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := gm.NewReader(c)
			var last gm.MCResponse
			for i := range 200 {
				last = do(t, c, r, gm.MCRequest{Opcode: gm.SET, Key: []byte(strconv.Itoa(i)), Extras: make([]byte, 8), Body: value})
				if last.Status != gm.SUCCESS {
					break
				}
			}
			if last.Status != tc.want {
				t.Fatalf("last store: %v, want %v", last.Status, tc.want)
			}
			if tc.want == gm.ENOMEM {
				// memcached 1.6's words, for a SET and an APPEND when full
				// (it allocates the appended value first).
				if string(last.Body) != "Out of memory allocating item" {
					t.Fatalf("ENOMEM body %q", last.Body)
				}
				// One byte more keeps the item in its full slab class
				// (a class of its own would get its first page).
				app := do(t, c, r, gm.MCRequest{Opcode: gm.APPEND, Key: []byte("0"), Body: []byte("v")})
				if app.Status != gm.ENOMEM || string(app.Body) != "Out of memory allocating item" {
					t.Fatalf("append when full: %v %q", app.Status, app.Body)
				}
			}
			st := stats(t, addr, "")
			if ev, _ := strconv.Atoi(st["evictions"]); (ev > 0) != tc.evicted {
				t.Fatalf("evictions = %s", st["evictions"])
			}
			if b, _ := strconv.Atoi(st["bytes"]); b > 1<<20 {
				t.Fatalf("bytes %d over the limit", b)
			}
		})
	}
	_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{MaxItemSize: 4096}})
	c, _ := net.Dial("tcp", addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := gm.NewReader(c)
	if res := do(t, c, r, gm.MCRequest{Opcode: gm.SET, Key: []byte("k"), Extras: make([]byte, 8), Body: make([]byte, 5000)}); res.Status != gm.E2BIG {
		t.Fatalf("-I 4096: %v", res.Status)
	}
	if res := do(t, c, r, gm.MCRequest{Opcode: gm.NOOP}); res.Status != gm.SUCCESS {
		t.Fatal("connection not usable after E2BIG")
	}
}

// Pipelined GETs of an item near the size limit are all answered, in both
// serving modes, to a client that starts reading late.
func TestLargeItemPipeline(t *testing.T) {
	for _, loops := range []int{0, 2} {
		_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := gm.NewReader(c)
		val := bytes.Repeat([]byte{'v'}, 900<<10)
		if res := do(t, c, r, gm.MCRequest{Opcode: gm.SET, Key: []byte("k"), Extras: make([]byte, 8), Body: val}); res.Status != gm.SUCCESS {
			t.Fatal(res.Status)
		}
		var wire []byte
		for i := range 8 {
			wire, _ = (&gm.MCRequest{Opcode: gm.GET, Key: []byte("k"), Opaque: uint32(i)}).AppendTo(wire)
		}
		if _, err := c.Write(wire); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		for i := range 8 {
			var res gm.MCResponse
			if err := r.ReadResponse(&res); err != nil || res.Opaque != uint32(i) || !bytes.Equal(res.Body, val) {
				t.Fatalf("event loops %d: GET %d of 8: %v", loops, i, err)
			}
		}
	}
}
