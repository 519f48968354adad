package cache

// Each vbucket keeps a purge seqno: the highest seqno of a change that a
// Backfill can no longer show. A tombstone purged (its time passed, the
// tombstone bound, memory made), and a removal that left no tombstone (an
// eviction, a deletion without tombstones), raise it; a flush, whose
// removals have no seqno, raises it past the high seqno (to high + 1), so
// that a feed that had all before the flush rolls back too. A change feed
// that resumes from a seqno below it may have missed a deletion, and must
// start again from 0.

// PurgeSeqno returns vbucket vb's purge seqno, 0 for a vbucket id not
// below VBuckets.
func (c *Cache) PurgeSeqno(vb uint16) uint64 {
	if int(vb) >= len(c.purges) {
		return 0
	}
	return c.purges[vb].Load()
}

// purged raises vbucket vb's purge seqno to seqno.
func (c *Cache) purged(vb uint16, seqno uint64) {
	if int(vb) < len(c.purges) {
		atomicMax(&c.purges[vb], seqno)
	}
}

// purge removes the tombstone it from the locked shard s, raising its
// vbucket's purge seqno, and returns the bytes freed.
func (c *Cache) purge(s *shard, it *item) int64 {
	c.purged(it.vbucket(), it.seqno())
	return s.remove(it)
}

// purgeAll raises the purge seqno of every vbucket that has had a change
// past its high seqno (a flush).
func (c *Cache) purgeAll() {
	for i := range c.vbs {
		if c.vbs[i].fed() {
			continue // a replica keeps its producer's
		}
		if high := c.vbs[i].high.Load(); high > 0 {
			c.purged(uint16(i), high+1)
		}
	}
}
