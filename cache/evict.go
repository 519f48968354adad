package cache

import "sync/atomic"

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
// within the second over 2^20), 19 of the CAS counter, and 3 bits
// (stampLow) left for the item's list and ACTIVE mark (lru.go).
func (s *shard) stampAt(now int64) uint32 {
	ms := uint32(now%1e9) >> 20
	return ms<<22 | (uint32(s.clock.Load())&(1<<19-1))<<stampShift
}

// emptyTail is the tailKey of a shard with nothing to evict.
const emptyTail = 1<<64 - 1

// lruKey is the age of it as eviction compares ages: smaller is older.
func lruKey(it *item) uint64 { return uint64(it.atime)<<32 | uint64(it.stamp&^stampLow) }

// tailAge is the age of the locked shard s's tail: 0 (first to go) for
// a tombstone or when the shard has dead items, emptyTail when there is
// nothing to evict.
func (s *shard) tailAge() uint64 {
	switch t := s.victim(); {
	case s.dead != nil:
		return 0
	case t == nil:
		return emptyTail
	case t.deleted():
		return 0
	default:
		return lruKey(t)
	}
}

// publishTail publishes the locked shard s's tail age if the tail has
// changed since it last did.
func (s *shard) publishTail() {
	v := s.victim()
	if v == s.lruTail && s.dead == nil && !s.deadShown {
		return
	}
	s.lruTail, s.deadShown = v, s.dead != nil
	age := s.tailAge()
	was := s.tailKey.Swap(age)
	// The group's age changes if this tail is now its oldest, or was.
	switch gm := s.groupMin.Load(); {
	case age < gm:
		s.groupMin.Store(age)
	case was == gm && age != was:
		_, m := oldestOf(s.group)
		s.groupMin.Store(m)
	}
}

// tailGroup is how many shards' tails a group summarizes: finding the
// oldest of 1024 shards (a 64-core machine's) reads 32 group ages and 32
// tails.
const tailGroup = 32

// initTails gives every shard its slot in c.tails, empty, and its group.
func (c *Cache) initTails() {
	n := len(c.shards)
	g := min(n, tailGroup)
	c.tails = make([]atomic.Uint64, n)
	c.groups = make([]atomic.Uint64, n/g)
	for i := range c.shards {
		s := &c.shards[i]
		c.tails[i].Store(emptyTail)
		s.tailKey = &c.tails[i]
		s.group = c.tails[i/g*g : i/g*g+g]
		s.groupMin = &c.groups[i/g]
	}
	for i := range c.groups {
		c.groups[i].Store(emptyTail)
	}
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

// oldest returns the shard whose published tail is the oldest, nil if
// every shard is empty. The ages are side by side, eight to a cache line;
// the oldest group first, then its oldest tail. A group's age may be
// stale (two of its shards publishing at once): the scan of its tails
// corrects it, and looks again if the group turns out younger than
// another.
func (c *Cache) oldest() *shard {
	g := len(c.tails) / len(c.groups)
	for try := 0; ; try++ {
		gi, gage := oldestOf(c.groups)
		if gi < 0 {
			if try > 0 {
				return nil
			}
			gi = 0 // all empty, or all stale: look at the first group
		}
		i, age := oldestOf(c.tails[gi*g : gi*g+g])
		if age == gage || try >= 2 {
			if i < 0 {
				return nil
			}
			return &c.shards[gi*g+i]
		}
		c.groups[gi].Store(age)
	}
}
