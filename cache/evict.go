package cache

import (
	"math/bits"
	"sync/atomic"
)

// Eviction in least recently used order across shards. Each shard keeps
// its own LRU list, so the least recently used item of the cache is the
// oldest of the shards' tails. Every shard publishes its tail's age
// (Cache.tails, atomics the shards update when their tails change, as
// their locks are released), and a store that takes memory over the
// limit, once it has released its shard, evicts from the shard whose
// tail is oldest: one shard locked at a time, no scan of items, and a
// lookup or store that leaves the tail alone pays one comparison.
//
// An item's age is when it was last put at the head of its list: atime
// (unix seconds) then, within the second, its stamp: the millisecond,
// then the low 22 bits of the CAS counter, which every store advances.
// Stores are ordered exactly, reads to the millisecond of the cache's
// clock (to its 10 ms tick with the system clock), with no counter
// shared by reads. memcached, with one LRU per slab class, evicts in the
// same order within a class (and moves a read item at most once a
// minute).

// stampAt is the stamp (see lruKey) of an item put at the head of its
// list at now (unix nanos): 10 bits of the millisecond (the nanoseconds
// within the second over 2^20), 18 of the CAS counter, the moved bit
// clear, and 3 bits (stampLow) left for the item's list and ACTIVE mark
// (lru.go).
func (s *shard) stampAt(now int64) uint32 {
	ms := uint32(now%1e9) >> 20
	return ms<<22 | (uint32(s.clock.Load())&(1<<18-1))<<stampShift
}

// Stamps of items a juggle moved to COLD (lru.go): the moved bit, and in
// place of the counter the seconds from atime to the move.
const (
	movedStamp = 1 << 21
	deltaMask  = (1<<18 - 1) << stampShift
)

// stampMoved restamps it, moved to the head of COLD at now, so that its
// age for eviction is when it entered COLD (as its place in memcached's
// one COLD list per class is), while atime stays its last access.
func (s *shard) stampMoved(it *item, now int64) {
	sec := unixSeconds(now)
	d := uint32(0)
	if sec > it.atime {
		d = min(sec-it.atime, 1<<18-1)
	}
	ms := uint32(now%1e9) >> 20
	it.stamp = ms<<22 | movedStamp | d<<stampShift | it.stamp&stampLow
}

// setAtime sets the last access of it, which is then its age (clearing a
// move's).
func (it *item) setAtime(sec uint32) {
	it.atime = sec
	it.stamp &^= movedStamp | deltaMask
}

// emptyTail is the tailKey of a shard with nothing to evict.
const emptyTail = 1<<64 - 1

// lruKey is the age of it as eviction compares ages: smaller is older.
func lruKey(it *item) uint64 {
	if st := it.stamp; st&movedStamp != 0 {
		return (uint64(it.atime)+uint64(st&deltaMask>>stampShift))<<32 | uint64(st&^(stampLow|deltaMask))
	}
	return uint64(it.atime)<<32 | uint64(it.stamp&^stampLow)
}

// tailAge is the age of class l's tail in the locked shard s as
// eviction compares it: 0 (first to go) for a tombstone or, without slabs,
// when the shard has dead items, emptyTail when there is nothing to evict. A COLD tail
// is older than any HOT one, which is older than any WARM one (tiers in
// the top bits over lruKey, whose low bits are 0): as memcached, a class
// evicts from COLD while any shard has COLD items of it.
func (s *shard) tailAge(l *lists) uint64 {
	t := l.victim()
	switch {
	case s.dead != nil && s.sl == nil:
		return 0
	case t == nil:
		return emptyTail
	case t.deleted():
		return 0
	}
	return uint64(seg(t)&(segHot|segWarm))<<62 | lruKey(t)>>2
}

// coldSeconds is the unix second of a published tail age, ok only for a
// COLD item's.
func coldSeconds(age uint64) (uint32, bool) {
	if age == 0 || age == emptyTail || age>>62 != 0 {
		return 0, false
	}
	return uint32(age << 2 >> 32), true
}

// publishTail publishes the tail ages of the locked shard s's classes
// whose tails have changed since it last did.
func (s *shard) publishTail() {
	force := s.dead != nil
	if force != s.deadShown {
		s.deadShown, force = force, true
		s.dirty = 1<<len(s.cls) - 1
	}
	for d := s.dirty; d != 0; d &= d - 1 {
		s.publishClass(&s.cls[bits.TrailingZeros64(d)], force)
	}
	s.dirty = 0
}

// publishClass publishes the tail age of class l of the locked shard s if
// its tail has changed, or if force.
func (s *shard) publishClass(l *lists, force bool) {
	v := l.victim()
	if v == l.lruTail && !force {
		return
	}
	l.lruTail = v
	age := s.tailAge(l)
	was := l.tailKey.Swap(age)
	// The group's age changes if this tail is now its oldest, or was.
	switch gm := l.groupMin.Load(); {
	case age < gm:
		l.groupMin.Store(age)
	case was == gm && age != was:
		_, m := oldestOf(l.group)
		l.groupMin.Store(m)
	}
}

// tailGroup is how many shards' tails a group summarizes: finding the
// oldest of 1024 shards (a 64-core machine's) reads 32 group ages and 32
// tails.
const tailGroup = 32

// initTails gives every shard's class its slot in c.tails, empty, and its
// group: the tails of class k are c.tails[k*shards:(k+1)*shards].
func (c *Cache) initTails(classes int) {
	n := len(c.shards)
	g := min(n, tailGroup)
	c.tails = make([]atomic.Uint64, n*classes)
	c.groups = make([]atomic.Uint64, n/g*classes)
	for k := 0; k < classes; k++ {
		tails, groups := c.classTails(k), c.classGroups(k)
		for i := range c.shards {
			l := &c.shards[i].cls[k]
			tails[i].Store(emptyTail)
			l.tailKey = &tails[i]
			l.group = tails[i/g*g : i/g*g+g]
			l.groupMin = &groups[i/g]
		}
	}
	for i := range c.groups {
		c.groups[i].Store(emptyTail)
	}
}

// classTails and classGroups are class k's shard tails and group ages.
func (c *Cache) classTails(k int) []atomic.Uint64 {
	n := len(c.shards)
	return c.tails[k*n : k*n+n]
}

func (c *Cache) classGroups(k int) []atomic.Uint64 {
	n := len(c.groups) / len(c.shards[0].cls)
	return c.groups[k*n : k*n+n]
}

// oldestOf returns the index in ages of the oldest, and its age (-1 and
// emptyTail if all are empty).
func oldestOf(ages []atomic.Uint64) (int, uint64) {
	best, age := -1, uint64(emptyTail)
	for i := range ages {
		if k := ages[i].Load(); k < age {
			best, age = i, k
			if k == 0 {
				break
			}
		}
	}
	return best, age
}

// oldest returns the shard whose published tail of class k is the
// oldest, nil if every shard's is empty. The ages are side by side, eight
// to a cache line; the oldest group first, then its oldest tail. A group's
// age may be stale (two of its shards publishing at once): the scan of its
// tails corrects it, and looks again if the group turns out younger than
// another.
func (c *Cache) oldest(k int) *shard {
	tails, groups := c.classTails(k), c.classGroups(k)
	g := len(tails) / len(groups)
	for try := 0; ; try++ {
		gi, gage := oldestOf(groups)
		if gi < 0 {
			if try > 0 {
				return nil
			}
			gi = 0 // all empty, or all stale: look at the first group
		}
		i, age := oldestOf(tails[gi*g : gi*g+g])
		if age == gage || try >= 2 {
			if i < 0 {
				return nil
			}
			return &c.shards[gi*g+i]
		}
		groups[gi].Store(age)
	}
}
