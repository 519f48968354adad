package cache

import "time"

// Stats are the store's counters, named after memcached's statistics.
type Stats struct {
	CurrItems        uint64 // items stored now (documents: system events are not counted)
	Tombstones       uint64 // tombstones kept now (see Config.TombstoneTTL)
	TotalItems       uint64 // items stored since start (documents)
	Bytes            int64  // memory in use, as the limit counts it
	TombstoneBytes   int64  // what tombstones take of Bytes
	SystemEvents     uint64 // live system events kept now (sysevent.go)
	SystemBytes      int64  // what they take of Bytes
	DeadItems        uint64 // items a flush made invisible, or stored already expired, not yet reclaimed (dead.go)
	DeadBytes        int64  // what they take of Bytes
	LimitMaxBytes    int64
	GetHits          uint64
	GetMisses        uint64
	GetExpired       uint64 // misses because the item had expired
	GetFlushed       uint64 // misses because of a flush
	DeleteHits       uint64
	DeleteMisses     uint64
	IncrHits         uint64
	IncrMisses       uint64
	DecrHits         uint64
	DecrMisses       uint64
	CasHits          uint64
	CasMisses        uint64
	CasBadval        uint64 // CAS mismatches, but of APPEND and PREPEND (as memcached)
	TouchHits        uint64
	TouchMisses      uint64
	CmdSet           uint64 // stores tried, but of values over the item size limit (as memcached's binary protocol)
	Evictions        uint64
	EvictedUnfetched uint64
	EvictedNonzero   uint64 // evictions of items that had an expiry
	EvictedTime      uint64 // seconds since the last access of the last item evicted (the largest of the shards')
	ExpiredUnfetched uint64
	Reclaimed        uint64 // expired or flushed items whose memory a store, an eviction or a sweep reclaimed
	StoreTooLarge    uint64 // stores refused for size (memcached counts only its ASCII protocol's)
	StoreNoMemory    uint64
	SystemNoMemory   uint64 // system events refused for memory (see SystemRoom)
	// LRU is the segmented LRU's lists and moves (lru.go); in flat mode
	// every item is in Cold.
	LRU LRUStats
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	st := Stats{LimitMaxBytes: c.maxBytes, Bytes: c.bytes.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Tombstones += uint64(s.tombs)
		st.TombstoneBytes += s.tombBytes.Load()
		st.SystemEvents += uint64(s.sys)
		st.SystemBytes += s.sysBytes.Load()
		if s.dead != nil {
			st.DeadItems += uint64(s.dead.n)
		}
		st.DeadBytes += s.deadBytes.Load()
		st.add(&s.stats)
		s.mu.Unlock()
	}
	c.gather(&st, -1)
	return st
}

// classStats returns the counters and lists of slab class k: CurrItems is
// its live items, Bytes their memcached size (mem_requested).
func (c *Cache) classStats(k int) Stats {
	var st Stats
	c.gather(&st, k)
	return st
}

// gather adds to st the lists and counters of class k, or of every class
// for k < 0, locking one shard at a time.
func (c *Cache) gather(st *Stats, k int) {
	secs := int64(unixSeconds(c.clock.Now().UnixNano()))
	age := func(t *item, d *time.Duration) {
		if t != nil {
			*d = max(*d, time.Duration(max(0, secs-int64(t.atime)))*time.Second)
		}
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		cls := s.cls
		if k >= 0 {
			cls = cls[k : k+1]
		}
		for j := range cls {
			l := &cls[j]
			hot, warm, cold, temp := &l.segs[segHot], &l.segs[segWarm], &l.segs[segCold], &l.segs[segTemp]
			st.LRU.Hot += uint64(hot.n)
			st.LRU.Warm += uint64(warm.n)
			st.LRU.Temp += uint64(temp.n)
			st.LRU.Cold += uint64(cold.n - l.tombs)
			age(hot.tail, &st.LRU.AgeHot)
			age(warm.tail, &st.LRU.AgeWarm)
			age(l.coldTail(), &st.LRU.AgeCold)
			st.CurrItems += uint64(hot.n + warm.n + temp.n + cold.n - l.tombs)
			if k >= 0 {
				st.Bytes += l.requested
			}
			st.add(&l.stats)
		}
		s.mu.Unlock()
	}
}

// add adds the counters k to st.
func (st *Stats) add(k *counters) {
	st.TotalItems += k.totalItems
	st.GetHits += k.getHits
	st.GetMisses += k.getMisses
	st.GetExpired += k.getExpired
	st.GetFlushed += k.getFlushed
	st.DeleteHits += k.deleteHits
	st.DeleteMisses += k.deleteMisses
	st.IncrHits += k.incrHits
	st.IncrMisses += k.incrMisses
	st.DecrHits += k.decrHits
	st.DecrMisses += k.decrMisses
	st.CasHits += k.casHits
	st.CasMisses += k.casMisses
	st.CasBadval += k.casBadval
	st.TouchHits += k.touchHits
	st.TouchMisses += k.touchMisses
	st.CmdSet += k.cmdSet
	st.Evictions += k.evictions
	st.EvictedUnfetched += k.evictedUnfetched
	st.EvictedNonzero += k.evictedNonzero
	st.EvictedTime = max(st.EvictedTime, k.evictedTime)
	st.ExpiredUnfetched += k.expiredUnfetched
	st.Reclaimed += k.reclaimed
	st.StoreTooLarge += k.storeTooLarge
	st.StoreNoMemory += k.storeNoMemory
	st.SystemNoMemory += k.sysNoMemory
	st.LRU.MovesToCold += k.movesToCold
	st.LRU.MovesToWarm += k.movesToWarm
	st.LRU.MovesWithinLRU += k.movesWithinLRU
	st.LRU.EvictedActive += k.evictedActive
	st.LRU.Juggles += k.juggles
	st.LRU.HitsToHot += k.hitsTo[segHot]
	st.LRU.HitsToWarm += k.hitsTo[segWarm]
	st.LRU.HitsToCold += k.hitsTo[segCold]
	st.LRU.HitsToTemp += k.hitsTo[segTemp]
}

// ResetStats zeroes the counters (not the item counts and sizes), as
// memcached's "stats reset".
func (c *Cache) ResetStats() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.stats = counters{}
		for j := range s.cls {
			s.cls[j].stats = counters{}
		}
		s.mu.Unlock()
	}
}

// Len returns the number of items stored, expired ones not yet removed
// included, tombstones and system events not.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.count - s.tombs - s.sys
		s.mu.Unlock()
	}
	return n
}
