package cache

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// Every key lives in a vbucket (the request header's vbucket id; 0 for
// memcached's clients), and every change of a vbucket's keys gets the
// vbucket's next sequence number. Keys are spread over shards by their
// hash, whatever their vbucket, so that clients that use one vbucket still
// use every shard. A change is numbered while the shard lock that applies
// it is held, so a key's changes are numbered in the order they are
// applied; numbering is an atomic counter, and only while a Cursor follows
// the vbucket does a change also take the vbucket's lock, to be logged.

// DefaultVBuckets is a Cache's number of vbuckets unless Config.VBuckets
// says otherwise: 1024, as Couchbase's.
const DefaultVBuckets = 1024

// MaxVBuckets is the most vbuckets a Cache has: every 16-bit id.
const MaxVBuckets = 1 << 16

// Mutation identifies a change: the vbucket's UUID and the change's
// sequence number (a Couchbase mutation token), and the CAS it left.
type Mutation struct {
	VBUUID uint64
	Seqno  uint64
	CAS    uint64
}

// VBState is a vbucket's state, numbered as Couchbase's protocol numbers
// them. Only an active vbucket serves operations; the others exist to be
// fed (a replica, a pending vbucket during a move) or to be deleted.
type VBState uint8

// The vbucket states. A vbucket that does not exist (never created, or
// deleted) is Missing.
const (
	Missing VBState = 0
	Active  VBState = 1
	Replica VBState = 2
	Pending VBState = 3
	Dead    VBState = 4
)

func (s VBState) String() string {
	switch s {
	case Active:
		return "active"
	case Replica:
		return "replica"
	case Pending:
		return "pending"
	case Dead:
		return "dead"
	}
	return "missing"
}

// FailoverEntry is one entry of a vbucket's failover log: a history (UUID)
// of the vbucket and the seqno it started at.
type FailoverEntry struct {
	UUID  uint64
	Seqno uint64
}

// maxFailoverEntries is how many entries a failover log keeps, as
// kv_engine's default.
const maxFailoverEntries = 25

// vbucket is one vbucket's state and sequence of changes.
type vbucket struct {
	high    atomic.Uint64 // seqno of the last change
	uuid    atomic.Uint64 // of the newest failover entry, never 0
	defHigh atomic.Uint64 // seqno of the default collection's last change (Config.Collections)
	state   atomic.Uint32 // a VBState
	logging atomic.Bool   // a cursor follows: changes are logged
	// colls holds the high seqno of each collection that changed, when
	// keys carry collection ids (Config.Collections).
	colls atomic.Pointer[collSeqnos]
	// apply orders a replica's replicated changes with its state changes
	// and with each other (replica.go); taken before a shard lock and mu.
	// Client writes do not take it: SetState orders them with a state
	// change by taking every shard lock once the state is set, and they
	// check the state under their shard lock.
	apply sync.Mutex
	// snapStart..snapEnd is the snapshot a replica receives, and snapDone
	// the end of the last one it received whole (replica.go), guarded by
	// apply.
	snapStart, snapEnd uint64
	snapDone           uint64
	mu                 sync.Mutex // guards log, failover and colls' writers; taken inside a shard lock, never the other way round
	log                *changeLog
	// failover is the failover log, newest first.
	failover []FailoverEntry
}

// collSeqnos maps a collection id to the seqno of its last change in a
// vbucket. It is replaced, never modified, but for its counters.
type collSeqnos map[uint32]*atomic.Uint64

// newVBuckets returns n active vbuckets, each with a failover log of one
// entry, a random non-zero UUID from seqno 0.
func newVBuckets(n int) []vbucket {
	vbs := make([]vbucket, n)
	for i := range vbs {
		vbs[i].state.Store(uint32(Active))
		vbs[i].newHistory(0)
	}
	return vbs
}

// newUUID returns a random non-zero vbucket UUID.
func newUUID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return max(binary.BigEndian.Uint64(b[:]), 1)
}

// newHistory starts a new failover entry at seqno. The caller holds v.mu
// or owns v.
func (v *vbucket) newHistory(seqno uint64) {
	e := FailoverEntry{UUID: newUUID(), Seqno: seqno}
	v.failover = append([]FailoverEntry{e}, v.failover[:min(len(v.failover), maxFailoverEntries-1)]...)
	v.uuid.Store(e.UUID)
}

// noteCollection records seqno as the last change of collection cid.
func (v *vbucket) noteCollection(cid uint32, seqno uint64) {
	m := v.colls.Load()
	var h *atomic.Uint64
	if m != nil {
		h = (*m)[cid]
	}
	if h == nil {
		v.mu.Lock()
		m = v.colls.Load()
		if m == nil || (*m)[cid] == nil {
			n := make(collSeqnos, len(*orEmpty(m))+1)
			for k, x := range *orEmpty(m) {
				n[k] = x
			}
			n[cid] = new(atomic.Uint64)
			v.colls.Store(&n)
			m = &n
		}
		h = (*m)[cid]
		v.mu.Unlock()
	}
	atomicMax(h, seqno)
}

// atomicMax raises x to v if it is below.
func atomicMax(x *atomic.Uint64, v uint64) {
	for {
		old := x.Load()
		if v <= old || x.CompareAndSwap(old, v) {
			return
		}
	}
}

var emptyColls = collSeqnos{}

func orEmpty(m *collSeqnos) *collSeqnos {
	if m == nil {
		return &emptyColls
	}
	return m
}

// number gives a change of vbucket vb the next seqno and, if newCAS, a new
// CAS value (else the item keeps its own), and logs it for the vbucket's
// cursors. The caller holds the lock of the shard the change is applied
// in. it is the item the change leaves (stored or touched) or, for a
// removal, the item removed; rev is the change's revision.
func (c *Cache) number(vb uint16, kind ChangeKind, it *item, rev uint64, newCAS bool) Mutation {
	return c.numberPatched(vb, kind, it, rev, newCAS, nil)
}

// numberPatched is number for a new item whose value patch rewrites with
// the change's CAS and seqno before the change is logged.
func (c *Cache) numberPatched(vb uint16, kind ChangeKind, it *item, rev uint64, newCAS bool, patch func([]byte, Mutation)) Mutation {
	v := &c.vbs[vb]
	m := Mutation{VBUUID: v.uuid.Load(), Seqno: v.high.Add(1), CAS: it.cas}
	if newCAS {
		m.CAS = c.nextCAS()
	}
	if patch != nil {
		b := it.bytes()
		patch(b[it.keyLen:len(b):len(b)], m)
	}
	if c.collections {
		if k := it.key(); len(k) > 0 && k[0] == 0 {
			atomicMax(&v.defHigh, m.Seqno)
		} else if cid, n := collectionOf(k); n > 0 {
			v.noteCollection(cid, m.Seqno)
		}
	}
	// A cursor opened after the seqno was taken sees logging set here
	// (Changes sets it before it reads high), so no change it is to read
	// goes unlogged.
	if v.logging.Load() {
		v.mu.Lock()
		if v.log != nil {
			v.log.add(logEntry{seqno: m.Seqno, cas: m.CAS, rev: rev, exp: it.expires(), it: it, kind: kind,
				value: kind != Mutated && it.deleted() && it.bits&hollowBit == 0})
		}
		v.mu.Unlock()
	}
	return m
}

// current returns the token of vbucket vb's last change, with a new CAS:
// what a store that changed nothing answers.
func (c *Cache) current(vb uint16) Mutation {
	v := &c.vbs[vb]
	return Mutation{VBUUID: v.uuid.Load(), Seqno: v.high.Load(), CAS: c.nextCAS()}
}

// VBuckets returns the number of vbuckets.
func (c *Cache) VBuckets() int { return len(c.vbs) }

// HighSeqno returns the seqno of vbucket vb's last change and the
// vbucket's UUID; 0, 0 for a vbucket id not below VBuckets.
func (c *Cache) HighSeqno(vb uint16) (seqno, uuid uint64) {
	if int(vb) >= len(c.vbs) {
		return 0, 0
	}
	v := &c.vbs[vb]
	return v.high.Load(), v.uuid.Load()
}

// CollectionHighSeqno returns the seqno of the last change of collection
// cid in vbucket vb, 0 if it has none (with Config.Collections; without,
// every key is in the default collection, 0).
func (c *Cache) CollectionHighSeqno(vb uint16, cid uint32) uint64 {
	if int(vb) >= len(c.vbs) {
		return 0
	}
	v := &c.vbs[vb]
	switch {
	case !c.collections && cid == 0:
		return v.high.Load()
	case !c.collections:
		return 0
	case cid == 0:
		return v.defHigh.Load()
	}
	if m := v.colls.Load(); m != nil {
		if h := (*m)[cid]; h != nil {
			return h.Load()
		}
	}
	return 0
}

// State returns the state of vbucket vb (Missing for an id not below
// VBuckets).
func (c *Cache) State(vb uint16) VBState {
	if int(vb) >= len(c.vbs) {
		return Missing
	}
	return VBState(c.vbs[vb].state.Load())
}

// SetState sets the state of vbucket vb, creating it if it is Missing,
// with a failover log of one entry. A vbucket that becomes active from
// any other state starts a new history: a new failover log entry, with a
// new UUID, as a Couchbase vbucket does when it is promoted, at its high
// seqno or, for a replica within a snapshot, at the end of the last
// snapshot it received whole (what it holds of the snapshot under way
// may lack changes the producer deduplicated). Writes that saw the old
// state are done when SetState returns, and later ones see the new. It
// fails with ErrNoVBucket for an id not below VBuckets, and for the state
// Missing (see DeleteVBucket).
func (c *Cache) SetState(vb uint16, st VBState) error {
	if int(vb) >= len(c.vbs) || st == Missing || st > Dead {
		return ErrNoVBucket
	}
	v := &c.vbs[vb]
	v.apply.Lock()
	defer v.apply.Unlock()
	old := c.setState(v, st)
	if old != st {
		// A barrier: a write checks the state under its shard lock.
		for i := range c.shards {
			s := &c.shards[i]
			s.mu.Lock()
			s.mu.Unlock()
		}
	}
	return nil
}

// setState is SetState of v, whose apply lock the caller holds; it
// returns the old state.
func (c *Cache) setState(v *vbucket, st VBState) VBState {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := VBState(v.state.Load())
	if old == Missing || st == Active && old != Active {
		seqno := v.high.Load()
		if old != Active && old != Missing && seqno < v.snapEnd {
			seqno = min(seqno, v.snapDone)
		}
		v.newHistory(seqno)
	}
	v.state.Store(uint32(st))
	if old != st && v.log != nil {
		v.log.wake() // a feed of the vbucket learns its state
	}
	return old
}

// DeleteVBucket removes vbucket vb and everything in it: its items and
// tombstones, its seqnos and its failover log. It is then Missing until
// SetState creates it again, from seqno 0 with a new history. Open cursors
// on it lose their changes.
func (c *Cache) DeleteVBucket(vb uint16) error {
	if int(vb) >= len(c.vbs) {
		return ErrNoVBucket
	}
	v := &c.vbs[vb]
	v.apply.Lock()
	defer v.apply.Unlock()
	v.mu.Lock()
	v.state.Store(uint32(Missing))
	v.mu.Unlock()
	c.removeWhere(func(it *item) bool { return it.vbucket() == vb })
	v.mu.Lock()
	defer v.mu.Unlock()
	if VBState(v.state.Load()) != Missing {
		return nil // created again meanwhile: it keeps its new history
	}
	v.high.Store(0)
	c.purges[vb].Store(0)
	v.defHigh.Store(0)
	v.colls.Store(nil)
	v.snapStart, v.snapEnd, v.snapDone = 0, 0, 0
	v.failover = nil
	if v.log != nil {
		v.log.lose(0) // the next change, seqno 1, is the log's first
	}
	return nil
}

// FailoverLog returns vbucket vb's failover log, newest entry first (nil
// for an id not below VBuckets).
func (c *Cache) FailoverLog(vb uint16) []FailoverEntry {
	if int(vb) >= len(c.vbs) {
		return nil
	}
	v := &c.vbs[vb]
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]FailoverEntry(nil), v.failover...)
}

// loseChanges tells every open cursor that the changes so far are gone
// (the cache was flushed).
func (c *Cache) loseChanges() {
	for i := range c.vbs {
		v := &c.vbs[i]
		if !v.logging.Load() || v.fed() {
			continue
		}
		v.mu.Lock()
		if v.log != nil {
			v.log.lose(v.high.Load())
		}
		v.mu.Unlock()
	}
}
