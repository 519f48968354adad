package memcached

// A routed Get through Servers beside the same Get through one node's
// Pool, on the same in-process gocache, from one goroutine and from 64:
//
//	go test -run '^$' -bench ServersGet -benchmem -count 6 ./client/
//
// "pool" is Pool.Shared then Client.Get, the path Servers takes for a
// key's node; "pooldo" is Pool.Do with a GET request; "servers-1" is
// Servers over that one node (the cost of routing: the ring lookup and
// failure accounting); "servers-3" spreads the keys over three nodes of
// the same process.

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/ring"
)

func BenchmarkServersGet(b *testing.B) {
	var addrs []string
	for range 3 {
		_, addr := gocachetest.Start(b, gocache.Config{})
		addrs = append(addrs, addr)
	}
	const nkeys = 1024
	keys := make([]string, nkeys)
	value := make([]byte, 100)
	one, err := NewServers(ringServers(addrs[:1]), ring.Config{}, ServersOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer one.Close()
	three, err := NewServers(ringServers(addrs), ring.Config{}, ServersOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer three.Close()
	for i := range keys {
		keys[i] = "bench:servers:" + strconv.Itoa(i)
		if _, err := one.Set(0, keys[i], 0, 0, value); err != nil {
			b.Fatal(err)
		}
		if _, err := three.Set(0, keys[i], 0, 0, value); err != nil {
			b.Fatal(err)
		}
	}
	pool := NewPool("tcp", addrs[0], PoolOptions{})
	defer pool.Close()
	ctx := context.Background()

	paths := []struct {
		name string
		get  func(k string) error
	}{
		{"pool", func(k string) error {
			c, err := pool.Shared(ctx)
			if err != nil {
				return err
			}
			_, err = c.Get(0, k)
			return err
		}},
		{"pooldo", func(k string) error {
			_, err := pool.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(k)})
			return err
		}},
		{"servers-1", func(k string) error { _, err := one.Get(0, k); return err }},
		{"servers-3", func(k string) error { _, err := three.Get(0, k); return err }},
	}
	for _, par := range []int{1, benchGoroutines} {
		for _, p := range paths {
			b.Run(p.name+"/g"+strconv.Itoa(par), func(b *testing.B) {
				b.ReportAllocs()
				if par == 1 {
					for i := 0; b.Loop(); i++ {
						if err := p.get(keys[i%nkeys]); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism((par + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						i := 0
						for pb.Next() {
							if err := p.get(keys[i%nkeys]); err != nil {
								b.Error(err)
								return
							}
							i++
						}
					})
				}
				reportOps(b)
			})
		}
	}
}

// The routing alone, without the network: the ring lookup (ketama, MD5)
// and the failure accounting a routed call adds to the Pool's path.
func BenchmarkServersRoute(b *testing.B) {
	addrs := []string{"127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213", "127.0.0.1:11214"}
	s, err := NewServers(ringServers(addrs), ring.Config{}, ServersOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "bench:servers:" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			n, err := s.pick(keys[i%len(keys)])
			if err != nil {
				b.Error(err)
				return
			}
			s.done(n, nil)
			i++
		}
	})
}
