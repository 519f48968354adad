package cache

import "errors"

// System events. With Config.Collections, the cache keeps the events of a
// collections manifest (a collection or scope created, dropped, modified)
// in every vbucket, numbered with its documents' changes, so that a change
// feed (Backfill, Cursor) delivers them in seqno order with the documents
// they govern. Each event is an item in the reserved collection
// SystemCollection, under a key its owner chooses (one per collection or
// scope), holding a value only its owner reads: a create or modify is a
// live item, which is never evicted; a drop replaces it with a deleted
// item that keeps its value, a tombstone that ages and is purged as
// others are (raising the purge seqno). Clients never see these items:
// no collection of a manifest has id 1.

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
type SystemEvent struct {
	ID, Value    []byte
	Deleted      bool
	Collection   uint32
	InCollection bool
}

// RecordEvent records system event e in vbucket vb, as its next change:
// a live item, or for a drop a deleted item keeping its value (where
// tombstones are kept; else the event's live item is deleted, and the
// deletion has no value). It returns the change. Errors:
// ErrNoCollections, ErrTooLarge, ErrNoMemory, ErrNoVBucket (also for a
// vbucket that is not active).
func (c *Cache) RecordEvent(vb uint16, e SystemEvent) (Mutation, error) {
	if !c.collections {
		return Mutation{}, ErrNoCollections
	}
	m, err := c.recordEvent(vb, SystemKey(nil, e.ID), e.Value, e.Deleted)
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
		case !c.fits(len(key), len(value)):
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

// sysSkip bounds how many system events an eviction passes over.
const sysSkip = 64

// evictable returns the least recently used item of the locked shard s
// that may be evicted, other than keep, nil if there is none: live system
// events are passed over, each moved to the front of the LRU list.
func (c *Cache) evictable(s *shard, keep *item) *item {
	victim := s.tail
	for i := 0; victim != nil && i < sysSkip; i++ {
		switch {
		case victim == keep:
			victim = victim.prev
		case !victim.deleted() && c.system(victim):
			prev := victim.prev
			s.bump(victim)
			victim = prev
		default:
			return victim
		}
	}
	return nil
}
