package cache

import (
	"cmp"
	"errors"
	"slices"
	"time"
)

// Backfills read what a vbucket holds now, for a change feed that starts
// from an earlier seqno than its cursor (a DCP stream's disk snapshot):
// the newest version of each key, live or deleted, in seqno order. A
// feed opens its Cursor before it backfills, so that every change after
// the backfill's walk reaches it through the cursor.

// Version is one key's newest version as a backfill reads it: the key
// and the item, a tombstone's with Deleted set. Key and Value are shared
// with the store and must not be modified; they stay valid after the item
// is replaced.
type Version struct {
	Key []byte
	Item
	// DeleteTime is when a tombstone's key was deleted (its purge time less
	// Config.TombstoneTTL); the zero Time for a live item.
	DeleteTime time.Time
}

// Backfill appends to dst the newest version of every key of vbucket vb,
// live or a tombstone, whose last change has a seqno from from to to (both
// included), in seqno order, and returns it; with max > 0, only the max
// versions of lowest seqno, so that a caller reads a large vbucket in
// parts (each from the seqno after the last one it got), holding no more
// than max versions at a time. Items whose time has passed and
// tombstones due to be purged are left out: their removal is numbered as
// a change of its own. Each call walks every shard, one at a time under
// its lock, as a scan does: a key changed during the walk may be read
// before or after its change, and a version whose seqno is above to is
// left out, so a caller gets the changes after to from a Cursor opened
// before the walk. It fails with ErrNoVBucket for a vbucket id not below
// VBuckets. To backfill many vbuckets, BackfillMany reads them all in one
// walk.
func (c *Cache) Backfill(vb uint16, from, to uint64, max int, dst []Version) ([]Version, error) {
	req := [1]BackfillRequest{{VBucket: vb, From: from, To: to, Max: max, Versions: dst}}
	err := c.BackfillMany(req[:])
	return req[0].Versions, err
}

// ErrDuplicateVBucket is the error of a BackfillMany that names a vbucket
// twice.
var ErrDuplicateVBucket = errors.New("cache: vbucket named twice")

// BackfillRequest is one vbucket's part of a BackfillMany: Backfill's
// arguments, and its result appended to Versions.
type BackfillRequest struct {
	VBucket  uint16
	From, To uint64
	Max      int
	Versions []Version
}

// BackfillMany does what Backfill does for each request, in one walk of
// the store, so that backfilling every vbucket costs one walk rather than
// one per vbucket. A request with Max > 0 holds no more than Max versions
// at any time of the walk. A vbucket may be named in one request only. It
// fails with ErrNoVBucket, reading nothing, if a vbucket id is not below
// VBuckets, and with ErrDuplicateVBucket if one is named twice.
func (c *Cache) BackfillMany(reqs []BackfillRequest) error {
	// A request with Max > 0 keeps the Max versions of lowest seqno read
	// so far in Versions[n0:], in no order, and their seqnos in a max-heap
	// (sel), so that a version of lower seqno than the heap's top takes
	// the top's place; the versions are put in seqno order once the walk
	// is done.
	type state struct {
		n0  int         // len(Versions) on entry
		cut uint64      // versions above are not wanted
		sel []selection // a max-heap, Max > 0
	}
	states := make([]state, len(reqs))
	wanted := 0 // requests that can match
	sels := 0   // selections the requests may hold
	// index maps a vbucket to 1 + its request's index; a small map serves
	// a few requests, a table many.
	var table []int32
	var small map[uint16]int32
	if len(reqs) > 16 {
		table = make([]int32, len(c.vbs))
	} else {
		small = make(map[uint16]int32, len(reqs))
	}
	for i := range reqs {
		r := &reqs[i]
		if int(r.VBucket) >= len(c.vbs) {
			return ErrNoVBucket
		}
		if table != nil {
			if table[r.VBucket] != 0 {
				return ErrDuplicateVBucket
			}
			table[r.VBucket] = int32(i + 1)
		} else {
			if small[r.VBucket] != 0 {
				return ErrDuplicateVBucket
			}
			small[r.VBucket] = int32(i + 1)
		}
		states[i] = state{n0: len(r.Versions), cut: r.To}
		if r.From <= r.To {
			wanted++
			if r.Max > 0 {
				sels += selCap(r)
			}
		}
	}
	if wanted == 0 {
		return nil
	}
	pool := make([]selection, 0, sels)
	for i := range reqs {
		if r := &reqs[i]; r.From <= r.To && r.Max > 0 {
			n := selCap(r)
			states[i].sel = pool[len(pool) : len(pool) : len(pool)+n]
			pool = pool[:len(pool)+n]
			r.Versions = slices.Grow(r.Versions, n)
		}
	}
	index := func(it *item) int32 {
		if table != nil {
			return table[it.vbucket()]
		}
		return small[it.vbucket()]
	}
	now := c.now() // before any lock: it may carry out a delayed flush
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, it := range s.buckets {
			for ; it != nil; it = it.hnext {
				k := index(it)
				if k == 0 {
					continue
				}
				r, st := &reqs[k-1], &states[k-1]
				if it.seqno() < r.From || it.seqno() > st.cut || it.expired(now) {
					continue
				}
				v := Version{Key: it.key(), Item: it.export()}
				if v.Deleted && it.expires() != 0 && c.tombstoneTTL > 0 {
					v.DeleteTime = time.Unix(0, it.expires()).Add(-c.tombstoneTTL)
				}
				switch {
				case r.Max <= 0:
					r.Versions = append(r.Versions, v)
				case len(st.sel) < r.Max:
					st.sel = append(st.sel, selection{seqno: v.Seqno, at: int32(len(r.Versions) - st.n0)})
					r.Versions = append(r.Versions, v)
					siftUp(st.sel)
					if len(st.sel) == r.Max {
						st.cut = max(st.sel[0].seqno, 1) - 1
					}
				default:
					// Full: v takes the place of the highest seqno kept.
					top := &st.sel[0]
					r.Versions[st.n0+int(top.at)] = v
					top.seqno = v.Seqno
					siftDown(st.sel)
					st.cut = max(st.sel[0].seqno, 1) - 1
				}
			}
		}
		s.mu.Unlock()
	}
	var slots []int32
	for i := range reqs {
		r, st := &reqs[i], &states[i]
		if st.sel == nil {
			sortVersions(r.Versions[st.n0:])
			continue
		}
		slots = sortSelections(st.sel, slots)
		permute(r.Versions[st.n0:], st.sel)
	}
	return nil
}

// sortSelections sorts sel by seqno, placing each at its seqno's place in
// slots when their seqnos are dense (the range from the lowest to the
// highest less than twice as many), and returns slots for the next.
func sortSelections(sel []selection, slots []int32) []int32 {
	if len(sel) < 2 {
		return slots
	}
	lo, hi := sel[0].seqno, sel[0].seqno
	for _, e := range sel[1:] {
		lo, hi = min(lo, e.seqno), max(hi, e.seqno)
	}
	if hi-lo >= 2*uint64(len(sel)) {
		slices.SortFunc(sel, func(a, b selection) int { return cmp.Compare(a.seqno, b.seqno) })
		return slots
	}
	n := int(hi-lo) + 1
	if cap(slots) < n {
		slots = make([]int32, n)
	}
	slots = slots[:n]
	for i := range slots {
		slots[i] = -1
	}
	for _, e := range sel {
		if slots[e.seqno-lo] >= 0 {
			// Two of one seqno (not expected: a seqno numbers one
			// change).
			slices.SortFunc(sel, func(a, b selection) int { return cmp.Compare(a.seqno, b.seqno) })
			return slots
		}
		slots[e.seqno-lo] = e.at
	}
	j := 0
	for i, at := range slots {
		if at >= 0 {
			sel[j] = selection{seqno: lo + uint64(i), at: at}
			j++
		}
	}
	return slots
}

// selection is a version kept by a request with Max > 0: its seqno and
// its index in the request's versions.
type selection struct {
	seqno uint64
	at    int32
}

// selCap is how many versions request r may keep: Max, or fewer if its
// seqnos are fewer.
func selCap(r *BackfillRequest) int {
	if span := r.To - r.From; span < uint64(r.Max) {
		return int(span) + 1
	}
	return r.Max
}

// siftUp restores the max-heap h after its last entry was appended.
func siftUp(h []selection) {
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].seqno >= h[i].seqno {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

// siftDown restores the max-heap h after its top entry was lowered.
func siftDown(h []selection) {
	i, n := 0, len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h[c+1].seqno > h[c].seqno {
			c++
		}
		if h[i].seqno >= h[c].seqno {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// permute reorders vs so that vs[j] is what was at vs[order[j].at], in
// place; it consumes order.
func permute(vs []Version, order []selection) {
	for j := range order {
		if order[j].at < 0 {
			continue
		}
		tmp := vs[j]
		cur := j
		for {
			next := int(order[cur].at)
			order[cur].at = -1
			if next == j {
				vs[cur] = tmp
				break
			}
			vs[cur] = vs[next]
			cur = next
		}
	}
}

func sortVersions(vs []Version) {
	slices.SortFunc(vs, func(a, b Version) int { return cmp.Compare(a.Seqno, b.Seqno) })
}

// Ready returns a channel that receives when the cursor may have a change
// to read, has lost changes or is closed: what Wait waits for, for a
// reader that waits on several cursors at once (with select). A receive
// is a hint: the reader calls Next, which may find nothing. Only one
// goroutine should wait on it, and not while another calls Wait.
func (cur *Cursor) Ready() <-chan struct{} { return cur.wake }
