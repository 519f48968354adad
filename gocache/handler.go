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
	msgUnknown      = []byte("Unknown command")
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
	if s.users != nil {
		m.HandleFunc(h.listMechs, gm.SASL_LIST_MECHS)
		m.HandleFunc(h.saslAuth, gm.SASL_AUTH)
		m.HandleFunc(h.saslStep, gm.SASL_STEP)
	}
	m.NotFound = memcached.HandlerFunc(h.unknown)
	return h
}

// ServeMC checks what applies to every request (key length,
// authentication), then dispatches.
func (h *handler) ServeMC(c *memcached.Conn, req *gm.MCRequest) {
	if len(req.Key) > maxKeyLen {
		h.invalid(c, req)
		return
	}
	if h.srv.requireAuth && state(c).user == nil && !beforeAuth(req.Opcode) {
		c.WriteStatus(req, gm.AUTH_ERROR, msgAuthFailure)
		return
	}
	h.mux.ServeMC(c, req)
}

// invalid answers a malformed request as memcached does: EINVAL, then the
// connection is closed.
func (h *handler) invalid(c *memcached.Conn, req *gm.MCRequest) {
	c.WriteStatus(req, gm.EINVAL, msgInvalid)
	c.Close()
}

func (h *handler) unknown(c *memcached.Conn, req *gm.MCRequest) {
	c.WriteStatus(req, gm.UNKNOWN_COMMAND, msgUnknown)
}

// shape reports whether req has exactly extlen bytes of extras, a key (or
// none) and a value (or none), as each command requires.
func shape(req *gm.MCRequest, extlen int, key, value bool) bool {
	return len(req.Extras) == extlen && (len(req.Key) > 0) == key && (value || len(req.Body) == 0)
}

// fail answers a store error with memcached's status and message.
func (h *handler) fail(c *memcached.Conn, req *gm.MCRequest, err error) {
	switch {
	case errors.Is(err, cache.ErrNotFound):
		c.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
	case errors.Is(err, cache.ErrExists):
		c.WriteStatus(req, gm.KEY_EEXISTS, msgExists)
	case errors.Is(err, cache.ErrNotStored):
		c.WriteStatus(req, gm.NOT_STORED, msgNotStored)
	case errors.Is(err, cache.ErrTooLarge):
		c.WriteStatus(req, gm.E2BIG, msgTooLarge)
	case errors.Is(err, cache.ErrNoMemory):
		c.WriteStatus(req, gm.ENOMEM, msgNoMemory)
	case errors.Is(err, cache.ErrNonNumeric):
		c.WriteStatus(req, gm.DELTA_BADVAL, msgNonNumeric)
	default:
		c.WriteStatus(req, gm.EINTERNAL, []byte(err.Error()))
	}
}

// start does what every data command does first: framing extras, then the
// connection's bucket. It returns nil, having answered, if the request
// goes no further.
func (h *handler) start(c *memcached.Conn, req *gm.MCRequest) (*bucket, bool) {
	keep, ok := h.frames(c, req)
	if !ok {
		return nil, false
	}
	b := h.bucketFor(c, req)
	return b, keep
}

// begin is start for a request that must have extlen bytes of extras, a
// key or none, and no value: one that does not is answered EINVAL.
func (h *handler) begin(c *memcached.Conn, req *gm.MCRequest, extlen int, key bool) *bucket {
	if !shape(req, extlen, key, false) {
		h.invalid(c, req)
		return nil
	}
	b, _ := h.start(c, req)
	return b
}

func (h *handler) get(c *memcached.Conn, req *gm.MCRequest) {
	b := h.begin(c, req, 0, true)
	if b == nil {
		return
	}
	withKey := req.Opcode == gm.GETK || req.Opcode == gm.GETKQ
	it, ok := b.cache.Get(req.Key)
	if !ok {
		switch {
		case req.Opcode.IsQuiet():
		case withKey:
			res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gm.KEY_ENOENT, Key: req.Key}
			c.WriteResponse(&res)
		default:
			c.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
		}
		return
	}
	h.writeItem(c, req, &it, withKey, true)
}

// writeItem answers with an item: flags in the extras, the key if asked,
// the value if asked.
func (h *handler) writeItem(c *memcached.Conn, req *gm.MCRequest, it *cache.Item, withKey, withValue bool) {
	var flags [4]byte
	binary.BigEndian.PutUint32(flags[:], it.Flags)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: it.CAS, Extras: flags[:]}
	if withKey {
		res.Key = req.Key
	}
	if withValue {
		res.Body = it.Value
		res.DataType = sentDatatype(c, it.Datatype)
	}
	c.WriteResponse(&res)
}

// mutated answers a successful mutation: its CAS and, for clients that
// negotiated MutationSeqno, the mutation token; quiet commands get no
// answer.
func mutated(c *memcached.Conn, req *gm.MCRequest, b *bucket, cas uint64, body []byte) {
	var token [16]byte
	var extras []byte
	if c.Features.Has(featureMutationSeqno) {
		extras = b.token(req.VBucket, &token)
	}
	if req.Opcode.IsQuiet() {
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: cas, Extras: extras, Body: body}
	c.WriteResponse(&res)
}

// stored answers a successful command without a mutation token: nothing
// for quiet commands.
func stored(c *memcached.Conn, req *gm.MCRequest, cas uint64) {
	if req.Opcode.IsQuiet() {
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: cas}
	c.WriteResponse(&res)
}

// storeModes maps the storing commands to the store's modes. SET, ADD and
// REPLACE carry flags and expiry (8 bytes of extras); APPEND and PREPEND
// none, and keep the present item's.
var storeModes = map[gm.CommandCode]cache.Mode{
	gm.SET: cache.Set, gm.SETQ: cache.Set, gm.ADD: cache.Add, gm.ADDQ: cache.Add,
	gm.REPLACE: cache.Replace, gm.REPLACEQ: cache.Replace,
	gm.APPEND: cache.Append, gm.APPENDQ: cache.Append, gm.PREPEND: cache.Prepend, gm.PREPENDQ: cache.Prepend,
}

func (h *handler) store(c *memcached.Conn, req *gm.MCRequest) {
	mode := storeModes[req.Opcode]
	concat := mode == cache.Append || mode == cache.Prepend
	extlen := 8
	if concat {
		extlen = 0
	}
	if !shape(req, extlen, true, true) {
		h.invalid(c, req)
		return
	}
	value, datatype, ok := storedValue(c, req)
	if !ok {
		h.invalid(c, req)
		return
	}
	b, keep := h.start(c, req)
	if b == nil {
		return
	}
	w := cache.Write{Value: value, CAS: req.Cas}
	if !concat {
		w.Flags = binary.BigEndian.Uint32(req.Extras)
		w.Expiry = binary.BigEndian.Uint32(req.Extras[4:])
		w.Datatype, w.KeepExpiry = datatype, keep
	}
	cas, err := b.cache.Store(mode, req.Key, w)
	switch {
	case err == nil:
	case errors.Is(err, cache.ErrNoMemory):
		c.WriteStatus(req, gm.ENOMEM, msgNoMemoryItem)
		return
	default:
		h.fail(c, req, err)
		return
	}
	mutated(c, req, b, cas, nil)
}

func (h *handler) delete(c *memcached.Conn, req *gm.MCRequest) {
	b := h.begin(c, req, 0, true)
	if b == nil {
		return
	}
	if err := b.cache.Delete(req.Key, req.Cas); err != nil {
		h.fail(c, req, err)
		return
	}
	mutated(c, req, b, 0, nil)
}

func (h *handler) delta(c *memcached.Conn, req *gm.MCRequest) {
	b := h.begin(c, req, 20, true)
	if b == nil {
		return
	}
	delta := binary.BigEndian.Uint64(req.Extras)
	initial := binary.BigEndian.Uint64(req.Extras[8:])
	exp := binary.BigEndian.Uint32(req.Extras[16:])
	var value, cas uint64
	var err error
	if req.Opcode == gm.INCREMENT || req.Opcode == gm.INCREMENTQ {
		value, cas, err = b.cache.Incr(req.Key, delta, initial, exp, req.Cas)
	} else {
		value, cas, err = b.cache.Decr(req.Key, delta, initial, exp, req.Cas)
	}
	if err != nil {
		h.fail(c, req, err)
		return
	}
	var body [8]byte
	binary.BigEndian.PutUint64(body[:], value)
	mutated(c, req, b, cas, body[:])
}

// touch serves TOUCH and the get-and-touch family. TOUCH answers with the
// flags only; GAT and GATQ add the value, GATK and GATKQ the key too.
func (h *handler) touch(c *memcached.Conn, req *gm.MCRequest) {
	b := h.begin(c, req, 4, true)
	if b == nil {
		return
	}
	h.srv.cmdTouch.Add(1)
	withKey := req.Opcode == gm.GATK || req.Opcode == gm.GATKQ
	it, err := b.cache.Touch(req.Key, binary.BigEndian.Uint32(req.Extras), req.Cas)
	if err != nil {
		switch {
		case errors.Is(err, cache.ErrNotFound) && req.Opcode.IsQuiet():
		case errors.Is(err, cache.ErrNotFound) && withKey:
			res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gm.KEY_ENOENT, Key: req.Key}
			c.WriteResponse(&res)
		default:
			h.fail(c, req, err)
		}
		return
	}
	h.writeItem(c, req, &it, withKey, req.Opcode != gm.TOUCH)
}

func (h *handler) flush(c *memcached.Conn, req *gm.MCRequest) {
	if len(req.Key) != 0 || len(req.Body) != 0 || (len(req.Extras) != 0 && len(req.Extras) != 4) {
		h.invalid(c, req)
		return
	}
	b := h.bucketFor(c, req)
	if b == nil {
		return
	}
	var delay uint32
	if len(req.Extras) == 4 {
		delay = binary.BigEndian.Uint32(req.Extras)
	}
	h.srv.cmdFlush.Add(1)
	b.cache.Flush(delay)
	stored(c, req, 0)
}

func (h *handler) noop(c *memcached.Conn, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(c, req)
		return
	}
	stored(c, req, 0)
}

func (h *handler) version(c *memcached.Conn, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(c, req)
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: h.srv.version}
	c.WriteResponse(&res)
}

func (h *handler) quit(c *memcached.Conn, req *gm.MCRequest) {
	if !shape(req, 0, false, false) {
		h.invalid(c, req)
		return
	}
	stored(c, req, 0)
	c.Close()
}

// verbosity accepts a level and answers SUCCESS. (memcached 1.6 treats the
// opcode as unknown, and leaves it unanswered when it has extras.)
func (h *handler) verbosity(c *memcached.Conn, req *gm.MCRequest) {
	if !shape(req, 4, false, false) {
		h.invalid(c, req)
		return
	}
	h.srv.verbosity.Store(binary.BigEndian.Uint32(req.Extras))
	stored(c, req, 0)
}

// errorMap serves GET_ERROR_MAP: the value is the highest version the
// client reads.
func (h *handler) errorMap(c *memcached.Conn, req *gm.MCRequest) {
	if len(req.Extras) != 0 || len(req.Key) != 0 || len(req.Body) != 2 {
		h.invalid(c, req)
		return
	}
	doc, _, ok := errorMap(binary.BigEndian.Uint16(req.Body))
	if !ok { // version 0: kv_engine has no such map
		c.WriteStatus(req, gm.KEY_ENOENT, nil)
		return
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: doc}
	if c.Features.Has(featureJSON) {
		res.DataType = gm.DatatypeFlagJSON
	}
	c.WriteResponse(&res)
}
