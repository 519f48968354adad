package cache

import (
	"errors"
	"sync/atomic"
)

// System events. With Config.Collections, the cache keeps the events of a
// collections manifest (a collection or scope created, dropped, modified)
// in every vbucket, numbered with its documents' changes, so that a change
// feed (Backfill, Cursor) delivers them in seqno order with the documents
// they govern. Each event is an item in the reserved collection
// SystemCollection, under a key its owner chooses (one per collection or
// scope), holding a value only its owner reads: a create or modify is a
// live item; a drop replaces it with a deleted item that keeps its value,
// a tombstone that ages and is purged as others are (raising the purge
// seqno). Clients never see these items: no collection of a manifest has
// id 1.
//
// A live event is never evicted and survives a flush (the collections it
// tells of are still there): each shard keeps its live events in a list
// of their own, out of the LRU list, so that eviction never walks them.
// They count against the memory limit, but may take at most half of it
// (SystemRoom), so that documents always keep the other half: an event
// past that share is refused with ErrNoMemory, and with Config.NoEvict
// also one past the limit itself, as a document would be. They are no
// documents: Stats counts them apart (SystemEvents, SystemBytes,
// SystemNoMemory), not in CurrItems or TotalItems.

// SystemCollection is the collection id of system events' keys.
const SystemCollection = 1

// ErrNoCollections is the error of a system event in a cache without
// Config.Collections.
var ErrNoCollections = errors.New("cache: no collections")

// SystemKey appends to dst the key of the system event id and returns it.
func SystemKey(dst, id []byte) []byte { return CollectionKey(dst, SystemCollection, id) }

// IsSystemKey reports whether key, as a cache with Config.Collections
// holds it, is a system event's; id is the event's id (see SystemKey).
func IsSystemKey(key []byte) (id []byte, ok bool) {
	if len(key) == 0 || key[0] != SystemCollection {
		return nil, false
	}
	return key[1:], true
}

// system reports whether it is a system event.
func (c *Cache) system(it *item) bool {
	if !c.collections || it.keyLen == 0 {
		return false
	}
	return it.key()[0] == SystemCollection
}

// SystemEvent is a system event to record: its id (see SystemKey) and
// value; a drop is Deleted. An event of a collection (its creation,
// modification or drop) is InCollection: the collection's high seqno
// (CollectionHighSeqno) becomes the event's, as Couchbase counts it.
// Retire, if not nil, is the id of another event that this one retires
// (a collection's drop retires its modification): its live item, if it
// has one, is deleted first, as a change of its own.
type SystemEvent struct {
	ID, Value    []byte
	Deleted      bool
	Collection   uint32
	InCollection bool
	Retire       []byte
}

// EventBytes returns what system event e takes of the memory limit while
// it is live.
func EventBytes(e SystemEvent) int64 { return int64(1+len(e.ID)+len(e.Value)) + ItemOverhead }

// SystemRoom returns how many more bytes of live system events the cache
// takes now: what is left of their share, half the memory limit, and
// with Config.NoEvict no more than memory has free (tombstones, which
// make way, counted free). 0 without Config.Collections.
func (c *Cache) SystemRoom() int64 {
	if !c.collections {
		return 0
	}
	room := c.maxBytes/systemShare - c.systemBytes()
	if c.noEvict {
		room = min(room, c.maxBytes-c.bytes.Load()+c.reclaimableBytes())
	}
	return max(room, 0)
}

// systemShare: live system events take at most 1/systemShare of the
// memory limit.
const systemShare = 2

// systemBytes is the memory live system events take in all shards, read
// without their locks.
func (c *Cache) systemBytes() int64 {
	var n int64
	for i := range c.shards {
		n += c.shards[i].sysBytes.Load()
	}
	return n
}

// systemFits reports whether the live system event it, in place of prev,
// stays within the system events' share of memory. (Shards are read
// without their locks: events stored at once in other shards may take
// the share past its bound by what they are.)
func (c *Cache) systemFits(it, prev *item) bool {
	grow := it.footprint()
	if prev != nil && prev.pinned() {
		grow -= prev.footprint()
	}
	return grow <= 0 || c.systemBytes()+grow <= c.maxBytes/systemShare
}

// RecordEvent records system event e in vbucket vb, as its next change:
// a live item, or for a drop a deleted item keeping its value (where
// tombstones are kept; else the event's live item is deleted, and the
// deletion has no value). It returns the change. Errors:
// ErrNoCollections, ErrTooLarge, ErrNoMemory (past the system events'
// share of memory: see SystemRoom), ErrNoVBucket (also for a vbucket
// that is not active).
func (c *Cache) RecordEvent(vb uint16, e SystemEvent) (Mutation, error) {
	if !c.collections {
		return Mutation{}, ErrNoCollections
	}
	var buf [64]byte
	return c.recordOne(vb, &e, buf[:0])
}

// RecordEvents records the events evs in vbucket vb, in order, as
// RecordEvent does each, stopping at the first that fails. It returns
// how many it recorded, and the error of the one that failed.
func (c *Cache) RecordEvents(vb uint16, evs []SystemEvent) (int, error) {
	if !c.collections {
		return 0, ErrNoCollections
	}
	if int(vb) >= len(c.vbs) {
		return 0, ErrNoVBucket
	}
	c.vbs[vb].addCollections(evs)
	var buf [64]byte
	for i := range evs {
		if _, err := c.recordOne(vb, &evs[i], buf[:0]); err != nil {
			return i, err
		}
	}
	return len(evs), nil
}

// recordOne is RecordEvent, with buf to build keys in.
func (c *Cache) recordOne(vb uint16, e *SystemEvent, buf []byte) (Mutation, error) {
	if e.Retire != nil {
		_, err := c.update(vb, SystemKey(buf, e.Retire), func(_ *shard, old, _ *item, _ int64) (outcome, error) {
			return outcome{remove: old != nil}, nil
		})
		if err != nil {
			return Mutation{}, err
		}
	}
	m, err := c.recordEvent(vb, SystemKey(buf, e.ID), e.Value, e.Deleted)
	if err == nil && m.Seqno != 0 && e.InCollection {
		v := &c.vbs[vb]
		if e.Collection == 0 {
			atomicMax(&v.defHigh, m.Seqno)
		} else {
			v.noteCollection(e.Collection, m.Seqno)
		}
	}
	return m, err
}

func (c *Cache) recordEvent(vb uint16, key, value []byte, deleted bool) (Mutation, error) {
	return c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		switch {
		case !c.fits(key, len(value)):
			return outcome{}, ErrTooLarge
		case deleted && c.tombstoneTTL <= 0:
			return outcome{remove: true}, nil
		}
		it := newItem(key, value)
		if deleted {
			it.bits |= deletedBit
		}
		return outcome{store: it}, nil
	})
}

// addCollections makes v keep a high seqno for every collection of the
// events evs that are InCollection, all at once: noteCollection adds one
// collection at a time, copying what v keeps, which for many new
// collections costs their number squared.
func (v *vbucket) addCollections(evs []SystemEvent) {
	m := orEmpty(v.colls.Load())
	missing := 0
	for i := range evs {
		if e := &evs[i]; e.InCollection && e.Collection != 0 && (*m)[e.Collection] == nil {
			missing++
		}
	}
	if missing < 2 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	m = orEmpty(v.colls.Load())
	n := make(collSeqnos, len(*m)+missing)
	for k, x := range *m {
		n[k] = x
	}
	for i := range evs {
		if e := &evs[i]; e.InCollection && e.Collection != 0 && n[e.Collection] == nil {
			n[e.Collection] = new(atomic.Uint64)
		}
	}
	v.colls.Store(&n)
}

// evictable returns the least recently used item of class l in its
// shard that may be evicted, other than keep, nil if there is none.
// (Live system events are in no LRU list.) In segmented mode that is
// COLD's tail, else HOT's, else WARM's (lru.go).
func evictable(l *lists, keep *item) *item {
	for _, t := range [...]*item{l.segs[segCold].tail, l.segs[segHot].tail, l.segs[segWarm].tail} {
		if t == keep && t != nil {
			t = t.prev
		}
		if t != nil {
			return t
		}
	}
	return nil
}
