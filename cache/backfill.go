package cache

import (
	"cmp"
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
// VBuckets.
func (c *Cache) Backfill(vb uint16, from, to uint64, max int, dst []Version) ([]Version, error) {
	if int(vb) >= len(c.vbs) {
		return dst, ErrNoVBucket
	}
	if from > to {
		return dst, nil
	}
	n0 := len(dst)
	cut := to // versions above are not wanted
	trim := func() {
		sortVersions(dst[n0:])
		clear(dst[n0+max:])
		dst = dst[:n0+max]
		cut = dst[len(dst)-1].Seqno
	}
	now := c.now() // before any lock: it may carry out a delayed flush
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, it := range s.buckets {
			for ; it != nil; it = it.hnext {
				if it.vbucket() != vb || it.seqno < from || it.seqno > cut || it.expired(now) {
					continue
				}
				v := Version{Key: it.key(), Item: it.export()}
				if v.Deleted && it.exp != 0 && c.tombstoneTTL > 0 {
					v.DeleteTime = time.Unix(0, it.exp).Add(-c.tombstoneTTL)
				}
				dst = append(dst, v)
				if max > 0 && len(dst)-n0 >= 2*max {
					trim()
				}
			}
		}
		s.mu.Unlock()
	}
	if max > 0 && len(dst)-n0 > max {
		trim()
	} else {
		sortVersions(dst[n0:])
	}
	return dst, nil
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
