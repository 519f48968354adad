package cache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRaceStress runs every reader of items (cursors, backfills, scans,
// crawls, statistics, lookups) against stores, touches, deletions,
// evictions, sweeps (which turn items into tombstones in place) and
// flushes, so that go test -race sees any read of an item or of what a
// shard lock guards that is not ordered with its writer.
func TestRaceStress(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"flat", Config{MaxBytes: 256 << 10, Shards: 4, VBuckets: 4, ChangeLog: 64, TombstoneTTL: time.Hour, MaxTombstones: 200}},
		{"slabs", Config{MaxBytes: 4 << 20, Shards: 4, VBuckets: 4, ChangeLog: 64, TombstoneTTL: time.Hour,
			Slabs: &SlabConfig{PageSize: 64 << 10}, LRU: Segmented, TempTTL: 2 * time.Second}},
		{"noevict", Config{MaxBytes: 256 << 10, Shards: 4, VBuckets: 4, ChangeLog: 64, TombstoneTTL: time.Hour, NoEvict: true}},
		{"notombs", Config{MaxBytes: 256 << 10, Shards: 4, VBuckets: 4, ChangeLog: 64}},
		{"collections", Config{MaxBytes: 1 << 20, Shards: 4, VBuckets: 4, ChangeLog: 64, TombstoneTTL: time.Hour,
			Collections: true, Slabs: &SlabConfig{PageSize: 64 << 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) { raceStress(t, tc.cfg) })
	}
}

func raceStress(t *testing.T, cfg Config) {
	c, clk := newTest(t, cfg)
	const ops = 4000
	var stop atomic.Bool
	var wg, readers sync.WaitGroup
	key := func(i int) []byte { return fmt.Appendf(nil, "k%03d", i%300) }
	if cfg.Collections {
		key = func(i int) []byte { return fmt.Appendf(CollectionKey(nil, uint32(i%2*8), nil), "k%03d", i%300) }
	}
	sink := func(b []byte, x ...uint64) {
		var s byte
		for _, v := range b {
			s += v
		}
		_ = s
	}
	// Writers.
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]byte, 200)
			for i := range ops {
				vb := uint16(i % 4)
				kk := key(i*7 + w)
				switch i % 9 {
				case 0, 1, 2:
					c.Store(vb, Set, kk, Write{Value: v[:i%200], Flags: uint32(i), Expiry: uint32(1 + i%3), Datatype: uint8(i % 2)})
				case 3:
					c.Delete(vb, kk, 0)
				case 4:
					c.Touch(vb, kk, uint32(i%3), 0)
				case 5:
					c.Fetch(vb, kk, &FetchOptions{Touch: true, Expiry: uint32(1 + i%2), Recache: true, RecacheExpiry: 5})
				case 6:
					c.Incr(vb, kk, 1, 0, 2, 0)
				case 7:
					c.Store(vb, Append, kk, Write{Value: v[:3]})
				case 8:
					c.Get(vb, kk)
					c.Inspect(vb, kk)
					c.Lookup(vb, kk, true)
				}
				if i%1500 == 1499 && w == 0 {
					c.Flush(0)
				}
			}
		}()
	}
	if cfg.Collections {
		// System events, live and dropped, and collections dropped.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops / 4 {
				vb := uint16(i % 4)
				id := fmt.Appendf(nil, "e%02d", i%40)
				c.RecordEvent(vb, SystemEvent{ID: id, Value: id, Deleted: i%3 == 0, Collection: 8, InCollection: true})
				if i%200 == 199 {
					c.DropCollection(8)
				}
			}
		}()
	}
	// The sweeper.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range ops / 20 {
			clk.Advance(300 * time.Millisecond)
			c.SweepNow()
		}
	}()
	// Readers, until the writers are done.
	readers.Add(5)
	go func() {
		defer readers.Done()
		var chs []Change
		for !stop.Load() {
			vb := uint16(0)
			cur, err := c.Changes(vb)
			if err != nil {
				t.Error(err)
				return
			}
			for range 20 {
				chs, _ = cur.Next(chs[:0], 0)
				for _, ch := range chs {
					sink(ch.Key)
					sink(ch.Value, uint64(ch.Flags), uint64(ch.Datatype))
				}
			}
			cur.Close()
		}
	}()
	go func() {
		defer readers.Done()
		var vs []Version
		for !stop.Load() {
			vs, _ = c.Backfill(1, 0, ^uint64(0), 0, vs[:0])
			for _, v := range vs {
				sink(v.Key)
				sink(v.Value, uint64(v.Flags))
			}
		}
	}()
	go func() {
		defer readers.Done()
		for !stop.Load() {
			sc, err := c.ScanRange(2, KeyRange{Start: nil, End: k("\xff")})
			if err != nil {
				continue
			}
			for {
				kk, it, ok := sc.Next()
				if !ok {
					break
				}
				sink(kk)
				sink(it.Value)
			}
			c.HasSeqno(2, 5)
			if kk, it, ok := c.RandomKey(0); ok && !cfg.Collections {
				sink(kk)
				sink(it.Value)
			}
		}
	}()
	go func() {
		defer readers.Done()
		for !stop.Load() {
			cr := c.NewCrawler()
			for cr.Crawl(50, func(it *CrawlItem) bool { sink(it.Key); return it.Expired }) {
			}
		}
	}()
	go func() {
		defer readers.Done()
		for !stop.Load() {
			c.Stats()
			c.Slabs()
			c.Len()
		}
	}()
	wg.Wait()
	stop.Store(true)
	readers.Wait()
}

// TestRaceCursorInPlaceTombstone: a sweep makes an expired item its own
// tombstone (datatype cleared) only while no cursor follows its vbucket;
// cursors opened and closed as fast as they can, reading every change's
// value, flags and datatype, race with nothing.
func TestRaceCursorInPlaceTombstone(t *testing.T) {
	c, clk := newTest(t, Config{Shards: 2, VBuckets: 1, ChangeLog: 1024, TombstoneTTL: time.Hour})
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		var chs []Change
		for !stop.Load() {
			cur, _ := c.Changes(0)
			chs, _ = cur.Next(chs[:0], 0)
			for _, ch := range chs {
				_ = ch.Datatype + byte(ch.Flags) + byte(len(ch.Value))
			}
			cur.Close()
		}
	}()
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for !stop.Load() {
			clk.Advance(time.Second)
			c.SweepNow()
		}
	}()
	for i := range 20000 {
		c.Store(0, Set, fmt.Appendf(nil, "k%d", i%64), Write{Value: k("v"), Expiry: 1, Datatype: 1, Flags: 1})
	}
	stop.Store(true)
	<-done
	<-swept
	if st := c.Stats(); st.ExpiredUnfetched == 0 {
		t.Fatalf("nothing expired: %+v", st)
	}
}
