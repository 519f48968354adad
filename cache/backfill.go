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
// than about 2*max versions at a time. Items whose time has passed and
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
// one per vbucket. A vbucket may be named in one request only. It fails
// with ErrNoVBucket, reading nothing, if a vbucket id is not below
// VBuckets, and with ErrDuplicateVBucket if one is named twice.
func (c *Cache) BackfillMany(reqs []BackfillRequest) error {
	type state struct {
		n0  int    // len(Versions) on entry
		cut uint64 // versions above are not wanted
	}
	states := make([]state, len(reqs))
	wanted := 0 // requests that can match
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
		}
	}
	if wanted == 0 {
		return nil
	}
	trim := func(r *BackfillRequest, st *state) {
		vs := r.Versions
		sortVersions(vs[st.n0:])
		clear(vs[st.n0+r.Max:])
		r.Versions = vs[:st.n0+r.Max]
		st.cut = r.Versions[len(r.Versions)-1].Seqno
	}
	now := c.now() // before any lock: it may carry out a delayed flush
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, it := range s.buckets {
			for ; it != nil; it = it.hnext {
				var k int32
				if table != nil {
					k = table[it.vbucket()]
				} else {
					k = small[it.vbucket()]
				}
				if k == 0 {
					continue
				}
				r, st := &reqs[k-1], &states[k-1]
				if it.seqno < r.From || it.seqno > st.cut || it.expired(now) {
					continue
				}
				v := Version{Key: it.key(), Item: it.export()}
				if v.Deleted && it.exp != 0 && c.tombstoneTTL > 0 {
					v.DeleteTime = time.Unix(0, it.exp).Add(-c.tombstoneTTL)
				}
				r.Versions = append(r.Versions, v)
				if r.Max > 0 && len(r.Versions)-st.n0 >= 2*r.Max {
					trim(r, st)
				}
			}
		}
		s.mu.Unlock()
	}
	for i := range reqs {
		r, st := &reqs[i], &states[i]
		if r.Max > 0 && len(r.Versions)-st.n0 > r.Max {
			trim(r, st)
		} else {
			sortVersions(r.Versions[st.n0:])
		}
	}
	return nil
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
