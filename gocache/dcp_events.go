package gocache

import (
	"encoding/binary"
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/f8e615c8/gomemcached/cache"
)

// System events: every change of a bucket's collections manifest is
// recorded in each of its active vbuckets as a system event of the cache
// (cache.RecordEvent), one key per collection or scope, so that DCP
// streams deliver them in seqno order with the documents, in backfills
// and live. A stream sends them as DCP_SYSTEM_EVENT (0x5f): extras
// seqno(8), event(4), version(1); the key is the collection's or scope's
// name (none for a drop); the value is, with flatbuffers_system_events,
// a FlatBuffers table of kv_engine's events.fbs (version 2), else the
// fixed layouts of system_event.md (versions 0 and 1).

// System event ids on the wire.
const (
	sysCollectionCreate uint32 = 0
	sysCollectionDrop   uint32 = 1
	sysScopeCreate      uint32 = 3
	sysScopeDrop        uint32 = 4
	sysCollectionModify uint32 = 5
)

// Kinds of system event key: the first byte of the event's id in the
// cache, followed by the collection id and its scope id (collections,
// modifications) or the scope id, each unsigned LEB128.
const (
	sysKeyCollection = 0
	sysKeyScope      = 1
	sysKeyModify     = 2
)

// sysEvent is one system event.
type sysEvent struct {
	event    uint32 // sysCollectionCreate...
	uid      uint64 // the manifest's: the last one wholly applied
	scope    uint32
	cid      uint32 // collection events
	maxTTL   uint32
	ttlValid bool
	name     string // creations and modifications
}

func (e *sysEvent) collection() bool { return e.event != sysScopeCreate && e.event != sysScopeDrop }

// id returns the event's id in the cache.
func (e *sysEvent) id() []byte {
	switch e.event {
	case sysScopeCreate, sysScopeDrop:
		return cache.CollectionKey([]byte{sysKeyScope}, e.scope, nil)
	case sysCollectionModify:
		return cache.CollectionKey(cache.CollectionKey([]byte{sysKeyModify}, e.cid, nil), e.scope, nil)
	}
	return cache.CollectionKey(cache.CollectionKey([]byte{sysKeyCollection}, e.cid, nil), e.scope, nil)
}

// record returns the event's value in the cache: uid(8), maxTTL(4),
// ttlValid(1), name.
func (e *sysEvent) record() []byte {
	b := make([]byte, 13, 13+len(e.name))
	binary.BigEndian.PutUint64(b, e.uid)
	binary.BigEndian.PutUint32(b[8:], e.maxTTL)
	if e.ttlValid {
		b[12] = 1
	}
	return append(b, e.name...)
}

var errSysEvent = errors.New("gocache: malformed system event")

// parseSysEvent reads the system event of a cache item: its id, whether
// it is deleted (a drop) and its value, which a drop may lack (the cache
// keeps no tombstones): uid is then 0.
func parseSysEvent(id []byte, deleted bool, value []byte) (sysEvent, error) {
	var e sysEvent
	if len(id) == 0 {
		return e, errSysEvent
	}
	kind := id[0]
	first, rest, ok := cache.SplitKey(id[1:])
	if !ok {
		return e, errSysEvent
	}
	switch kind {
	case sysKeyScope:
		if len(rest) != 0 {
			return e, errSysEvent
		}
		e.scope, e.event = first, sysScopeCreate
		if deleted {
			e.event = sysScopeDrop
		}
	case sysKeyCollection, sysKeyModify:
		scope, tail, ok := cache.SplitKey(rest)
		if !ok || len(tail) != 0 || kind == sysKeyModify && deleted {
			return e, errSysEvent
		}
		e.cid, e.scope, e.event = first, scope, sysCollectionCreate
		switch {
		case kind == sysKeyModify:
			e.event = sysCollectionModify
		case deleted:
			e.event = sysCollectionDrop
		}
	default:
		return e, errSysEvent
	}
	if len(value) == 0 && deleted {
		return e, nil
	}
	if len(value) < 13 {
		return e, errSysEvent
	}
	e.uid = binary.BigEndian.Uint64(value)
	e.maxTTL = binary.BigEndian.Uint32(value[8:])
	e.ttlValid = value[12] != 0
	if !deleted {
		e.name = string(value[13:])
	}
	return e, nil
}

// key returns the event's DCP key: the name of what a creation or
// modification makes, nothing for a drop.
func (e *sysEvent) key() []byte {
	switch e.event {
	case sysCollectionDrop, sysScopeDrop:
		return nil
	}
	return []byte(e.name)
}

// appendLegacy appends the event's value in the fixed layouts of
// system_event.md and returns it with its version: a collection's
// creation uid(8) scope(4) cid(4), and maxTTL(4) in version 1 when it
// has one; its drop uid(8) scope(4) cid(4); a scope's creation or drop
// uid(8) scope(4). A modification has no such layout (ok false).
func (e *sysEvent) appendLegacy(dst []byte) (value []byte, version uint8, ok bool) {
	dst = binary.BigEndian.AppendUint64(dst, e.uid)
	dst = binary.BigEndian.AppendUint32(dst, e.scope)
	switch e.event {
	case sysScopeCreate, sysScopeDrop:
		return dst, 0, true
	case sysCollectionModify:
		return dst, 0, false
	}
	dst = binary.BigEndian.AppendUint32(dst, e.cid)
	if e.event == sysCollectionCreate && e.maxTTL != 0 {
		return binary.BigEndian.AppendUint32(dst, e.maxTTL), 1, true
	}
	return dst, 0, true
}

// Field slots of events.fbs's tables.
const (
	fbCollectionFields      = 10 // uid scopeId collectionId ttlValid maxTtl name history defaultCollectionMVS metered flushUid
	fbDroppedCollectionFlds = 4  // uid scopeId collectionId systemCollection
	fbScopeFields           = 3  // uid scopeId name
	fbDroppedScopeFields    = 3  // uid scopeId systemScope
)

// flatBuffer returns the event's value as a FlatBuffers table of
// events.fbs (Collection, DroppedCollection, Scope or DroppedScope),
// built in b (reset first); the result is b's and valid until b's next
// use. Fields at their default are left out, as FlatBuffers builders do.
func (e *sysEvent) flatBuffer(b *flatbuffers.Builder) []byte {
	b.Reset()
	switch e.event {
	case sysCollectionCreate, sysCollectionModify:
		name := b.CreateString(e.name)
		b.StartObject(fbCollectionFields)
		b.PrependUint64Slot(0, e.uid, 0)
		b.PrependUint32Slot(1, e.scope, 0)
		b.PrependUint32Slot(2, e.cid, 0)
		b.PrependUint32Slot(4, e.maxTTL, 0)
		b.PrependUOffsetTSlot(5, name, 0)
		b.PrependBoolSlot(3, e.ttlValid, false)
	case sysCollectionDrop:
		b.StartObject(fbDroppedCollectionFlds)
		b.PrependUint64Slot(0, e.uid, 0)
		b.PrependUint32Slot(1, e.scope, 0)
		b.PrependUint32Slot(2, e.cid, 0)
	case sysScopeCreate:
		name := b.CreateString(e.name)
		b.StartObject(fbScopeFields)
		b.PrependUint64Slot(0, e.uid, 0)
		b.PrependUint32Slot(1, e.scope, 0)
		b.PrependUOffsetTSlot(2, name, 0)
	default: // sysScopeDrop
		b.StartObject(fbDroppedScopeFields)
		b.PrependUint64Slot(0, e.uid, 0)
		b.PrependUint32Slot(1, e.scope, 0)
	}
	b.Finish(b.EndObject())
	return b.FinishedBytes()
}

// manifestEvents returns the events that take a vbucket from manifest old
// to manifest m, in kv_engine's order: collections dropped, scopes
// dropped, scopes created, collections created, collections modified
// (a new maxTTL). Only the last carries m's uid; the others old's, as
// system_event.md's "Manifest ID" says.
func manifestEvents(old, m *manifest) []sysEvent {
	var evs []sysEvent
	for _, s := range old.scopes {
		for _, c := range s.collections {
			if m.byID[c.uid] == nil || m.byID[c.uid].scope != c.scope {
				evs = append(evs, sysEvent{event: sysCollectionDrop, scope: c.scope, cid: c.uid})
			}
		}
	}
	oldScopes, newScopes := scopeSet(old), scopeSet(m)
	for _, s := range old.scopes {
		if !newScopes[s.uid] {
			evs = append(evs, sysEvent{event: sysScopeDrop, scope: s.uid})
		}
	}
	for _, s := range m.scopes {
		if !oldScopes[s.uid] {
			evs = append(evs, sysEvent{event: sysScopeCreate, scope: s.uid, name: s.name})
		}
	}
	var modified []sysEvent
	for _, s := range m.scopes {
		for _, c := range s.collections {
			ev := sysEvent{scope: c.scope, cid: c.uid, name: c.name, maxTTL: c.maxTTL, ttlValid: c.maxTTL != 0}
			switch o := old.byID[c.uid]; {
			case o == nil || o.scope != c.scope:
				ev.event = sysCollectionCreate
				evs = append(evs, ev)
			case o.maxTTL != c.maxTTL || o.name != c.name:
				ev.event = sysCollectionModify
				modified = append(modified, ev)
			}
		}
	}
	evs = append(evs, modified...)
	for i := range evs {
		evs[i].uid = old.uid
	}
	if len(evs) > 0 {
		evs[len(evs)-1].uid = m.uid
	}
	return evs
}

func scopeSet(m *manifest) map[uint32]bool {
	set := make(map[uint32]bool, len(m.scopes))
	for _, s := range m.scopes {
		set[s.uid] = true
	}
	return set
}

// errEventsNoRoom is the error of manifest changes whose system events
// would not fit in the bucket's memory (cache.SystemRoom): SET_MANIFEST
// answers ENOMEM, as kv_engine answers a change that memory cannot take.
var errEventsNoRoom = fmt.Errorf("gocache: no memory for the manifest's system events: %w", cache.ErrNoMemory)

// cacheEvents returns the system events, as the cache records them, that
// take a vbucket from manifest old to m. A collection's drop also retires
// its modification's event.
func cacheEvents(old, m *manifest) []cache.SystemEvent {
	evs := manifestEvents(old, m)
	ces := make([]cache.SystemEvent, len(evs))
	for i := range evs {
		ev := &evs[i]
		ces[i] = cache.SystemEvent{ID: ev.id(), Value: ev.record(), Collection: ev.cid, InCollection: ev.collection(),
			Deleted: ev.event == sysCollectionDrop || ev.event == sysScopeDrop}
		if ev.event == sysCollectionDrop {
			mod := sysEvent{event: sysCollectionModify, cid: ev.cid, scope: ev.scope}
			ces[i].Retire = mod.id()
		}
	}
	return ces
}

// eventsFit checks that the bucket's memory takes the events evs in
// every active vbucket (or only in vbucket one, if not negative), each
// creation or modification counted in full, what a drop frees not:
// else errEventsNoRoom.
func (b *bucket) eventsFit(evs []cache.SystemEvent, one int) error {
	var each int64
	for i := range evs {
		if !evs[i].Deleted {
			each += cache.EventBytes(evs[i])
		}
	}
	if each == 0 {
		return nil
	}
	c := b.cache
	n := int64(1)
	if one < 0 {
		n = 0
		for vb := range c.VBuckets() {
			if c.State(uint16(vb)) == cache.Active {
				n++
			}
		}
	}
	if need, room := each*n, c.SystemRoom(); need > room {
		return fmt.Errorf("%w: %d bytes in %d vbuckets, room for %d", errEventsNoRoom, need, n, room)
	}
	return nil
}

// recordEvents records the events evs (see cacheEvents) in every active
// vbucket of the bucket, or only in vbucket one, if not negative. A
// vbucket that cannot take them all (memory taken since eventsFit, an
// event too large) keeps those before the first that failed: that is
// logged and counted (STAT system_events_not_recorded), and the first
// such error returned.
func (b *bucket) recordEvents(evs []cache.SystemEvent, one int) error {
	if len(evs) == 0 {
		return nil
	}
	c := b.cache
	var first error
	for vb := range c.VBuckets() {
		if one >= 0 && vb != one || c.State(uint16(vb)) != cache.Active {
			continue
		}
		n, err := c.RecordEvents(uint16(vb), evs)
		if err == nil || errors.Is(err, cache.ErrNoVBucket) { // no longer active: not for it to record
			continue
		}
		b.eventsLost.Add(uint64(len(evs) - n))
		b.log.Warn("collections: system events not recorded", "bucket", b.name, "vb", vb,
			"recorded", n, "of", len(evs), "err", err)
		if first == nil {
			first = err
		}
	}
	return first
}

// newVBucket makes the missing vbucket vb active (SET_VBUCKET) and
// records the manifest's events in it, as though its collections were
// created then. It fails with errEventsNoRoom, and makes nothing, if
// memory would not take them, or with SetState's error.
func (b *bucket) newVBucket(vb uint16) error {
	b.manifestMu.Lock()
	defer b.manifestMu.Unlock()
	evs := cacheEvents(defaultManifest(), b.manifest.Load())
	if err := b.eventsFit(evs, int(vb)); err != nil {
		return err
	}
	if err := b.cache.SetState(vb, cache.Active); err != nil {
		return err
	}
	b.recordEvents(evs, int(vb)) // a failure is logged
	return nil
}
