package cache

import (
	"fmt"
	"testing"
	"time"
)

// TestBackfill: a backfill reads the newest version of each key of one
// vbucket, live or a tombstone, whose seqno is in its range, in seqno
// order, leaving out other vbuckets, older versions, expired items and
// what is past the range.
func TestBackfill(t *testing.T) {
	c, clk := newTest(t, Config{Shards: 4, TombstoneTTL: time.Minute})
	store := func(vb uint16, key string, exp uint32) Mutation {
		t.Helper()
		m, err := c.Store(vb, Set, k(key), Write{Value: k("v-" + key), Flags: 7, Expiry: exp})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for i := range 10 {
		store(3, fmt.Sprintf("k%d", i), 0) // seqnos 1-10
	}
	store(4, "other", 0)
	store(3, "k0", 0)                                  // 11: k0's newest
	if _, err := c.Delete(3, k("k1"), 0); err != nil { // 12: a tombstone
		t.Fatal(err)
	}
	store(3, "short", 5) // 13, expires
	clk.Advance(10 * time.Second)
	store(3, "k9", 0) // 14: past the range below

	got, err := c.Backfill(3, 2, 13, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seqnos []uint64
	for _, v := range got {
		seqnos = append(seqnos, v.Seqno)
		switch string(v.Key) {
		case "k1":
			if !v.Deleted || v.DeleteTime.IsZero() {
				t.Errorf("k1: %+v, want a tombstone with a delete time", v)
			}
		case "k0":
			if string(v.Value) != "v-k0" || v.Flags != 7 || v.Deleted {
				t.Errorf("k0: %+v", v)
			}
		case "other", "short", "k9":
			t.Errorf("%s backfilled", v.Key)
		}
	}
	if fmt.Sprint(seqnos) != "[3 4 5 6 7 8 9 11 12]" {
		t.Fatalf("seqnos %v", seqnos)
	}
	// In parts of at most 2: the same versions.
	var parts []uint64
	for from := uint64(2); ; {
		part, err := c.Backfill(3, from, 13, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(part) == 0 {
			break
		}
		if len(part) > 2 {
			t.Fatalf("part of %d", len(part))
		}
		for _, v := range part {
			parts = append(parts, v.Seqno)
		}
		from = part[len(part)-1].Seqno + 1
	}
	if fmt.Sprint(parts) != fmt.Sprint(seqnos) {
		t.Fatalf("in parts %v, whole %v", parts, seqnos)
	}
	if got, _ := c.Backfill(3, 5, 4, 0, nil); len(got) != 0 {
		t.Fatalf("empty range: %d versions", len(got))
	}
	if _, err := c.Backfill(uint16(c.VBuckets()), 0, 10, 0, nil); err != ErrNoVBucket {
		t.Fatalf("vbucket out of range: %v", err)
	}
}

// TestCursorReady: a cursor's Ready channel receives once a change is
// logged.
func TestCursorReady(t *testing.T) {
	c, _ := newTest(t, Config{})
	cur, err := c.Changes(0)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	select {
	case <-cur.Ready():
		t.Fatal("ready before any change")
	default:
	}
	if _, err := c.Store(0, Set, k("a"), Write{Value: k("1")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cur.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready after a change")
	}
	if ch, _ := cur.Next(nil, 0); len(ch) != 1 {
		t.Fatalf("%d changes", len(ch))
	}
}
