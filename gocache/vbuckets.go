package gocache

import (
	"encoding/binary"
	"errors"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// The vbucket commands: vbucket states, seqnos, and observing keys and
// seqnos. gocache has no disk, so nothing is ever persisted: as
// Couchbase's ephemeral buckets, OBSERVE reports a live key as "not
// persisted" (a key with a tombstone as "logically deleted", one with
// neither as "not found"), and OBSERVE_SEQNO a persisted seqno of 0.

func (h *handler) registerVBuckets(m *memcached.ServeMux) {
	m.HandleFunc(h.setVBucket, gm.SET_VBUCKET)
	m.HandleFunc(h.getVBucket, gm.GET_VBUCKET)
	m.HandleFunc(h.delVBucket, gm.DEL_VBUCKET)
	m.HandleFunc(h.allVBSeqnos, gm.GET_ALL_VB_SEQNOS)
	m.HandleFunc(h.observe, gm.OBSERVE)
	m.HandleFunc(h.observeSeqno, gm.OBSERVE_SEQNO)
}

// setVBucket serves SET_VBUCKET: the state in one byte of extras (four,
// as older clients send it), and optionally a JSON value (the vbucket's
// topology, which gocache does not use).
func (h *handler) setVBucket(w memcached.ResponseWriter, req *gm.MCRequest) {
	if (len(req.Extras) != 1 && len(req.Extras) != 4) || len(req.Key) != 0 ||
		(len(req.Body) > 0 && req.DataType&gm.DatatypeFlagJSON == 0) {
		h.invalid(w, req)
		return
	}
	st := cache.VBState(req.Extras[0])
	if len(req.Extras) == 4 {
		v := binary.BigEndian.Uint32(req.Extras)
		st = cache.VBState(min(v, 0xff))
	}
	if st < cache.Active || st > cache.Dead {
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	var err error
	if b.cache.State(req.VBucket) == cache.Missing && st == cache.Active {
		err = b.newVBucket(req.VBucket) // with its collections' events (dcp_events.go)
	} else {
		err = b.cache.SetState(req.VBucket, st)
	}
	switch {
	case errors.Is(err, errEventsNoRoom):
		w.WriteStatus(req, gm.ENOMEM, []byte(err.Error()))
		return
	case err != nil:
		h.notMyVBucket(w, req)
		return
	}
	h.srv.vbucketChanged(b, req.VBucket, st)
	h.srv.clusterVBucketChanged(b, req.VBucket, st)
	succeeded(w, req)
}

// getVBucket serves GET_VBUCKET: the state, 4 bytes of value.
func (h *handler) getVBucket(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	st := b.cache.State(req.VBucket)
	if st == cache.Missing {
		h.notMyVBucket(w, req)
		return
	}
	var body [4]byte
	binary.BigEndian.PutUint32(body[:], uint32(st))
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: body[:]}
	w.WriteResponse(&res)
}

// delVBucket serves DEL_VBUCKET; the optional value "async=0" asks for a
// synchronous delete, which every delete here is.
func (h *handler) delVBucket(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) != 0 {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	if b.cache.State(req.VBucket) == cache.Missing {
		h.notMyVBucket(w, req)
		return
	}
	b.cache.DeleteVBucket(req.VBucket)
	succeeded(w, req)
}

// allVBSeqnos serves GET_ALL_VB_SEQNOS: for each vbucket in the state the
// extras name (0 or none: active, replica and pending), ordered by id,
// its id (2) and high seqno (8), or with a collection id after the state
// (connections that negotiated Collections), the collection's.
func (h *handler) allVBSeqnos(w memcached.ResponseWriter, req *gm.MCRequest) {
	collections := state(w).features.Has(gm.FeatureCollections)
	if len(req.Key) != 0 || len(req.Body) != 0 ||
		!(len(req.Extras) == 0 || len(req.Extras) == 4 || len(req.Extras) == 8 && collections) {
		h.invalid(w, req)
		return
	}
	var want uint32
	if len(req.Extras) >= 4 {
		want = binary.BigEndian.Uint32(req.Extras)
		if want > uint32(cache.Dead) {
			h.invalid(w, req)
			return
		}
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	cid, byCollection := uint32(0), len(req.Extras) == 8
	if byCollection {
		cid = binary.BigEndian.Uint32(req.Extras[4:])
		if !b.hasCollection(cid) {
			h.unknownCollection(w, req, b)
			return
		}
	}
	c := b.cache
	body := make([]byte, 0, 10*c.VBuckets())
	for i := range c.VBuckets() {
		vb := uint16(i)
		st := c.State(vb)
		if st == cache.Missing || (want == 0 && st == cache.Dead) || (want != 0 && uint32(st) != want) {
			continue
		}
		seqno, _ := c.HighSeqno(vb)
		if byCollection {
			seqno = c.CollectionHighSeqno(vb, cid)
		}
		body = binary.BigEndian.AppendUint16(body, vb)
		body = binary.BigEndian.AppendUint64(body, seqno)
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: body}
	w.WriteResponse(&res)
}

// Observe states, as OBSERVE reports them.
const (
	observeNotPersisted     = 0x00
	observeNotFound         = 0x80
	observeLogicallyDeleted = 0x81
)

// observe serves OBSERVE: the value lists keys as vbucket (2), key length
// (2), key; the answer repeats each with its state (1) and CAS (8). The
// answer's CAS field, which carries persistence and replication time
// hints, is 0. A key in a vbucket that is not active fails the whole
// command with NOT_MY_VBUCKET, as Couchbase's.
func (h *handler) observe(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) == 0 {
		h.invalid(w, req)
		return
	}
	if _, ok := h.frames(w, req); !ok {
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	st := state(w)
	collections := st.features.Has(gm.FeatureCollections)
	body := make([]byte, 0, len(req.Body)+9*(len(req.Body)/5))
	for in := req.Body; len(in) > 0; {
		if len(in) < 4 || len(in) < 4+int(binary.BigEndian.Uint16(in[2:])) {
			h.invalid(w, req)
			return
		}
		vb, n := binary.BigEndian.Uint16(in), int(binary.BigEndian.Uint16(in[2:]))
		wire := in[4 : 4+n]
		in = in[4+n:]
		key := append(append(st.keyBuf[:0], 0), wire...)
		if collections {
			cid, name, err := gm.SplitCollectionID(wire)
			if err != nil || len(name) == 0 || len(name) > maxKeyLen {
				h.invalid(w, req)
				return
			}
			if !b.hasCollection(cid) {
				h.unknownCollection(w, req, b)
				return
			}
			key = wire
		} else if n == 0 || n > maxKeyLen {
			h.invalid(w, req)
			return
		}
		if b.cache.State(vb) != cache.Active {
			h.notMyVBucket(w, req)
			return
		}
		state, cas := byte(observeNotFound), uint64(0)
		if it, ok := b.cache.Lookup(vb, key, true); ok {
			state, cas = observeNotPersisted, it.CAS
			if it.Deleted {
				state = observeLogicallyDeleted
			}
		}
		body = binary.BigEndian.AppendUint16(body, vb)
		body = binary.BigEndian.AppendUint16(body, uint16(n))
		body = append(body, wire...)
		body = append(body, state)
		body = binary.BigEndian.AppendUint64(body, cas)
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: body}
	w.WriteResponse(&res)
}

// observeSeqno serves OBSERVE_SEQNO: the value is a vbucket UUID (8). If
// it is the vbucket's present one, the answer is format 0, vbucket (2),
// UUID (8), persisted seqno (8, always 0 here), current seqno (8); if it
// is an older entry of the failover log, format 1 adds that UUID and the
// seqno its history ended at; an unknown UUID is KEY_ENOENT.
func (h *handler) observeSeqno(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) != 8 {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	if st := b.cache.State(req.VBucket); st == cache.Missing || st == cache.Dead {
		h.notMyVBucket(w, req)
		return
	}
	uuid := binary.BigEndian.Uint64(req.Body)
	log := b.cache.FailoverLog(req.VBucket)
	high, _ := b.cache.HighSeqno(req.VBucket)
	body := make([]byte, 0, 43)
	if len(log) == 0 {
		h.notMyVBucket(w, req)
		return
	}
	if uuid == log[0].UUID {
		body = append(body, 0)
		body = binary.BigEndian.AppendUint16(body, req.VBucket)
		body = binary.BigEndian.AppendUint64(body, uuid)
		body = binary.BigEndian.AppendUint64(body, 0)
		body = binary.BigEndian.AppendUint64(body, high)
	} else {
		i := 1
		for i < len(log) && log[i].UUID != uuid {
			i++
		}
		if i == len(log) {
			w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
			return
		}
		// The history of log[i] ended where the next newer one began.
		body = append(body, 1)
		body = binary.BigEndian.AppendUint16(body, req.VBucket)
		body = binary.BigEndian.AppendUint64(body, log[0].UUID)
		body = binary.BigEndian.AppendUint64(body, 0)
		body = binary.BigEndian.AppendUint64(body, high)
		body = binary.BigEndian.AppendUint64(body, uuid)
		body = binary.BigEndian.AppendUint64(body, log[i-1].Seqno)
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: body}
	w.WriteResponse(&res)
}
