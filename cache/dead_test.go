package cache

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// memcached's flush leaves its items in memory, invisible: a get that
// finds one counts get_flushed, a store that takes its memory reclaimed
// (stats.t, issue_183.t). The dead set gives the same counts.
func TestFlushCounts(t *testing.T) {
	c, clk := newTest(t, Config{Shards: 4})
	c.Store(0, Set, k("a"), Write{Value: k("1")})
	c.Store(0, Set, k("b"), Write{Value: k("2")})
	c.Store(0, Set, k("c"), Write{Value: k("3")})
	c.Get(0, k("c"))
	c.Flush(0)
	st := c.Stats()
	if st.CurrItems != 0 || st.DeadItems != 3 || st.DeadBytes != st.Bytes || st.Bytes == 0 {
		t.Fatalf("after flush: %+v", st)
	}
	mustMiss(t, c, "a")
	mustMiss(t, c, "a") // found once: the second get is a plain miss
	if st := c.Stats(); st.GetFlushed != 1 || st.GetMisses != 2 || st.DeadItems != 2 || st.Reclaimed != 0 {
		t.Fatalf("after gets of a flushed key: %+v", st)
	}
	// A store over a flushed key reclaims its memory (issue_183.t).
	c.Store(0, Set, k("b"), Write{Value: k("two")})
	if st := c.Stats(); st.Reclaimed != 1 || st.ExpiredUnfetched != 1 || st.GetFlushed != 1 || st.DeadItems != 1 {
		t.Fatalf("after a store over a flushed key: %+v", st)
	}
	mustGet(t, c, "b", "two")
	// Touch, delete and the others count get_flushed as memcached's item
	// lookup does for every command.
	if _, err := c.Delete(0, k("c"), 0); err != ErrNotFound {
		t.Fatalf("delete of a flushed key: %v", err)
	}
	if st := c.Stats(); st.GetFlushed != 2 || st.DeadItems != 0 || st.DeadBytes != 0 {
		t.Fatalf("after a delete of a flushed key: %+v", st)
	}

	// A sweep reclaims what is left once it has been dead a sweep
	// interval (one second here), not before.
	c.Store(0, Set, k("d"), Write{Value: k("4")})
	c.Flush(0)
	c.SweepNow()
	if st := c.Stats(); st.DeadItems != 2 {
		t.Fatalf("swept at once: %+v", st)
	}
	clk.Advance(time.Second)
	c.SweepNow()
	if st := c.Stats(); st.DeadItems != 0 || st.Bytes != 0 || st.Reclaimed != 3 {
		t.Fatalf("after the sweep: %+v", st)
	}

	// A flush drops what an earlier flush left.
	c.Store(0, Set, k("e"), Write{Value: k("5")})
	c.Flush(0)
	c.Store(0, Set, k("f"), Write{Value: k("6")})
	c.Flush(0)
	if st := c.Stats(); st.DeadItems != 1 || st.Reclaimed != 4 {
		t.Fatalf("after two flushes: %+v", st)
	}
	mustMiss(t, c, "e")
	mustMiss(t, c, "f")
	if st := c.Stats(); st.GetFlushed != 3 {
		t.Fatalf("gets after two flushes: %+v", st)
	}
}

// An item stored already expired is kept dead: a get of it counts
// get_expired (stats.t), a store over it reclaimed.
func TestStoredExpiredCounts(t *testing.T) {
	c, _ := newTest(t, Config{})
	past := uint32(relativeLimit + 1) // an absolute time in 1970
	if _, err := c.Store(0, Set, k("x"), Write{Value: k("v"), Expiry: past}); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, "x")
	if st := c.Stats(); st.GetExpired != 1 || st.GetFlushed != 0 || st.DeadItems != 0 || st.Bytes != 0 {
		t.Fatalf("after a get: %+v", st)
	}
	// Over a live item: that one is deleted, the new one dead.
	c.Store(0, Set, k("y"), Write{Value: k("v")})
	c.Store(0, Set, k("y"), Write{Value: k("w"), Expiry: past})
	mustMiss(t, c, "y")
	c.Store(0, Set, k("z"), Write{Value: k("v"), Expiry: past})
	c.Store(0, Set, k("z"), Write{Value: k("v")})
	if st := c.Stats(); st.GetExpired != 2 || st.Reclaimed != 1 || st.CurrItems != 1 {
		t.Fatalf("stats: %+v", st)
	}
	mustGet(t, c, "z", "v")
}

// Dead items go first when memory is needed, with or without eviction,
// and are no evictions.
func TestDeadMemory(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 1000)
	per := int64(len(value)) + 4 + ItemOverhead
	for _, noEvict := range []bool{false, true} {
		t.Run(fmt.Sprint("NoEvict=", noEvict), func(t *testing.T) {
			c, _ := newTest(t, Config{MaxBytes: 10 * per, Shards: 4, NoEvict: noEvict})
			for i := range 10 {
				if _, err := c.Store(0, Set, fmt.Appendf(nil, "k%03d", i), Write{Value: value}); err != nil {
					t.Fatal(err)
				}
			}
			c.Flush(0)
			for i := range 10 {
				if _, err := c.Store(0, Set, fmt.Appendf(nil, "n%03d", i), Write{Value: value}); err != nil {
					t.Fatalf("store %d after a flush: %v", i, err)
				}
			}
			st := c.Stats()
			if st.Evictions != 0 || st.Reclaimed != 10 || st.DeadItems != 0 || st.CurrItems != 10 || st.Bytes > 10*per {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
