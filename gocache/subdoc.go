package gocache

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/internal/subdoc"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// Couchbase's sub-document commands, as kv_engine serves them
// (daemon/subdocument*.cc): lookups and mutations of paths inside a JSON
// document and its extended attributes (xattrs), one path per command
// (0xc5-0xcf, 0xd2, 0xd3) or up to 16 in one atomic command
// (SUBDOC_MULTI_LOOKUP, SUBDOC_MULTI_MUTATION). The JSON work is
// internal/subdoc's; this file validates the requests as kv_engine's
// validators do, runs the specs on the document (xattr specs first, on the
// xattrs seen as one JSON object, then body specs), and stores the result
// in one step of the store (cache.Modify).

// opReplaceBodyWithXattr is kv_engine's SubdocReplaceBodyWithXattr.
const opReplaceBodyWithXattr = gm.SUBDOC_REPLACE_BODY_WITH_XATTR

// Flags that protocol_binary.h has and the root package does not name.
const (
	pathBinaryValue = 0x20 // PathFlag::BinaryValue: the value is binary, kept base64-encoded
	docReplicaRead  = 0x20 // DocFlag::ReplicaRead: read a replica vbucket
	docFlagsKnown   = 0x3f // every DocFlag; others are EINVAL
)

// Short names for the flags of the root package.
const (
	pathMkdir  = gm.SUBDOC_FLAG_MKDIR_PATH
	pathXattr  = gm.SUBDOC_FLAG_XATTR_PATH
	pathMacros = gm.SUBDOC_FLAG_EXPAND_MACRRO_PATH

	docMkdoc           = gm.SUBDOC_FLAG_MKDOC
	docAdd             = gm.SUBDOC_FLAG_ADD
	docAccessDeleted   = gm.SUBDOC_FLAG_ACCESS_DELETED
	docCreateAsDeleted = gm.SUBDOC_FLAG_CREATE_AS_DELETED
	docRevive          = gm.SUBDOC_FLAG_REVIVED_DOC
)

// Limits, as kv_engine's.
const (
	subdocMaxPaths = 16 // paths of a multi-path command (Settings' default)
)

// binaryPrefix starts an xattr value stored with the BinaryValue flag.
const binaryPrefix = "cb-content-base64-encoded:"

// The macros an xattr value may be with the expand-macros flag
// (include/xattr/utils.h): the JSON string, quotes and all.
const (
	macroCAS    = `"${Mutation.CAS}"`
	macroSeqno  = `"${Mutation.seqno}"`
	macroCRC32C = `"${Mutation.value_crc32c}"`
)

// The virtual xattrs.
const (
	vattrDocument = "$document"
	vattrXTOC     = "$XTOC"
	vattrVBucket  = "$vbucket"
)

// scope is what a command works on.
type scope uint8

const (
	inJSON       scope = iota // a path of the body or of the xattrs
	wholeDoc                  // the whole body (GET, SET, DELETE in multi-path commands)
	xattrAndBody              // ReplaceBodyWithXattr
)

// answer is what a command's answer holds.
type answer uint8

const (
	answerNone answer = iota
	answerJSON
	answerDoc // the document's own datatype (the whole-document GET)
)

// traits are a command's, as kv_engine's subdocument_traits.h.
type traits struct {
	scope     scope
	op        subdoc.Op
	pathFlags uint8 // valid path flags
	mandatory uint8 // path flags it must have
	docFlags  uint8 // valid doc flags
	value     bool  // the request has a value
	emptyPath bool  // the path may be empty
	answer    answer
	mutator   bool
}

var (
	lookupDocFlags = docAccessDeleted | docRevive | docReplicaRead
	mutateDocFlags = docMkdoc | docAccessDeleted | docRevive | docAdd | docCreateAsDeleted
)

// traitsOf returns an opcode's traits, and false for one that is no
// sub-document command (nor a whole-document one in a multi-path spec).
func traitsOf(op gm.CommandCode) (traits, bool) {
	switch op {
	case gm.GET:
		return traits{scope: wholeDoc, op: subdoc.GetDoc, docFlags: lookupDocFlags, emptyPath: true, answer: answerDoc}, true
	case gm.SET:
		return traits{scope: wholeDoc, op: subdoc.SetDoc, docFlags: docMkdoc | docAdd, value: true, emptyPath: true, mutator: true}, true
	case gm.DELETE:
		return traits{scope: wholeDoc, docFlags: docAccessDeleted | docRevive, emptyPath: true, mutator: true}, true
	case gm.SUBDOC_GET:
		return traits{op: subdoc.Get, pathFlags: pathXattr | pathBinaryValue, docFlags: lookupDocFlags, answer: answerJSON}, true
	case gm.SUBDOC_EXISTS:
		return traits{op: subdoc.Exists, pathFlags: pathXattr, docFlags: lookupDocFlags}, true
	case gm.SUBDOC_GET_COUNT:
		return traits{op: subdoc.GetCount, pathFlags: pathXattr, docFlags: lookupDocFlags, emptyPath: true, answer: answerJSON}, true
	case gm.SUBDOC_DICT_ADD:
		return traits{op: subdoc.DictAdd, pathFlags: pathMkdir | pathXattr | pathMacros | pathBinaryValue, docFlags: mutateDocFlags, value: true, mutator: true}, true
	case gm.SUBDOC_DICT_UPSERT:
		return traits{op: subdoc.DictUpsert, pathFlags: pathMkdir | pathXattr | pathMacros | pathBinaryValue, docFlags: mutateDocFlags, value: true, mutator: true}, true
	case gm.SUBDOC_DELETE:
		return traits{op: subdoc.Delete, pathFlags: pathXattr, docFlags: docAccessDeleted | docRevive, mutator: true}, true
	case gm.SUBDOC_REPLACE:
		return traits{op: subdoc.Replace, pathFlags: pathXattr | pathMacros | pathBinaryValue, docFlags: docAccessDeleted | docRevive | docAdd, value: true, mutator: true}, true
	case gm.SUBDOC_ARRAY_PUSH_LAST:
		return traits{op: subdoc.ArrayPushLast, pathFlags: pathMkdir | pathXattr | pathMacros, docFlags: mutateDocFlags, value: true, emptyPath: true, mutator: true}, true
	case gm.SUBDOC_ARRAY_PUSH_FIRST:
		return traits{op: subdoc.ArrayPushFirst, pathFlags: pathMkdir | pathXattr | pathMacros, docFlags: mutateDocFlags, value: true, emptyPath: true, mutator: true}, true
	case gm.SUBDOC_ARRAY_INSERT:
		return traits{op: subdoc.ArrayInsert, pathFlags: pathXattr | pathMacros, docFlags: docAccessDeleted | docRevive | docAdd | docCreateAsDeleted, value: true, mutator: true}, true
	case gm.SUBDOC_ARRAY_ADD_UNIQUE:
		return traits{op: subdoc.ArrayAddUnique, pathFlags: pathMkdir | pathXattr, docFlags: mutateDocFlags, value: true, emptyPath: true, mutator: true}, true
	case gm.SUBDOC_COUNTER:
		return traits{op: subdoc.Counter, pathFlags: pathMkdir | pathXattr, docFlags: mutateDocFlags, value: true, answer: answerJSON, mutator: true}, true
	case opReplaceBodyWithXattr:
		return traits{scope: xattrAndBody, op: subdoc.Get, pathFlags: pathXattr | pathBinaryValue, mandatory: pathXattr, docFlags: docAccessDeleted | docRevive, mutator: true}, true
	}
	return traits{}, false
}

func (h *handler) registerSubdoc(m *memcached.ServeMux) {
	m.HandleFunc(h.subdocSingle, gm.SUBDOC_GET, gm.SUBDOC_EXISTS, gm.SUBDOC_DICT_ADD, gm.SUBDOC_DICT_UPSERT,
		gm.SUBDOC_DELETE, gm.SUBDOC_REPLACE, gm.SUBDOC_ARRAY_PUSH_LAST, gm.SUBDOC_ARRAY_PUSH_FIRST,
		gm.SUBDOC_ARRAY_INSERT, gm.SUBDOC_ARRAY_ADD_UNIQUE, gm.SUBDOC_COUNTER, gm.SUBDOC_GET_COUNT,
		opReplaceBodyWithXattr)
	m.HandleFunc(h.subdocMulti, gm.SUBDOC_MULTI_LOOKUP, gm.SUBDOC_MULTI_MUTATION)
}

// spec is one path of a command, and then its outcome.
type spec struct {
	opcode gm.CommandCode
	t      traits
	flags  uint8 // path flags, MKDIR_P added when the doc flags imply it
	path   []byte
	value  []byte
	status gm.Status
	result []byte
}

func (s *spec) xattr() bool { return s.flags&pathXattr != 0 }

// request is a validated sub-document command.
type request struct {
	multi    bool
	mutator  bool
	docFlags uint8
	expiry   uint32
	flags    *uint32 // the document's new flags, if the request has them
	specs    []spec
}

// rejection is a request that kv_engine's validators refuse: EINVAL (the
// connection is closed, as for other malformed requests) or a status.
type rejection gm.Status

// subdocSingle serves the single-path commands. Extras: path length (2),
// path flags (1), then optionally expiry (4; mutations only) and user
// flags (4, after an expiry), and optionally doc flags (1, last). The
// value is the path, then the operation's value.
func (h *handler) subdocSingle(w memcached.ResponseWriter, req *gm.MCRequest) {
	r, rej := parseSingle(state(w), req)
	h.subdoc(w, req, r, rej)
}

// subdocMulti serves SUBDOC_MULTI_LOOKUP and SUBDOC_MULTI_MUTATION.
// Extras: optionally expiry (4; mutations only) and user flags (4, after
// an expiry), and optionally doc flags (1, last). The value is up to 16
// specs: opcode (1), path flags (1), path length (2), for mutations value
// length (4), then the path and value.
func (h *handler) subdocMulti(w memcached.ResponseWriter, req *gm.MCRequest) {
	r, rej := parseMulti(state(w), req)
	h.subdoc(w, req, r, rej)
}

func (h *handler) subdoc(w memcached.ResponseWriter, req *gm.MCRequest, r *request, rej rejection) {
	switch {
	case rej == rejection(gm.EINVAL):
		h.invalid(w, req)
		return
	case rej != 0:
		w.WriteStatus(req, gm.Status(rej), nil)
		return
	}
	d, ok := h.docTarget(w, req)
	if !ok {
		return
	}
	if r.docFlags&docReplicaRead != 0 {
		// gocache keeps no replicas to read.
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
		return
	}
	if r.mutator {
		h.subdocMutate(w, req, d, r)
	} else {
		h.subdocLookup(w, req, d, r)
	}
}

// singleExtras reports whether n is a valid length of a single-path
// command's extras: 3 (path length and flags), 4 (and doc flags), 7
// (and expiry), 8 (expiry and doc flags), 11 (expiry and user flags), 12
// (all).
func singleExtras(n int) bool {
	switch n {
	case 3, 4, 7, 8, 11, 12:
		return true
	}
	return false
}

func parseSingle(st *connState, req *gm.MCRequest) (*request, rejection) {
	const einval = rejection(gm.EINVAL)
	t, _ := traitsOf(req.Opcode)
	ex := req.Extras
	if len(req.Key) == 0 || !singleExtras(len(ex)) {
		return nil, einval
	}
	r := &request{mutator: t.mutator}
	if n := len(ex); n == 4 || n == 8 || n == 12 {
		r.docFlags = ex[n-1]
	}
	if r.docFlags&^docFlagsKnown != 0 {
		return nil, einval
	}
	if n := len(ex); n >= 7 {
		r.expiry = binary.BigEndian.Uint32(ex[3:])
		if n >= 11 {
			f := binary.BigEndian.Uint32(ex[7:])
			r.flags = &f
		}
	}
	pathlen := int(binary.BigEndian.Uint16(ex))
	if pathlen > subdoc.MaxPathLen || pathlen > len(req.Body) {
		return nil, einval
	}
	s := spec{opcode: req.Opcode, t: t, flags: ex[2], path: req.Body[:pathlen], value: req.Body[pathlen:]}
	if t.value != (len(s.value) > 0) || s.flags&^t.pathFlags != 0 || s.flags&t.mandatory != t.mandatory ||
		r.docFlags&^t.docFlags != 0 {
		return nil, einval
	}
	if r.docFlags&docCreateAsDeleted != 0 && (r.docFlags&(docAdd|docMkdoc) == 0 || !s.xattr()) {
		return nil, einval
	}
	if r.docFlags&docAdd != 0 && (req.Cas != 0 || r.docFlags&docMkdoc != 0) {
		return nil, einval
	}
	if rej := checkXattrSpec(st, &s, t.mutator); rej != 0 {
		return nil, rej
	}
	if !t.emptyPath && pathlen == 0 {
		return nil, einval
	}
	if !t.mutator && len(ex) != 3 && len(ex) != 4 {
		return nil, einval
	}
	r.specs = append(r.specs[:0], s)
	r.addMkdir()
	return r, 0
}

// multiExtras reports whether n is a valid length of a multi-path
// command's extras: 0, 1 (doc flags), 4 (expiry), 5 (expiry and doc
// flags), 8 (expiry and user flags), 9 (all).
func multiExtras(n int) bool {
	switch n {
	case 0, 1, 4, 5, 8, 9:
		return true
	}
	return false
}

func parseMulti(st *connState, req *gm.MCRequest) (*request, rejection) {
	const einval = rejection(gm.EINVAL)
	mutator := req.Opcode == gm.SUBDOC_MULTI_MUTATION
	ex := req.Extras
	if len(req.Key) == 0 || !multiExtras(len(ex)) || !mutator && len(ex) > 1 {
		return nil, einval
	}
	r := &request{multi: true, mutator: mutator}
	if n := len(ex); n == 1 || n == 5 || n == 9 {
		r.docFlags = ex[n-1]
	}
	if r.docFlags&^docFlagsKnown != 0 {
		return nil, einval
	}
	if len(ex) >= 4 {
		r.expiry = binary.BigEndian.Uint32(ex)
		if len(ex) >= 8 {
			f := binary.BigEndian.Uint32(ex[4:])
			r.flags = &f
		}
	}
	if r.docFlags&docAdd != 0 && (req.Cas != 0 || r.docFlags&docMkdoc != 0) {
		return nil, einval
	}
	if r.docFlags&docRevive != 0 && (r.docFlags&docAccessDeleted == 0 || r.docFlags&docCreateAsDeleted != 0) {
		return nil, einval
	}
	header := 4
	if mutator {
		header = 8
	}
	body := req.Body
	xattrsAllowed, bodyAllowed := true, true
	for len(body) > 0 {
		if len(r.specs) == subdocMaxPaths || !bodyAllowed {
			return nil, rejection(gm.SUBDOC_INVALID_COMBO)
		}
		if len(body) < header {
			return nil, einval
		}
		s := spec{opcode: gm.CommandCode(body[0]), flags: body[1]}
		pathlen, valuelen := int(binary.BigEndian.Uint16(body[2:])), 0
		if mutator {
			valuelen = int(binary.BigEndian.Uint32(body[4:]))
		}
		if pathlen > len(body)-header || valuelen > len(body)-header-pathlen {
			return nil, einval
		}
		s.path = body[header : header+pathlen]
		s.value = body[header+pathlen : header+pathlen+valuelen]
		body = body[header+pathlen+valuelen:]
		t, ok := traitsOf(s.opcode)
		if !ok || t.mutator != mutator {
			return nil, rejection(gm.SUBDOC_INVALID_COMBO)
		}
		s.t = t
		if s.flags&^t.pathFlags != 0 || s.flags&t.mandatory != t.mandatory || r.docFlags&^t.docFlags != 0 ||
			pathlen > subdoc.MaxPathLen || t.scope == wholeDoc && pathlen > 0 {
			return nil, einval
		}
		if rej := checkXattrSpec(st, &s, mutator); rej != 0 {
			return nil, rej
		}
		if !s.xattr() && !t.emptyPath && pathlen == 0 || t.value != (valuelen > 0) {
			return nil, einval
		}
		// xattr specs come first; a whole-document DELETE is the last
		// body spec, and the only one.
		alone := s.opcode == gm.DELETE
		switch {
		case xattrsAllowed:
			xattrsAllowed = s.xattr()
		case s.xattr():
			return nil, rejection(gm.SUBDOC_INVALID_XATTR_ORDER)
		case alone:
			return nil, rejection(gm.SUBDOC_INVALID_COMBO)
		}
		if alone {
			bodyAllowed = false
		}
		r.specs = append(r.specs, s)
	}
	if len(r.specs) == 0 {
		return nil, rejection(gm.SUBDOC_INVALID_COMBO)
	}
	r.addMkdir()
	return r, 0
}

// addMkdir sets MKDIR_P on every spec when the doc flags ask to create the
// document (MKDOC, ADD).
func (r *request) addMkdir() {
	if r.docFlags&(docMkdoc|docAdd) == 0 {
		return
	}
	for i := range r.specs {
		r.specs[i].flags |= pathMkdir
	}
}

// checkXattrSpec validates a spec's xattr flags, key and macro as
// kv_engine's validate_xattr_section: the statuses it answers are the
// whole command's.
func checkXattrSpec(st *connState, s *spec, mutator bool) rejection {
	macros, binaryValue := s.flags&pathMacros != 0, s.flags&pathBinaryValue != 0
	if !s.xattr() {
		if macros || binaryValue {
			return rejection(gm.SUBDOC_XATTR_INVALID_FLAG)
		}
		return 0
	}
	if macros && binaryValue {
		return rejection(gm.SUBDOC_XATTR_INVALID_FLAG)
	}
	if !st.features.Has(gm.FeatureXattr) {
		return rejection(gm.NOT_SUPPORTED)
	}
	if _, ok := subdoc.ValidXattrKey(s.path); !ok {
		return rejection(gm.XATTR_EINVAL)
	}
	if subdoc.IsVirtualXattr(s.path) && mutator {
		return rejection(gm.SUBDOC_XATTR_CANT_MODIFY_VATTR)
	}
	if i := bytes.Index(s.value, []byte(binaryPrefix)); i >= 0 {
		v := s.value
		if i > 1 || i == 1 && v[0] != '"' {
			v = v[i:]
			end := bytes.IndexByte(v, '"')
			if end < 0 {
				return rejection(gm.XATTR_EINVAL)
			}
			v = v[:end]
		}
		if _, err := decodeBinary(v); err != nil {
			return rejection(gm.XATTR_EINVAL)
		}
	}
	if macros && !validMacro(s.value) {
		return rejection(gm.SUBDOC_XATTR_UNKNOWN_MACRO)
	}
	return 0
}

func validMacro(v []byte) bool {
	switch string(v) {
	case macroCAS, macroSeqno, macroCRC32C:
		return true
	}
	return bytes.HasPrefix(v, []byte(`"${$document`)) && bytes.HasSuffix(v, []byte(`}"`))
}

// encodeBinary is how a binary xattr value is kept: a JSON string of the
// prefix and the value in base64.
func encodeBinary(v []byte) []byte {
	out := make([]byte, 0, len(binaryPrefix)+base64.StdEncoding.EncodedLen(len(v))+2)
	out = append(append(out, '"'), binaryPrefix...)
	out = base64.StdEncoding.AppendEncode(out, v)
	return append(out, '"')
}

// decodeBinary undoes encodeBinary (the quotes are optional).
func decodeBinary(v []byte) ([]byte, error) {
	if len(v) < 2 {
		return nil, errNotBinary
	}
	if v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	b64, ok := bytes.CutPrefix(v, []byte(binaryPrefix))
	if !ok {
		return nil, errNotBinary
	}
	return base64.StdEncoding.AppendDecode(nil, b64)
}

var errNotBinary = errors.New("gocache: not a binary xattr value")

// subdocStatus maps the engine's errors to kv_engine's statuses
// (operate_one_path in subdocument_context.cc).
func subdocStatus(err error) gm.Status {
	var e subdoc.Error
	if !errors.As(err, &e) {
		return gm.EINTERNAL
	}
	switch e {
	case subdoc.ErrPathNotFound:
		return gm.SUBDOC_PATH_NOT_FOUND
	case subdoc.ErrPathMismatch:
		return gm.SUBDOC_PATH_MISMATCH
	case subdoc.ErrPathInvalid:
		return gm.SUBDOC_PATH_EINVAL
	case subdoc.ErrPathTooBig:
		return gm.SUBDOC_PATH_E2BIG
	case subdoc.ErrDocTooDeep:
		return gm.SUBDOC_DOC_E2DEEP
	case subdoc.ErrValueCantInsert, subdoc.ErrDeltaOverflow: // kv_engine answers an overflow so
		return gm.SUBDOC_VALUE_CANTINSERT
	case subdoc.ErrDocNotJSON:
		return gm.SUBDOC_DOC_NOT_JSON
	case subdoc.ErrNumTooBig:
		return gm.SUBDOC_NUM_ERANGE
	case subdoc.ErrDeltaInvalid:
		return gm.SUBDOC_DELTA_EINVAL
	case subdoc.ErrPathExists:
		return gm.SUBDOC_PATH_EEXISTS
	case subdoc.ErrValueTooDeep:
		return gm.SUBDOC_VALUE_ETOODEEP
	}
	return gm.EINTERNAL
}

// document is the document a command runs on, and what it becomes.
type document struct {
	exists   bool
	deleted  bool
	cas      uint64
	flags    uint32
	datatype uint8 // of the stored item
	expires  time.Time
	seqno    uint64
	rev      uint64
	vbuuid   uint64

	xattrs   subdoc.Blob
	body     []byte
	bodyJSON int8 // 0 not known yet, 1 JSON, -1 not
}

// load reads an item into the document. An item whose xattr section is
// malformed cannot be worked on.
func (d *document) load(it *cache.Item) error {
	*d = document{exists: true, deleted: it.Deleted, cas: it.CAS, flags: it.Flags, datatype: it.Datatype,
		expires: it.Expires, seqno: it.Seqno, rev: it.Rev, vbuuid: d.vbuuid, body: it.Value}
	if it.Datatype&gm.DatatypeFlagXattrs != 0 {
		x, body, err := subdoc.Split(it.Value)
		if err != nil {
			return err
		}
		d.xattrs, d.body = x, body
	}
	if it.Datatype&gm.DatatypeFlagJSON != 0 {
		d.bodyJSON = 1
	}
	return nil
}

// isJSON reports whether the body is JSON: its datatype says so, or (as
// kv_engine finds out when a document is stored, and gocache does not)
// it parses as JSON.
func (d *document) isJSON() bool {
	if d.bodyJSON == 0 {
		d.bodyJSON = -1
		if len(d.body) > 0 && subdoc.Valid(d.body) {
			d.bodyJSON = 1
		}
	}
	return d.bodyJSON > 0
}

// execution runs a request's specs on a document: first the xattr specs
// on the xattrs, seen as one JSON object, then the body specs.
type execution struct {
	r   *request
	doc document
	// status is the command's: SUCCESS, the failing spec's for a single
	// path, SUBDOC_MULTI_PATH_FAILURE for a multi-path command with one
	// failing (the first for a mutation, which stops there).
	status gm.Status
	failed int // the first failing spec
	// Mutations.
	modified    bool
	deleteDoc   bool
	macroSpecs  bool // some spec expands macros
	padding     map[string][]byte
	documentVAT []byte // the $document virtual xattr, made once
}

// run runs the specs. It reports whether the command failed.
func (ex *execution) run() {
	ex.status, ex.failed = gm.SUCCESS, -1
	if ex.xattrPhase() {
		ex.bodyPhase()
	}
}

// fail records spec i's failure; it reports whether to go on with the
// next spec (a multi-path lookup does).
func (ex *execution) fail(i int, status gm.Status) bool {
	ex.r.specs[i].status = status
	if ex.failed < 0 {
		ex.failed = i
	}
	if !ex.r.multi {
		ex.status = status
		return false
	}
	ex.status = gm.SUBDOC_BAD_MULTI
	return !ex.r.mutator
}

// xattrPhase runs the xattr specs. It reports whether to go on.
func (ex *execution) xattrPhase() bool {
	specs := ex.r.specs
	n := 0
	for n < len(specs) && specs[n].xattr() {
		n++
	}
	if n == 0 {
		return true
	}
	doc := &ex.doc
	xjson := doc.xattrs.AppendJSON(nil)
	if ex.r.mutator {
		ex.makePadding(xjson)
	}
	changed := false
	for i := range specs[:n] {
		s := &specs[i]
		s.status = gm.SUCCESS
		var err error
		switch {
		case subdoc.IsVirtualXattr(s.path):
			s.result, err = ex.vattr(s)
		case s.t.scope == xattrAndBody:
			var v []byte
			if v, err = ex.lookup(xjson, s); err == nil {
				doc.body, doc.bodyJSON = v, 1
				switch {
				case len(v) == 0:
					doc.bodyJSON = -1
				case s.flags&pathBinaryValue != 0 && !subdoc.Valid(v):
					doc.bodyJSON = -1
				}
				changed = true
			}
		case s.t.mutator:
			value := s.value
			if value, err = ex.specValue(s); err == nil {
				var out []byte
				out, s.result, err = subdoc.Mutate(nil, xjson, s.t.op, s.path, value, s.flags&pathMkdir != 0)
				if err == nil {
					xjson, changed = out, true
				}
			}
		default:
			s.result, err = ex.lookup(xjson, s)
		}
		if err != nil {
			st, ok := err.(statusError)
			if !ok {
				st = statusError(subdocStatus(err))
			}
			if !ex.fail(i, gm.Status(st)) {
				return false
			}
		}
	}
	if changed && ex.status == gm.SUCCESS {
		blob, err := subdoc.BlobFromJSON(nil, xjson)
		if err != nil {
			// A value made a top-level member that is no valid xattr
			// key (subjson takes `1,"k":2` as an object member's).
			ex.fail(n-1, gm.XATTR_EINVAL)
			return false
		}
		doc.xattrs = blob
		ex.modified = true
	}
	return ex.status == gm.SUCCESS || !ex.r.mutator
}

// statusError is a spec's failure that is a status already.
type statusError gm.Status

func (e statusError) Error() string { return gm.Status(e).String() }

// lookup runs a lookup spec on doc, and decodes a binary value.
func (ex *execution) lookup(doc []byte, s *spec) ([]byte, error) {
	v, err := subdoc.Lookup(doc, s.t.op, s.path)
	if err != nil || s.flags&pathBinaryValue == 0 {
		return v, err
	}
	b, err := decodeBinary(v)
	if err != nil {
		return nil, statusError(gm.SUBDOC_FIELD_NOT_BINARY_VALUE)
	}
	return b, nil
}

// specValue is the value a mutation spec stores: the value, a binary one
// encoded, or a macro's padding or expansion.
func (ex *execution) specValue(s *spec) ([]byte, error) {
	switch {
	case s.flags&pathMacros != 0:
		if p, ok := ex.padding[string(s.value)]; ok {
			return p, nil
		}
		if v := ex.virtualMacro(s.value); v != nil {
			return v, nil
		}
		return nil, statusError(gm.SUBDOC_XATTR_UNKNOWN_VATTR_MACRO)
	case s.flags&pathBinaryValue != 0:
		return encodeBinary(s.value), nil
	}
	return s.value, nil
}

// makePadding picks, for each macro of the mutation, a placeholder of the
// width of its expansion ("0x" and hex digits, in quotes) that is in
// neither the xattrs nor the specs' values, as kv_engine's
// generate_macro_padding; after the store the placeholders are replaced
// by the values (see expand).
func (ex *execution) makePadding(xjson []byte) {
	for _, s := range ex.r.specs {
		if s.flags&pathMacros != 0 {
			ex.macroSpecs = true
		}
	}
	if !ex.macroSpecs {
		return
	}
	ex.padding = map[string][]byte{}
	for _, m := range []struct {
		name   string
		digits int
	}{{macroCAS, 16}, {macroSeqno, 16}, {macroCRC32C, 8}} {
		for {
			p := fmt.Appendf(nil, `"0x%0*x"`, m.digits, rand.Uint64()>>(64-4*m.digits))
			unique := !bytes.Contains(xjson, p)
			for _, s := range ex.r.specs {
				unique = unique && !bytes.Contains(s.value, p)
			}
			for _, q := range ex.padding {
				unique = unique && !bytes.Equal(p, q)
			}
			if unique {
				ex.padding[m.name] = p
				break
			}
		}
	}
}

// expand replaces the placeholders of the macros in the xattrs the macro
// specs touched with their values: the mutation's CAS (as kv_engine, in
// the byte order of its memory: the CAS's bytes reversed), seqno and the
// CRC32C of the new body, each as "0x" and hex digits. It patches the
// stored value in place.
func (ex *execution) expand(value []byte, cas, seqno uint64) {
	blob, _, err := subdoc.Split(value)
	if err != nil || len(ex.padding) == 0 {
		return
	}
	repl := map[string][]byte{
		macroCAS:    fmt.Appendf(nil, `"0x%016x"`, reverse64(cas)),
		macroSeqno:  fmt.Appendf(nil, `"0x%016x"`, seqno),
		macroCRC32C: fmt.Appendf(nil, `"0x%08x"`, crc32.Checksum(ex.doc.body, castagnoli)),
	}
	for _, s := range ex.r.specs {
		if s.flags&pathMacros == 0 {
			continue
		}
		n, _ := subdoc.ValidXattrKey(s.path)
		v, ok := blob.Get(s.path[:n])
		if !ok {
			continue
		}
		for name, p := range ex.padding {
			for i := bytes.Index(v, p); i >= 0; i = bytes.Index(v, p) {
				copy(v[i:], repl[name])
			}
		}
	}
}

// storeNumbers reports whether a macro needs the CAS or seqno that the
// store gives the change.
func (ex *execution) storeNumbers() bool {
	for _, s := range ex.r.specs {
		if v := string(s.value); s.flags&pathMacros != 0 && (v == macroCAS || v == macroSeqno) {
			return true
		}
	}
	return false
}

func reverse64(v uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return binary.BigEndian.Uint64(b[:])
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func hex64(v uint64) string { return fmt.Sprintf("0x%016x", v) }

// documentFields is the $document virtual xattr's object, its keys in
// kv_engine's order (nlohmann's sorted map). gocache's CAS is a counter,
// not a hybrid logical clock, so there is no last_modified, as kv_engine
// leaves it out for such a CAS.
func (ex *execution) documentFields() []byte {
	if ex.documentVAT != nil {
		return ex.documentVAT
	}
	d := &ex.doc
	var exptime int64
	if !d.expires.IsZero() {
		exptime = d.expires.Unix()
	}
	dt := d.datatype
	if d.isJSON() {
		dt |= gm.DatatypeFlagJSON
	}
	var names []string
	if dt&gm.DatatypeFlagCompressed != 0 {
		names = append(names, `"snappy"`)
	}
	if dt&gm.DatatypeFlagJSON != 0 {
		names = append(names, `"json"`)
	}
	if dt&gm.DatatypeFlagXattrs != 0 {
		names = append(names, `"xattr"`)
	}
	if len(names) == 0 {
		names = append(names, `"raw"`)
	}
	b := fmt.Appendf(nil, `{"CAS":%q,"datatype":[`, hex64(d.cas))
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, n...)
	}
	b = fmt.Appendf(b, `],"deleted":%v,"exptime":%d,"flags":%d,"revid":"%d","seqno":%q,"value_bytes":%d,"value_crc32c":%q,"vbucket_uuid":%q}`,
		d.deleted, exptime, d.flags, d.rev, hex64(d.seqno), len(d.body),
		fmt.Sprintf("0x%08x", crc32.Checksum(d.body, castagnoli)), hex64(d.vbuuid))
	ex.documentVAT = b
	return b
}

// vattr looks a path up in a virtual xattr.
func (ex *execution) vattr(s *spec) ([]byte, error) {
	key := s.path
	if i := bytes.IndexAny(key, ".["); i >= 0 {
		key = key[:i]
	}
	var doc []byte
	switch string(key) {
	case vattrDocument:
		doc = append(append([]byte(`{"$document":`), ex.documentFields()...), '}')
	case vattrXTOC:
		doc = []byte(`{"$XTOC":[`)
		n := 0
		ex.doc.xattrs.Each(func(k, _ []byte) bool {
			if n > 0 {
				doc = append(doc, ',')
			}
			n++
			doc = append(append(append(doc, '"'), k...), '"')
			return true
		})
		doc = append(doc, "]}"...)
	case vattrVBucket:
		doc = fmt.Appendf(nil, `{"$vbucket":{"HLC":{"mode":"real","now":"%d"}}}`, time.Now().Unix())
	default:
		return nil, statusError(gm.SUBDOC_XATTR_UNKNOWN_VATTR)
	}
	return ex.lookup(doc, s)
}

// virtualMacro expands a ${$document...} macro from the document as it
// was (kv_engine's expand_virtual_document_macro), or returns nil.
func (ex *execution) virtualMacro(m []byte) []byte {
	d := &ex.doc
	switch string(m) {
	case `"${$document}"`:
		return ex.documentFields()
	case `"${$document.CAS}"`:
		return strconv.AppendQuote(nil, hex64(d.cas))
	case `"${$document.vbucket_uuid}"`:
		return strconv.AppendQuote(nil, hex64(d.vbuuid))
	case `"${$document.seqno}"`:
		return strconv.AppendQuote(nil, hex64(d.seqno))
	case `"${$document.revid}"`:
		return strconv.AppendQuote(nil, strconv.FormatUint(d.rev, 10))
	case `"${$document.exptime}"`:
		var exp int64
		if !d.expires.IsZero() {
			exp = d.expires.Unix()
		}
		return strconv.AppendInt(nil, exp, 10)
	case `"${$document.flags}"`:
		return strconv.AppendUint(nil, uint64(d.flags), 10)
	case `"${$document.value_bytes}"`:
		return strconv.AppendInt(nil, int64(len(d.body)), 10)
	case `"${$document.deleted}"`:
		return strconv.AppendBool(nil, d.deleted)
	case `"${$document.datatype}"`:
		f := ex.documentFields()
		v, _ := subdoc.Lookup(f, subdoc.Get, []byte("datatype"))
		return v
	}
	return nil
}

// bodyPhase runs the body specs.
func (ex *execution) bodyPhase() {
	doc := &ex.doc
	for i := range ex.r.specs {
		s := &ex.r.specs[i]
		if s.xattr() {
			continue
		}
		s.status = gm.SUCCESS
		var err error
		switch {
		case s.opcode == gm.DELETE: // the whole document
			ex.deleteDoc, ex.modified = true, true
			doc.body, doc.bodyJSON = nil, -1
		case s.t.scope == wholeDoc && s.t.mutator: // SET
			doc.body, doc.bodyJSON = bytes.Clone(s.value), 0
			ex.modified = true
		case s.t.scope == wholeDoc: // GET
			if len(doc.body) == 0 {
				err = subdoc.ErrPathNotFound
			} else {
				s.result = doc.body
			}
		case !doc.isJSON():
			err = subdoc.ErrDocNotJSON
		case s.t.mutator:
			var out []byte
			out, s.result, err = subdoc.Mutate(nil, doc.body, s.t.op, s.path, s.value, s.flags&pathMkdir != 0)
			if err == nil {
				doc.body, ex.modified = out, true
			}
		default:
			s.result, err = subdoc.Lookup(doc.body, s.t.op, s.path)
		}
		if err != nil && !ex.fail(i, subdocStatus(err)) {
			return
		}
	}
}

// value is the document's new value and datatype.
func (ex *execution) value() ([]byte, uint8) {
	doc := &ex.doc
	var dt uint8
	if doc.isJSON() {
		dt = gm.DatatypeFlagJSON
	}
	if len(doc.xattrs) == 0 {
		return doc.body, dt
	}
	return subdoc.Join(nil, doc.xattrs, doc.body), dt | gm.DatatypeFlagXattrs
}

// subdocLookup runs a lookup command on the document (a deleted one with
// ACCESS_DELETED) as the store has it now.
func (h *handler) subdocLookup(w memcached.ResponseWriter, req *gm.MCRequest, d doc, r *request) {
	it, ok := d.b.cache.Lookup(d.vb, d.key, r.docFlags&docAccessDeleted != 0)
	if !ok {
		w.WriteStatus(req, gm.KEY_ENOENT, msgNotFound)
		return
	}
	if req.Cas != 0 && req.Cas != it.CAS {
		w.WriteStatus(req, gm.KEY_EEXISTS, msgExists)
		return
	}
	ex := execution{r: r}
	_, ex.doc.vbuuid = d.b.cache.HighSeqno(d.vb)
	if err := ex.doc.load(&it); err != nil {
		w.WriteStatus(req, gm.EINTERNAL, nil)
		return
	}
	ex.run()
	st := state(w)
	if !r.multi {
		if ex.status != gm.SUCCESS {
			w.WriteStatus(req, ex.status, nil)
			return
		}
		res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: it.CAS}
		if ex.doc.deleted {
			res.Status = gm.SUBDOC_SUCCESS_DELETED
		}
		if s := &r.specs[0]; s.t.answer != answerNone {
			res.Body = s.result
			if s.flags&pathBinaryValue == 0 && st.features.Has(gm.FeatureJSON) {
				res.DataType = gm.DatatypeFlagJSON
			}
		}
		w.WriteResponse(&res)
		return
	}
	var body []byte
	for i := range r.specs {
		s := &r.specs[i]
		body = binary.BigEndian.AppendUint16(body, uint16(s.status))
		v := s.result
		if s.t.answer == answerNone || s.status != gm.SUCCESS {
			v = nil
		}
		body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
		body = append(body, v...)
	}
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: it.CAS, Body: body, Status: ex.status}
	if ex.doc.deleted {
		switch ex.status {
		case gm.SUCCESS:
			res.Status = gm.SUBDOC_SUCCESS_DELETED
		case gm.SUBDOC_BAD_MULTI:
			res.Status = gm.SUBDOC_MULTI_PATH_FAILURE_DELETED
		}
	}
	w.WriteResponse(&res)
}

// errSubdocAnswered: f of Modify changed nothing, and the execution holds
// the answer.
var errSubdocAnswered = errors.New("gocache: sub-document command failed")

// subdocMutate runs a mutation command in one step of the store: the
// document is read, changed and written under its key's lock.
func (h *handler) subdocMutate(w memcached.ResponseWriter, req *gm.MCRequest, d doc, r *request) {
	accessDeleted := r.docFlags&docAccessDeleted != 0
	revive := r.docFlags&docRevive != 0
	add := r.docFlags&docAdd != 0
	create := r.docFlags&(docMkdoc|docAdd) != 0
	asDeleted := r.docFlags&docCreateAsDeleted != 0
	var ex execution
	var status gm.Status // an answer decided inside f
	var stored *cache.Write
	_, vbuuid := d.b.cache.HighSeqno(d.vb)
	m, err := d.b.cache.Modify(d.vb, d.key, accessDeleted, func(cur *cache.Item) (*cache.Write, error) {
		ex = execution{r: r}
		ex.doc.vbuuid = vbuuid
		switch {
		case cur == nil && !create:
			status = gm.KEY_ENOENT
			return nil, errSubdocAnswered
		case cur == nil:
			// A new document, from the root the first path implies
			// (none if it is created deleted).
			ex.doc.deleted = asDeleted
			if !asDeleted {
				for _, s := range r.specs {
					if s.t.scope == inJSON {
						if root := subdoc.RootType(s.t.op, s.path); root != 0 {
							ex.doc.body = []byte{root, root + 2}
							ex.doc.bodyJSON = 1
						}
						break
					}
				}
			}
		case add:
			status = gm.KEY_EEXISTS
			return nil, errSubdocAnswered
		case revive && !cur.Deleted:
			status = gm.SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS
			return nil, errSubdocAnswered
		case req.Cas != 0 && req.Cas != cur.CAS:
			status = gm.KEY_EEXISTS
			return nil, errSubdocAnswered
		default:
			if err := ex.doc.load(cur); err != nil {
				status = gm.EINTERNAL
				return nil, errSubdocAnswered
			}
		}
		ex.run()
		if ex.status != gm.SUCCESS {
			return nil, errSubdocAnswered
		}
		if ex.deleteDoc {
			// DELETE of the whole document: the body and the user
			// xattrs go, the system xattrs stay with the deleted
			// document.
			ex.doc.xattrs = ex.doc.xattrs.System(nil)
		}
		deleted := ex.deleteDoc || ex.doc.deleted && !revive
		if deleted && len(ex.doc.body) > 0 {
			status = gm.SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE
			return nil, errSubdocAnswered
		}
		value, dt := ex.value()
		wr := &cache.Write{Value: value, Datatype: dt, Expiry: r.expiry, KeepExpiry: d.keepExpiry, Deleted: deleted}
		if cur != nil {
			wr.Flags = cur.Flags
		}
		if r.flags != nil {
			wr.Flags = *r.flags
		}
		switch {
		case !ex.macroSpecs:
		case ex.storeNumbers():
			finishWrite(wr, ex.expand)
		default: // only the CRC32C of the new body, known now
			ex.expand(value, 0, 0)
		}
		stored = wr
		return wr, nil
	})
	switch {
	case errors.Is(err, errSubdocAnswered):
		if status == 0 {
			h.subdocFailed(w, req, &ex)
		} else {
			w.WriteStatus(req, status, nil)
		}
		return
	case errors.Is(err, cache.ErrNoTombstones) && stored != nil && stored.Deleted && len(stored.Value) == 0:
		// No tombstones are kept: a deletion that keeps nothing is a
		// plain delete.
		if m, err = d.b.cache.Delete(d.vb, d.key, ex.doc.cas); err != nil {
			h.fail(w, req, err)
			return
		}
	case errors.Is(err, cache.ErrNoTombstones):
		w.WriteStatus(req, gm.NOT_SUPPORTED, nil)
		return
	case err != nil:
		h.fail(w, req, err)
		return
	}
	h.subdocMutated(w, req, &ex, m)
}

// finishWrite asks the store to call patch with the stored value and the
// change's CAS and seqno before the item becomes visible (cache.Write's
// Patch, run under the key's lock), which macro expansion needs.
func finishWrite(w *cache.Write, patch func(value []byte, cas, seqno uint64)) {
	w.Patch = func(v []byte, m cache.Mutation) { patch(v, m.CAS, m.Seqno) }
}

// subdocFailed answers a command whose spec failed.
func (h *handler) subdocFailed(w memcached.ResponseWriter, req *gm.MCRequest, ex *execution) {
	if !ex.r.multi || ex.status != gm.SUBDOC_BAD_MULTI {
		w.WriteStatus(req, ex.status, nil)
		return
	}
	// The index and status of the first failing spec.
	i := ex.failed
	body := binary.BigEndian.AppendUint16([]byte{byte(i)}, uint16(ex.r.specs[i].status))
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: ex.status, Body: body}
	w.WriteResponse(&res)
}

// subdocMutated answers a mutation that was stored: the CAS, the mutation
// token for connections that negotiated MutationSeqno, and the values of
// the specs that have one (COUNTER's).
func (h *handler) subdocMutated(w memcached.ResponseWriter, req *gm.MCRequest, ex *execution, m cache.Mutation) {
	st := state(w)
	res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: m.CAS}
	if st.features.Has(gm.FeatureMutationSeqno) {
		var token [16]byte
		binary.BigEndian.PutUint64(token[:8], m.VBUUID)
		binary.BigEndian.PutUint64(token[8:], m.Seqno)
		res.Extras = token[:]
	}
	if ex.doc.deleted && ex.r.docFlags&docRevive == 0 {
		res.Status = gm.SUBDOC_SUCCESS_DELETED
	}
	if !ex.r.multi {
		if s := &ex.r.specs[0]; s.t.answer != answerNone {
			res.Body = s.result
			if st.features.Has(gm.FeatureJSON) {
				res.DataType = gm.DatatypeFlagJSON
			}
		}
		w.WriteResponse(&res)
		return
	}
	for i := range ex.r.specs {
		s := &ex.r.specs[i]
		if s.t.answer == answerNone || len(s.result) == 0 {
			continue
		}
		res.Body = append(res.Body, byte(i))
		res.Body = binary.BigEndian.AppendUint16(res.Body, uint16(gm.SUCCESS))
		res.Body = binary.BigEndian.AppendUint32(res.Body, uint32(len(s.result)))
		res.Body = append(res.Body, s.result...)
	}
	w.WriteResponse(&res)
}
