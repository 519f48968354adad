package cache

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// Eviction takes the least recently used item of the whole cache, not
// of the storing key's shard (lru.t: after 100 stores into a full cache,
// exactly the oldest are gone).
func TestEvictionGlobalLRU(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 1000)
	per := int64(len(value)) + 4 + ItemOverhead
	c, clk := newTest(t, Config{MaxBytes: 20 * per, Shards: 16})
	key := func(i int) []byte { return fmt.Appendf(nil, "k%03d", i) }
	for i := range 100 {
		if _, err := c.Store(0, Set, key(i), Write{Value: value}); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			clk.Advance(time.Second) // ages in two different seconds
		}
	}
	for i := range 100 {
		if _, ok := c.Get(0, key(i)); ok != (i >= 80) {
			t.Fatalf("k%03d present %v", i, ok)
		}
		clk.Advance(time.Millisecond) // reads are ordered to the millisecond
	}
	if st := c.Stats(); st.Evictions != 80 || st.CurrItems != 20 {
		t.Fatalf("stats %+v", st)
	}

	// A read makes an item the most recently used, whatever its shard.
	c.Get(0, key(80))
	for i := 100; i < 110; i++ {
		c.Store(0, Set, key(i), Write{Value: value})
	}
	var got []int
	for i := 80; i < 110; i++ {
		if _, ok := c.Lookup(0, key(i), false); ok {
			got = append(got, i)
		}
	}
	if fmt.Sprint(got) != "[80 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109]" {
		t.Fatalf("present after a read and 10 stores: %v", got)
	}
}

// Concurrent stores and reads into a full cache keep memory at the limit
// once they are done, with flushes among them.
func TestEvictionConcurrent(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 500)
	per := int64(len(value)) + 8 + ItemOverhead
	c, _ := newTest(t, Config{MaxBytes: 100 * per, Shards: 64})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				key := fmt.Appendf(nil, "g%d:%d", g, i)
				c.Store(0, Set, key, Write{Value: value})
				c.Get(0, fmt.Appendf(nil, "g%d:%d", g, i/2))
				if g == 0 && i%1000 == 500 {
					c.Flush(0)
				}
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Bytes > 100*per || st.CurrItems == 0 || st.Evictions == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A shard's record stays a multiple of a cache line.
func TestShardSize(t *testing.T) {
	if n := unsafe.Sizeof(shard{}); n%64 != 0 {
		t.Fatalf("shard is %d bytes", n)
	}
	if n := unsafe.Sizeof(item{}); n != 72 {
		t.Fatalf("item record is %d bytes", n)
	}
}

// Stores into a full cache: every store evicts (with the default shards,
// and with 1024, a 64-core machine's default, for the cost of finding
// the oldest tail).
func BenchmarkSetEvicting(b *testing.B) { benchSetEvicting(b, Config{}) }

// benchSetEvicting stores new keys into a full 1 MiB cache of cfg, with
// the default shards and with 1024.
func benchSetEvicting(b *testing.B, cfg Config) {
	for _, shards := range []int{0, 1024} {
		b.Run(fmt.Sprint("shards=", shards), func(b *testing.B) {
			cfg := cfg
			cfg.MaxBytes, cfg.Shards = 1<<20, shards
			c := New(cfg)
			defer c.Close()
			value := make([]byte, 100)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				key := make([]byte, 0, 24)
				i := 0
				for pb.Next() {
					key = fmt.Appendf(key[:0], "key:%p:%d", &key, i)
					c.Store(0, Set, key, Write{Value: value})
					i++
				}
			})
		})
	}
}
