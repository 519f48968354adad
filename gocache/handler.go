package gocache

import (
	"encoding/binary"
	"errors"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// maxKeyLen is memcached's key length limit.
const maxKeyLen = 250

// Error values, as memcached 1.6 words them.
var (
	msgNotFound   = []byte("Not found")
	msgExists     = []byte("Data exists for key.")
	msgTooLarge   = []byte("Too large.")
	msgInvalid    = []byte("Invalid arguments")
	msgNotStored  = []byte("Not stored.")
	msgNonNumeric = []byte("Non-numeric server-side value for incr or decr")
	msgNoMemory   = []byte("Out of memory")
	// msgNoMemoryItem is memcached's word for a store it has no memory
	// for.
	msgNoMemoryItem = []byte("Out of memory allocating item")
	msgAuthFailure  = []byte("Auth failure.")
)

// handler serves memcached's binary commands from the connection's bucket.
type handler struct {
	srv *Server
	mux *memcached.ServeMux
}

func newHandler(s *Server) *handler {
	h := &handler{srv: s, mux: memcached.NewServeMux()}
	m := h.mux
	m.HandleFunc(h.get, gm.GET, gm.GETQ, gm.GETK, gm.GETKQ)
	m.HandleFunc(h.getReplica, gm.GET_REPLICA)
	m.HandleFunc(h.store, gm.SET, gm.SETQ, gm.ADD, gm.ADDQ, gm.REPLACE, gm.REPLACEQ,
		gm.APPEND, gm.APPENDQ, gm.PREPEND, gm.PREPENDQ)
	m.HandleFunc(h.delete, gm.DELETE, gm.DELETEQ)
	m.HandleFunc(h.delta, gm.INCREMENT, gm.INCREMENTQ, gm.DECREMENT, gm.DECREMENTQ)
	m.HandleFunc(h.touch, gm.TOUCH, gm.GAT, gm.GATQ, gm.GATK, gm.GATKQ)
	m.HandleFunc(h.flush, gm.FLUSH, gm.FLUSHQ)
	m.HandleFunc(h.noop, gm.NOOP)
	m.HandleFunc(h.version, gm.VERSION)
	m.HandleFunc(h.quit, gm.QUIT, gm.QUITQ)
	m.HandleFunc(h.stat, gm.STAT)
	m.HandleFunc(h.verbosity, gm.VERBOSITY)
	m.HandleFunc(h.hello, gm.HELLO)
	m.HandleFunc(h.selectBucket, gm.SELECT_BUCKET)
	m.HandleFunc(h.errorMap, gm.GET_ERROR_MAP)
	m.HandleFunc(h.getClusterConfig, gm.GET_CLUSTER_CONFIG)
	m.HandleFunc(h.setClusterConfig, setClusterConfig)
	m.HandleFunc(h.getManifest, gm.GET_COLLECTIONS_MANIFEST)
	m.HandleFunc(h.setManifestCmd, gm.COLLECTIONS_SET_MANIFEST)
	m.HandleFunc(h.getID, gm.COLLECTIONS_GET_CID, gm.COLLECTIONS_GET_SCOPE_ID)
	h.registerVBuckets(m)
	h.registerMeta(m)
	h.registerSubdoc(m)
	h.registerRangeScan(m)
	h.registerDCP(m)
	h.registerDCPRefused(m)
	h.registerTap(m)
	if s.cfg.Users != nil {
		m.HandleFunc(h.listMechs, gm.SASL_LIST_MECHS)
		m.HandleFunc(h.saslAuth, gm.SASL_AUTH)
		m.HandleFunc(h.saslStep, gm.SASL_STEP)
	}
	return h
}

// ServeMC checks what applies to every request (key length,
// authentication), then dispatches.
func (h *handler) ServeMC(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Key) > maxKeyLen+gm.MaxCollectionIDLen || len(req.Key) > maxKeyLen && !state(w).features.Has(gm.FeatureCollections) {
		h.invalid(w, req)
		return
	}
	if h.srv.cfg.RequireAuth && state(w).user == nil && !beforeAuth(req.Opcode) {
		w.WriteStatus(req, gm.AUTH_ERROR, msgAuthFailure)
		return
	}
	h.mux.ServeMC(w, req)
}

// invalid answers a malformed request as memcached does: EINVAL, then the
// connection is closed.
func (h *handler) invalid(w memcached.ResponseWriter, req *gm.MCRequest) {
	w.WriteStatus(req, gm.EINVAL, msgInvalid)
	w.Close()
}

// shape reports whether req has exactly extlen bytes of extras, a key (or
// none) and a value (or none), as each command requires.
func shape(req *gm.MCRequest, extlen int, key, value bool) bool {
	return len(req.Extras) == extlen && (len(req.Key) > 0) == key && (value || len(req.Body) == 0)
}

// fail answers a store error with memcached's status and message.
func (h *handler) fail(w memcached.ResponseWriter, req *gm.MCRequest, err error) {
	switch {
	case errors.Is(err, cache.ErrNotFound):
		w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
	case errors.Is(err, cache.ErrExists):
		w.WriteStatus(req, gm.KEY_EEXISTS, msgExists)
	case errors.Is(err, cache.ErrNotStored):
		w.WriteStatus(req, gm.NOT_STORED, msgNotStored)
	case errors.Is(err, cache.ErrTooLarge):
		w.WriteStatus(req, gm.E2BIG, msgTooLarge)
	case errors.Is(err, cache.ErrNoMemory):
		w.WriteStatus(req, gm.ENOMEM, msgNoMemory)
	case errors.Is(err, cache.ErrNonNumeric):
		w.WriteStatus(req, gm.DELTA_BADVAL, msgNonNumeric)
	default:
		w.WriteStatus(req, gm.EINTERNAL, []byte(err.Error()))
	}
}

// targetNoValue is docTarget for a command that carries no value and
// must have extlen bytes of extras and a key (or none): one that does not
// is answered EINVAL.
func (h *handler) targetNoValue(w memcached.ResponseWriter, req *gm.MCRequest, extlen int, key bool) (doc, bool) {
	if !shape(req, extlen, key, false) {
		h.invalid(w, req)
		return doc{}, false
	}
	return h.docTarget(w, req)
}

func (h *handler) get(w memcached.ResponseWriter, req *gm.MCRequest) {
	if h.srv.cfg.ReplicaReads && h.getFromReplica(w, req) {
		return
	}
	d, ok := h.targetNoValue(w, req, 0, true)
	if !ok {
		return
	}
	it, ok := d.b.cache.Get(d.vb, d.key)
	h.answerGet(w, req, &it, ok)
}

// answerGet answers a GET, GETQ, GETK or GETKQ with the item found, or
// with its miss (nothing for the quiet ones).
func (h *handler) answerGet(w memcached.ResponseWriter, req *gm.MCRequest, it *cache.Item, found bool) {
	withKey := req.Opcode == gm.GETK || req.Opcode == gm.GETKQ
	switch {
	case found:
		h.writeItem(w, req, it, withKey, true)
	case req.Opcode.IsQuiet():
	case withKey:
		res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gm.KEY_ENOENT, Key: req.Key}
		w.WriteResponse(&res)
	default:
		w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
	}
}

// writeItem answers with an item: flags in the extras, the key if asked,
// the value if asked.
func (h *handler) writeItem(w memcached.ResponseWriter, req *gm.MCRequest, it *cache.Item, withKey, withValue bool) {
	var flags [4]byte
	binary.BigEndian.PutUint32(flags[:], it.Flags)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: it.CAS, Extras: flags[:]}
	if withKey {
		res.Key = req.Key
	}
	if withValue {
		res.Body = docBody(it)
		res.DataType = sentDatatype(state(w), it.Datatype)
	}
	w.WriteResponse(&res)
}

// mutated answers a successful mutation: cas and, for clients that
// negotiated MutationSeqno, the mutation token (vbucket UUID and seqno);
// quiet commands get no answer.
func mutated(w memcached.ResponseWriter, req *gm.MCRequest, m cache.Mutation, cas uint64, body []byte) {
	if req.Opcode.IsQuiet() {
		return
	}
	var token [16]byte
	var extras []byte
	if state(w).features.Has(gm.FeatureMutationSeqno) {
		binary.BigEndian.PutUint64(token[:8], m.VBUUID)
		binary.BigEndian.PutUint64(token[8:], m.Seqno)
		extras = token[:]
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: cas, Extras: extras, Body: body}
	w.WriteResponse(&res)
}

// succeeded answers a command that succeeded and has nothing to say (a
// selected bucket, a flush, a NOOP): a bare SUCCESS, nothing for quiet
// commands.
func succeeded(w memcached.ResponseWriter, req *gm.MCRequest) {
	if req.Opcode.IsQuiet() {
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
	w.WriteResponse(&res)
}

// storeModes maps the storing commands to the store's modes. SET, ADD and
// REPLACE carry flags and expiry (8 bytes of extras); APPEND and PREPEND
// none, and keep the present item's.
var storeModes = map[gm.CommandCode]cache.Mode{
	gm.SET: cache.Set, gm.SETQ: cache.Set, gm.ADD: cache.Add, gm.ADDQ: cache.Add,
	gm.REPLACE: cache.Replace, gm.REPLACEQ: cache.Replace,
	gm.APPEND: cache.Append, gm.APPENDQ: cache.Append, gm.PREPEND: cache.Prepend, gm.PREPENDQ: cache.Prepend,
}

func (h *handler) store(w memcached.ResponseWriter, req *gm.MCRequest) {
	mode := storeModes[req.Opcode]
	concat := mode == cache.Append || mode == cache.Prepend
	extlen := 8
	if concat {
		extlen = 0
	}
	if !shape(req, extlen, true, true) {
		h.invalid(w, req)
		return
	}
	value, datatype, ok := storedValue(state(w), req)
	if !ok || concat && req.DataType&gm.DatatypeFlagXattrs != 0 { // kv_engine appends no xattrs
		h.invalid(w, req)
		return
	}
	d, ok := h.docTarget(w, req)
	if !ok {
		return
	}
	wr := cache.Write{Value: value, CAS: req.Cas}
	if !concat {
		wr.Flags = binary.BigEndian.Uint32(req.Extras)
		wr.Expiry = d.expiry(binary.BigEndian.Uint32(req.Extras[4:]))
		wr.Datatype, wr.KeepExpiry, wr.KeepXattrs = datatype, d.keepExpiry, true
	}
	m, err := d.b.cache.Store(d.vb, mode, d.key, wr)
	switch {
	case err == nil:
	case errors.Is(err, cache.ErrNoMemory):
		w.WriteStatus(req, gm.ENOMEM, msgNoMemoryItem)
		return
	default:
		h.fail(w, req, err)
		return
	}
	mutated(w, req, m, m.CAS, nil)
}

func (h *handler) delete(w memcached.ResponseWriter, req *gm.MCRequest) {
	d, ok := h.targetNoValue(w, req, 0, true)
	if !ok {
		return
	}
	m, err := d.b.cache.Delete(d.vb, d.key, req.Cas)
	if err != nil {
		h.fail(w, req, err)
		return
	}
	mutated(w, req, m, 0, nil) // memcached answers a deletion with no CAS
}

func (h *handler) delta(w memcached.ResponseWriter, req *gm.MCRequest) {
	d, ok := h.targetNoValue(w, req, 20, true)
	if !ok {
		return
	}
	delta := binary.BigEndian.Uint64(req.Extras)
	initial := binary.BigEndian.Uint64(req.Extras[8:])
	exp := binary.BigEndian.Uint32(req.Extras[16:])
	if exp != cache.NoCreate {
		exp = d.expiry(exp)
	}
	var value uint64
	var m cache.Mutation
	var err error
	if req.Opcode == gm.INCREMENT || req.Opcode == gm.INCREMENTQ {
		value, m, err = d.b.cache.Incr(d.vb, d.key, delta, initial, exp, req.Cas)
	} else {
		value, m, err = d.b.cache.Decr(d.vb, d.key, delta, initial, exp, req.Cas)
	}
	if err != nil {
		h.fail(w, req, err)
		return
	}
	var body [8]byte
	binary.BigEndian.PutUint64(body[:], value)
	mutated(w, req, m, m.CAS, body[:])
}

// touch serves TOUCH and the get-and-touch family. TOUCH answers with the
// flags only; GAT and GATQ add the value, GATK and GATKQ the key too.
func (h *handler) touch(w memcached.ResponseWriter, req *gm.MCRequest) {
	d, ok := h.targetNoValue(w, req, 4, true)
	if !ok {
		return
	}
	h.srv.cmdTouch.Add(1)
	withKey := req.Opcode == gm.GATK || req.Opcode == gm.GATKQ
	it, err := d.b.cache.Touch(d.vb, d.key, d.expiry(binary.BigEndian.Uint32(req.Extras)), req.Cas)
	if err != nil {
		switch {
		case errors.Is(err, cache.ErrNotFound) && req.Opcode.IsQuiet():
		case errors.Is(err, cache.ErrNotFound) && withKey:
			res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gm.KEY_ENOENT, Key: req.Key}
			w.WriteResponse(&res)
		default:
			h.fail(w, req, err)
		}
		return
	}
	h.writeItem(w, req, &it, withKey, req.Opcode != gm.TOUCH)
}

func (h *handler) flush(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Key) != 0 || len(req.Body) != 0 || (len(req.Extras) != 0 && len(req.Extras) != 4) {
		h.invalid(w, req)
		return
	}
	b := h.bucketFor(w, req)
	if b == nil {
		return
	}
	var delay uint32
	if len(req.Extras) == 4 {
		delay = binary.BigEndian.Uint32(req.Extras)
	}
	h.srv.cmdFlush.Add(1)
	b.cache.Flush(delay) // the collections' system events stay, at once or delayed (cache/sysevent.go)
	succeeded(w, req)
}

func (h *handler) noop(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(w, req)
		return
	}
	succeeded(w, req)
}

func (h *handler) version(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(w, req)
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: h.srv.version}
	w.WriteResponse(&res)
}

func (h *handler) quit(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(w, req)
		return
	}
	succeeded(w, req)
	w.Close()
}

// verbosity accepts a level and answers SUCCESS. (memcached 1.6 treats the
// opcode as unknown, and leaves it unanswered when it has extras.)
func (h *handler) verbosity(w memcached.ResponseWriter, req *gm.MCRequest) {
	if !shape(req, 4, false, false) {
		h.invalid(w, req)
		return
	}
	h.srv.verbosity.Store(binary.BigEndian.Uint32(req.Extras))
	succeeded(w, req)
}

// errorMap serves GET_ERROR_MAP: the value is the highest version the
// client reads.
func (h *handler) errorMap(w memcached.ResponseWriter, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) != 2 {
		h.invalid(w, req)
		return
	}
	doc, _, ok := errorMap(binary.BigEndian.Uint16(req.Body))
	if !ok { // version 0: kv_engine has no such map
		w.WriteStatus(req, gm.KEY_ENOENT, nil)
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: doc}
	if state(w).features.Has(gm.FeatureJSON) {
		res.DataType = gm.DatatypeFlagJSON
	}
	w.WriteResponse(&res)
}
