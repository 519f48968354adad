package ring

import (
	"strconv"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
)

func benchServers(n int) []Server {
	s := make([]Server, n)
	for i := range s {
		s[i] = Server{Addr: "10.0.0." + strconv.Itoa(i+1) + ":11211", Weight: 1 + i%3}
	}
	return s
}

// BenchmarkPick looks keys up in rings of 8 servers; a lookup must not
// allocate.
func BenchmarkPick(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i*7919) + ":profile"
	}
	for d := range numDistributions {
		b.Run(d.String(), func(b *testing.B) {
			r, err := New(benchServers(8), Config{Distribution: d})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.Pick(keys[i&1023])
				i++
			}
		})
	}
	b.Run("bytes/"+KetamaWeighted.String(), func(b *testing.B) {
		r, _ := New(benchServers(8), Config{})
		bkeys := make([][]byte, len(keys))
		for i, k := range keys {
			bkeys[i] = []byte(k)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.PickBytes(bkeys[i&1023])
			i++
		}
	})
	// gomemcache's own, beside ServerList's.
	b.Run("gomemcache.ServerList", func(b *testing.B) {
		var sl memcache.ServerList
		addrs := make([]string, 8)
		for i, s := range benchServers(8) {
			addrs[i] = s.Addr
		}
		if err := sl.SetServers(addrs...); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sl.PickServer(keys[i&1023])
			i++
		}
	})
}

// TestPickDoesNotAllocate holds the benchmark's promise in the tests.
func TestPickDoesNotAllocate(t *testing.T) {
	for d := range numDistributions {
		r, err := New(benchServers(5), Config{Distribution: d, HashTag: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		key, bkey := "user:{42}:profile", []byte("some:key:or:other")
		if n := testing.AllocsPerRun(100, func() { r.Pick(key); r.PickBytes(bkey) }); n != 0 {
			t.Errorf("%v: %v allocations per lookup", d, n)
		}
	}
}

// BenchmarkNew builds a ring of 8 servers.
func BenchmarkNew(b *testing.B) {
	for _, d := range []Distribution{KetamaWeighted, Ketama} {
		b.Run(d.String(), func(b *testing.B) {
			s := benchServers(8)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(s, Config{Distribution: d}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
