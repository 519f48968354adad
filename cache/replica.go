package cache

import (
	"errors"
	"fmt"
)

// Replicas. A vbucket in state Replica (or Pending) holds a copy of
// another cache's vbucket, fed by a replicator from that vbucket's change
// feed: its changes carry the producer's seqno, CAS, revision, flags,
// expiry and datatype (Replicate), snapshot by snapshot (ReplicaSnapshot),
// and it takes the producer's failover log (AdoptFailoverLog) and purge
// seqno (ReplicaSnapshot). It numbers nothing itself: what it evicts for
// memory, and what a read or the sweeper finds expired, is removed without
// a seqno (a read never returns an expired item; the producer's expiration
// arrives later as a change of its own). Reads come through GetReplica.
// The CAS values it keeps raise the cache's CAS counter, so that once
// promoted its own CAS values are above them. Promotion (SetState Active)
// starts a new failover entry at the end of the last snapshot it received
// whole (its high seqno, unless it is within a snapshot), and from then
// on the vbucket numbers its own changes.
//
// A rollback (Rollback) empties the vbucket: the cache keeps nothing on
// disk to roll back to, so, as kv_engine's ephemeral buckets do (their
// doRollback always fails, and the vbucket is reset), the vbucket starts
// again from seqno 0 with a new failover log, and the producer streams it
// from the beginning.

// Errors of replicated changes.
var (
	// ErrNotReplica is the error of a replicated change, snapshot,
	// failover log or rollback for a vbucket that is neither Replica nor
	// Pending.
	ErrNotReplica = errors.New("cache: vbucket is not a replica")
	// ErrSeqnoOrder is matched (errors.Is) by a SeqnoError.
	ErrSeqnoOrder = errors.New("cache: replicated seqno out of order")
	// ErrBadFailoverLog is the error of adopting a failover log with no
	// entry, with more than kept, or with a UUID of 0.
	ErrBadFailoverLog = errors.New("cache: bad failover log")
)

// SeqnoError is the error of a replicated change or snapshot out of
// order: a seqno not above the vbucket's high seqno, or outside the
// snapshot being received (SnapStart..SnapEnd), or a snapshot's purge
// seqno past its end.
type SeqnoError struct {
	VBucket            uint16
	Seqno              uint64 // the change's (a snapshot's end, or its purge seqno, for a snapshot)
	High               uint64 // the vbucket's high seqno
	SnapStart, SnapEnd uint64 // the snapshot being received
}

func (e *SeqnoError) Error() string {
	return fmt.Sprintf("cache: vbucket %d: replicated seqno %d out of order (high seqno %d, snapshot %d-%d)",
		e.VBucket, e.Seqno, e.High, e.SnapStart, e.SnapEnd)
}

// Unwrap returns ErrSeqnoOrder.
func (e *SeqnoError) Unwrap() error { return ErrSeqnoOrder }

// fed reports whether v is fed by a producer: a replica or pending
// vbucket.
func (v *vbucket) fed() bool {
	st := VBState(v.state.Load())
	return st == Replica || st == Pending
}

// anyFed reports whether a vbucket is fed by a producer.
func (c *Cache) anyFed() bool {
	for i := range c.vbs {
		if c.vbs[i].fed() {
			return true
		}
	}
	return false
}

// replica returns vbucket vb, locked for a replicated change, and its
// state; it fails with ErrNoVBucket for an id not below VBuckets and
// ErrNotReplica for a vbucket neither Replica nor Pending.
func (c *Cache) replica(vb uint16) (*vbucket, VBState, error) {
	if int(vb) >= len(c.vbs) {
		return nil, Missing, ErrNoVBucket
	}
	v := &c.vbs[vb]
	v.apply.Lock()
	st := VBState(v.state.Load())
	if st != Replica && st != Pending {
		v.apply.Unlock()
		return nil, st, ErrNotReplica
	}
	return v, st, nil
}

// ReplicaSnapshot starts the snapshot start..end in replica vbucket vb:
// the changes that follow have seqnos within it. purge is the producer's
// purge seqno as a disk snapshot's marker gives it (0 for none): the
// vbucket's purge seqno is raised to it, so that, once promoted, it rolls
// back a consumer that may have missed deletions the producer purged. It
// fails with a SeqnoError if end is below start or below the vbucket's
// high seqno or past 48 bits (the most an item holds, as in Couchbase), or
// purge is above end.
func (c *Cache) ReplicaSnapshot(vb uint16, start, end, purge uint64) error {
	v, _, err := c.replica(vb)
	if err != nil {
		return err
	}
	defer v.apply.Unlock()
	high := v.high.Load()
	switch {
	case end < start || end < high || end > maxSeqno:
		return &SeqnoError{VBucket: vb, Seqno: end, High: high, SnapStart: start, SnapEnd: end}
	case purge > end:
		return &SeqnoError{VBucket: vb, Seqno: purge, High: high, SnapStart: start, SnapEnd: end}
	}
	if high >= v.snapEnd || start > v.snapEnd {
		// The previous snapshot is whole: reached, or passed by the
		// producer (what it did not send of it, it deduplicated).
		v.snapDone = high
	}
	v.snapStart, v.snapEnd = start, end
	c.purged(vb, purge)
	return nil
}

// replicated records that replica vbucket v (locked) reached seqno.
func (v *vbucket) replicated(seqno uint64) {
	v.high.Store(seqno)
	if seqno == v.snapEnd {
		v.snapDone = seqno
	}
}

// Replicate applies a change of key replicated from the producer of
// replica vbucket vb: the change numbered seqno there, with m's CAS,
// revision, flags, expiry and datatype, storing value (or, with
// m.Deleted, a deletion or expiration, leaving a tombstone that keeps
// value when tombstones are kept). The producer's order is the order:
// there is no conflict resolution, and seqno must be above the vbucket's
// high seqno and within the snapshot being received (else a SeqnoError,
// and nothing changes); the vbucket's high seqno becomes seqno. A change
// that does not fit (ErrTooLarge, or ErrNoMemory with Config.NoEvict)
// still takes its seqno, and the key's older version is removed, so that
// the replica never serves a value its producer replaced. A change that
// leaves nothing (a deletion without tombstones, say) raises the purge
// seqno to seqno. The CAS kept raises the cache's CAS counter. Other
// errors: ErrNoVBucket, ErrNotReplica.
func (c *Cache) Replicate(vb uint16, key, value []byte, seqno uint64, m Meta) error {
	v, st, err := c.replica(vb)
	if err != nil {
		return err
	}
	defer v.apply.Unlock()
	return c.replicateLocked(v, vb, st, key, value, seqno, m)
}

// replicateLocked is Replicate in vbucket v, locked, in state st.
func (c *Cache) replicateLocked(v *vbucket, vb uint16, st VBState, key, value []byte, seqno uint64, m Meta) error {
	high := v.high.Load()
	if seqno <= high || seqno < v.snapStart || seqno > v.snapEnd {
		return &SeqnoError{VBucket: vb, Seqno: seqno, High: high, SnapStart: v.snapStart, SnapEnd: v.snapEnd}
	}
	var exp int64
	if !m.Expires.IsZero() {
		exp = m.Expires.UnixNano()
	}
	k, ok := c.locateIn(vb, key, st)
	if !ok {
		return ErrNotReplica // not reached: the state changes only under v.apply
	}
	stored, err := c.updateAt(vb, k, func(s *shard, old, tomb *item, now int64) (outcome, error) {
		switch {
		case !c.fits(key, len(value)):
			s.stats.storeTooLarge++
			return outcome{remove: true}, ErrTooLarge
		case m.Deleted && c.tombstoneTTL <= 0:
			return outcome{remove: true}, nil
		}
		it := newItem(key, value)
		it.flags, it.datatype, it.cas = m.Flags, m.Datatype, m.CAS
		it.setExpires(exp)
		if m.Deleted {
			it.bits |= deletedBit
		}
		// The store is numbered next in the vbucket, which nothing else
		// numbers while v.apply is held (removals here are unnumbered):
		// it gets seqno.
		v.high.Store(seqno - 1)
		return outcome{store: it, rev: max(m.Rev, 1), keepCAS: true, dropOnFail: true}, nil
	})
	// Whatever was stored, the change took its seqno.
	v.replicated(seqno)
	if stored.Seqno != seqno {
		c.purged(vb, seqno) // a change a backfill cannot show
	}
	c.noteKey(v, key, seqno)
	return err
}

// ReplicateEvent is Replicate for system event e (see RecordEvent) of
// replica vbucket vb, numbered seqno on the producer, with m's CAS and
// revision (its other fields are e's): an event of a collection also
// becomes the collection's high seqno, as RecordEvent makes it on the
// producer. A collection's drop (e.Deleted and e.InCollection) does in
// the vbucket what DropCollection does on the producer: the vbucket's
// documents of the collection are removed, unnumbered, and so is its
// high seqno; and so is the system event whose id is retire if not nil
// (what the drop retires on the producer, such as the collection's
// modification). Errors are Replicate's, and ErrNoCollections.
func (c *Cache) ReplicateEvent(vb uint16, e SystemEvent, seqno uint64, m Meta, retire []byte) error {
	if !c.collections {
		return ErrNoCollections
	}
	v, st, err := c.replica(vb)
	if err != nil {
		return err
	}
	defer v.apply.Unlock()
	m.Deleted = e.Deleted
	var key [64]byte
	err = c.replicateLocked(v, vb, st, SystemKey(key[:0], e.ID), e.Value, seqno, m)
	if errors.Is(err, ErrSeqnoOrder) {
		return err
	}
	switch {
	case !e.InCollection:
	case e.Collection == 0:
		atomicMax(&v.defHigh, seqno)
	case !e.Deleted:
		v.noteCollection(e.Collection, seqno)
	default:
		v.forgetCollection(e.Collection)
	}
	if e.Deleted && e.InCollection {
		var prefix, rkey [64]byte
		p := CollectionKey(prefix[:0], e.Collection, nil)
		r := SystemKey(rkey[:0], retire)
		c.removeWhere(func(it *item) bool {
			if it.vbucket() != vb {
				return false
			}
			k := it.key()
			return len(k) >= len(p) && string(k[:len(p)]) == string(p) || retire != nil && string(k) == string(r)
		})
	}
	return err
}

// forgetCollection removes collection cid's high seqno from v.
func (v *vbucket) forgetCollection(cid uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := v.colls.Load()
	if m == nil || (*m)[cid] == nil {
		return
	}
	n := make(collSeqnos, len(*m))
	for k, x := range *m {
		if k != cid {
			n[k] = x
		}
	}
	v.colls.Store(&n)
}

// noteKey records seqno as the last change of key's collection in v
// (Config.Collections).
func (c *Cache) noteKey(v *vbucket, key []byte, seqno uint64) {
	if !c.collections {
		return
	}
	if len(key) > 0 && key[0] == 0 {
		atomicMax(&v.defHigh, seqno)
	} else if cid, n := collectionOf(key); n > 0 {
		v.noteCollection(cid, seqno)
	}
}

// AdvanceSeqno raises replica vbucket vb's high seqno to seqno, for a
// change of the producer's that changes no document here (DCP's seqno
// advanced, a system event), under the rules of Replicate's seqnos.
func (c *Cache) AdvanceSeqno(vb uint16, seqno uint64) error {
	v, _, err := c.replica(vb)
	if err != nil {
		return err
	}
	defer v.apply.Unlock()
	high := v.high.Load()
	if seqno <= high || seqno < v.snapStart || seqno > v.snapEnd {
		return &SeqnoError{VBucket: vb, Seqno: seqno, High: high, SnapStart: v.snapStart, SnapEnd: v.snapEnd}
	}
	v.replicated(seqno)
	return nil
}

// AdoptFailoverLog makes log (newest entry first, as a stream request's
// answer gives it) replica vbucket vb's failover log; the vbucket's UUID
// becomes its newest entry's. Errors: ErrBadFailoverLog, ErrNoVBucket,
// ErrNotReplica.
func (c *Cache) AdoptFailoverLog(vb uint16, log []FailoverEntry) error {
	if len(log) == 0 || len(log) > maxFailoverEntries {
		return ErrBadFailoverLog
	}
	for _, e := range log {
		if e.UUID == 0 {
			return ErrBadFailoverLog
		}
	}
	v, _, err := c.replica(vb)
	if err != nil {
		return err
	}
	defer v.apply.Unlock()
	v.mu.Lock()
	v.failover = append(v.failover[:0:0], log...)
	v.uuid.Store(log[0].UUID)
	v.mu.Unlock()
	return nil
}

// ReplicaCheckpoint returns where replication of vbucket vb resumes: the
// vbucket's UUID (its failover log's newest entry), its high seqno and
// the snapshot it is in (the high seqno alone when it has received none
// since, or it is complete).
func (c *Cache) ReplicaCheckpoint(vb uint16) (uuid, seqno, snapStart, snapEnd uint64) {
	if int(vb) >= len(c.vbs) {
		return 0, 0, 0, 0
	}
	v := &c.vbs[vb]
	v.apply.Lock()
	defer v.apply.Unlock()
	seqno = v.high.Load()
	snapStart, snapEnd = v.snapStart, v.snapEnd
	if snapEnd <= seqno || snapStart > seqno {
		snapStart, snapEnd = seqno, seqno
	}
	return v.uuid.Load(), seqno, snapStart, snapEnd
}

// Rollback rolls replica vbucket vb back to seqno at most, as its
// producer asks when their histories diverge, and returns the seqno it
// rolled back to: always 0. Nothing is kept from which to rebuild an
// earlier state, so, as kv_engine's ephemeral buckets, the vbucket is
// reset: its items and tombstones are removed, its seqnos are 0, and its
// failover log is one new entry from 0 (the producer's is adopted when
// the stream starts again). Open cursors on it lose their changes.
// Errors: ErrNoVBucket, ErrNotReplica.
func (c *Cache) Rollback(vb uint16, seqno uint64) (uint64, error) {
	v, _, err := c.replica(vb)
	if err != nil {
		return 0, err
	}
	defer v.apply.Unlock()
	c.removeWhere(func(it *item) bool { return it.vbucket() == vb })
	v.mu.Lock()
	defer v.mu.Unlock()
	v.high.Store(0)
	c.purges[vb].Store(0)
	v.defHigh.Store(0)
	v.colls.Store(nil)
	v.snapStart, v.snapEnd, v.snapDone = 0, 0, 0
	v.failover = v.failover[:0]
	v.newHistory(0)
	if v.log != nil {
		v.log.lose(0)
	}
	return 0, nil
}

// GetReplica is Get for replica vbucket vb: it returns the live item
// under key and whether there is one, counting a hit or miss and making
// the item the most recently used. An item past its expiry is not
// returned. It returns false for a vbucket that is not a replica.
func (c *Cache) GetReplica(vb uint16, key []byte) (Item, bool) { return c.getIn(vb, key, Replica) }
