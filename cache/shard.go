package cache

import (
	"bytes"
	"sync"
	"unsafe"
)

// item is one stored key and value. Its data (key then value, one
// allocation) is never modified once stored: a mutation stores a new item,
// so values handed out stay valid.
//
// The record is laid out to fit Go's 64-byte size class. Later work adds
// per-vbucket sequence numbers and tombstones for a change feed; they
// belong beside cas.
type item struct {
	data       *byte // key then value, size bytes
	prev, next *item // LRU list; head is the most recently used
	hnext      *item // hash chain
	cas        uint64
	exp        int64 // unix nanos; 0 never expires
	size       uint32
	hash       uint32 // high bits of the key's hash
	flags      uint32
	keyLen     uint16
	datatype   uint8
	fetched    bool
}

func (it *item) bytes() []byte { return unsafe.Slice(it.data, it.size) }
func (it *item) key() []byte   { return it.bytes()[:it.keyLen] }

// value returns the value with its capacity limited to its length, so that
// appending to it cannot reach other memory.
func (it *item) value() []byte {
	b := it.bytes()
	return b[it.keyLen:len(b):len(b)]
}

// footprint is what the item counts against the memory limit.
func (it *item) footprint() int64 { return int64(it.size) + ItemOverhead }

// expired reports whether the item's time has passed at now.
func (it *item) expired(now int64) bool { return it.exp != 0 && now >= it.exp }

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
	reclaimed, storeTooLarge, storeNoMemory       uint64
}

// minBuckets is a new shard's hash table size.
const minBuckets = 64

// shard is one lock stripe: a chained hash table whose chains run through
// the items, and an LRU list.
type shard struct {
	mu         sync.Mutex
	buckets    []*item
	count      int
	head, tail *item
	bytes      int64
	stats      counters
	_          [40]byte // keep shards' hot fields on separate cache lines
}

func (s *shard) init() { s.buckets = make([]*item, minBuckets) }

// reset drops every item, keeping statistics.
func (s *shard) reset() {
	s.buckets = make([]*item, minBuckets)
	s.count = 0
	s.head, s.tail = nil, nil
	s.bytes = 0
}

// slot returns the bucket of a hash.
func (s *shard) slot(hash uint32) **item { return &s.buckets[hash&uint32(len(s.buckets)-1)] }

// find returns the item for key, whatever its expiry, or nil.
func (s *shard) find(key []byte, hash uint32) *item {
	for it := *s.slot(hash); it != nil; it = it.hnext {
		if it.hash == hash && int(it.keyLen) == len(key) && bytes.Equal(it.key(), key) {
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
}

// unlink removes it from the hash table.
func (s *shard) unlink(it *item) {
	for p := s.slot(it.hash); *p != nil; p = &(*p).hnext {
		if *p == it {
			*p = it.hnext
			it.hnext = nil
			s.count--
			return
		}
	}
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

func (s *shard) pushFront(it *item) {
	it.prev, it.next = nil, s.head
	if s.head != nil {
		s.head.prev = it
	} else {
		s.tail = it
	}
	s.head = it
}

func (s *shard) unlinkLRU(it *item) {
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		s.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		s.tail = it.prev
	}
	it.prev, it.next = nil, nil
}

func (s *shard) bump(it *item) {
	if s.head != it {
		s.unlinkLRU(it)
		s.pushFront(it)
	}
}

// lookup returns the live item for key, removing it if it has expired, and
// the bytes that removal freed.
func (s *shard) lookup(key []byte, hash uint32, now int64) (*item, int64) {
	it := s.find(key, hash)
	if it == nil {
		return nil, 0
	}
	if it.expired(now) {
		s.countExpired(it)
		return nil, s.remove(it)
	}
	return it, 0
}

// countExpired records the removal of an expired item.
func (s *shard) countExpired(it *item) {
	if !it.fetched {
		s.stats.expiredUnfetched++
	}
	s.stats.reclaimed++
}

// remove unlinks it and returns the bytes freed.
func (s *shard) remove(it *item) int64 {
	s.unlink(it)
	s.unlinkLRU(it)
	n := it.footprint()
	s.bytes -= n
	return n
}

// put stores it in place of old (which may be nil) and returns the change in
// bytes.
func (s *shard) put(it, old *item) int64 {
	var delta int64
	if old != nil {
		delta -= s.remove(old)
	}
	s.link(it)
	s.pushFront(it)
	n := it.footprint()
	s.bytes += n
	s.stats.totalItems++
	return delta + n
}

// evictOne removes the least recently used item, other than keep, and
// returns the bytes freed (0 if there was none).
func (s *shard) evictOne(keep *item, now int64) int64 {
	victim := s.tail
	if victim == keep {
		victim = victim.prev
	}
	if victim == nil {
		return 0
	}
	if victim.expired(now) {
		s.countExpired(victim)
	} else {
		s.stats.evictions++
		if !victim.fetched {
			s.stats.evictedUnfetched++
		}
	}
	return s.remove(victim)
}

// reclaimSearch is how many items from the LRU tail a store looks at for
// expired ones when memory is full and eviction is off (memcached: 5).
const reclaimSearch = 5

// reclaimExpired removes expired items among the n least recently used,
// other than keep, and returns the bytes freed.
func (s *shard) reclaimExpired(keep *item, now int64, n int) int64 {
	var freed int64
	for it := s.tail; it != nil && n > 0; n-- {
		prev := it.prev
		if it != keep && it.expired(now) {
			s.countExpired(it)
			freed += s.remove(it)
		}
		it = prev
	}
	return freed
}

// sweep removes expired items and returns the bytes freed.
func (s *shard) sweep(now int64) int64 {
	var freed int64
	s.each(func(it *item) {
		if it.expired(now) {
			s.countExpired(it)
			freed += s.remove(it)
		}
	})
	return freed
}
