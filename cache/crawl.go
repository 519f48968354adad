package cache

import "math/bits"

// Crawls: memcached's LRU crawler walks its items in the background, a
// few at a time, to reclaim those whose time has passed (lru_crawler
// crawl) or to list them (lru_crawler metadump). A Crawler does that here:
// it walks every shard's hash table, a bounded batch of items at a time
// under the shard's lock, and keeps its place between batches, so that
// the caller may do what it likes (write to a client, sleep) with no lock
// held. Its place is a bucket cursor in reverse-bit order (as Redis's
// SCAN), so that a table that grows between two batches is neither
// walked twice nor skipped: every item present from the crawl's start to
// its end is visited exactly once, while items stored meanwhile may or
// may not be.

// CrawlItem is what a crawl shows of one item. Key aliases the item and
// is valid only during the visit.
type CrawlItem struct {
	Key      []byte // the stored key (with its collection, under Config.Collections)
	VBucket  uint16
	ValueLen int
	Flags    uint32
	Expires  int64  // unix nanoseconds; 0 never
	Atime    uint32 // last stored or fetched, unix seconds
	CAS      uint64
	Fetched  bool
	// Expired reports that the item's time has passed, or that a flush
	// made it invisible (it is then one of the dead, memcached's flushed
	// items): no client can read it any more.
	Expired bool
}

// Crawler walks a Cache's items in batches (see NewCrawler). It is for
// one goroutine.
type Crawler struct {
	c      *Cache
	shard  int
	cursor uint64 // the next bucket of the shard, bit-reversed order
	dead   bool   // the shard's dead items were visited
	done   bool
	item   CrawlItem
}

// NewCrawler returns a Crawler at the start of c's items.
func (c *Cache) NewCrawler() *Crawler { return &Crawler{c: c} }

// Crawl visits at least batch items (fewer at the end, more when a
// bucket holds more), under one shard's lock, and returns false once
// every item has been visited. Tombstones and system events are not
// visited. visit is called with the shard locked: it must be quick and
// must not call the Cache. When it returns true for an item whose
// Expired is set, the item is reclaimed, as the sweeper would reclaim it
// (counted in Stats.Reclaimed, and ExpiredUnfetched if it was never
// read; a tombstone stays, with Config.TombstoneTTL). The dead items of a
// shard are visited first; they are reclaimed only when visit accepts
// all of them.
func (cr *Crawler) Crawl(batch int, visit func(*CrawlItem) bool) bool {
	c := cr.c
	if cr.done {
		return false
	}
	batch = max(batch, 1)
	now := c.clock.Now().UnixNano()
	s := &c.shards[cr.shard]
	s.mu.Lock()
	var freed int64
	n := 0
	if !cr.dead {
		cr.dead = true
		if s.dead != nil {
			all := true
			for _, h := range s.dead.heads {
				for it := h; it != nil; it = it.next {
					all = cr.show(it, true, visit) && all
					n++
				}
			}
			if all {
				freed += s.dropDead()
			}
		}
	}
	for n < batch {
		mask := uint64(len(s.buckets) - 1)
		for it := s.buckets[cr.cursor&mask]; it != nil; {
			next := it.hnext // drop keeps a tombstone in its place
			if !it.deleted() && !it.pinned() {
				expired := it.expired(now)
				if cr.show(it, expired, visit) && expired {
					freed += c.expire(s, it, now, true)
				}
				n++
			}
			it = next
		}
		cr.cursor = nextBucket(cr.cursor, mask)
		if cr.cursor == 0 {
			// The shard is done.
			cr.shard++
			cr.dead = false
			if cr.shard == len(c.shards) {
				cr.done = true
			}
			break
		}
	}
	c.unlock(s, freed)
	return !cr.done
}

// show fills cr.item with it and visits it.
func (cr *Crawler) show(it *item, expired bool, visit func(*CrawlItem) bool) bool {
	cr.item = CrawlItem{Key: it.key(), VBucket: it.vbucket(), ValueLen: int(it.size()) - int(it.keyLen),
		Flags: it.flags, Expires: it.expires(), Atime: it.atime, CAS: it.cas, Fetched: it.fetched(), Expired: expired}
	ok := visit(&cr.item)
	cr.item.Key = nil
	return ok
}

// nextBucket advances a reverse-bit bucket cursor in a table of mask+1
// buckets: it increments the cursor's reversed bits, so that the buckets
// are visited in an order that doubling the table keeps (a bucket's two
// halves after a doubling are visited together, where the bucket itself
// would have been). It returns 0 past the last bucket.
func nextBucket(v, mask uint64) uint64 {
	v |= ^mask
	v = bits.Reverse64(v)
	v++
	return bits.Reverse64(v)
}
