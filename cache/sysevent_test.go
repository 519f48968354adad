package cache

import (
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
