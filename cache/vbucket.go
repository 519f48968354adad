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

// vbucket is one vbucket's sequence of changes.
type vbucket struct {
	high    atomic.Uint64 // seqno of the last change
	uuid    uint64        // never 0
	logging atomic.Bool   // a cursor follows: changes are logged
	mu      sync.Mutex    // guards log; taken inside a shard lock, never the other way round
	log     *changeLog
	_       [24]byte // one cache line per vbucket
}

// newVBuckets returns n vbuckets with random non-zero UUIDs.
func newVBuckets(n int) []vbucket {
	vbs := make([]vbucket, n)
	raw := make([]byte, 8*n)
	rand.Read(raw)
	for i := range vbs {
		vbs[i].uuid = max(binary.BigEndian.Uint64(raw[8*i:]), 1)
	}
	return vbs
}

// number gives a change of vbucket vb the next seqno and, if newCAS, a new
// CAS value (else the item keeps its own), and logs it for the vbucket's
// cursors. The caller holds the lock of the shard the change is applied
// in. it is the item the change leaves (stored or touched) or, for a
// removal, the item removed; rev is the change's revision.
func (c *Cache) number(vb uint16, kind ChangeKind, it *item, rev uint64, newCAS bool) Mutation {
	v := &c.vbs[vb]
	m := Mutation{VBUUID: v.uuid, Seqno: v.high.Add(1), CAS: it.cas}
	if newCAS {
		m.CAS = c.nextCAS()
	}
	// A cursor opened after the seqno was taken sees logging set here
	// (Changes sets it before it reads high), so no change it is to read
	// goes unlogged.
	if v.logging.Load() {
		v.mu.Lock()
		if v.log != nil {
			v.log.add(logEntry{seqno: m.Seqno, cas: m.CAS, rev: rev, exp: it.exp, it: it, kind: kind})
		}
		v.mu.Unlock()
	}
	return m
}

// current returns the token of vbucket vb's last change, with a new CAS:
// what a store that changed nothing answers.
func (c *Cache) current(vb uint16) Mutation {
	v := &c.vbs[vb]
	return Mutation{VBUUID: v.uuid, Seqno: v.high.Load(), CAS: c.nextCAS()}
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
	return v.high.Load(), v.uuid
}

// loseChanges tells every open cursor that the changes so far are gone
// (the cache was flushed).
func (c *Cache) loseChanges() {
	for i := range c.vbs {
		v := &c.vbs[i]
		if !v.logging.Load() {
			continue
		}
		v.mu.Lock()
		if v.log != nil {
			v.log.lose(v.high.Load())
		}
		v.mu.Unlock()
	}
}
