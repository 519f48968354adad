package cache

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestSystemEvent: system events are numbered with the documents, read
// by backfills and cursors (a drop with its value), and never evicted;
// without collections there are none.
func TestSystemEvent(t *testing.T) {
	c, _ := newTest(t, Config{Shards: 1, VBuckets: 2, TombstoneTTL: time.Minute, Collections: true, MaxBytes: 64 << 10})
	cur, err := c.Changes(0)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if _, err := c.RecordEvent(0, SystemEvent{ID: []byte("c9"), Value: []byte("create"), Collection: 9, InCollection: true}); err != nil { // 1
		t.Fatal(err)
	}
	if _, err := c.Store(0, Set, CollectionKey(nil, 9, k("doc")), Write{Value: k("v")}); err != nil { // 2
		t.Fatal(err)
	}
	if _, err := c.RecordEvent(0, SystemEvent{ID: []byte("c9"), Value: []byte("drop"), Deleted: true, Collection: 9, InCollection: true}); err != nil { // 3
		t.Fatal(err)
	}
	if h := c.CollectionHighSeqno(0, 9); h != 3 {
		t.Fatalf("collection 9's high seqno %d, want its drop's 3", h)
	}
	changes, err := cur.Next(nil, 0)
	if err != nil || len(changes) != 3 {
		t.Fatalf("changes %v %v", changes, err)
	}
	if id, ok := IsSystemKey(changes[0].Key); !ok || string(id) != "c9" || changes[0].Kind != Mutated || string(changes[0].Value) != "create" {
		t.Fatalf("creation: %+v", changes[0])
	}
	if changes[2].Kind != Deleted || string(changes[2].Value) != "drop" || changes[2].Seqno != 3 {
		t.Fatalf("drop: %+v", changes[2])
	}
	vs, err := c.Backfill(0, 1, 3, 0, nil)
	if err != nil || len(vs) != 2 || !vs[1].Deleted || string(vs[1].Value) != "drop" {
		t.Fatalf("backfill: %+v %v", vs, err)
	}
	// Fill memory past its limit: the live event stays.
	if _, err := c.RecordEvent(1, SystemEvent{ID: []byte("keep"), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		c.Store(1, Set, CollectionKey(nil, 0, k(fmt.Sprintf("fill%d", i))), Write{Value: make([]byte, 100)})
	}
	if vs, _ := c.Backfill(1, 1, 1, 0, nil); len(vs) != 1 {
		t.Fatal("system event evicted")
	}
	plain, _ := newTest(t, Config{})
	if _, err := plain.RecordEvent(0, SystemEvent{ID: []byte("x")}); err != ErrNoCollections {
		t.Fatalf("without collections: %v", err)
	}
}

// TestPurgeSeqno: the purge seqno follows what a backfill can no longer
// show: tombstones past their bound, removals that leave none, a flush;
// a vbucket deleted starts again at 0.
func TestPurgeSeqno(t *testing.T) {
	c, _ := newTest(t, Config{Shards: 1, VBuckets: 2, TombstoneTTL: time.Minute, MaxTombstones: 1})
	for _, key := range []string{"a", "b", "c"} {
		c.Store(0, Set, k(key), Write{Value: k("v")}) // 1, 2, 3
	}
	c.Delete(0, k("a"), 0) // 4
	if p := c.PurgeSeqno(0); p != 0 {
		t.Fatalf("purge seqno %d with one tombstone", p)
	}
	c.Delete(0, k("b"), 0) // 5: a's tombstone (4) purged
	if p := c.PurgeSeqno(0); p != 4 {
		t.Fatalf("purge seqno %d, want 4", p)
	}
	c.Flush(0)
	if p := c.PurgeSeqno(0); p != 6 {
		t.Fatalf("after a flush: %d, want past the high seqno 5", p)
	}
	if err := c.DeleteVBucket(0); err != nil {
		t.Fatal(err)
	}
	if p := c.PurgeSeqno(0); p != 0 {
		t.Fatalf("after a vbucket deletion: %d", p)
	}
	// Without tombstones, a deletion is purged at once.
	none, _ := newTest(t, Config{VBuckets: 1})
	none.Store(0, Set, k("a"), Write{Value: k("v")}) // 1
	none.Delete(0, k("a"), 0)                        // 2
	if p := none.PurgeSeqno(0); p != 2 {
		t.Fatalf("no tombstones: %d, want 2", p)
	}
}

// sysVersions returns the system events a backfill of vbucket vb reads:
// id, "+" for a live one or "-" for a drop, and seqno.
func sysVersions(t *testing.T, c *Cache, vb uint16) []string {
	t.Helper()
	high, _ := c.HighSeqno(vb)
	vs, err := c.Backfill(vb, 1, high, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, v := range vs {
		if id, ok := IsSystemKey(v.Key); ok {
			sign := "+"
			if v.Deleted {
				sign = "-"
			}
			out = append(out, fmt.Sprintf("%s%s@%d", sign, id, v.Seqno))
		}
	}
	return out
}

// TestSystemEventFlush: a flush, at once or delayed, removes every
// document and tombstone but keeps the live system events with their
// seqnos (a drop's tombstone goes), whatever the clock that carries it
// out.
func TestSystemEventFlush(t *testing.T) {
	c, clk := newTest(t, Config{Shards: 4, VBuckets: 2, TombstoneTTL: time.Minute, Collections: true})
	for _, e := range []SystemEvent{
		{ID: k("c8"), Value: k("create 8"), Collection: 8, InCollection: true}, // 1
		{ID: k("c9"), Value: k("create 9"), Collection: 9, InCollection: true}, // 2
		{ID: k("c9"), Deleted: true, Collection: 9, InCollection: true},        // 3
	} {
		if _, err := c.RecordEvent(0, e); err != nil {
			t.Fatal(err)
		}
	}
	c.Store(0, Set, CollectionKey(nil, 8, k("doc")), Write{Value: k("v")}) // 4
	want := []string{"+c8@1", "-c9@3"}
	if got := sysVersions(t, c, 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("before: %v, want %v", got, want)
	}
	c.Flush(0)
	want = []string{"+c8@1"}
	if got := sysVersions(t, c, 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after a flush: %v, want %v", got, want)
	}
	if st := c.Stats(); st.CurrItems != 0 || st.SystemEvents != 1 || st.Tombstones != 0 {
		t.Fatalf("after a flush: %+v", st)
	}
	// The flushed document's memory is reclaimed by a sweep a sweep
	// interval later (dead.go).
	clk.Advance(2 * time.Second)
	c.SweepNow()
	if st := c.Stats(); st.Bytes != st.SystemBytes || st.Reclaimed != 1 {
		t.Fatalf("after a flush and a sweep: %+v", st)
	}
	// Delayed: carried out by the clock, at the next operation.
	if _, err := c.RecordEvent(1, SystemEvent{ID: k("c8"), Value: k("create 8"), Collection: 8, InCollection: true}); err != nil {
		t.Fatal(err)
	}
	c.Store(1, Set, CollectionKey(nil, 8, k("doc")), Write{Value: k("v")})
	c.Flush(3)
	clk.Advance(3 * time.Second)
	c.Store(1, Set, CollectionKey(nil, 8, k("after")), Write{Value: k("v")}) // the flush, then this
	if got := sysVersions(t, c, 1); fmt.Sprint(got) != "[+c8@1]" {
		t.Fatalf("after a delayed flush: %v", got)
	}
	if _, ok := c.Get(1, CollectionKey(nil, 8, k("doc"))); ok {
		t.Fatal("a document survived the delayed flush")
	}
	if st := c.Stats(); st.CurrItems != 1 || st.SystemEvents != 2 {
		t.Fatalf("after a delayed flush: %d items, %d events", st.CurrItems, st.SystemEvents)
	}
	// The events stay the shard's: a vbucket's deletion removes them.
	if err := c.DeleteVBucket(1); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.SystemEvents != 1 || st.CurrItems != 0 {
		t.Fatalf("after deleting vbucket 1: %+v", st)
	}
}

// TestSystemEventShare: live system events take at most half the memory
// limit, past which RecordEvent fails with ErrNoMemory (counted in
// SystemNoMemory), as SystemRoom tells beforehand; documents evict one
// another, never an event; events are no documents in the statistics,
// nor is a retired event a deletion.
func TestSystemEventShare(t *testing.T) {
	const max = 256 << 10
	c, _ := newTest(t, Config{Shards: 4, VBuckets: 4, MaxBytes: max, TombstoneTTL: time.Minute, Collections: true})
	e := SystemEvent{ID: make([]byte, 8), Value: make([]byte, 20), InCollection: true}
	each := EventBytes(e)
	if room := c.SystemRoom(); room != max/2 {
		t.Fatalf("room %d, want %d", room, max/2)
	}
	n := 0
	for ; n < 10000; n++ {
		e.ID = fmt.Appendf(e.ID[:0], "ev%06d", n)
		e.Collection = uint32(8 + n)
		if _, err := c.RecordEvent(uint16(n%4), e); err != nil {
			if !errors.Is(err, ErrNoMemory) {
				t.Fatal(err)
			}
			break
		}
	}
	st := c.Stats()
	if want := max / 2 / each; int64(n) != want || st.SystemEvents != uint64(n) || st.SystemBytes != int64(n)*each || st.SystemNoMemory != 1 {
		t.Fatalf("%d events recorded (want %d), stats %+v", n, want, st)
	}
	if room := c.SystemRoom(); room >= each {
		t.Fatalf("room %d left, and the next event refused", room)
	}
	if st.CurrItems != 0 || st.TotalItems != 0 || c.Len() != 0 {
		t.Fatalf("events counted as documents: %+v, Len %d", st, c.Len())
	}
	// Documents fill the rest, evicting one another.
	for i := range 5000 {
		c.Store(uint16(i%4), Set, CollectionKey(nil, 0, fmt.Appendf(nil, "doc%d", i)), Write{Value: make([]byte, 100)})
	}
	st = c.Stats()
	if st.Bytes > max || st.Evictions == 0 || st.SystemEvents != uint64(n) || st.CurrItems == 0 {
		t.Fatalf("after 5000 documents: %+v", st)
	}
	// A retired event is deleted without counting as a client's deletion.
	if _, err := c.RecordEvent(0, SystemEvent{ID: k("drop"), Deleted: true, Retire: k("ev000000")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecordEvent(0, SystemEvent{ID: k("drop2"), Deleted: true, Retire: k("never")}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.DeleteHits != 0 || st.DeleteMisses != 0 || st.SystemEvents != uint64(n-1) {
		t.Fatalf("after retiring: %+v", st)
	}
	// With NoEvict, an event must also fit in what memory has free.
	ne, _ := newTest(t, Config{Shards: 1, VBuckets: 1, MaxBytes: 64 << 10, NoEvict: true, Collections: true})
	for i := 0; ; i++ {
		if _, err := ne.Store(0, Set, CollectionKey(nil, 0, fmt.Appendf(nil, "doc%d", i)), Write{Value: make([]byte, 100)}); err != nil {
			break
		}
	}
	big := SystemEvent{ID: k("big"), Value: make([]byte, 200)} // more than a document
	if room := ne.SystemRoom(); room >= EventBytes(big) {
		t.Fatalf("room %d with memory full", room)
	}
	if _, err := ne.RecordEvent(0, big); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("event with memory full: %v", err)
	}
}

// TestRecordEventsMany: a thousand collections' events in each of 64
// vbuckets are recorded in bounded time (each new collection once, not
// copying what the vbucket keeps of the others each time), with every
// collection's high seqno its event's.
func TestRecordEventsMany(t *testing.T) {
	const vbs, colls = 64, 1000
	c, _ := newTest(t, Config{VBuckets: vbs, MaxBytes: 64 << 20, TombstoneTTL: time.Minute, Collections: true})
	evs := make([]SystemEvent, colls)
	for i := range evs {
		cid := uint32(8 + i)
		evs[i] = SystemEvent{ID: CollectionKey(nil, cid, nil), Value: fmt.Appendf(nil, "collection %d", cid), Collection: cid, InCollection: true}
	}
	start := time.Now()
	for vb := range vbs {
		if n, err := c.RecordEvents(uint16(vb), evs); n != colls || err != nil {
			t.Fatalf("vbucket %d: %d recorded, %v", vb, n, err)
		}
	}
	took := time.Since(start)
	t.Logf("%d events in %v, %v each", vbs*colls, took, took/(vbs*colls))
	if took > 10*time.Second {
		t.Fatalf("%d events took %v", vbs*colls, took)
	}
	for _, cid := range []uint32{8, 500, 8 + colls - 1} {
		if h := c.CollectionHighSeqno(vbs-1, cid); h != uint64(cid-7) {
			t.Fatalf("collection %d's high seqno %d, want %d", cid, h, cid-7)
		}
	}
	if st := c.Stats(); st.SystemEvents != vbs*colls || st.CurrItems != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n, err := c.RecordEvents(vbs, evs); n != 0 || !errors.Is(err, ErrNoVBucket) {
		t.Fatalf("no such vbucket: %d, %v", n, err)
	}
}

// BenchmarkRecordEvents: the cost of one system event, recorded among
// many collections' in many vbuckets.
func BenchmarkRecordEvents(b *testing.B) {
	b.ReportAllocs()
	c := New(Config{VBuckets: 1024, MaxBytes: 1 << 30, Collections: true, SweepInterval: -1})
	defer c.Close()
	evs := make([]SystemEvent, 100)
	for i := range evs {
		cid := uint32(8 + i)
		evs[i] = SystemEvent{ID: CollectionKey(nil, cid, nil), Value: k("collection"), Collection: cid, InCollection: true}
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := c.RecordEvents(uint16(i%1024), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
