package cache

import (
	"fmt"
	"testing"
	"time"
)

// newSegmented returns a one-shard cache with memcached's segmented LRU.
func newSegmented(t *testing.T, cfg Config) (*Cache, *fakeClock) {
	t.Helper()
	cfg.LRU, cfg.Shards = Segmented, 1
	return newTest(t, cfg)
}

func set(t *testing.T, c *Cache, key string, exp uint32) {
	t.Helper()
	if _, err := c.Store(0, Set, []byte(key), Write{Value: []byte("value"), Expiry: exp}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *Cache, key string) {
	t.Helper()
	if _, ok := c.Get(0, []byte(key)); !ok {
		t.Fatalf("%s missing", key)
	}
}

func lruStats(c *Cache) LRUStats { return c.Stats().LRU }

func TestLRUNewItems(t *testing.T) {
	c, _ := newSegmented(t, Config{TempTTL: 61 * time.Second})
	set(t, c, "forever", 0)
	if l := lruStats(c); l.Hot != 1 || l.Temp != 0 || l.Cold != 0 {
		t.Fatalf("never expiring: %+v", l)
	}
	set(t, c, "short", 30)
	set(t, c, "at", 61)
	if l := lruStats(c); l.Temp != 2 {
		t.Fatalf("ttl 30 and 61 with temporary_ttl 61: %+v", l)
	}
	set(t, c, "long", 3600)
	if l := lruStats(c); l.Temp != 2 || l.Hot+l.Cold != 2 {
		t.Fatalf("ttl 3600: %+v", l)
	}
	f, _ := newTest(t, Config{Shards: 1})
	set(t, f, "flat", 30)
	if l := lruStats(f); l.Cold != 1 || l.Hot != 0 {
		t.Fatalf("flat: %+v", l)
	}
}

// HOT keeps at most hot_lru_pct of the shard's bytes: a store moves its
// tail to COLD (but a lone item stays).
func TestLRUHotToCold(t *testing.T) {
	c, _ := newSegmented(t, Config{})
	set(t, c, "k0", 0)
	if l := lruStats(c); l.Hot != 1 || l.MovesToCold != 0 {
		t.Fatalf("one item: %+v", l)
	}
	for i := 1; i < 10; i++ {
		set(t, c, fmt.Sprint("k", i), 0)
	}
	// Two of ten items are not more than 20%.
	if l := lruStats(c); l.Hot != 2 || l.Cold != 8 || l.MovesToCold != 8 {
		t.Fatalf("ten items: %+v", l)
	}
}

// HOT's tail goes to COLD once older than hot_max_factor times COLD's
// age (0 with COLD empty).
func TestLRUHotAge(t *testing.T) {
	c, clk := newSegmented(t, Config{})
	set(t, c, "k", 0)
	c.SweepNow()
	if l := lruStats(c); l.Hot != 1 || l.Juggles != 1 {
		t.Fatalf("young: %+v", l)
	}
	clk.Advance(2 * time.Second)
	c.SweepNow()
	if l := lruStats(c); l.Cold != 1 || l.MovesToCold != 1 || l.AgeCold != 2*time.Second {
		t.Fatalf("old: %+v", l)
	}
}

// A first fetch marks an item fetched, a second ACTIVE: an ACTIVE item
// in COLD moves to WARM at once; in HOT it stays, and the juggle moves
// it to WARM.
func TestLRUFetches(t *testing.T) {
	c, _ := newSegmented(t, Config{})
	set(t, c, "cold", 0)
	set(t, c, "hot", 0)
	get(t, c, "cold")
	if l := lruStats(c); l.Cold != 1 || l.HitsToCold != 1 || l.MovesToWarm != 0 {
		t.Fatalf("one fetch: %+v", l)
	}
	get(t, c, "cold")
	if l := lruStats(c); l.Warm != 1 || l.Cold != 0 || l.MovesToWarm != 1 {
		t.Fatalf("two fetches: %+v", l)
	}
	get(t, c, "hot")
	get(t, c, "hot")
	if l := lruStats(c); l.Hot != 1 || l.HitsToHot != 2 {
		t.Fatalf("hot fetched twice: %+v", l)
	}
	c.SweepNow()
	// hot to WARM, then cold, two of two items in WARM, to COLD.
	if l := lruStats(c); l.Hot != 0 || l.Warm != 1 || l.Cold != 1 || l.MovesToWarm != 2 || l.MovesToCold != 2 {
		t.Fatalf("juggled: %+v", l)
	}
}

// WARM's ACTIVE tail goes back to WARM's head; past warm_lru_pct the
// others go to COLD.
func TestLRUWarm(t *testing.T) {
	c, _ := newSegmented(t, Config{})
	for _, k := range []string{"a", "b", "c", "d"} {
		set(t, c, k, 0)
	}
	// a, b, c in COLD, d in HOT. a and b to WARM (a its tail).
	for _, k := range []string{"a", "a", "b", "b"} {
		get(t, c, k)
	}
	if l := lruStats(c); l.Warm != 2 || l.Cold != 1 || l.MovesToCold != 3 {
		t.Fatalf("setup: %+v", l)
	}
	get(t, c, "a") // ACTIVE again (it was fetched before)
	c.SweepNow()
	// a to WARM's head; then two of four items are more than 40%: b, the
	// tail, goes to COLD.
	if l := lruStats(c); l.MovesWithinLRU != 1 || l.Warm != 1 || l.Cold != 2 || l.MovesToCold != 4 || l.HitsToWarm != 1 {
		t.Fatalf("juggled: %+v", l)
	}
	get(t, c, "b")
	if l := lruStats(c); l.Cold != 1 || l.Warm != 2 {
		t.Fatalf("b fetched before: back to WARM at once: %+v", l)
	}
}

// Eviction takes COLD's tail; an item rescued to WARM, and TEMP's items,
// stay.
func TestLRUEviction(t *testing.T) {
	per := int64(len("k00")+len("value")) + ItemOverhead
	c, _ := newSegmented(t, Config{MaxBytes: 10 * per, TempTTL: 61 * time.Second})
	set(t, c, "tmp", 30)
	set(t, c, "k00", 0)
	get(t, c, "k00")
	for i := 1; i < 30; i++ {
		set(t, c, fmt.Sprintf("k%02d", i), 0)
		if i == 5 {
			get(t, c, "k00") // in COLD by now: to WARM
		}
	}
	st := c.Stats()
	if st.Evictions == 0 || st.LRU.Temp != 1 || st.LRU.Warm != 1 {
		t.Fatalf("stats %+v", st)
	}
	get(t, c, "tmp")
	get(t, c, "k00")
	get(t, c, "k29")
	if _, ok := c.Get(0, []byte("k01")); ok {
		t.Fatal("k01, the COLD tail, was not evicted")
	}
}

// With COLD empty and HOT holding only the item stored, eviction takes
// WARM's tail.
func TestLRUEvictWarm(t *testing.T) {
	per := int64(len("k00")+len("value")) + ItemOverhead
	c, _ := newSegmented(t, Config{MaxBytes: per + per/2})
	set(t, c, "k00", 0)
	get(t, c, "k00")
	get(t, c, "k00") // ACTIVE in HOT: the next store moves it to WARM
	set(t, c, "k01", 0)
	st := c.Stats()
	if st.Evictions != 1 || st.LRU.MovesToWarm != 1 || st.CurrItems != 1 {
		t.Fatalf("stats %+v", st)
	}
	get(t, c, "k01")
}

// Flat mode moves an item to the head on every fetch, as before.
func TestLRUFlat(t *testing.T) {
	per := int64(len("k00")+len("value")) + ItemOverhead
	c, _ := newTest(t, Config{Shards: 1, MaxBytes: 3 * per})
	set(t, c, "k00", 0)
	set(t, c, "k01", 0)
	set(t, c, "k02", 0)
	get(t, c, "k00")
	set(t, c, "k03", 0)
	if _, ok := c.Get(0, []byte("k01")); ok {
		t.Fatal("k01 stayed")
	}
	get(t, c, "k00")
	if l := lruStats(c); l.Cold != 3 || l.Hot != 0 || l.HitsToCold != 2 || l.Juggles != 0 {
		t.Fatalf("flat: %+v", l)
	}
}

// The hot paths with the segmented LRU (gocache's default), beside
// BenchmarkGetParallel and BenchmarkSetParallel's flat one.
func BenchmarkGetParallelSegmented(b *testing.B) { benchGetParallel(b, Config{LRU: Segmented}) }

func BenchmarkSetParallelSegmented(b *testing.B) { benchSetParallel(b, Config{LRU: Segmented}) }
