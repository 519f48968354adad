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
	secs := int64(unixSeconds(c.clock.Now().UnixNano()))
	age := func(t *item, d *time.Duration) {
		if t != nil {
			*d = max(*d, time.Duration(max(0, secs-int64(t.atime)))*time.Second)
		}
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		k := s.stats
		hot, warm, temp := s.segment(segHot), s.segment(segWarm), s.segment(segTemp)
		st.LRU.Hot += uint64(hot.n)
		st.LRU.Warm += uint64(warm.n)
		st.LRU.Temp += uint64(temp.n)
		st.LRU.Cold += uint64(s.count - s.tombs - s.sys - hot.n - warm.n - temp.n)
		age(hot.tail, &st.LRU.AgeHot)
		age(warm.tail, &st.LRU.AgeWarm)
		cold := s.tail
		if s.tombHead != nil {
			cold = s.tombHead.prev
		}
		age(cold, &st.LRU.AgeCold)
		st.CurrItems += uint64(s.count - s.tombs - s.sys)
		st.Tombstones += uint64(s.tombs)
		st.TombstoneBytes += s.tombBytes.Load()
		st.SystemEvents += uint64(s.sys)
		st.SystemBytes += s.sysBytes.Load()
		if s.dead != nil {
			st.DeadItems += uint64(s.dead.n)
		}
		st.DeadBytes += s.deadBytes.Load()
		s.mu.Unlock()
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
	return st
}

// ResetStats zeroes the counters (not the item counts and sizes), as
// memcached's "stats reset".
func (c *Cache) ResetStats() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.stats = counters{}
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
