package cache

import "time"

// memcached's segmented LRU (items.c, 1.6), per shard: a shard stands
// for one slab class. New items go to HOT (TEMP when their time to live
// is at most TempTTL); a second fetch makes an item ACTIVE, and an
// ACTIVE item of COLD moves to WARM at once; the juggle (memcached's LRU
// maintainer) moves HOT's tail to WARM if ACTIVE, else to COLD while HOT
// is over its share of the shard's bytes or older than HotMaxFactor
// times COLD's age, and WARM's tail back to WARM's head if ACTIVE, else
// to COLD likewise. Eviction takes COLD's tail; TEMP items are never
// evicted, only reclaimed when expired. In flat mode (memcached's
// no_modern) every item is in COLD and every fetch moves it to the head.
//
// A store juggles its shard once (one HOT and one WARM tail) after it
// links its item, and every sweep juggles each shard until nothing moves
// (at most sweepPulls rounds), counting lru_maintainer_juggles. COLD's
// age, which the age limits scale, is the age of the oldest tail the
// shards publish for eviction (evict.go): the whole cache's COLD tail,
// as memcached's class has one.
//
// COLD is the shard's own list (head, tail), which tombstones end; HOT,
// WARM and TEMP are segments. An item's list and its ACTIVE mark are the
// low bits of its stamp (see stampAt).

// LRUMode selects how the cache orders its items (Config.LRU).
type LRUMode uint8

// LRU modes.
const (
	// Flat is one LRU list per shard: every fetch makes the item the most
	// recently used (memcached's no_modern).
	Flat LRUMode = iota
	// Segmented is memcached's modern LRU: HOT, WARM, COLD and TEMP.
	Segmented
)

// Segments, in the low bits of item.stamp.
const (
	segCold = iota
	segHot
	segWarm
	segTemp
	nSegs
)

const (
	segMask     = 3
	activeStamp = 4   // the item is ACTIVE (fetched twice since it last moved)
	stampLow    = 7   // the bits of stamp that are no part of the age
	stampShift  = 3   // stampAt's counter bits start here
	jugglePulls = 1   // rounds (a HOT and a WARM tail) a store juggles
	sweepPulls  = 500 // and a sweep, per shard and segment (memcached's)
)

// segment is one of a shard's HOT, WARM or TEMP lists.
type segment struct {
	head, tail *item
	n          int
	bytes      int64
}

// lruConfig is the cache's LRU settings, shared by its shards.
type lruConfig struct {
	segmented           bool
	tempTTL             int64 // nanos; 0 none
	hotPct, warmPct     int64
	hotFactor, warmFact float64
}

func newLRUConfig(cfg *Config) *lruConfig {
	l := &lruConfig{segmented: cfg.LRU == Segmented, tempTTL: int64(cfg.TempTTL), hotPct: 20, warmPct: 40,
		hotFactor: 0.2, warmFact: 2.0}
	if cfg.HotLRUPct > 0 {
		l.hotPct = int64(cfg.HotLRUPct)
	}
	if cfg.WarmLRUPct > 0 {
		l.warmPct = int64(cfg.WarmLRUPct)
	}
	if cfg.HotMaxFactor > 0 {
		l.hotFactor = cfg.HotMaxFactor
	}
	if cfg.WarmMaxFactor > 0 {
		l.warmFact = cfg.WarmMaxFactor
	}
	return l
}

func seg(it *item) int        { return int(it.stamp & segMask) }
func (it *item) active() bool { return it.stamp&activeStamp != 0 }

// segment returns the locked shard's segment sg (not segCold).
func (s *shard) segment(sg int) *segment { return &s.segs[sg-1] }

// segFor is the list a new live item stored at now goes to.
func (s *shard) segFor(it *item, now int64) uint32 {
	switch l := s.lru; {
	case !l.segmented:
		return segCold
	case l.tempTTL > 0 && it.exp != 0 && it.exp-now <= l.tempTTL:
		return segTemp
	default:
		return segHot
	}
}

// pushSeg puts the live item it at the head of the list its stamp names.
func (s *shard) pushSeg(it *item) {
	sg := seg(it)
	if sg == segCold {
		s.pushFront(it)
		return
	}
	g := s.segment(sg)
	it.prev, it.next = nil, g.head
	if g.head != nil {
		g.head.prev = it
	} else {
		g.tail = it
	}
	g.head = it
	g.n++
	g.bytes += it.footprint()
}

// unlinkSeg takes it out of its segment (not COLD).
func (s *shard) unlinkSeg(it *item) {
	g := s.segment(seg(it))
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		g.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		g.tail = it.prev
	}
	it.prev, it.next = nil, nil
	g.n--
	g.bytes -= it.footprint()
}

// moveTo moves the live item it to the head of segment to, clearing
// ACTIVE.
func (s *shard) moveTo(it *item, to uint32) {
	if it == s.lruTail {
		s.lruTail = nil // published again
	}
	s.unlinkLRU(it)
	it.stamp = it.stamp&^stampLow | to
	s.pushSeg(it)
}

// hit records a fetch of the live item it at now: memcached's
// do_item_bump.
func (s *shard) hit(it *item, now int64) {
	it.atime = unixSeconds(now)
	if !s.lru.segmented {
		it.markFetched()
		s.bump(it, now)
		return
	}
	if it == s.lruTail {
		s.lruTail = nil // its age changed: published again
	}
	switch {
	case it.active():
	case !it.fetched():
		it.markFetched()
	case seg(it) == segCold:
		s.stats.movesToWarm++
		it.stamp = s.stampAt(now) | it.stamp&segMask
		s.moveTo(it, segWarm)
	default:
		it.stamp |= activeStamp
	}
}

// juggle moves up to n items from the tails of HOT and WARM of the
// locked shard s at now (memcached's lru_maintainer_juggle), and reports
// whether it moved any. Their ages are compared with that of the
// cache's oldest tail (coldAge), which stands for memcached's class's
// COLD tail.
func (c *Cache) juggle(s *shard, now int64, n int) bool {
	if s.segment(segHot).tail == nil && s.segment(segWarm).tail == nil {
		return false
	}
	// The shard's bytes but TEMP's: tombstones, system events and dead
	// items too, which are few (and reading their counts costs a store
	// more than the rest of the juggle).
	j := juggler{c: c, s: s, now: now, coldAge: -1, total: s.bytes - s.segment(segTemp).bytes}
	l := s.lru
	moved := false
	for i := 0; i < n; i++ {
		a := j.pull(segHot, l.hotPct, l.hotFactor)
		b := j.pull(segWarm, l.warmPct, l.warmFact)
		if !a && !b {
			break
		}
		moved = true
	}
	return moved
}

// juggler is one juggle of a shard's lists.
type juggler struct {
	c          *Cache
	s          *shard
	now, total int64
	coldAge    int64 // seconds; -1 until needed
}

// pull moves the tail of segment sg (HOT or WARM) as lru_pull_tail does,
// pct and factor being the segment's limits, and reports whether it did.
// A segment's last item is not moved for its size: a shard holds only a
// part of memcached's class.
func (j *juggler) pull(sg int, pct int64, factor float64) bool {
	s := j.s
	g := s.segment(sg)
	t := g.tail
	switch {
	case t == nil:
		return false
	case t.active():
		if sg == segWarm {
			s.stats.movesWithinLRU++
		} else {
			s.stats.movesToWarm++
		}
		s.moveTo(t, segWarm)
		return true
	case g.bytes > j.total*pct/100 && g.n > 1:
	default:
		if j.coldAge < 0 {
			j.coldAge = j.c.coldAge(j.now)
		}
		if int64(unixSeconds(j.now))-int64(t.atime) <= int64(float64(j.coldAge)*factor) {
			return false
		}
	}
	s.stats.movesToCold++
	s.moveTo(t, segCold)
	return true
}

// coldAge is the age in seconds at now of the oldest tail the shards
// publish: the COLD tail of memcached's class.
func (c *Cache) coldAge(now int64) int64 {
	_, k := oldestOf(c.groups)
	if k == emptyTail || k == 0 {
		return 0
	}
	return max(0, int64(unixSeconds(now))-int64(k>>32))
}

// victim is the locked shard's eviction candidate: COLD's tail, else
// HOT's, else WARM's (never TEMP's).
func (s *shard) victim() *item {
	if s.tail != nil {
		return s.tail
	}
	if t := s.segment(segHot).tail; t != nil {
		return t
	}
	return s.segment(segWarm).tail
}

// LRUStats are the segmented LRU's numbers (memcached's "stats items").
type LRUStats struct {
	Hot, Warm, Cold, Temp         uint64        // items in each list
	AgeHot, AgeWarm, AgeCold      time.Duration // age of the oldest item of each list, of all shards
	MovesToCold, MovesToWarm      uint64
	MovesWithinLRU, EvictedActive uint64
	HitsToHot, HitsToWarm         uint64
	HitsToCold, HitsToTemp        uint64
	Juggles                       uint64 // juggles of a shard's lists (lru_maintainer_juggles)
}
