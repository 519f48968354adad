package cache

import (
	"bytes"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// item is one stored key and value, or a tombstone: what is left of a
// deleted key for a while, so that its deletion can be streamed and its
// revision continued. Its data (key then value) is never modified once
// stored: a mutation stores a new item, so values handed out stay valid.
// Its metadata (expiry, seqno, revision) is changed in place only under
// its shard's lock, by a touch.
//
// The record is 72 bytes, so that with a 16-byte key and a 100-byte value
// an item fills one of Go's 192-byte size classes (alloc.go). There is no
// pointer to the data: a small item's data follows its record in the same
// allocation, and a large item's record is the first part of an outlined,
// which holds the pointer and the size. The expiry is kept in seconds, as
// memcached keeps it; the seqno in 48 bits; the revision in 48 bits, as
// kv_engine keeps it, sharing a word with the 16-bit vbucket id. What a
// lookup reads (chain, vbucket, expiry, hash, key length) is last, next
// to the key, so that a hit touches as few cache lines as it can.
type item struct {
	prev, next *item // LRU list; head is the most recently used
	cas        uint64
	flags      uint32
	// atime is when the item was last stored or fetched, in unix
	// seconds (the meta protocol's last-access time).
	atime uint32
	// stamp orders items last put at the head of an LRU list within
	// the second of atime (see lruKey); its low bits (stampLow) are the
	// item's list and ACTIVE mark (lru.go).
	stamp uint32
	seqLo uint32 // the seqno's low 32 bits (see seqno)
	hnext *item  // hash chain
	revvb uint64 // revision << 16 | vbucket
	// expSec is when the item expires, in unix seconds (see expires); 0
	// never. A tombstone: when it is purged.
	expSec   uint32
	hash     uint32 // high bits of the key's hash
	seqHi    uint16 // the seqno's bits 32 to 47
	small    uint16 // the size of key and value; outlinedSize: outlined.size holds it
	keyLen   uint16
	datatype uint8
	bits     uint8 // the Bits below: fetched, deleted, win token sent, stale ...
}

// outlined is an item whose data is a separate allocation.
type outlined struct {
	item
	data *byte
	size uint32
}

// outlinedSize in item.small marks an outlined item.
const outlinedSize = 1<<16 - 1

// maxSeqno is the largest seqno an item holds: 48 bits, as Couchbase's.
const maxSeqno = 1<<48 - 1

// Bits of item.bits.
const (
	fetchedBit = 1 << iota // read since it was stored
	deletedBit             // a tombstone
	hollowBit              // a tombstone made of its live item in place: its data is not its value
	systemBit              // a live system event (sysevent.go): in its shard's list of them, not the LRU list
	tokenBit               // the meta protocol's win token was handed out for it (metaops.go)
	staleBit               // invalidated: served, marked stale, until a store replaces it (metaops.go)
	binKeyBit              // stored by a meta command with a base64 key: shown base64 (metaops.go)
	lateBit                // in the dead set because it was stored already expired, not flushed (dead.go)
)

// recordSize is the size of an item record, where an inline item's data
// starts.
const recordSize = int(unsafe.Sizeof(item{}))

// maxRev is the largest revision: 48 bits.
const maxRev = 1<<48 - 1

// bytes returns the item's key and value. Whether they are outlined is
// told by their size, which never changes (bits does, under the shard
// lock, and a change log reads items under another lock).
func (it *item) bytes() []byte {
	if it.small == outlinedSize {
		o := (*outlined)(unsafe.Pointer(it))
		return unsafe.Slice(o.data, o.size)
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(it), recordSize)), it.small)
}

// size is the length of the item's key and value.
func (it *item) size() uint32 {
	if it.small == outlinedSize {
		return (*outlined)(unsafe.Pointer(it)).size
	}
	return uint32(it.small)
}

// seqno is the item's seqno.
func (it *item) seqno() uint64 { return uint64(it.seqHi)<<32 | uint64(it.seqLo) }

// setSeqno sets the seqno; one past 48 bits stays at the largest.
func (it *item) setSeqno(s uint64) {
	s = min(s, maxSeqno)
	it.seqLo, it.seqHi = uint32(s), uint16(s>>32)
}

// expires is when the item expires in unix nanoseconds, 0 never.
func (it *item) expires() int64 { return int64(it.expSec) * int64(time.Second) }

// setExpires sets when the item expires, in unix nanoseconds (0 never),
// truncated to the second as memcached's clock counts it.
func (it *item) setExpires(ns int64) { it.expSec = expSeconds(ns) }

// expSeconds is an expiry in unix nanoseconds (0 never) as item.expSec
// holds it.
func expSeconds(ns int64) uint32 {
	switch s := ns / int64(time.Second); {
	case ns <= 0:
		return 0
	case s == 0:
		return 1
	case s > math.MaxUint32:
		return math.MaxUint32
	default:
		return uint32(s)
	}
}

func (it *item) key() []byte { return it.bytes()[:it.keyLen] }

// value returns the value with its capacity limited to its length, so that
// appending to it cannot reach other memory.
func (it *item) value() []byte {
	b := it.bytes()
	return b[it.keyLen:len(b):len(b)]
}

func (it *item) vbucket() uint16 { return uint16(it.revvb) }
func (it *item) rev() uint64     { return it.revvb >> 16 }
func (it *item) fetched() bool   { return it.bits&fetchedBit != 0 }
func (it *item) deleted() bool   { return it.bits&deletedBit != 0 }
func (it *item) pinned() bool    { return it.bits&systemBit != 0 }
func (it *item) markFetched()    { it.bits |= fetchedBit }

// setRev sets the vbucket and revision; revisions past 48 bits stay at the
// largest.
func (it *item) setRev(vb uint16, rev uint64) { it.revvb = min(rev, maxRev)<<16 | uint64(vb) }

// footprint is what the item counts against the memory limit.
func (it *item) footprint() int64 { return int64(it.size()) + ItemOverhead }

// expired reports whether the item's time has passed at now.
func (it *item) expired(now int64) bool { return it.expSec != 0 && now >= it.expires() }

// newItem copies key and value into a new item.
func newItem(key, value []byte) *item {
	it, data := allocItem(len(key) + len(value))
	copy(data, key)
	copy(data[len(key):], value)
	it.keyLen = uint16(len(key))
	return it
}

// counters are the statistics a shard keeps under its lock.
type counters struct {
	getHits, getMisses, getExpired, getFlushed    uint64
	deleteHits, deleteMisses                      uint64
	incrHits, incrMisses, decrHits, decrMisses    uint64
	casHits, casMisses, casBadval                 uint64
	touchHits, touchMisses                        uint64
	cmdSet, totalItems                            uint64
	evictions, evictedUnfetched, expiredUnfetched uint64
	evictedNonzero, evictedTime                   uint64 // evictions of items with an expiry; the last one's seconds since access
	reclaimed, storeTooLarge, storeNoMemory       uint64
	sysNoMemory                                   uint64
	// The segmented LRU's (lru.go).
	movesToCold, movesToWarm, movesWithinLRU, evictedActive uint64
	juggles                                                 uint64
	hitsTo                                                  [nSegs]uint64
}

// minBuckets is a new shard's hash table size.
const minBuckets = 64

// shard is one lock stripe: a chained hash table whose chains run through
// the items, and the LRU lists of each slab class (one without
// Config.Slabs).
type shard struct {
	mu        sync.Mutex
	buckets   []*item
	count     int          // items in the table, tombstones included
	tombs     int          // tombstones in the table
	tombBytes atomic.Int64 // their footprint (read without the lock when memory is short)
	cls       []lists      // by slab class (slabs.go)
	sl        *slabs       // the cache's slab classes; nil for one class
	dirty     uint64       // the classes whose tails may have changed since published (evict.go)
	lru       *lruConfig
	bytes     int64
	stats     counters // what no one class's item counts: misses, refusals
	// The live system events, never evicted, are in a list of their own
	// (through prev and next), out of the LRU lists; sys counts them and
	// sysBytes is their footprint (read without the lock).
	sysHead  *item
	sys      int
	sysBytes atomic.Int64
	// dead holds the items a flush made invisible and those stored
	// already expired, until a lookup, a store or a sweep reclaims
	// them (dead.go); deadBytes is their footprint (read without the
	// lock).
	dead      *deadSet
	deadBytes atomic.Int64
	deadShown bool           // the ages published were a shard with dead items' (evict.go)
	clock     *atomic.Uint64 // the cache's CAS counter, for stamps
	_         [64]byte       // to a whole number of cache lines (TestShardSize)
}

func (s *shard) init(clock *atomic.Uint64, lru *lruConfig, sl *slabs, classes int) {
	s.buckets = make([]*item, minBuckets)
	s.clock = clock
	s.lru = lru
	s.sl = sl
	s.cls = make([]lists, classes)
	for i := range s.cls {
		s.cls[i].id = uint8(i)
	}
}

// reset drops every item, keeping statistics.
func (s *shard) reset() {
	s.buckets = make([]*item, minBuckets)
	s.count, s.tombs = 0, 0
	s.tombBytes.Store(0)
	for i := range s.cls {
		s.cls[i].reset(s.sl)
	}
	s.dirty = 1<<len(s.cls) - 1
	s.bytes = 0
	s.sysHead, s.sys = nil, 0
	s.sysBytes.Store(0)
}

// slot returns the bucket of a hash.
func (s *shard) slot(hash uint32) **item { return &s.buckets[hash&uint32(len(s.buckets)-1)] }

// find returns the item for key in vbucket vb, whatever its expiry, live
// or a tombstone, or nil.
func (s *shard) find(vb uint16, key []byte, hash uint32) *item {
	for it := *s.slot(hash); it != nil; it = it.hnext {
		if it.hash == hash && int(it.keyLen) == len(key) && it.vbucket() == vb && bytes.Equal(it.key(), key) {
			return it
		}
	}
	return nil
}

// link adds it to the hash table, growing the table past one item per
// bucket.
func (s *shard) link(it *item) {
	if s.count >= len(s.buckets) {
		s.grow()
	}
	b := s.slot(it.hash)
	it.hnext = *b
	*b = it
	s.count++
	s.counted(it, 1)
}

// counted counts it, linked (n 1) or unlinked (n -1), among the shard's
// tombstones or live system events.
func (s *shard) counted(it *item, n int) {
	switch {
	case it.deleted():
		s.tombs += n
		s.tombBytes.Add(int64(n) * it.footprint())
	case it.pinned():
		s.sys += n
		s.sysBytes.Add(int64(n) * it.footprint())
	}
}

// chain returns the pointer in its hash chain that points to it.
func (s *shard) chain(it *item) **item {
	p := s.slot(it.hash)
	for *p != it {
		p = &(*p).hnext
	}
	return p
}

// unlink removes it from the hash table.
func (s *shard) unlink(it *item) {
	p := s.chain(it)
	*p = it.hnext
	it.hnext = nil
	s.count--
	s.counted(it, -1)
}

// grow doubles the hash table.
func (s *shard) grow() {
	old := s.buckets
	s.buckets = make([]*item, 2*len(old))
	for _, it := range old {
		for it != nil {
			next := it.hnext
			b := s.slot(it.hash)
			it.hnext = *b
			*b = it
			it = next
		}
	}
}

// each calls f for every item; f may remove the item it is given.
func (s *shard) each(f func(*item)) {
	for _, it := range s.buckets {
		for it != nil {
			next := it.hnext
			f(it)
			it = next
		}
	}
}

// listOf returns the lists of it's slab class, marking them changed.
func (s *shard) listOf(it *item) *lists {
	l := s.class(it)
	s.dirty |= 1 << l.id
	return l
}

// class returns the lists of it's slab class, for its counters.
func (s *shard) class(it *item) *lists {
	if s.sl == nil {
		return &s.cls[0]
	}
	k, _ := s.sl.classOf(it)
	return &s.cls[k]
}

// classFor returns the lists of the slab class of an item of this key,
// value length and flags.
func (s *shard) classFor(key []byte, valueLen int, flags uint32) *lists {
	if s.sl == nil {
		return &s.cls[0]
	}
	n := len(key) + valueLen
	if s.sl.collections {
		_, c := collectionOf(key)
		n -= c
	}
	k, _ := s.sl.classFor(ntotal(int64(n), flags))
	return &s.cls[k]
}

// charge counts it (sign 1) or stops counting it (sign -1) in the shard's
// bytes and, if it is neither a tombstone nor a live system event, in its
// slab class's chunks, and returns the change in bytes. (memcached has
// neither: its items fit in the same pages. Tombstones are bounded by
// their own share of the limit, Cache.tombBytes; system events by
// SystemRoom.)
func (s *shard) charge(it *item, sign int64) int64 {
	n := sign * it.footprint()
	s.bytes += n
	if s.sl != nil && !it.deleted() && !it.pinned() {
		s.chunk(it, sign)
	}
	return n
}

// chunk counts (sign 1) or stops counting (sign -1) the slab chunks of it.
func (s *shard) chunk(it *item, sign int64) {
	k, ch := s.sl.classOf(it)
	l := &s.cls[k]
	l.chunks += sign * ch
	l.requested += sign * s.sl.ntotal(it)
	s.sl.classes[k].used.Add(sign * ch)
}

// pushTomb puts the tombstone it at the head of its class's tombstones,
// which follow every live item in COLD, newest first: the tail is the
// oldest tombstone, the first to go.
func (s *shard) pushTomb(it *item) {
	l := s.listOf(it)
	it.stamp &^= stampLow // in COLD
	l.tombs++
	g := &l.segs[segCold]
	g.n++
	g.bytes += it.footprint()
	at := l.tombHead
	l.tombHead = it
	if at == nil {
		it.prev, it.next = g.tail, nil
		if g.tail != nil {
			g.tail.next = it
		} else {
			g.head = it
		}
		g.tail = it
		return
	}
	it.prev, it.next = at.prev, at
	if at.prev != nil {
		at.prev.next = it
	} else {
		g.head = it
	}
	at.prev = it
}

// unlinkLRU takes it out of its list: its class's, or a live system
// event's.
func (s *shard) unlinkLRU(it *item) {
	if it.pinned() {
		if it.prev != nil {
			it.prev.next = it.next
		} else {
			s.sysHead = it.next
		}
		if it.next != nil {
			it.next.prev = it.prev
		}
		it.prev, it.next = nil, nil
		return
	}
	s.listOf(it).unlink(it)
}

// bump makes it, read at now, the most recently used (flat mode: see
// hit).
func (s *shard) bump(it *item, now int64) {
	it.stamp = s.stampAt(now) | it.stamp&stampLow
	if it.pinned() {
		return
	}
	l := s.listOf(it)
	if it == l.lruTail {
		l.lruTail = nil // its age changes: published again (publishTail)
	}
	if l.segs[seg(it)].head != it {
		l.unlink(it)
		l.push(it)
	}
}

// remove takes it out of the table and the LRU list and returns the bytes
// freed.
func (s *shard) remove(it *item) int64 {
	s.unlink(it)
	s.unlinkLRU(it)
	return -s.charge(it, -1)
}

// put stores it in place of old (nil if the key has no item), which keeps
// its place in the hash chain, so that a walk of the table (each) goes on
// past it. A live item becomes the most recently used; a tombstone goes to
// the tail, to be the first evicted; a live system event goes to the
// shard's list of them. It returns the change in bytes.
func (s *shard) put(it, old *item) int64 {
	if old == nil {
		s.link(it)
	} else {
		p := s.chain(old)
		it.hnext = old.hnext
		*p = it
		old.hnext = nil
		s.unlinkLRU(old)
		s.counted(old, -1)
		s.counted(it, 1)
	}
	switch {
	case it.deleted():
		s.pushTomb(it)
	case it.pinned():
		s.pushSys(it)
	default:
		s.listOf(it).push(it)
	}
	n := s.charge(it, 1)
	if old != nil {
		n += s.charge(old, -1)
	}
	if !it.deleted() && !it.pinned() {
		s.listOf(it).stats.totalItems++
	}
	return n
}

// pushSys adds the live system event it to the shard's list of them.
func (s *shard) pushSys(it *item) {
	it.stamp &^= stampLow
	it.prev, it.next = nil, s.sysHead
	if s.sysHead != nil {
		s.sysHead.prev = it
	}
	s.sysHead = it
}

// countExpired records the removal of an expired or flushed item whose
// memory is reclaimed: by a store, an eviction or a sweep (as memcached
// counts those its LRU reclaims).
func (s *shard) countExpired(it *item) {
	k := &s.class(it).stats
	if !it.fetched() {
		k.expiredUnfetched++
	}
	k.reclaimed++
}
