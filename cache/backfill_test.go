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

// TestBackfillManyParts: read in parts of every size, many vbuckets at
// once, a backfill gets the same versions as read whole, each part the
// lowest seqnos left in seqno order, after what dst held.
func TestBackfillManyParts(t *testing.T) {
	c, _ := newTest(t, Config{Shards: 4})
	const vbs, keys = 20, 60
	for i := range 3 * keys {
		vb := uint16(i % vbs)
		// Keys written twice or more leave gaps in the seqnos.
		if _, err := c.Store(vb, Set, k(fmt.Sprintf("k%d", (i*7)%keys)), Write{Value: k("v")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		// Each key of one vbucket written 5 times in a row: its newest
		// versions' seqnos are sparse.
		if _, err := c.Store(vbs-1, Set, k(fmt.Sprintf("s%d", i/5)), Write{Value: k("v")}); err != nil {
			t.Fatal(err)
		}
	}
	whole := make([][]uint64, vbs)
	for vb := range whole {
		vs, err := c.Backfill(uint16(vb), 0, ^uint64(0), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			whole[vb] = append(whole[vb], v.Seqno)
		}
	}
	for _, max := range []int{1, 2, 3, 5, 8, 100} {
		got := make([][]uint64, vbs)
		reqs := make([]BackfillRequest, vbs)
		for vb := range reqs {
			reqs[vb] = BackfillRequest{VBucket: uint16(vb), From: 0, To: ^uint64(0), Max: max}
		}
		for round := 0; len(reqs) > 0; round++ {
			if round > 3*keys {
				t.Fatalf("max %d: %d rounds", max, round)
			}
			for i := range reqs {
				reqs[i].Versions = append(reqs[i].Versions[:0], Version{Key: k("dst")})
			}
			if err := c.BackfillMany(reqs); err != nil {
				t.Fatal(err)
			}
			next := reqs[:0]
			for _, r := range reqs {
				if len(r.Versions) == 0 || string(r.Versions[0].Key) != "dst" || len(r.Versions) > max+1 {
					t.Fatalf("max %d: vb %d: %d versions, first %q", max, r.VBucket, len(r.Versions), r.Versions[0].Key)
				}
				part := r.Versions[1:]
				for _, v := range part {
					got[r.VBucket] = append(got[r.VBucket], v.Seqno)
				}
				if len(part) == max {
					r.From = part[len(part)-1].Seqno + 1
					next = append(next, r)
				}
			}
			reqs = next
		}
		for vb := range got {
			if fmt.Sprint(got[vb]) != fmt.Sprint(whole[vb]) {
				t.Fatalf("max %d: vb %d in parts %v, whole %v", max, vb, got[vb], whole[vb])
			}
		}
	}
}
