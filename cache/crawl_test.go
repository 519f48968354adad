package cache

import (
	"fmt"
	"testing"
	"time"
)

// Every bucket of a table is visited once by the reverse-bit cursor.
func TestNextBucketCoversTable(t *testing.T) {
	for _, size := range []uint64{1, 2, 64, 1024} {
		seen := make([]int, size)
		v, n := uint64(0), 0
		for {
			seen[v&(size-1)]++
			n++
			if v = nextBucket(v, size-1); v == 0 {
				break
			}
		}
		for i, s := range seen {
			if s != 1 {
				t.Fatalf("table of %d: bucket %d visited %d times", size, i, s)
			}
		}
	}
}

// A crawl visits every item present from its start to its end exactly
// once, though the hash tables grow between its batches.
func TestCrawlVisitsEachItemOnce(t *testing.T) {
	c, _ := newTest(t, Config{Shards: 4})
	const before = 3000
	for i := range before {
		c.Store(0, Set, k(fmt.Sprint("old", i)), Write{Value: k("v")})
	}
	seen := map[string]int{}
	cr := c.NewCrawler()
	added := 0
	for more := true; more; {
		more = cr.Crawl(50, func(it *CrawlItem) bool {
			seen[string(it.Key)]++
			return false
		})
		// Grow the tables while the crawl is under way.
		for range 20 {
			c.Store(0, Set, k(fmt.Sprint("new", added)), Write{Value: k("v")})
			added++
		}
	}
	for i := range before {
		if n := seen[fmt.Sprint("old", i)]; n != 1 {
			t.Fatalf("old%d visited %d times", i, n)
		}
	}
	for key, n := range seen {
		if n != 1 {
			t.Fatalf("%s visited %d times", key, n)
		}
	}
	if cr.Crawl(50, func(*CrawlItem) bool { t.Fatal("visited after the end"); return false }) {
		t.Fatal("a finished crawl goes on")
	}
}

// A crawl shows the items as stored and reclaims the expired ones it is
// told to, as the sweeper would, leaving the others.
func TestCrawlReclaimsExpired(t *testing.T) {
	c, clk := newTest(t, Config{Shards: 2, TombstoneTTL: -1})
	for i := range 10 {
		c.Store(0, Set, k(fmt.Sprint("short", i)), Write{Value: k("ab"), Expiry: 1, Flags: 7})
		c.Store(0, Set, k(fmt.Sprint("keep", i)), Write{Value: k("ab"), Expiry: 1})
		c.Store(0, Set, k(fmt.Sprint("long", i)), Write{Value: k("ab"), Expiry: 3600})
	}
	c.Get(0, k("long0"))
	clk.Advance(2 * time.Second)
	var live, expired int
	cr := c.NewCrawler()
	for cr.Crawl(7, func(it *CrawlItem) bool {
		key := string(it.Key)
		switch {
		case it.Expired:
			expired++
		default:
			live++
			if it.ValueLen != 2 || it.Expires == 0 || it.CAS == 0 || it.Fetched != (key == "long0") {
				t.Errorf("%s: %+v", key, *it)
			}
		}
		if key == "short0" && it.Flags != 7 {
			t.Errorf("short0: flags %d", it.Flags)
		}
		return len(key) > 5 && key[:5] == "short"
	}) {
	}
	if live != 10 || expired != 20 {
		t.Fatalf("live %d, expired %d; want 10, 20", live, expired)
	}
	st := c.Stats()
	if st.Reclaimed != 10 || st.ExpiredUnfetched != 10 {
		t.Fatalf("reclaimed %d, expired unfetched %d; want 10, 10", st.Reclaimed, st.ExpiredUnfetched)
	}
	if n := c.Len(); n != 20 {
		t.Fatalf("%d items left, want 20 (the long and the expired keep ones)", n)
	}
	mustGet(t, c, "long1", "ab")
	mustMiss(t, c, "keep1")
}
