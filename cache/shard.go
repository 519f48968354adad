package cache

import (
	"sync"
	"unsafe"
)

// item is one stored key and value. Its data (key then value) is never
// modified once stored: a mutation stores a new item, so values handed out
// stay valid. The map's key is a string view of the key bytes of data.
//
// Later work adds per-vbucket sequence numbers and tombstones for a change
// feed; they belong here, beside cas.
type item struct {
	data       []byte
	prev, next *item // LRU list; head is most recently used
	cas        uint64
	exp        int64 // unix nanos; 0 never expires
	flags      uint32
	keyLen     uint32
	fetched    bool
}

func (it *item) key() []byte   { return it.data[:it.keyLen] }
func (it *item) value() []byte { return it.data[it.keyLen:] }

// size is what the item counts against the memory limit.
func (it *item) size() int64 { return int64(len(it.data)) + ItemOverhead }

// expired reports whether the item's time has passed at now.
func (it *item) expired(now int64) bool { return it.exp != 0 && now >= it.exp }

// newItem copies key and value into one allocation. The value's capacity
// is exact, so appending to a Get result cannot reach into other memory.
func newItem(key, value []byte) *item {
	data := make([]byte, len(key)+len(value))
	copy(data, key)
	copy(data[len(key):], value)
	return &item{data: data, keyLen: uint32(len(key))}
}

// mapKey returns a string view of the item's key, valid as long as the item
// is: the key bytes are never modified.
func (it *item) mapKey() string {
	if it.keyLen == 0 {
		return ""
	}
	return unsafe.String(&it.data[0], it.keyLen)
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

// shard is one lock stripe: a map and an LRU list.
type shard struct {
	mu         sync.Mutex
	items      map[string]*item
	head, tail *item
	bytes      int64
	stats      counters
	_          [40]byte // keep shards' hot fields on separate cache lines
}

func (s *shard) init() { s.items = make(map[string]*item) }

// reset drops every item, keeping statistics.
func (s *shard) reset() {
	s.items = make(map[string]*item)
	s.head, s.tail = nil, nil
	s.bytes = 0
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

// lookup returns the live item for key, removing it if it has expired.
func (s *shard) lookup(key []byte, now int64) (*item, int64) {
	it, ok := s.items[string(key)]
	if !ok {
		return nil, 0
	}
	if it.expired(now) {
		if !it.fetched {
			s.stats.expiredUnfetched++
		}
		s.stats.reclaimed++
		return nil, s.remove(it)
	}
	return it, 0
}

// remove unlinks it and returns the bytes freed.
func (s *shard) remove(it *item) int64 {
	delete(s.items, it.mapKey())
	s.unlinkLRU(it)
	n := it.size()
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
	s.items[it.mapKey()] = it
	s.pushFront(it)
	n := it.size()
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
		if !victim.fetched {
			s.stats.expiredUnfetched++
		}
		s.stats.reclaimed++
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
			if !it.fetched {
				s.stats.expiredUnfetched++
			}
			s.stats.reclaimed++
			freed += s.remove(it)
		}
		it = prev
	}
	return freed
}

// sweep removes expired items and returns the bytes freed.
func (s *shard) sweep(now int64) int64 {
	var freed int64
	for _, it := range s.items {
		if it.expired(now) {
			if !it.fetched {
				s.stats.expiredUnfetched++
			}
			s.stats.reclaimed++
			freed += s.remove(it)
		}
	}
	return freed
}
