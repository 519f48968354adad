package gocache

import (
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// doc is what a key command is for, once resolved: bucket, vbucket and the
// key as the store holds it.
type doc struct {
	b  *bucket
	vb uint16
	// key is the key as the store holds it: its collection id, then name.
	key []byte
	// keepExpiry: the request asked to keep the item's expiry.
	keepExpiry bool
	// maxTTL is the collection's maximum time to live in seconds, 0 for
	// none.
	maxTTL uint32
}

// expiry applies the collection's maximum time to live to a request's
// expiry, as Couchbase does: no expiry, or one further away, becomes the
// maximum. (An absolute expiry is compared as a time from now.)
func (d *doc) expiry(exp uint32) uint32 {
	if d.maxTTL == 0 {
		return exp
	}
	rel := exp
	if exp > 30*24*3600 {
		now := uint32(time.Now().Unix())
		if exp <= now {
			return exp // in the past: it expires now
		}
		rel = exp - now
	}
	if exp == 0 || rel > d.maxTTL {
		if d.maxTTL > 30*24*3600 {
			return uint32(time.Now().Unix()) + d.maxTTL
		}
		return d.maxTTL
	}
	return exp
}

// docTarget resolves the document a key command is for: its framing
// extras pass (see frames), its bucket, its vbucket is active here and
// its collection exists. It answers and returns false if the command goes
// no further: NOT_MY_VBUCKET, UNKNOWN_COLLECTION (with the manifest uid),
// EINVAL for a collection id that is not canonical LEB128 or a key that
// is nothing but one.
func (h *handler) docTarget(w memcached.ResponseWriter, req *gm.MCRequest) (d doc, ok bool) {
	return h.docTargetIn(w, req, cache.Active)
}

// docTargetIn is docTarget for a vbucket in state vst (GET_REPLICA's
// are replicas).
func (h *handler) docTargetIn(w memcached.ResponseWriter, req *gm.MCRequest, vst cache.VBState) (d doc, ok bool) {
	if d.keepExpiry, ok = h.frames(w, req); !ok {
		return d, false
	}
	if d.b = h.bucketFor(w, req); d.b == nil {
		return d, false
	}
	if d.vb, ok = h.vbIn(w, req, d.b, vst); !ok {
		return d, false
	}
	st := state(w)
	if !st.features.Has(gm.FeatureCollections) {
		d.key = append(append(st.keyBuf[:0], 0), req.Key...)
		return d, true
	}
	cid, name, err := gm.SplitCollectionID(req.Key)
	if err != nil || len(name) == 0 && len(req.Key) > 0 || len(name) > maxKeyLen {
		h.invalid(w, req)
		return d, false
	}
	c := d.b.manifest.Load().byID[cid]
	if c == nil {
		h.unknownCollection(w, req, d.b)
		return d, false
	}
	d.key, d.maxTTL = req.Key, c.maxTTL
	return d, true
}

// vbActive returns the request's vbucket if it is active in b, and
// otherwise answers NOT_MY_VBUCKET and returns false. memcached ignores
// the header's vbucket field, so for a connection that did not negotiate
// XERROR (no Couchbase client leaves it out, no memcached client asks for
// it) an id past the bucket's count folds onto it, as before vbuckets had
// states.
func (h *handler) vbActive(w memcached.ResponseWriter, req *gm.MCRequest, b *bucket) (uint16, bool) {
	return h.vbIn(w, req, b, cache.Active)
}

// vbIn is vbActive for a vbucket in state vst.
func (h *handler) vbIn(w memcached.ResponseWriter, req *gm.MCRequest, b *bucket, vst cache.VBState) (uint16, bool) {
	vb := req.VBucket
	if n := b.cache.VBuckets(); int(vb) >= n && !state(w).features.Has(gm.FeatureXError) {
		vb = uint16(int(vb) % n)
	}
	if b.cache.State(vb) != vst {
		h.notMyVBucket(w, req)
		return 0, false
	}
	return vb, true
}

// notMyVBucket answers NOT_MY_VBUCKET, with the bucket's cluster config
// as its value when there is one (cluster.go).
func (h *handler) notMyVBucket(w memcached.ResponseWriter, req *gm.MCRequest) {
	body, datatype := h.notMyVBucketConfig(w)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gm.NOT_MY_VBUCKET, Body: body, DataType: datatype}
	w.WriteResponse(&res)
}
