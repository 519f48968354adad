package cache

import (
	"sync/atomic"
	"time"
)

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

// segment is one of a class's HOT, WARM, COLD or TEMP lists in a shard:
// COLD ends with the class's tombstones.
type segment struct {
	head, tail *item
	n          int
	bytes      int64
}

// lists is one slab class's LRU lists in a shard, with the counters of its
// items (all items are one class without Config.Slabs).
type lists struct {
	segs      [nSegs]segment // by seg
	tombHead  *item          // the newest tombstone, in COLD
	tombs     int
	chunks    int64 // the slab chunks the class's items take in the shard, dead ones included
	requested int64 // their memcached sizes (ntotal)
	id        uint8 // the class's index
	// The class's LRU tail as evictions see it (evict.go): lruTail is
	// the tail item when its age was published in *tailKey (the shard's
	// slot in the class's tails, read without the lock).
	lruTail  *item
	tailKey  *atomic.Uint64
	group    []atomic.Uint64 // the tails of the shard's group (evict.go), its own among them
	groupMin *atomic.Uint64  // the oldest of them
	stats    counters
}

// reset empties the lists, keeping counters and tails, and gives back the
// class's chunks.
func (l *lists) reset(sl *slabs) {
	if sl != nil {
		sl.classes[l.id].used.Add(-l.chunks)
	}
	l.segs = [nSegs]segment{}
	l.tombHead, l.tombs, l.chunks, l.requested, l.lruTail = nil, 0, 0, 0, staleTail
}

// staleTail is a tail no class has: its age is published again.
var staleTail = new(item)

// push puts the live item it at the head of the list its stamp names.
func (l *lists) push(it *item) {
	g := &l.segs[seg(it)]
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

// unlink takes it out of its list.
func (l *lists) unlink(it *item) {
	g := &l.segs[seg(it)]
	if it == l.tombHead {
		l.tombHead = it.next
	}
	if it.deleted() {
		l.tombs--
	}
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

// coldTail is COLD's last live item, nil if none.
func (l *lists) coldTail() *item {
	if l.tombHead != nil {
		return l.tombHead.prev
	}
	return l.segs[segCold].tail
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

// segFor is the list a new live item stored at now goes to.
func (s *shard) segFor(it *item, now int64) uint32 {
	switch l := s.lru; {
	case !l.segmented:
		return segCold
	case l.tempTTL > 0 && it.expires() != 0 && it.expires()-now <= l.tempTTL:
		return segTemp
	default:
		return segHot
	}
}

// moveTo moves the live item it of lists l to the head of segment to,
// clearing ACTIVE.
func (l *lists) moveTo(it *item, to uint32) {
	if it == l.lruTail {
		l.lruTail = nil // published again
	}
	l.unlink(it)
	it.stamp = it.stamp&^stampLow | to
	l.push(it)
}

// hit records a fetch of the live item it at now: memcached's
// do_item_bump.
func (s *shard) hit(it *item, now int64) {
	it.setAtime(unixSeconds(now))
	if it.pinned() {
		it.markFetched() // a live system event is in no LRU list
		return
	}
	if !s.lru.segmented {
		it.markFetched()
		s.bump(it, now)
		return
	}
	l := s.listOf(it)
	if it == l.lruTail {
		l.lruTail = nil // its age changed: published again
	}
	switch {
	case it.active():
	case !it.fetched():
		it.markFetched()
	case seg(it) == segCold:
		l.stats.movesToWarm++
		it.stamp = s.stampAt(now) | it.stamp&segMask
		l.moveTo(it, segWarm)
	default:
		it.stamp |= activeStamp
	}
}

// juggle moves up to n items from the tails of HOT and WARM of class l
// of the locked shard s at now (memcached's lru_maintainer_juggle), and
// reports whether it moved any. Their ages are compared with that of the
// class's oldest tail in all shards (coldAge), which stands for
// memcached's class's COLD tail.
func (c *Cache) juggle(s *shard, l *lists, now int64, n int) bool {
	if l.segs[segHot].tail == nil && l.segs[segWarm].tail == nil {
		return false
	}
	s.dirty |= 1 << l.id
	// The class's bytes but TEMP's, tombstones included.
	total := l.segs[segHot].bytes + l.segs[segWarm].bytes + l.segs[segCold].bytes
	j := juggler{c: c, s: s, l: l, now: now, coldAge: -1, total: total}
	cfg := s.lru
	moved := false
	for i := 0; i < n; i++ {
		a := j.pull(segHot, cfg.hotPct, cfg.hotFactor)
		b := j.pull(segWarm, cfg.warmPct, cfg.warmFact)
		if !a && !b {
			break
		}
		moved = true
	}
	return moved
}

// juggleAll juggles every class of the locked shard s that has items in
// HOT or WARM (a sweep).
func (c *Cache) juggleAll(s *shard, now int64, n int) {
	for i := range s.cls {
		c.juggle(s, &s.cls[i], now, n)
	}
}

// juggler is one juggle of a class's lists in a shard.
type juggler struct {
	c          *Cache
	s          *shard
	l          *lists
	now, total int64
	coldAge    int64 // seconds; -1 until needed
}

// pull moves the tail of segment sg (HOT or WARM) as lru_pull_tail does,
// pct and factor being the segment's limits, and reports whether it did.
// A segment's last item is not moved for its size: a shard holds only a
// part of memcached's class.
func (j *juggler) pull(sg int, pct int64, factor float64) bool {
	l := j.l
	g := &l.segs[sg]
	t := g.tail
	switch {
	case t == nil:
		return false
	case t.active():
		if sg == segWarm {
			l.stats.movesWithinLRU++
		} else {
			l.stats.movesToWarm++
		}
		l.moveTo(t, segWarm)
		return true
	case g.bytes > j.total*pct/100 && g.n > 1:
	default:
		if j.coldAge < 0 {
			j.coldAge = j.c.coldAge(int(l.id), j.now)
		}
		if int64(unixSeconds(j.now))-int64(t.atime) <= int64(float64(j.coldAge)*factor) {
			return false
		}
	}
	l.stats.movesToCold++
	j.s.stampMoved(t, j.now)
	l.moveTo(t, segCold)
	return true
}

// coldAge is the age in seconds at now of the oldest tail of class k that
// the shards publish: the COLD tail of memcached's class.
func (c *Cache) coldAge(k int, now int64) int64 {
	_, a := oldestOf(c.classGroups(k))
	sec, ok := coldSeconds(a)
	if !ok {
		return 0
	}
	return max(0, int64(unixSeconds(now))-int64(sec))
}

// victim is the class's eviction candidate in its shard: COLD's tail,
// else HOT's, else WARM's (never TEMP's).
func (l *lists) victim() *item {
	if t := l.segs[segCold].tail; t != nil {
		return t
	}
	if t := l.segs[segHot].tail; t != nil {
		return t
	}
	return l.segs[segWarm].tail
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
