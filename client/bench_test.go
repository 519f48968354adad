package memcached

// Benchmarks against one real memcached, ours beside the reference client
// (github.com/couchbase/gomemcached/client v0.3.4) in the same run:
//
//	go test -run '^$' -bench Client -benchmem -count 6 ./client/
//
// Get and Set of 100-byte values from one goroutine, and from 64: the
// reference with one connection per goroutine (it is not safe for
// concurrent use), ours with one shared Client and with a Pool. Each
// benchmark reports ops/s beside ns/op and allocs/op.

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	refc "github.com/couchbase/gomemcached/client"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

const benchGoroutines = 64

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkClient(b *testing.B) {
	addr := peer.Memcached(b, "-t", "2")
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte(i)
	}
	const key = "bench:get"
	setup, err := Connect("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer setup.Close()
	if _, err := setup.Set(0, key, 0, 0, value); err != nil {
		b.Fatal(err)
	}

	refConn := func(b *testing.B) *refc.Client {
		c, err := refc.Connect("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	ourConn := func(b *testing.B) *Client {
		c, err := Connect("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	check := func(b *testing.B, n int, err error) {
		if err != nil || n != len(value) {
			b.Fatalf("read %d bytes, %v", n, err)
		}
	}

	b.Run("Get100/reference", func(b *testing.B) {
		c := refConn(b)
		b.ReportAllocs()
		for b.Loop() {
			res, err := c.Get(0, key)
			check(b, len(res.Body), err)
		}
		reportOps(b)
	})
	b.Run("Get100/ours", func(b *testing.B) {
		c := ourConn(b)
		b.ReportAllocs()
		for b.Loop() {
			res, err := c.Get(0, key)
			check(b, len(res.Body), err)
		}
		reportOps(b)
	})
	b.Run("Set100/reference", func(b *testing.B) {
		c := refConn(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Set(0, "bench:set", 0, 0, value); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})
	b.Run("Set100/ours", func(b *testing.B) {
		c := ourConn(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Set(0, "bench:set", 0, 0, value); err != nil {
				b.Fatal(err)
			}
		}
		reportOps(b)
	})

	// 64 goroutines.
	parallel := func(b *testing.B, op func(g int) error) {
		b.SetParallelism((benchGoroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ReportAllocs()
		var next atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			g := int(next.Add(1) - 1)
			for pb.Next() {
				if err := op(g); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportOps(b)
	}
	refConns := func(b *testing.B) []*refc.Client {
		cs := make([]*refc.Client, benchGoroutines)
		for i := range cs {
			cs[i] = refConn(b)
		}
		return cs
	}
	setKeys := make([]string, benchGoroutines*2)
	for i := range setKeys {
		setKeys[i] = "bench:set:" + strconv.Itoa(i)
	}
	pool := func(b *testing.B) *Pool {
		p := NewPool("tcp", addr, PoolOptions{})
		b.Cleanup(func() { p.Close() })
		return p
	}
	ctx := context.Background()
	// checkLen is check for the goroutines of RunParallel, which must not
	// call b.Fatal.
	checkLen := func(n int) error {
		if n != len(value) {
			return fmt.Errorf("read %d bytes, want %d", n, len(value))
		}
		return nil
	}

	for _, op := range []string{"Get100", "Set100"} {
		get := op == "Get100"
		b.Run(op+"x64/reference-conn-per-goroutine", func(b *testing.B) {
			cs := refConns(b)
			parallel(b, func(g int) error {
				c := cs[g%len(cs)]
				if get {
					res, err := c.Get(0, key)
					if err != nil {
						return err
					}
					return checkLen(len(res.Body))
				}
				_, err := c.Set(0, setKeys[g], 0, 0, value)
				return err
			})
		})
		b.Run(op+"x64/ours-shared-client", func(b *testing.B) {
			c := ourConn(b)
			parallel(b, func(g int) error {
				if get {
					res, err := c.Get(0, key)
					if err != nil {
						return err
					}
					return checkLen(len(res.Body))
				}
				_, err := c.Set(0, setKeys[g], 0, 0, value)
				return err
			})
		})
		b.Run(op+"x64/ours-pool", func(b *testing.B) {
			p := pool(b)
			parallel(b, func(g int) error {
				c, err := p.Shared(ctx)
				if err != nil {
					return err
				}
				if get {
					res, err := c.Get(0, key)
					if err != nil {
						return err
					}
					return checkLen(len(res.Body))
				}
				_, err = c.Set(0, setKeys[g], 0, 0, value)
				return err
			})
		})
	}
}
