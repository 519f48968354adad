package cache

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestStoreMetaConflicts(t *testing.T) {
	c, _ := newTest(t, Config{TombstoneTTL: time.Hour})
	base := Meta{CAS: 1000, Rev: 10, Flags: 3}
	if _, err := c.StoreMeta(0, k("m"), k("v0"), base, MetaOptions{}); err != nil {
		t.Fatal(err)
	}
	it := mustGet(t, c, "m", "v0")
	if it.CAS != 1000 || it.Rev != 10 || it.Flags != 3 {
		t.Fatalf("stored with meta: %+v", it)
	}
	for _, tc := range []struct {
		name string
		m    Meta
		opt  MetaOptions
		want error
	}{
		{"lower rev", Meta{CAS: 5000, Rev: 9, Flags: 3}, MetaOptions{}, ErrExists},
		{"same rev, lower CAS", Meta{CAS: 999, Rev: 10, Flags: 3}, MetaOptions{}, ErrExists},
		{"identical", base, MetaOptions{}, ErrExists},
		{"identical but brings xattrs", Meta{CAS: 1000, Rev: 10, Flags: 3, Datatype: datatypeXattr}, MetaOptions{}, nil},
		{"same rev and CAS, later expiry", Meta{CAS: 1000, Rev: 10, Flags: 3, Expires: time.Unix(2_000_000_000, 0)}, MetaOptions{}, nil},
		{"higher rev", Meta{CAS: 1, Rev: 11}, MetaOptions{}, nil},
		{"forced", Meta{CAS: 2, Rev: 1}, MetaOptions{Force: true}, nil},
		{"add over live", Meta{CAS: 3000, Rev: 99}, MetaOptions{Add: true}, ErrExists},
		{"CAS 0", Meta{CAS: 0, Rev: 99}, MetaOptions{}, ErrInvalidCAS},
		{"CAS all ones", Meta{CAS: ^uint64(0), Rev: 99}, MetaOptions{}, ErrInvalidCAS},
		{"wrong header CAS", Meta{CAS: 3000, Rev: 99}, MetaOptions{CAS: 12345}, ErrExists},
		{"deletion behind", Meta{CAS: 1, Rev: 1, Deleted: true}, MetaOptions{}, ErrExists},
		{"deletion ahead", Meta{CAS: 9000, Rev: 50, Deleted: true}, MetaOptions{}, nil},
		{"set behind the tombstone", Meta{CAS: 8999, Rev: 50}, MetaOptions{}, ErrExists},
		{"regenerated CAS", Meta{Rev: 60}, MetaOptions{Force: true, RegenerateCAS: true}, nil},
	} {
		_, err := c.StoreMeta(0, k("m"), k(tc.name), tc.m, tc.opt)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	it = mustGet(t, c, "m", "regenerated CAS")
	if it.Rev != 60 || it.CAS == 0 || it.CAS == 2 {
		t.Fatalf("after a regenerated CAS: %+v", it)
	}
	// A deletion with meta leaves a deleted document with its meta.
	if _, err := c.StoreMeta(0, k("m"), nil, Meta{CAS: 7, Rev: 61, Deleted: true}, MetaOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, "m")
	d, ok := c.Lookup(0, k("m"), true)
	if !ok || !d.Deleted || d.CAS != 7 || d.Rev != 61 {
		t.Fatalf("deleted with meta: %+v %v", d, ok)
	}
	// Rev 0 is stored as 1, the least revision.
	c.StoreMeta(0, k("r0"), k("v"), Meta{CAS: 5, Rev: 0}, MetaOptions{})
	if it := mustGet(t, c, "r0", "v"); it.Rev != 1 {
		t.Fatalf("rev 0 stored as %d", it.Rev)
	}
}

func TestModify(t *testing.T) {
	c, _ := newTest(t, Config{TombstoneTTL: time.Hour})
	m, err := c.Modify(0, k("d"), false, func(cur *Item) (*Write, error) {
		if cur != nil {
			t.Fatal("a missing key has an item")
		}
		return &Write{Value: k(`{"a":1}`), Flags: 5, Datatype: 1}, nil
	})
	if err != nil || m.Seqno != 1 || m.CAS == 0 {
		t.Fatalf("create: %+v %v", m, err)
	}
	boom := errors.New("no")
	if _, err := c.Modify(0, k("d"), false, func(cur *Item) (*Write, error) { return nil, boom }); err != boom {
		t.Fatalf("refused: %v", err)
	}
	c.Modify(0, k("d"), false, func(cur *Item) (*Write, error) {
		return &Write{Value: append(append([]byte(nil), cur.Value...), ' '), Flags: cur.Flags, KeepExpiry: true}, nil
	})
	if it := mustGet(t, c, "d", `{"a":1} `); it.Rev != 2 || it.Flags != 5 {
		t.Fatalf("modified: %+v", it)
	}
	// Stored deleted: invisible to Get, given to a Modify that asks.
	c.Modify(0, k("d"), false, func(cur *Item) (*Write, error) { return &Write{Value: k("xattrs"), Deleted: true}, nil })
	mustMiss(t, c, "d")
	var seen Item
	c.Modify(0, k("d"), true, func(cur *Item) (*Write, error) {
		seen = *cur
		return &Write{Value: k("revived")}, nil
	})
	if !seen.Deleted || string(seen.Value) != "xattrs" || seen.Rev != 3 {
		t.Fatalf("deleted document given: %+v", seen)
	}
	mustGet(t, c, "d", "revived")
	// Without tombstones there are no deleted documents.
	c2, _ := newTest(t, Config{})
	if _, err := c2.Modify(0, k("d"), false, func(*Item) (*Write, error) { return &Write{Deleted: true}, nil }); err != ErrNoTombstones {
		t.Fatalf("deleted document without tombstones: %v", err)
	}
	if _, err := c2.Modify(0, k("d"), false, func(*Item) (*Write, error) { return &Write{Value: make([]byte, 2<<20)}, nil }); err != ErrTooLarge {
		t.Fatalf("too large: %v", err)
	}
}

func TestVBucketStatesAndFailoverLog(t *testing.T) {
	c, _ := newTest(t, Config{VBuckets: 4})
	log := c.FailoverLog(1)
	if len(log) != 1 || log[0].UUID == 0 || log[0].Seqno != 0 {
		t.Fatalf("initial failover log %+v", log)
	}
	c.Store(1, Set, k("a"), Write{Value: k("1")})
	c.Store(1, Set, k("b"), Write{Value: k("2")})
	if err := c.SetState(1, Replica); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(1, Set, k("a"), Write{}); err != ErrNoVBucket {
		t.Fatalf("store to a replica: %v", err)
	}
	if _, ok := c.Get(1, k("a")); ok {
		t.Fatal("get from a replica")
	}
	c.SetState(1, Active)
	log = c.FailoverLog(1)
	if len(log) != 2 || log[0].Seqno != 2 || log[1].Seqno != 0 || log[0].UUID == log[1].UUID {
		t.Fatalf("failover log after promotion %+v", log)
	}
	if m, _ := c.Store(1, Set, k("c"), Write{}); m.VBUUID != log[0].UUID || m.Seqno != 3 {
		t.Fatalf("token after promotion %+v", m)
	}
	// Active to active is no new history.
	c.SetState(1, Active)
	if len(c.FailoverLog(1)) != 2 {
		t.Fatal("new history without a state change")
	}
	for range 30 {
		c.SetState(1, Dead)
		c.SetState(1, Active)
	}
	if n := len(c.FailoverLog(1)); n != maxFailoverEntries {
		t.Fatalf("failover log grew to %d", n)
	}
	c.DeleteVBucket(1)
	if c.State(1) != Missing {
		t.Fatal("deleted vbucket not missing")
	}
	c.SetState(1, Active)
	if _, ok := c.Get(1, k("a")); ok {
		t.Fatal("item survived DeleteVBucket")
	}
	if seq, _ := c.HighSeqno(1); seq != 0 || len(c.FailoverLog(1)) != 1 {
		t.Fatalf("recreated vbucket: seqno %d log %v", seq, c.FailoverLog(1))
	}
	if err := c.SetState(9, Active); err != ErrNoVBucket {
		t.Fatalf("state of vbucket 9 of 4: %v", err)
	}
}

func TestCollectionsInCache(t *testing.T) {
	c, _ := newTest(t, Config{Collections: true, TombstoneTTL: time.Hour})
	key := func(cid uint32, s string) []byte { return CollectionKey(nil, cid, k(s)) }
	c.Store(0, Set, key(0, "a"), Write{Value: k("d")})
	c.Store(0, Set, key(8, "a"), Write{Value: k("x")})
	c.Store(0, Set, key(8, "b"), Write{Value: k("y")})
	c.Store(0, Set, key(300, "a"), Write{Value: k("z")})
	if c.CollectionHighSeqno(0, 0) != 1 || c.CollectionHighSeqno(0, 8) != 3 || c.CollectionHighSeqno(0, 300) != 4 || c.CollectionHighSeqno(0, 9) != 0 {
		t.Fatalf("collection seqnos: %d %d %d", c.CollectionHighSeqno(0, 0), c.CollectionHighSeqno(0, 8), c.CollectionHighSeqno(0, 300))
	}
	if k, _, ok := c.RandomKey(300); !ok || string(k) != string(key(300, "a")) {
		t.Fatalf("random key of 300: %q %v", k, ok)
	}
	if _, _, ok := c.RandomKey(9); ok {
		t.Fatal("random key of an empty collection")
	}
	c.DropCollection(8)
	if _, ok := c.Get(0, key(8, "a")); ok {
		t.Fatal("item of a dropped collection")
	}
	if _, ok := c.Get(0, key(0, "a")); !ok {
		t.Fatal("default collection item dropped")
	}
	if c.CollectionHighSeqno(0, 8) != 0 {
		t.Fatal("dropped collection keeps its seqno")
	}
	if st := c.Stats(); st.CurrItems != 2 {
		t.Fatalf("%d items after the drop", st.CurrItems)
	}
	if cid, name, ok := SplitKey(key(300, "abc")); !ok || cid != 300 || string(name) != "abc" {
		t.Fatalf("SplitKey: %d %q %v", cid, name, ok)
	}
	for _, bad := range [][]byte{{0x80, 0x00}, {0x80}, {}, {0xff, 0xff, 0xff, 0xff, 0x1f}} {
		if _, _, ok := SplitKey(bad); ok {
			t.Errorf("SplitKey(%x) ok", bad)
		}
	}
}

func TestTombstoneLimit(t *testing.T) {
	c, _ := newTest(t, Config{Shards: 1, TombstoneTTL: time.Hour, MaxTombstones: 3})
	for i := range 10 {
		key := k(fmt.Sprint("k", i))
		c.Store(0, Set, key, Write{Value: k("v")})
		c.Delete(0, key, 0)
	}
	if st := c.Stats(); st.Tombstones != 3 || st.CurrItems != 0 {
		t.Fatalf("stats %+v", st)
	}
	for i := range 10 {
		_, ok := c.Lookup(0, k(fmt.Sprint("k", i)), true)
		if ok != (i >= 7) {
			t.Errorf("tombstone of k%d kept: %v", i, ok)
		}
	}
	// Live items are not touched by the bound, and memory adds up.
	c.Store(0, Set, k("live"), Write{Value: k("v")})
	var sum int64
	s := &c.shards[0]
	for it := s.cls[0].segs[segCold].head; it != nil; it = it.next {
		sum += it.footprint()
	}
	if st := c.Stats(); st.Bytes != sum || st.CurrItems != 1 {
		t.Fatalf("bytes %d, items in lists %d; stats %+v", st.Bytes, sum, st)
	}
}

// TestInvariantsUnderLoad runs writers, deleters and an expirer on a few
// keys at once, then checks: each vbucket's seqnos were handed out once
// each (the high seqno is the number of changes), every item and tombstone
// is counted, in its LRU list with the tombstones last, and memory adds
// up.
func TestInvariantsUnderLoad(t *testing.T) {
	clock := newFakeClock()
	c := New(Config{Shards: 4, VBuckets: 4, Clock: clock, SweepInterval: -1, TombstoneTTL: time.Minute, MaxTombstones: 40, Collections: true})
	t.Cleanup(c.Close)
	var wg sync.WaitGroup
	var mu sync.Mutex
	changes := map[uint16]map[uint64]bool{}
	note := func(vb uint16, m Mutation) {
		if m.Seqno == 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if changes[vb] == nil {
			changes[vb] = map[uint64]bool{}
		}
		if changes[vb][m.Seqno] {
			t.Errorf("vbucket %d seqno %d twice", vb, m.Seqno)
		}
		changes[vb][m.Seqno] = true
	}
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				vb := uint16(i % 4)
				key := CollectionKey(nil, uint32(w%2*8), k(fmt.Sprint("k", i%37)))
				var m Mutation
				switch (i + w) % 5 {
				case 0, 1:
					m, _ = c.Store(vb, Set, key, Write{Value: k("v"), Expiry: uint32(i % 3)})
				case 2:
					m, _ = c.Delete(vb, key, 0)
				case 3:
					m, _ = c.StoreMeta(vb, key, k("m"), Meta{CAS: uint64(i + 1), Rev: uint64(i)}, MetaOptions{})
				default:
					m, _ = c.Modify(vb, key, true, func(cur *Item) (*Write, error) { return &Write{Value: k("x"), Deleted: cur == nil}, nil })
				}
				note(vb, m)
				if i%500 == 0 && w == 0 {
					clock.Advance(2 * time.Second)
					c.SweepNow()
				}
			}
		}()
	}
	wg.Wait()
	c.SweepNow()
	for vb := range uint16(4) {
		high, _ := c.HighSeqno(vb)
		// Expiries are numbered changes no operation returned.
		if uint64(len(changes[vb])) > high {
			t.Errorf("vbucket %d: %d changes seen, high seqno %d", vb, len(changes[vb]), high)
		}
		for s := range changes[vb] {
			if s > high {
				t.Errorf("vbucket %d: seqno %d past the high %d", vb, s, high)
			}
		}
	}
	var bytes int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n, tombs, inTombs := 0, 0, false
		for it := s.cls[0].segs[segCold].head; it != nil; it = it.next {
			n++
			bytes += it.footprint()
			if it.deleted() {
				tombs++
				inTombs = true
			} else if inTombs {
				t.Errorf("shard %d: a live item after a tombstone in the LRU list", i)
			}
			if it.next != nil && it.next.prev != it {
				t.Errorf("shard %d: broken LRU links", i)
			}
		}
		if n != s.count || tombs != s.tombs || tombs > c.tombLimit {
			t.Errorf("shard %d: %d in list (%d tombstones), count %d tombs %d limit %d", i, n, tombs, s.count, s.tombs, c.tombLimit)
		}
		if th := s.cls[0].tombHead; th != nil && !th.deleted() {
			t.Errorf("shard %d: tombstone head is live", i)
		}
		s.mu.Unlock()
	}
	if got := c.bytes.Load(); got != bytes {
		t.Errorf("bytes %d, items add up to %d", got, bytes)
	}
}

// TestTombstoneInPlace: a small item becomes its own tombstone (no
// allocation; its value hidden, its memory still counted), a large one
// leaves a small tombstone, and while a cursor follows the vbucket the
// stored value the log refers to is left untouched.
func TestTombstoneInPlace(t *testing.T) {
	c, _ := newTest(t, Config{TombstoneTTL: time.Hour})
	c.Store(0, Set, k("small"), Write{Value: k("value"), Datatype: 1})
	before := c.Stats().Bytes
	c.Delete(0, k("small"), 0)
	if d, ok := c.Lookup(0, k("small"), true); !ok || !d.Deleted || d.Value != nil || d.Datatype != 0 || d.Rev != 2 {
		t.Fatalf("in-place tombstone: %+v %v", d, ok)
	}
	if after := c.Stats().Bytes; after != before {
		t.Fatalf("bytes %d after the delete, %d before", after, before)
	}
	big := make([]byte, 4000)
	c.Store(0, Set, k("big"), Write{Value: big})
	before = c.Stats().Bytes
	c.Delete(0, k("big"), 0)
	if after := c.Stats().Bytes; before-after != int64(len(big)) {
		t.Fatalf("a large item's tombstone keeps %d bytes", after-(before-int64(len(big))))
	}
	cur, err := c.Changes(0)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	c.Store(0, Set, k("logged"), Write{Value: k("kept")})
	c.Delete(0, k("logged"), 0)
	ch, err := cur.Next(nil, 0)
	if err != nil || len(ch) != 2 || ch[0].Kind != Mutated || string(ch[0].Value) != "kept" || ch[1].Kind != Deleted {
		t.Fatalf("changes under a cursor: %+v %v", ch, err)
	}
	if d, _ := c.Lookup(0, k("logged"), true); len(d.Value) != 0 {
		t.Fatalf("tombstone made under a cursor has value %q", d.Value)
	}
}

// TestSweepWithTombstoneBound: the sweeper expires an item whose hash
// chain goes on to an older tombstone, and the tombstone bound then
// purges that tombstone: the walk of the table must not visit it after
// (it once crashed here, following a chain from an item no longer in it).
func TestSweepWithTombstoneBound(t *testing.T) {
	clk := newFakeClock()
	c := New(Config{Shards: 1, Clock: clk, SweepInterval: -1, TombstoneTTL: 10 * time.Second, MaxTombstones: 1})
	defer c.Close()
	// Two keys in one bucket of the table.
	s := &c.shards[0]
	first := map[uint32]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		key := fmt.Sprint("k", i)
		_, h := c.shardFor(0, k(key))
		slot := h & uint32(len(s.buckets)-1)
		if other, ok := first[slot]; ok {
			b, a = other, key
		} else {
			first[slot] = key
		}
	}
	c.Store(0, Set, k(b), Write{Value: k("v")})
	c.Delete(0, k(b), 0) // b: a tombstone, purged after 10 s
	c.Store(0, Set, k(a), Write{Value: k("v"), Expiry: 5})
	clk.Advance(11 * time.Second)
	c.SweepNow()
	if st := c.Stats(); st.CurrItems != 0 || st.Tombstones > 1 {
		t.Fatalf("after the sweep: %+v", st)
	}
}

// TestNoEvictReclaimsTombstones: with NoEvict, deleting everything frees
// room for new items, as memcached -M does: tombstones go first.
func TestNoEvictReclaimsTombstones(t *testing.T) {
	c, _ := newTest(t, Config{MaxBytes: 64 << 10, NoEvict: true, Shards: 1, TombstoneTTL: time.Hour})
	n := 0
	for ; ; n++ {
		if _, err := c.Store(0, Set, k(fmt.Sprint("k", n)), Write{Value: make([]byte, 400)}); err != nil {
			break
		}
	}
	for i := range n {
		c.Delete(0, k(fmt.Sprint("k", i)), 0)
	}
	if st := c.Stats(); st.Bytes != st.TombstoneBytes || st.CurrItems != 0 {
		t.Fatalf("after deleting all: %+v", st)
	}
	for i := range n {
		if _, err := c.Store(0, Set, k(fmt.Sprint("n", i)), Write{Value: make([]byte, 400)}); err != nil {
			t.Fatalf("store %d of %d after deleting everything: %v", i, n, err)
		}
	}
}

// TestDeleteVBucketWithCursor: a cursor open on a vbucket that is deleted
// loses its changes; the vbucket created again numbers from 1, and a new
// cursor follows it.
func TestDeleteVBucketWithCursor(t *testing.T) {
	c, _ := newTest(t, Config{VBuckets: 2})
	old, _ := c.Changes(1)
	defer old.Close()
	c.Store(1, Set, k("a"), Write{})
	c.DeleteVBucket(1)
	if _, err := old.Next(nil, 0); err != ErrChangesLost {
		t.Fatalf("old cursor: %v", err)
	}
	c.SetState(1, Active)
	cur, _ := c.Changes(1)
	defer cur.Close()
	if m, _ := c.Store(1, Set, k("b"), Write{}); m.Seqno != 1 {
		t.Fatalf("first seqno of the new vbucket: %d", m.Seqno)
	}
	ch, err := cur.Next(nil, 0)
	if err != nil || len(ch) != 1 || string(ch[0].Key) != "b" {
		t.Fatalf("new cursor: %+v %v", ch, err)
	}
}
