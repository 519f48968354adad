package cache

import (
	"cmp"
	"errors"
	"time"
)

// Every change to the store goes through here: update runs one operation's
// mutation with the key's shard locked, and applies what the mutation
// decides, numbering the change in its vbucket, keeping memory within the
// limit and accounting for the bytes, once for every operation.

// ErrNoVBucket is the error of an operation on a vbucket id not below
// Config.VBuckets.
var ErrNoVBucket = errors.New("cache: no such vbucket")

// outcome is what a mutation decides to do with the key's live item.
type outcome struct {
	// store is a new item to store in place of the live one (or of
	// none); update sets its hash, vbucket, revision, seqno and CAS.
	store *item
	// remove deletes the live item.
	remove bool
	// touched: the live item's expiry was changed in place.
	touched bool
	// dropOnFail removes the live item should storing fail for memory,
	// as memcached's Set does.
	dropOnFail bool
	// rev, if not 0, is the stored item's revision, instead of the next
	// one; keepCAS keeps the CAS the mutation gave it instead of a new
	// one (stores with the caller's metadata).
	rev     uint64
	keepCAS bool
	// patch writes the stored item's CAS and seqno into its value before
	// it is linked (see Write.Patch).
	patch func([]byte, Mutation)
}

// A mutation is the work of one operation on one key: given the key's
// shard (locked, for its counters), the key's live item (nil if it has
// none), its tombstone (when it has no live item and one is kept) and the
// time, it decides what becomes of the item. A stored item that is
// deleted (a deleted document: a tombstone with a value) replaces either. An error is
// the operation's error; what the outcome says is done all the same.
type mutation func(s *shard, old, tomb *item, now int64) (outcome, error)

// update runs f on key in vbucket vb and applies its outcome. It returns
// the change's token (zero if nothing changed) and f's error, or
// ErrNoMemory if the store did not fit.
func (c *Cache) update(vb uint16, key []byte, f mutation) (Mutation, error) {
	k, ok := c.locate(vb, key)
	if !ok {
		return Mutation{}, ErrNoVBucket
	}
	return c.updateAt(vb, k, f)
}

// updateAt is update of a key located (its shard locked), which it
// unlocks.
func (c *Cache) updateAt(vb uint16, k located, f mutation) (Mutation, error) {
	s, h, now, old, tomb, freed := k.s, k.hash, k.now, k.live, k.tomb, k.freed
	o, err := f(s, old, tomb, now)
	k.countGone(o.store != nil)
	var m Mutation
	stored := false
	var late *item         // stored already expired: kept dead (dead.go)
	var removal ChangeKind // what removes the live item, if anything does
	switch {
	case o.store != nil:
		it := o.store
		prev := old
		if prev == nil {
			prev = tomb
		}
		it.hash = h
		it.setRev(vb, cmp.Or(o.rev, revOf(prev)+1))
		if it.deleted() {
			it.setExpires(c.purgeAt(now))
		}
		switch {
		case !it.expired(now):
			var ierr error
			m, ierr = c.insert(s, it, prev, now, freed, o.keepCAS, o.patch)
			freed = 0 // insert accounts for it
			if ierr == nil {
				stored = true
			} else {
				err = ierr
				if o.dropOnFail && old != nil {
					_, freed = c.drop(s, old, Deleted, now, false) // no memory for a tombstone
				}
			}
		case old != nil:
			// Stored already expired: the old value is gone, and
			// nothing new is visible (but for the counts, dead.go).
			removal = Deleted
			late = it
		default:
			m = c.current(vb)
			late = it
		}
	case o.remove && old != nil:
		removal = Deleted
	case o.touched && old.expired(now):
		// As memcached: a touch into the past succeeds, and the item
		// is gone.
		removal = Expired
	case o.touched:
		old.setRev(vb, old.rev()+1)
		m = c.number(vb, Mutated, old, old.rev(), false)
		old.setSeqno(m.Seqno)
	}
	if removal != 0 {
		var n int64
		m, n = c.drop(s, old, removal, now, true)
		freed += n
	}
	if late != nil {
		late.bits |= lateBit
		s.toDead(late, now)
		freed -= late.footprint()
		stored = true // it takes memory too
	}
	class := -1
	if stored {
		class = c.evictClass(o.store) // while s is locked: once it is not, a sweep may change the item
	}
	c.unlock(s, freed)
	if class >= 0 {
		c.evictElsewhere(o.store, class)
	}
	return m, err
}

// unlock unlocks s and accounts for the bytes freed while it was locked,
// first purging the oldest tombstones past the shard's bound. (Every
// operation and sweep ends here; bounding in the middle of one could
// remove an item a walk of the table is about to visit.)
func (c *Cache) unlock(s *shard, freed int64) {
	if c.tombLimit > 0 && s.tombs > c.tombLimit || c.tombBytes > 0 && s.tombBytes.Load() > c.tombBytes {
		freed += c.boundTombs(s, nil)
	}
	s.publishTail()
	s.mu.Unlock()
	if freed != 0 {
		c.bytes.Add(-freed)
	}
}

// revOf returns the revision of it, 0 for none.
func revOf(it *item) uint64 {
	if it == nil {
		return 0
	}
	return it.rev()
}

// located is a key found with its shard locked (see locate).
type located struct {
	s          *shard
	hash       uint32
	now        int64
	live, tomb *item
	expired    bool // the key's item expired as it was looked up
	// gone: the lookup found the key's item expired or flushed (and
	// removed it), not yet counted (see countGone); goneUnfetched: it had
	// never been read; goneClass: its slab class's lists.
	gone          goneKind
	goneUnfetched bool
	goneClass     *lists
	freed         int64
}

// locate locks the shard of key and looks the key up in vbucket vb (see
// lookup), at the time now. ok is false, and nothing locked, for a vbucket
// that is not active.
func (c *Cache) locate(vb uint16, key []byte) (k located, ok bool) {
	return c.locateIn(vb, key, Active)
}

// locateIn is locate in a vbucket whose state is st. The state is
// checked again under the shard lock, which SetState takes after a
// change (a barrier), so that no write to a vbucket follows its change of
// state.
func (c *Cache) locateIn(vb uint16, key []byte, st VBState) (k located, ok bool) {
	if int(vb) >= len(c.vbs) || c.vbs[vb].state.Load() != uint32(st) {
		return located{}, false
	}
	k.now = c.now()
	k.s, k.hash = c.shardFor(vb, key)
	k.s.mu.Lock()
	if c.vbs[vb].state.Load() != uint32(st) {
		k.s.mu.Unlock()
		return located{}, false
	}
	c.lookup(&k, vb, key)
	return k, true
}

// present checks that a mutation's key has a live item, whose CAS is cas
// if cas is not 0, counting a miss in *misses and a mismatch in casBadval.
func present(s *shard, old *item, cas uint64, misses *uint64) error {
	switch {
	case old == nil:
		*misses++
		return ErrNotFound
	case cas != 0 && cas != old.cas:
		s.class(old).stats.casBadval++
		return ErrExists
	}
	return nil
}

// lookup finds key in vbucket vb in the locked shard k.s at k.now, and
// sets k.live to its live item, or k.tomb to its tombstone. An item whose
// time has passed expires (a numbered change; k.expired and k.gone are
// set), a tombstone whose time has passed is purged, an item in the dead
// set is reclaimed (k.gone set); k.freed is the bytes that released.
func (c *Cache) lookup(k *located, vb uint16, key []byte) {
	s, hash, now := k.s, k.hash, k.now
	it := s.find(vb, key, hash)
	switch {
	case it == nil:
		if s.dead != nil {
			if d := s.findDead(vb, key, hash); d != nil {
				k.gone, k.goneUnfetched, k.goneClass, k.freed = goneFlushed, !d.fetched(), s.class(d), d.footprint()
				if d.bits&lateBit != 0 {
					k.gone, k.expired = goneExpired, true
				}
			}
		}
	case it.deleted() && it.expired(now):
		k.freed = c.purge(s, it)
	case it.deleted():
		k.tomb = it
	case it.expired(now):
		k.gone, k.goneUnfetched, k.goneClass, k.expired = goneExpired, !it.fetched(), s.class(it), true
		_, k.freed = c.drop(s, it, Expired, now, true)
		if c.tombstoneTTL > 0 {
			k.tomb = s.find(vb, key, hash)
		}
	default:
		k.live = it
	}
}

// drop removes the live item it from the locked shard s as a change of
// kind (Deleted, Expired, Evicted): numbered in its vbucket, with a new
// CAS, and, when tombstones are kept and tomb allows (not when memory is
// being made), replaced by a tombstone. In a vbucket that is not active
// it is no change: the item is removed, unnumbered. It returns the change
// and the bytes freed.
func (c *Cache) drop(s *shard, it *item, kind ChangeKind, now int64, tomb bool) (Mutation, int64) {
	vb, rev := it.vbucket(), it.rev()+1
	if v := &c.vbs[vb]; v.state.Load() != uint32(Active) {
		// A replica's seqnos are its producer's (replica.go): what it
		// evicts or expires itself goes unnumbered, leaving nothing, and
		// a backfill cannot show it.
		c.purged(vb, v.high.Load())
		return Mutation{}, s.remove(it)
	}
	if c.tombstoneTTL <= 0 || !tomb {
		m := c.number(vb, kind, it, rev, true)
		c.purged(vb, m.Seqno) // a removal a backfill cannot show
		return m, s.remove(it)
	}
	var kept []byte
	if c.tombValue != nil && it.datatype&datatypeXattr != 0 && kind != Evicted {
		kept = c.tombValue(it.value())
	}
	if kept == nil && it.size() <= uint32(maxInline) && !c.vbs[vb].logging.Load() && !it.pinned() {
		// The item becomes its own tombstone: no allocation. Its data
		// stays (a small item's is part of its record), hidden (hollow)
		// and counted. Not while a cursor follows the vbucket: its log
		// may still read the item as the value stored.
		s.unlinkLRU(it)
		if s.sl != nil {
			s.chunk(it, -1) // a tombstone takes no chunk
		}
		it.bits |= deletedBit | hollowBit
		it.datatype = 0
		it.setRev(vb, rev)
		it.setExpires(c.purgeAt(now))
		m := c.number(vb, kind, it, rev, true)
		it.cas = m.CAS
		it.setSeqno(m.Seqno)
		s.tombs++
		s.tombBytes.Add(it.footprint())
		s.pushTomb(it)
		return m, 0
	}
	t := newItem(it.key(), kept)
	t.hash = it.hash
	t.bits |= deletedBit
	t.flags = it.flags
	if len(kept) > 0 {
		t.datatype = datatypeXattr
	}
	t.setRev(vb, rev)
	t.setExpires(c.purgeAt(now))
	m := c.number(vb, kind, t, rev, true)
	t.cas = m.CAS
	t.setSeqno(m.Seqno)
	return m, -s.put(t, it)
}

// boundTombs purges the oldest tombstones of the locked shard s, other
// than keep, while it holds more than the limits (MaxTombstones, and with
// slabs tombBytes), and returns the bytes freed. Each class's tombstones
// are oldest first at the end of its COLD; the oldest of those goes first.
func (c *Cache) boundTombs(s *shard, keep *item) int64 {
	var freed int64
	for c.tombLimit > 0 && s.tombs > c.tombLimit || c.tombBytes > 0 && s.tombBytes.Load() > c.tombBytes {
		var t *item
		for i := range s.cls {
			if l := &s.cls[i]; l.tombHead != nil {
				if x := l.segs[segCold].tail; x != keep && (t == nil || olderTomb(x, t)) {
					t = x
				}
			}
		}
		if t == nil {
			break
		}
		freed += c.purge(s, t)
	}
	return freed
}

// olderTomb reports whether tombstone a was made before b: it is purged
// sooner, or in the same second with a lower CAS.
func olderTomb(a, b *item) bool {
	return a.expSec < b.expSec || a.expSec == b.expSec && a.cas < b.cas
}

// insert stores it in place of prev (the key's live item or tombstone, or
// nil) in the locked shard s, numbering the change and giving it a new
// CAS (unless keepCAS). With NoEvict it refuses with ErrNoMemory a store
// that memory cannot take (expired and dead items are reclaimed first);
// otherwise the caller evicts once s is unlocked (evictElsewhere). A live system event past the system events' share of memory
// is refused with ErrNoMemory (sysevent.go). freed is what the operation
// released before; insert accounts for it.
func (c *Cache) insert(s *shard, it, prev *item, now int64, freed int64, keepCAS bool, patch func([]byte, Mutation)) (Mutation, error) {
	grow := it.footprint()
	if prev != nil {
		grow -= prev.footprint()
	}
	if c.system(it) && !it.deleted() {
		it.bits |= systemBit
		if !c.systemFits(it, prev) {
			s.stats.sysNoMemory++
			c.bytes.Add(-freed)
			return Mutation{}, ErrNoMemory
		}
	}
	switch {
	case c.slabs != nil && c.noEvict:
		// A store whose class has no room and can get no page is
		// refused, once the shard's expired items of the class and its
		// dead ones are reclaimed (memcached's -M). The item it
		// replaces does not count: memcached allocates the new one
		// first.
		k, need := c.slabs.classOf(it)
		if !c.slabs.fits(k, need) {
			freed += c.reclaimExpired(s, &s.cls[k], prev, now, reclaimSearch)
			if !c.slabs.fits(k, need) {
				s.cls[k].stats.storeNoMemory++
				c.bytes.Add(-freed)
				return Mutation{}, ErrNoMemory
			}
		}
	case c.noEvict && c.bytes.Load()-freed+grow > c.maxBytes:
		freed += c.reclaimExpired(s, s.listOf(it), prev, now, reclaimSearch)
		// Tombstones and dead items elsewhere make room too
		// (evictElsewhere reclaims them once this store is done):
		// memcached frees a deleted item's memory at once, and -M must
		// not refuse a store for them.
		if c.bytes.Load()-freed+grow-c.reclaimableBytes() > c.maxBytes {
			s.stats.storeNoMemory++
			c.bytes.Add(-freed)
			return Mutation{}, ErrNoMemory
		}
	}
	kind := Mutated
	if it.deleted() {
		kind = Deleted
	}
	m := c.numberPatched(it.vbucket(), kind, it, it.rev(), !keepCAS, patch)
	it.cas = m.CAS
	it.setSeqno(m.Seqno)
	if it.atime == 0 {
		it.atime = unixSeconds(now)
	}
	it.stamp = s.stampAt(now) | s.segFor(it, now)
	if keepCAS {
		atomicMax(&c.cas, m.CAS) // the cache's own CAS values stay above those it keeps
	}
	// Over the limit, the least recently used items go once s is
	// unlocked (evictElsewhere), from whichever shards hold them.
	c.bytes.Add(s.put(it, prev) - freed)
	if c.segmented && !it.pinned() {
		c.juggle(s, s.class(it), now, jugglePulls)
	}
	return m, nil
}

// evictOne removes the least recently used item of class l of the
// locked shard s, other than keep, and returns the bytes freed (0 if there
// was none). Dead items go first (with slabs, those of the class), then tombstones, which wait at the tail
// of COLD, silently; an expired item counts as an expiry. Nothing evicted
// leaves a tombstone.
func (c *Cache) evictOne(s *shard, l *lists, keep *item, now int64) int64 {
	var n int64
	if s.sl != nil {
		// Only a dead item of the class makes room in it; the others
		// wait for a sweep.
		n = s.reclaimDeadOf(l)
	} else {
		n = s.reclaimDead()
	}
	if n > 0 {
		return n
	}
	victim := evictable(l, keep)
	switch {
	case victim == nil:
		return 0
	case victim.deleted(), victim.expired(now):
		return c.expire(s, victim, now, false)
	}
	k := &l.stats
	k.evictions++
	if !victim.fetched() {
		k.evictedUnfetched++
	}
	if victim.active() {
		k.evictedActive++
	}
	if victim.expires() != 0 {
		k.evictedNonzero++
	}
	if t := int64(unixSeconds(now)) - int64(victim.atime); t > 0 {
		k.evictedTime = uint64(t)
	}
	_, n = c.drop(s, victim, Evicted, now, false)
	return n
}

// evictClass returns the class evictElsewhere evicts from once keep is
// stored: 0 without slabs, keep's slab class with them, or -1 for nothing
// (a pinned system event takes no chunk). keep's shard must be locked.
func (c *Cache) evictClass(keep *item) int {
	switch {
	case c.slabs == nil:
		return 0
	case keep.pinned():
		return -1
	}
	k, _ := c.slabs.classOf(keep)
	return k
}

// evictElsewhere evicts while memory is over the limit, one item at a
// time, from the shard whose LRU tail is the oldest (evict.go), but keep
// (the item just stored; only compared, never read, for a sweep may be
// changing it); with NoEvict it reclaims dead items and purges
// tombstones, round robin. With slabs, memory is over when class k (keep's,
// from evictClass) has more chunks taken than pages and can get no more,
// and the items evicted are of it. It runs with no lock held, so shards
// are never locked two at a time.
func (c *Cache) evictElsewhere(keep *item, k int) {
	over := func() bool { return c.bytes.Load() > c.maxBytes }
	if c.slabs != nil {
		over = func() bool { return c.slabs.over(k) }
	}
	if !over() {
		return
	}
	idle := 0
	for over() && idle < len(c.shards) {
		var s *shard
		if c.noEvict {
			s = &c.shards[c.evictAt.Add(1)&c.mask]
		} else if s = c.oldest(k); s == nil {
			return
		}
		now := c.now() // before the lock: it may carry out a delayed flush, which locks every shard
		s.mu.Lock()
		l := &s.cls[k]
		var n int64
		switch {
		case !c.noEvict:
			n = c.evictOne(s, l, keep, now)
		case s.dead != nil:
			n = s.reclaimDead() // with NoEvict only dead items and tombstones go
		case l.tombHead != nil:
			n = c.purge(s, l.segs[segCold].tail)
		}
		c.unlock(s, n)
		switch {
		case n != 0:
			idle = 0
		case !c.noEvict && idle > 0:
			// The oldest tail twice gave nothing (it is keep, alone):
			// there is nothing older to evict.
			return
		default:
			idle++
		}
	}
}

// reclaimableBytes is the memory tombstones and dead items take in all
// shards, read without their locks.
func (c *Cache) reclaimableBytes() int64 {
	var n int64
	for i := range c.shards {
		n += c.shards[i].tombBytes.Load() + c.shards[i].deadBytes.Load()
	}
	return n
}

// reclaimSearch is how many items from the LRU tail a store looks at for
// expired ones when memory is full and eviction is off (memcached: 5).
const reclaimSearch = 5

// reclaimExpired removes the dead items of the locked shard s, and the
// tombstones and expired items among the n least recently used of its
// class l, other than keep, and returns the bytes freed. (Tombstones come
// last in the list, and go before any live item is refused room.)
func (c *Cache) reclaimExpired(s *shard, l *lists, keep *item, now int64, n int) int64 {
	freed := s.dropDead()
	for it := l.victim(); it != nil && n > 0; n-- {
		prev := it.prev
		if it != keep && (it.deleted() || it.expired(now)) {
			freed += c.expire(s, it, now, false)
		}
		it = prev
	}
	return freed
}

// expire removes it from the locked shard s: a tombstone is purged; a live
// item, whose time has passed, expires (leaving a tombstone if tomb). It
// returns the bytes freed.
func (c *Cache) expire(s *shard, it *item, now int64, tomb bool) int64 {
	if it.deleted() {
		return c.purge(s, it)
	}
	s.countExpired(it)
	_, n := c.drop(s, it, Expired, now, tomb)
	return n
}

// sweepShard removes the expired items and tombstones of shard i at now.
func (c *Cache) sweepShard(i int, now int64) {
	s := &c.shards[i]
	s.mu.Lock()
	var freed int64
	if s.dead != nil && now-s.dead.at >= c.deadAge {
		freed = s.dropDead()
	}
	s.each(func(it *item) {
		if it.expired(now) {
			freed += c.expire(s, it, now, true)
		}
	})
	if c.segmented {
		c.juggleAll(s, now, sweepPulls)
		s.stats.juggles++
	}
	c.unlock(s, freed)
}

// purgeAt is when a tombstone made at now is purged: TombstoneTTL later,
// rounded up to the second an item's expiry holds, so that it is kept at
// least that long.
func (c *Cache) purgeAt(now int64) int64 {
	return now + int64(c.tombstoneTTL) + int64(time.Second) - 1
}
