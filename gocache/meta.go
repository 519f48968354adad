package gocache

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/golang/snappy"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/internal/subdoc"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// The metadata commands of Couchbase: GET_META, the *_WITH_META stores a
// replicator (XDCR) uses, with conflict resolution by revision, and
// GET_RANDOM_KEY.

func (h *handler) registerMeta(m *memcached.ServeMux) {
	m.HandleFunc(h.getMeta, gm.GET_META, gm.GETQ_META)
	m.HandleFunc(h.withMeta, gm.SET_WITH_META, gm.SETQ_WITH_META, gm.ADD_WITH_META, gm.ADDQ_WITH_META,
		gm.DELETE_WITH_META, gm.DELETEQ_WITH_META)
	m.HandleFunc(h.randomKey, gm.GET_RANDOM_KEY)
}

// expirySeconds is an item's expiry as Couchbase's metadata gives it:
// unix seconds, 0 for never.
func expirySeconds(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	return uint32(max(t.Unix(), 1))
}

// getMeta serves GET_META and GETQ_META: one optional byte of extras, 2
// asking for version 2 of the answer. The answer's extras are deleted
// (4), flags (4), expiry (4, unix seconds; for a deleted document the
// time of its deletion), revision (8) and, in version 2, the datatype
// (1); its CAS is the item's. A deleted document is answered while its
// tombstone lasts. GETQ_META says nothing of a missing key.
func (h *handler) getMeta(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) > 1 || len(req.Body) != 0 || len(req.Key) == 0 {
		h.invalid(w, req)
		return
	}
	d, ok := h.docTarget(w, req)
	if !ok {
		return
	}
	it, ok := d.b.cache.Lookup(d.vb, d.key, true)
	if !ok {
		if req.Opcode != gm.GETQ_META {
			w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
		}
		return
	}
	var ex [21]byte
	exp := it.Expires
	if it.Deleted {
		binary.BigEndian.PutUint32(ex[0:], 1)
		exp = exp.Add(-h.srv.cfg.Cache.TombstoneTTL)
	}
	binary.BigEndian.PutUint32(ex[4:], it.Flags)
	binary.BigEndian.PutUint32(ex[8:], expirySeconds(exp))
	binary.BigEndian.PutUint64(ex[12:], it.Rev)
	n := 20
	if len(req.Extras) == 1 && req.Extras[0] == 2 {
		ex[20] = it.Datatype
		n = 21
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: it.CAS, Extras: ex[:n]}
	w.WriteResponse(&res)
}

// The options of the *_WITH_META commands.
const (
	metaForce         = 0x01 // skip conflict resolution (as 0x08)
	metaForceAccept   = 0x02 // last-write-wins buckets only: refused here
	metaRegenerateCAS = 0x04 // with 0x01 or 0x08 only
	metaSkipConflicts = 0x08
	metaIsExpiration  = 0x10 // a deletion that is an expiry
)

// withMeta serves SET_WITH_META, ADD_WITH_META and DELETE_WITH_META (and
// their quiet forms). The extras are flags (4), expiry (4, unix seconds),
// revision (8), CAS (8), then optionally options (4) and the length of an
// extended metadata section (2) that ends the value; the header's CAS, if
// not 0, must be the present item's. The stored item keeps the given CAS
// and revision. gocache's buckets resolve conflicts by revision, so the
// force-accept option (for last-write-wins buckets) is EINVAL, as is
// regenerating the CAS without skipping conflict resolution.
func (h *handler) withMeta(w memcached.ResponseWriter, req *gm.MCRequest) {
	n := len(req.Extras)
	if (n != 24 && n != 26 && n != 28 && n != 30) || len(req.Key) == 0 {
		h.invalid(w, req)
		return
	}
	ex := req.Extras
	var opts uint32
	if n >= 28 {
		opts = binary.BigEndian.Uint32(ex[24:])
	}
	// The codec splits the extended metadata, nmeta bytes, off the end of
	// the value (ExtMeta); an nmeta past the value fails the decode.
	value := req.Body
	if (n == 26 || n == 30) && len(req.ExtMeta) != int(binary.BigEndian.Uint16(ex[n-2:])) {
		h.invalid(w, req)
		return
	}
	deletion := req.Opcode == gm.DELETE_WITH_META || req.Opcode == gm.DELETEQ_WITH_META
	skip := opts&(metaForce|metaSkipConflicts) != 0
	if opts&metaForceAccept != 0 || opts&metaRegenerateCAS != 0 && !skip || opts&metaIsExpiration != 0 && !deletion ||
		opts&^uint32(metaForce|metaForceAccept|metaRegenerateCAS|metaSkipConflicts|metaIsExpiration) != 0 {
		w.WriteStatus(req, gm.EINVAL, msgInvalid)
		return
	}
	st := state(w)
	datatype := req.DataType
	if datatype&gm.DatatypeFlagXattrs != 0 && !st.features.Has(gm.FeatureXattr) ||
		datatype&gm.DatatypeFlagCompressed != 0 && !st.features.Has(gm.FeatureSnappy) ||
		datatype&gm.DatatypeFlagJSON != 0 && !st.features.Has(gm.FeatureJSON) {
		h.invalid(w, req)
		return
	}
	if datatype&gm.DatatypeFlagCompressed != 0 {
		dl, err := snappy.DecodedLen(value)
		if err != nil || dl > gm.MaxBodyLen {
			h.invalid(w, req)
			return
		}
		if value, err = snappy.Decode(nil, value); err != nil {
			h.invalid(w, req)
			return
		}
		datatype &^= gm.DatatypeFlagCompressed
	}
	if deletion {
		// As kv_engine (allow_sanitize_value_in_deletion): a deleted
		// document keeps its xattrs, nothing of a body.
		full := value
		value, datatype = nil, datatype&gm.DatatypeFlagXattrs
		if datatype != 0 {
			blob, _, err := subdoc.Split(full)
			if err != nil || blob.Check() != nil {
				h.invalid(w, req)
				return
			}
			value = blob
		}
	}
	d, ok := h.docTarget(w, req)
	if !ok {
		return
	}
	meta := cache.Meta{
		Flags:    binary.BigEndian.Uint32(ex[0:]),
		Rev:      binary.BigEndian.Uint64(ex[8:]),
		CAS:      binary.BigEndian.Uint64(ex[16:]),
		Datatype: datatype,
		Deleted:  deletion,
	}
	if e := binary.BigEndian.Uint32(ex[4:]); e != 0 && !deletion {
		meta.Expires = time.Unix(int64(e), 0)
	}
	opt := cache.MetaOptions{
		Add:           req.Opcode == gm.ADD_WITH_META || req.Opcode == gm.ADDQ_WITH_META,
		Force:         skip,
		RegenerateCAS: opts&metaRegenerateCAS != 0,
		CAS:           req.Cas,
	}
	m, err := d.b.cache.StoreMeta(d.vb, d.key, value, meta, opt)
	switch {
	case err == nil:
	case errors.Is(err, cache.ErrInvalidCAS):
		h.extended(w, req, gm.CAS_VALUE_INVALID)
		return
	case errors.Is(err, cache.ErrNoMemory):
		w.WriteStatus(req, gm.ENOMEM, msgNoMemoryItem)
		return
	default:
		h.fail(w, req, err)
		return
	}
	if quietMeta(req.Opcode) {
		return
	}
	mutated(w, req, m, m.CAS, nil)
}

// quietMeta reports whether a *_WITH_META opcode is a quiet one, answered
// only on failure.
func quietMeta(op gm.CommandCode) bool {
	return op == gm.SETQ_WITH_META || op == gm.ADDQ_WITH_META || op == gm.DELETEQ_WITH_META
}

// randomKey serves GET_RANDOM_KEY: a live key of an active vbucket, picked
// at random, answered as GETK answers it (flags, key, value, CAS). A
// connection that negotiated Collections names the collection in 4 bytes
// of extras (none: the default one), and gets the key with its collection
// id. An empty bucket or collection is KEY_ENOENT.
func (h *handler) randomKey(w memcached.ResponseWriter, req *gm.MCRequest) {
	st := state(w)
	collections := st.features.Has(gm.FeatureCollections)
	if len(req.Key) != 0 || len(req.Body) != 0 || !(len(req.Extras) == 0 || len(req.Extras) == 4 && collections) {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	var cid uint32
	if len(req.Extras) == 4 {
		cid = binary.BigEndian.Uint32(req.Extras)
	}
	if !b.hasCollection(cid) {
		h.unknownCollection(w, req, b)
		return
	}
	key, it, ok := b.cache.RandomKey(cid)
	if !ok {
		w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
		return
	}
	if !collections {
		_, key, _ = cache.SplitKey(key)
	}
	var flags [4]byte
	binary.BigEndian.PutUint32(flags[:], it.Flags)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: it.CAS, Extras: flags[:], Key: key,
		Body: docBody(&it), DataType: sentDatatype(st, it.Datatype)}
	w.WriteResponse(&res)
}
