package memcached

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// OBSERVE (0x92) and OBSERVE_SEQNO (0x91). kv_engine's
// docs/BinaryProtocol.md defines only OBSERVE's request; the answers are
// those of daemon/protocol/mcbp/observe_context.cc and
// engines/ep/src/ep_engine.cc (observe_seqno).

// ObservedStatus is the state of a key as OBSERVE reports it.
type ObservedStatus uint8

// Observed states.
const (
	ObservedNotPersisted     = ObservedStatus(0x00) // the current value is not on disk yet
	ObservedPersisted        = ObservedStatus(0x01) // the current value is on disk
	ObservedNotFound         = ObservedStatus(0x80) // no such key (or its deletion is on disk)
	ObservedLogicallyDeleted = ObservedStatus(0x81) // deleted, the deletion not on disk yet
)

// ObserveResult is the state of one key, as Observe returns it.
type ObserveResult struct {
	Status          ObservedStatus // persisted, deleted, ...
	Cas             uint64         // the CAS of the key's current value
	PersistenceTime time.Duration  // the server's estimate of the time to persist
	ReplicationTime time.Duration  // the server's estimate of the time to replicate
}

// Observe returns the persistence state and CAS of key in vbucket vb
// (OBSERVE with one key). The request value is vb(2), key length(2), key;
// the answer repeats them with state(1) and CAS(8), and the header's CAS
// carries time hints in milliseconds: persistence in the high 32 bits,
// replication in the low ones.
//
// Unlike the reference, with collections on the key is sent, as kv_engine
// expects, with its collection id (the default collection: Observe takes
// no context). A failed status is returned as the error (the response);
// an answer cut short or about another key, as an error matching
// ErrBadResponse (and io.ErrUnexpectedEOF if cut short).
func (c *Client) Observe(vb uint16, key string) (result ObserveResult, err error) {
	if err := checkKey(key); err != nil {
		return result, err
	}
	var prefix []byte
	if c.c.feat.collections.Load() {
		prefix = gomemcached.AppendCollectionID(nil, 0)
	}
	n := len(prefix) + len(key)
	body := make([]byte, 0, 4+n)
	body = binary.BigEndian.AppendUint16(body, vb)
	body = binary.BigEndian.AppendUint16(body, uint16(n))
	body = append(body, prefix...)
	body = append(body, key...)
	res, err := c.c.call(&request{opcode: gomemcached.OBSERVE, vb: vb, body: body})
	if err != nil {
		return result, err
	}
	keys, err := DecodeObserve(nil, res.Body)
	switch {
	case err != nil:
		return result, err
	case len(keys) == 0:
		return result, shortBody(gomemcached.OBSERVE, "no key in the answer")
	case keys[0].VB != vb || string(keys[0].Key) != string(body[4:]):
		return result, badBody(gomemcached.OBSERVE, "answer about another vbucket or key")
	}
	result.Status = keys[0].Status
	result.Cas = keys[0].Cas
	result.PersistenceTime, result.ReplicationTime = ObserveTimes(res)
	return result, nil
}

// CheckPersistence reports, from the state Observe returned, whether the
// value stored with CAS cas (or its deletion, when deletion is set) is on
// disk, and whether it was overwritten since: a deletion is persisted when
// the key is not found; otherwise a different CAS means overwritten, and
// the state tells persisted.
func (result ObserveResult) CheckPersistence(cas uint64, deletion bool) (persisted bool, overwritten bool) {
	switch {
	case deletion && result.Status == ObservedNotFound:
		return true, false
	case result.Cas != cas:
		return false, true
	}
	return result.Status == ObservedPersisted, false
}

// ObservedKey is one key of an OBSERVE answer.
type ObservedKey struct {
	VB     uint16
	Key    []byte // as sent: with its collection id if collections are on
	Status ObservedStatus
	Cas    uint64
}

// DecodeObserve appends to dst the keys of an OBSERVE answer's value:
// vbucket(2), key length(2), key, state(1), CAS(8), repeated. The keys
// slice body.
func DecodeObserve(dst []ObservedKey, body []byte) ([]ObservedKey, error) {
	for b := body; len(b) > 0; {
		if len(b) < 4 {
			return dst, shortBody(gomemcached.OBSERVE, "entry header cut short")
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if len(b) < 4+n+9 {
			return dst, shortBody(gomemcached.OBSERVE, "entry cut short")
		}
		dst = append(dst, ObservedKey{
			VB:     binary.BigEndian.Uint16(b),
			Key:    b[4 : 4+n : 4+n],
			Status: ObservedStatus(b[4+n]),
			Cas:    binary.BigEndian.Uint64(b[5+n:]),
		})
		b = b[4+n+9:]
	}
	return dst, nil
}

// ObserveTimes returns the time hints an OBSERVE answer carries in its CAS
// field: persistence in the high 32 bits, replication in the low 32, in
// milliseconds (current servers send only the first).
func ObserveTimes(res *gomemcached.MCResponse) (persistence, replication time.Duration) {
	return time.Duration(res.Cas>>32) * time.Millisecond, time.Duration(res.Cas&math.MaxUint32) * time.Millisecond
}

// ObserveSeqResult is the state of a vbucket, as ObserveSeq returns it.
type ObserveSeqResult struct {
	Failover           uint8  // 1 if the vbucket UUID asked about is no longer current (hard failover)
	VbId               uint16 // the vbucket
	Vbuuid             uint64 // its current UUID
	LastPersistedSeqNo uint64 // the last seqno on disk
	CurrentSeqNo       uint64 // the vbucket's high seqno
	OldVbuuid          uint64 // after a failover: the UUID asked about
	LastSeqNo          uint64 // after a failover: the last seqno of OldVbuuid's branch
}

// ObserveSeq returns the seqnos of vbucket vb, whose UUID the caller knew
// as vbuuid (OBSERVE_SEQNO; the value is vbuuid(8)). A UUID the vbucket
// never had fails with KEY_ENOENT. A failed status is returned as the
// error (the response).
func (c *Client) ObserveSeq(vb uint16, vbuuid uint64) (result *ObserveSeqResult, err error) {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], vbuuid)
	res, err := c.c.call(&request{opcode: gomemcached.OBSERVE_SEQNO, vb: vb, body: v[:]})
	if err != nil {
		return nil, err
	}
	return DecodeObserveSeq(res.Body)
}

// DecodeObserveSeq decodes the value of an OBSERVE_SEQNO answer:
// format(1), vbucket(2), vbucket UUID(8), persisted seqno(8), current
// seqno(8), and with format 1 (the UUID asked about is an older one) that
// old UUID(8) and the last seqno of its branch(8).
func DecodeObserveSeq(body []byte) (*ObserveSeqResult, error) {
	if len(body) < 27 {
		return nil, shortBody(gomemcached.OBSERVE_SEQNO, "value shorter than 27 bytes")
	}
	r := &ObserveSeqResult{
		Failover:           body[0],
		VbId:               binary.BigEndian.Uint16(body[1:3]),
		Vbuuid:             binary.BigEndian.Uint64(body[3:11]),
		LastPersistedSeqNo: binary.BigEndian.Uint64(body[11:19]),
		CurrentSeqNo:       binary.BigEndian.Uint64(body[19:27]),
	}
	if r.Failover == 1 {
		if len(body) < 43 {
			return nil, shortBody(gomemcached.OBSERVE_SEQNO, "failover value shorter than 43 bytes")
		}
		r.OldVbuuid = binary.BigEndian.Uint64(body[27:35])
		r.LastSeqNo = binary.BigEndian.Uint64(body[35:43])
	}
	return r, nil
}
