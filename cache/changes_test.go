package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// drain reads every change a cursor has now.
func drain(t *testing.T, cur *Cursor) []Change {
	t.Helper()
	changes, err := cur.Next(nil, 0)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return changes
}

// Concurrent writers to one vbucket, on a few keys over several shards:
// every change gets the next seqno, a key's seqnos follow the order its
// changes were applied in (their CAS order), each key's last change is
// what it holds, and the change log replayed in seqno order rebuilds the
// store.
func TestSeqnosInApplyOrder(t *testing.T) {
	const vb, writers, ops = 7, 8, 3000
	c, _ := newTest(t, Config{Shards: 8, ChangeLog: writers * ops})
	cur, err := c.Changes(vb)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	type result struct {
		key string
		m   Mutation
		del bool
	}
	results := make([][]result, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for i := range ops {
				key := fmt.Sprintf("k%d", rng.IntN(12))
				var m Mutation
				var err error
				del := false
				switch rng.IntN(4) {
				case 0:
					m, err = c.Store(vb, Set, []byte(key), Write{Value: fmt.Appendf(nil, "%d/%d", g, i)})
				case 1:
					m, err = c.Store(vb, Append, []byte(key), Write{Value: []byte("+")})
				case 2:
					_, m, err = c.Incr(vb, []byte(key), 1, 0, 0, 0)
				case 3:
					m, err = c.Delete(vb, []byte(key), 0)
					del = true
				}
				if err == nil {
					results[g] = append(results[g], result{key, m, del})
				}
			}
		}()
	}
	wg.Wait()
	all := slices.Concat(results...)
	slices.SortFunc(all, func(a, b result) int { return int(a.m.Seqno) - int(b.m.Seqno) })
	high, uuid := c.HighSeqno(vb)
	if len(all) == 0 || high != uint64(len(all)) {
		t.Fatalf("%d changes, high seqno %d", len(all), high)
	}
	lastCAS := map[string]uint64{}
	for i, r := range all {
		if r.m.Seqno != uint64(i+1) || r.m.VBUUID != uuid {
			t.Fatalf("change %d: %+v, want seqno %d of vbucket %x", i, r.m, i+1, uuid)
		}
		if r.m.CAS <= lastCAS[r.key] {
			t.Fatalf("%s: seqno %d has CAS %d, after CAS %d: numbered out of apply order",
				r.key, r.m.Seqno, r.m.CAS, lastCAS[r.key])
		}
		lastCAS[r.key] = r.m.CAS
	}
	changes := drain(t, cur)
	if len(changes) != len(all) {
		t.Fatalf("the log has %d changes, the writers made %d", len(changes), len(all))
	}
	replay := map[string]string{}
	for i, ch := range changes {
		r := all[i]
		if ch.Seqno != r.m.Seqno || ch.CAS != r.m.CAS || string(ch.Key) != r.key || (ch.Kind == Deleted) != r.del {
			t.Fatalf("log entry %d: %v %q seqno %d cas %d; the writer saw %+v", i, ch.Kind, ch.Key, ch.Seqno, ch.CAS, r)
		}
		if ch.Kind == Mutated {
			replay[string(ch.Key)] = string(ch.Value)
		} else {
			delete(replay, string(ch.Key))
		}
	}
	for i := range 12 {
		key := fmt.Sprintf("k%d", i)
		it, ok := c.Get(vb, []byte(key))
		if want, had := replay[key]; ok != had || string(it.Value) != want {
			t.Errorf("%s holds %q (%v); the log replays to %q (%v)", key, it.Value, ok, want, had)
		}
	}
}

// A key's changes number its revisions; a vbucket is a key space of its
// own; and ids past the configured count are refused.
func TestVBucketsAndRevisions(t *testing.T) {
	c, _ := newTest(t, Config{VBuckets: 4})
	c.Store(1, Set, k("a"), Write{Value: k("one")})
	c.Store(2, Set, k("a"), Write{Value: k("two")})
	if it := mustGetVB(t, c, 1, "a", "one"); it.Rev != 1 || it.Seqno != 1 {
		t.Fatalf("first store: rev %d seqno %d", it.Rev, it.Seqno)
	}
	mustGetVB(t, c, 2, "a", "two")
	if _, ok := c.Get(0, k("a")); ok {
		t.Fatal("vbucket 0 sees another vbucket's key")
	}
	c.Store(1, Append, k("a"), Write{Value: k("!")})
	c.Touch(1, k("a"), 100, 0)
	if it := mustGetVB(t, c, 1, "a", "one!"); it.Rev != 3 || it.Seqno != 3 {
		t.Fatalf("after append and touch: rev %d seqno %d", it.Rev, it.Seqno)
	}
	if s, _ := c.HighSeqno(2); s != 1 {
		t.Fatalf("vbucket 2 high seqno %d", s)
	}
	if _, err := c.Store(4, Set, k("a"), Write{Value: k("x")}); !errors.Is(err, ErrNoVBucket) {
		t.Fatalf("store to vbucket 4 of 4: %v", err)
	}
	if _, ok := c.Get(4, k("a")); ok {
		t.Fatal("get from vbucket 4 of 4 hit")
	}
	if _, err := c.Changes(9); !errors.Is(err, ErrNoVBucket) {
		t.Fatalf("cursor on vbucket 9 of 4: %v", err)
	}
}

func mustGetVB(t *testing.T, c *Cache, vb uint16, key, want string) Item {
	t.Helper()
	it, ok := c.Get(vb, k(key))
	if !ok || string(it.Value) != want {
		t.Fatalf("Get(%d, %q) = %q, %v; want %q", vb, key, it.Value, ok, want)
	}
	return it
}

// Every kind of removal is a numbered change in the log.
func TestCursorKinds(t *testing.T) {
	value := make([]byte, 1000)
	per := int64(len(value)) + 1 + ItemOverhead
	c, clk := newTest(t, Config{MaxBytes: 3 * per, Shards: 1})
	cur, _ := c.Changes(0)
	defer cur.Close()
	c.Store(0, Set, k("a"), Write{Value: value, Flags: 5, Expiry: 10})
	c.Store(0, Set, k("b"), Write{Value: value, Expiry: 1})
	c.Delete(0, k("a"), 0)
	clk.Advance(2 * time.Second)
	c.Get(0, k("b")) // expires
	for _, key := range []string{"c", "d", "e", "f"} {
		c.Store(0, Set, k(key), Write{Value: value})
	}
	c.Store(0, Set, k("g"), Write{Value: value, Expiry: relativeLimit + 1}) // stored expired: nothing to remove
	c.Store(0, Set, k("f"), Write{Value: make([]byte, DefaultMaxItemSize)}) // too large: removes f
	var got []string
	for _, ch := range drain(t, cur) {
		got = append(got, fmt.Sprintf("%d %v %s", ch.Seqno, ch.Kind, ch.Key))
	}
	want := []string{"1 mutated a", "2 mutated b", "3 deleted a", "4 expired b", "5 mutated c", "6 mutated d",
		"7 mutated e", "8 mutated f", "9 evicted c", "10 deleted f"}
	if !slices.Equal(got, want) {
		t.Fatalf("changes:\n%q\nwant\n%q", got, want)
	}
	first, _ := c.Changes(0)
	defer first.Close()
	c.Store(0, Set, k("x"), Write{Value: k("v"), Flags: 9, Expiry: 10, Datatype: 1})
	ch := drain(t, first)
	if len(ch) != 1 || string(ch[0].Value) != "v" || ch[0].Flags != 9 || ch[0].Datatype != 1 ||
		ch[0].Expires.IsZero() || ch[0].Rev != 1 {
		t.Fatalf("mutation as the log gives it: %+v", ch)
	}
}

// A cursor that falls further behind than its log can grow, or whose
// cache is flushed, has lost changes and says so; Wait wakes for new
// changes and ends with its context.
func TestCursorLostAndWait(t *testing.T) {
	c, _ := newTest(t, Config{ChangeLog: 4})
	slow, _ := c.Changes(0)
	defer slow.Close()
	for i := range 4*logGrowth + 1 {
		c.Store(0, Set, fmt.Appendf(nil, "k%d", i), Write{Value: k("v")})
	}
	if _, err := slow.Next(nil, 0); !errors.Is(err, ErrChangesLost) {
		t.Fatalf("%d changes behind a log of 4 that grows to %d: %v", 4*logGrowth+1, 4*logGrowth, err)
	}
	cur, _ := c.Changes(0)
	defer cur.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := cur.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with nothing to read: %v", err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Store(0, Set, k("late"), Write{Value: k("v")})
	}()
	if err := cur.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ch, err := cur.Next(nil, 1); err != nil || len(ch) != 1 || string(ch[0].Key) != "late" {
		t.Fatalf("after Wait: %+v, %v", ch, err)
	}
	c.Flush(0)
	if _, err := cur.Next(nil, 0); !errors.Is(err, ErrChangesLost) {
		t.Fatalf("after a flush: %v", err)
	}
	cur.Close()
	if _, err := cur.Next(nil, 0); !errors.Is(err, ErrCursorClosed) {
		t.Fatalf("after Close: %v", err)
	}
	slow.Close()
	if c.vbs[0].log != nil {
		t.Fatal("the change log outlives its cursors")
	}
}

// With TombstoneTTL a deletion and an expiry leave a tombstone: not an
// item, but memory, and the key's revision continues from it; the sweeper
// purges it when its time is up.
func TestTombstones(t *testing.T) {
	c, clk := newTest(t, Config{TombstoneTTL: time.Minute})
	c.Store(0, Set, k("a"), Write{Value: k("value")})
	c.Store(0, Set, k("a"), Write{Value: k("value2")})
	m, err := c.Delete(0, k("a"), 0)
	if err != nil || m.Seqno != 3 || m.CAS == 0 {
		t.Fatalf("delete: %+v %v", m, err)
	}
	mustMiss(t, c, "a")
	if _, err := c.Delete(0, k("a"), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of a tombstone: %v", err)
	}
	if _, err := c.Store(0, Replace, k("a"), Write{Value: k("x")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replace of a tombstone: %v", err)
	}
	st := c.Stats()
	// A small item becomes its own tombstone in place: its memory stays
	// counted until the tombstone goes.
	if st.CurrItems != 0 || st.Tombstones != 1 || st.Bytes != int64(len("a")+len("value2"))+ItemOverhead || c.Len() != 0 {
		t.Fatalf("after delete: %+v, Len %d", st, c.Len())
	}
	if _, err := c.Store(0, Add, k("a"), Write{Value: k("back")}); err != nil {
		t.Fatal(err)
	}
	if it := mustGet(t, c, "a", "back"); it.Rev != 4 {
		t.Fatalf("revision after delete and add: %d, want 4", it.Rev)
	}
	if st := c.Stats(); st.Tombstones != 0 || st.CurrItems != 1 {
		t.Fatalf("after add: %+v", st)
	}
	c.Store(0, Set, k("e"), Write{Value: k("v"), Expiry: 1})
	clk.Advance(2 * time.Second)
	mustMiss(t, c, "e")
	if st := c.Stats(); st.Tombstones != 1 || st.GetExpired != 1 {
		t.Fatalf("after expiry: %+v", st)
	}
	clk.Advance(time.Minute)
	c.SweepNow()
	if st := c.Stats(); st.Tombstones != 0 || st.Bytes != int64(len("a")+len("back"))+ItemOverhead {
		t.Fatalf("after the tombstones' time: %+v", st)
	}
	// Without TombstoneTTL nothing is left.
	plain, _ := newTest(t, Config{})
	plain.Store(0, Set, k("a"), Write{Value: k("v")})
	plain.Delete(0, k("a"), 0)
	if st := plain.Stats(); st.Tombstones != 0 || st.Bytes != 0 {
		t.Fatalf("without tombstones: %+v", st)
	}
}

// Tombstones are evicted before live items, and a full cache that keeps
// them stays within its limit; a purged tombstone is no expired get.
func TestTombstonesUnderMemoryPressure(t *testing.T) {
	value := make([]byte, 1000)
	per := int64(len(value)) + 4 + ItemOverhead
	c, _ := newTest(t, Config{MaxBytes: 10 * per, Shards: 1, TombstoneTTL: time.Hour})
	for i := range 9 {
		c.Store(0, Set, fmt.Appendf(nil, "k%03d", i), Write{Value: value})
	}
	for i := range 5 { // newer than the items, but tombstones
		key := fmt.Appendf(nil, "d%03d", i)
		c.Store(0, Set, key, Write{Value: value})
		c.Delete(0, key, 0)
	}
	if _, err := c.Store(0, Set, k("k009"), Write{Value: value}); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Bytes > 10*per || st.Evictions != 0 || st.CurrItems != 10 || st.Tombstones == 5 {
		t.Fatalf("10 items and 5 tombstones in room for 10 items: %+v", st)
	}
	for i := range 10 {
		mustGet(t, c, fmt.Sprintf("k%03d", i), string(value))
	}
	// Expired items with empty values, replaced by tombstones of the same
	// size, are counted as expired gets; a purged tombstone is not.
	e, clk2 := newTest(t, Config{TombstoneTTL: time.Second})
	e.Store(0, Set, k("e"), Write{Expiry: 1})
	clk2.Advance(1500 * time.Millisecond)
	mustMiss(t, e, "e")
	if st := e.Stats(); st.GetExpired != 1 || st.Tombstones != 1 {
		t.Fatalf("get of an expired empty item: %+v", st)
	}
	clk2.Advance(2 * time.Second)
	mustMiss(t, e, "e")
	if st := e.Stats(); st.GetExpired != 1 || st.Tombstones != 0 {
		t.Fatalf("get of a purged tombstone: %+v", st)
	}
}

// A cursor reads items while gets mark them fetched: under -race, the two
// must not touch the same fields.
func TestCursorWhileReading(t *testing.T) {
	c, _ := newTest(t, Config{})
	cur, _ := c.Changes(0)
	defer cur.Close()
	big := make([]byte, maxInline+1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			c.Get(0, k("small"))
			c.Get(0, k("big"))
		}
	}()
	var changes []Change
	for i := range 200 {
		c.Store(0, Set, k("small"), Write{Value: fmt.Appendf(nil, "%d", i)})
		c.Store(0, Set, k("big"), Write{Value: big})
		var err error
		if changes, err = cur.Next(changes[:0], 0); err != nil {
			t.Fatal(err)
		}
		for _, ch := range changes {
			if len(ch.Key) == 0 {
				t.Fatal("change without its key")
			}
		}
	}
	<-done
}

// A cursor opened while writers are busy reads every change numbered
// after it, none missing, though changes are logged a moment after they
// are numbered.
func TestCursorOpenedUnderLoad(t *testing.T) {
	c, _ := newTest(t, Config{Shards: 8, ChangeLog: 1 << 16})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.Store(2, Set, fmt.Appendf(nil, "k%d-%d", g, i%50), Write{Value: k("v")})
			}
		}()
	}
	for round := range 20 {
		cur, err := c.Changes(2)
		if err != nil {
			t.Fatal(err)
		}
		opened, _ := c.HighSeqno(2) // the cursor starts at or before this + 1
		time.Sleep(2 * time.Millisecond)
		end, _ := c.HighSeqno(2)
		want := uint64(0)
		deadline := time.Now().Add(5 * time.Second)
		for want <= end {
			ch, err := cur.Next(nil, 0)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			for _, x := range ch {
				if want == 0 {
					if x.Seqno > opened+1 {
						t.Fatalf("round %d: the cursor starts at %d, after %d", round, x.Seqno, opened+1)
					}
					want = x.Seqno
				}
				if x.Seqno != want {
					t.Fatalf("round %d: seqno %d after %d", round, x.Seqno, want-1)
				}
				want++
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: change %d never reached the log (high %d)", round, want, end)
			}
			if want == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		cur.Close()
	}
	close(stop)
	wg.Wait()
}

// A cursor that falls behind its log's first length loses nothing: the
// log doubles, up to logGrowth times, and gives what it grew by back to
// the cache's budget once no cursor follows the vbucket. A reader that
// keeps up leaves the log at its first length.
func TestChangeLogGrows(t *testing.T) {
	c, _ := newTest(t, Config{ChangeLog: 4})
	budget := c.logBudget.Load()
	if budget != 4*logBudget {
		t.Fatalf("budget %d, want %d", budget, 4*logBudget)
	}
	quick, _ := c.Changes(1)
	for i := range 100 {
		c.Store(1, Set, fmt.Appendf(nil, "q%d", i), Write{Value: k("v")})
		if ch, err := quick.Next(nil, 0); err != nil || len(ch) != 1 {
			t.Fatalf("change %d: %d read, %v", i, len(ch), err)
		}
	}
	if n := len(c.vbs[1].log.ring); n != 4 {
		t.Fatalf("a log read as it is written grew to %d", n)
	}
	quick.Close()

	slow, _ := c.Changes(0)
	const n = 4 * logGrowth
	for i := range n {
		c.Store(0, Set, fmt.Appendf(nil, "k%03d", i), Write{Value: k("v")})
	}
	ch, err := slow.Next(nil, 0)
	if err != nil || len(ch) != n {
		t.Fatalf("%d changes behind: %d read, %v", n, len(ch), err)
	}
	for i := range ch {
		if want := fmt.Sprintf("k%03d", i); string(ch[i].Key) != want || ch[i].Seqno != uint64(i+1) {
			t.Fatalf("change %d: %q seqno %d, want %q seqno %d", i, ch[i].Key, ch[i].Seqno, want, i+1)
		}
	}
	if got := len(c.vbs[0].log.ring); got != n {
		t.Fatalf("the log grew to %d, want %d", got, n)
	}
	if got := c.logBudget.Load(); got != budget-(n-4) {
		t.Fatalf("budget %d after growing by %d, want %d", got, n-4, budget-(n-4))
	}
	slow.Close()
	if got := c.logBudget.Load(); got != budget {
		t.Fatalf("budget %d once the log is gone, want %d", got, budget)
	}
}

// The logs of a cache grow within one budget: once it is spent, a lagging
// cursor of another vbucket loses its changes at the log's first length,
// and a log let go of gives its share back for the next.
func TestChangeLogBudget(t *testing.T) {
	c, _ := newTest(t, Config{ChangeLog: 4, VBuckets: 64})
	perLog := int64(4*logGrowth - 4)    // what a log grown all the way took
	full := int(4 * logBudget / perLog) // logs the budget grows all the way
	var curs []*Cursor
	for vb := range full + 2 {
		cur, _ := c.Changes(uint16(vb))
		curs = append(curs, cur)
		for i := range 4 * logGrowth {
			c.Store(uint16(vb), Set, fmt.Appendf(nil, "k%d-%d", vb, i), Write{Value: k("v")})
		}
	}
	lost := 0
	for vb, cur := range curs {
		_, err := cur.Next(nil, 0)
		switch {
		case vb < full && err != nil:
			t.Fatalf("vbucket %d, within the budget: %v", vb, err)
		case errors.Is(err, ErrChangesLost):
			lost++
		}
	}
	if lost == 0 {
		t.Fatal("no log stopped growing once the budget was spent")
	}
	if got := c.logBudget.Load(); got < 0 {
		t.Fatalf("budget overdrawn: %d", got)
	}
	curs[0].Close()
	cur, _ := c.Changes(uint16(full + 2))
	defer cur.Close()
	for i := range 4 * logGrowth {
		c.Store(uint16(full+2), Set, fmt.Appendf(nil, "again%d", i), Write{Value: k("v")})
	}
	if ch, err := cur.Next(nil, 0); err != nil || len(ch) != 4*logGrowth {
		t.Fatalf("after a log gave its share back: %d read, %v", len(ch), err)
	}
	for _, cur := range curs[1:] {
		cur.Close()
	}
}

// A cursor waiting for a change numbered but not yet logged is told when
// the log pushes that change out, and reads ErrChangesLost rather than
// wait for it for ever.
func TestCursorToldWhenItsNextIsPushedOut(t *testing.T) {
	c, _ := newTest(t, Config{ChangeLog: 4})
	var calls int
	cur, _ := c.ChangesFunc(0, func() { calls++ })
	defer cur.Close()
	v := &c.vbs[0]
	it := newItem(k("x"), k("v"))
	v.mu.Lock()
	// Seqno 1 is numbered but comes late; 2.. arrive first, so the cursor
	// has nothing to read, and the budget is spent so the log cannot grow.
	c.logBudget.Store(0)
	for s := uint64(2); s <= 4; s++ {
		v.log.add(logEntry{seqno: s, it: it, kind: Mutated})
	}
	if calls != 0 {
		v.mu.Unlock()
		t.Fatalf("%d calls with the cursor's next change missing", calls)
	}
	v.log.add(logEntry{seqno: 5, it: it, kind: Mutated}) // pushes 1 out
	v.mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d calls once the cursor's next change was pushed out, want 1", calls)
	}
	if _, err := cur.Next(nil, 0); !errors.Is(err, ErrChangesLost) {
		t.Fatalf("Next: %v", err)
	}
}

// A log grown for a lagging cursor gives what it grew by back to the
// cache's budget when that cursor is closed (a DCP stream's cursor
// dropped, or its stream closed) while another cursor, that kept up,
// still follows the vbucket: else a vbucket that always has a cursor (a
// replica's feed) holds the budget for good, and the other vbuckets'
// logs cannot grow.
func TestChangeLogBudgetBackWhenLaggingCursorCloses(t *testing.T) {
	c, _ := newTest(t, Config{ChangeLog: 4})
	budget := c.logBudget.Load()
	quick, _ := c.Changes(0)
	defer quick.Close()
	slow, _ := c.Changes(0)
	const n = 4 * logGrowth
	for i := range n {
		c.Store(0, Set, fmt.Appendf(nil, "k%03d", i), Write{Value: k("v")})
		if ch, err := quick.Next(nil, 0); err != nil || len(ch) != 1 {
			t.Fatalf("change %d: %d read, %v", i, len(ch), err)
		}
	}
	if got := c.logBudget.Load(); got != budget-(n-4) {
		t.Fatalf("budget %d with a cursor %d behind, want %d", got, n, budget-(n-4))
	}
	slow.Close()
	if got := c.logBudget.Load(); got != budget {
		t.Fatalf("budget %d once the lagging cursor is closed, want %d (the log holds %d entries)",
			got, budget, len(c.vbs[0].log.ring))
	}
	// The cursor left reads on as before.
	for i := range 10 {
		c.Store(0, Set, fmt.Appendf(nil, "after%d", i), Write{Value: k("v")})
	}
	if ch, err := quick.Next(nil, 0); err != nil || len(ch) != 10 || ch[0].Seqno != n+1 {
		t.Fatalf("after the shrink: %d read, %v", len(ch), err)
	}
	// A cursor 2 behind when the other closes keeps them.
	lag, _ := c.Changes(0)
	for i := range n {
		c.Store(0, Set, fmt.Appendf(nil, "lag%03d", i), Write{Value: k("v")})
	}
	two, _ := c.Changes(0)
	c.Store(0, Set, k("x1"), Write{Value: k("v")})
	c.Store(0, Set, k("x2"), Write{Value: k("v")})
	quick.Next(nil, 0)
	lag.Close()
	if ch, err := two.Next(nil, 0); err != nil || len(ch) != 2 || string(ch[0].Key) != "x1" {
		t.Fatalf("a cursor 2 behind after the shrink: %d read, %v", len(ch), err)
	}
	two.Close()
}

// A cursor whose changes were pushed out has lost them, whether or not
// its reader has called Next since: its log does not grow for it (taking
// the cache's budget from the logs of cursors that can still use it), nor
// ask the budget at every change.
func TestChangeLogDoesNotGrowForLostCursor(t *testing.T) {
	c, _ := newTest(t, Config{ChangeLog: 4})
	full := c.logBudget.Load()
	cur, _ := c.Changes(0)
	defer cur.Close()
	c.logBudget.Store(0) // spent elsewhere: the log cannot grow
	for i := range 8 {
		c.Store(0, Set, fmt.Appendf(nil, "k%d", i), Write{Value: k("v")})
	}
	c.logBudget.Store(full) // given back (another vbucket's log let go of)
	for i := range 4 * logGrowth {
		c.Store(0, Set, fmt.Appendf(nil, "more%d", i), Write{Value: k("v")})
	}
	if got := c.logBudget.Load(); got != full {
		t.Errorf("budget %d, want %d: the log grew to %d for a cursor that had lost its changes",
			got, full, len(c.vbs[0].log.ring))
	}
	if _, err := cur.Next(nil, 0); !errors.Is(err, ErrChangesLost) {
		t.Fatalf("Next: %v", err)
	}
}
