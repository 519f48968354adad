package memcached

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"github.com/f8e615c8/gomemcached"
)

// A typed builder for sub-document commands, which the reference lacks:
// LookupIn lists the lookups of one SUBDOC_MULTI_LOOKUP (0xd0) and MutateIn
// the mutations of one SUBDOC_MULTI_MUTATION (0xd1); Client.Lookup and
// Client.Mutate send them and decode the answer into a result per spec.
// The encoding is kv_engine's (docs/SubDocument.md, "Multi-Path Commands",
// and include/memcached/protocol_binary.h):
//
//	lookup spec:   opcode(1) path flags(1) path length(2) path
//	mutation spec: opcode(1) path flags(1) path length(2) value length(4) path value
//	lookup result: status(2) value length(4) value                 (one per spec)
//	mutation result, success: index(1) status(2) value length(4) value (specs with a value)
//	mutation result, failure: index(1) status(2)                   (the first that failed)
//
// The request's extras are the doc flags (1 byte, if any) for a lookup;
// the expiry (4, if not 0) then the doc flags (1, if any) for a mutation.
// kv_engine runs at most 16 specs per command (more is a top-level ERANGE)
// and wants the extended-attribute specs first (SUBDOC_INVALID_XATTR_ORDER).

// SubdocPathFlags are the flags of one path of a sub-document spec.
type SubdocPathFlags uint8

// Path flags.
const (
	// SubdocMkdirP creates the missing dictionaries of the path
	// (mutations).
	SubdocMkdirP SubdocPathFlags = 0x01
	// SubdocXattr makes the path name an extended attribute rather than a
	// field of the document. The connection needs FeatureXattr.
	SubdocXattr SubdocPathFlags = 0x04
	// SubdocExpandMacros expands macros such as "${Mutation.CAS}" in the
	// value (extended attributes only).
	SubdocExpandMacros SubdocPathFlags = 0x10
	// SubdocBinaryValue marks the value as binary, not JSON (extended
	// attributes only).
	SubdocBinaryValue SubdocPathFlags = 0x20
)

// SubdocDocFlags are the flags of a sub-document command as a whole.
type SubdocDocFlags uint8

// Doc flags.
const (
	// SubdocMkdoc creates the document if it does not exist (upsert;
	// implies SubdocMkdirP). Not with SubdocAdd.
	SubdocMkdoc SubdocDocFlags = 0x01
	// SubdocAdd creates the document and fails with KEY_EEXISTS if it
	// exists (insert; implies SubdocMkdirP; the CAS must be 0).
	SubdocAdd SubdocDocFlags = 0x02
	// SubdocAccessDeleted reads or writes the extended attributes of a
	// deleted document.
	SubdocAccessDeleted SubdocDocFlags = 0x04
	// SubdocCreateAsDeleted creates the document deleted (with SubdocMkdoc
	// or SubdocAdd).
	SubdocCreateAsDeleted SubdocDocFlags = 0x08
	// SubdocReviveDocument makes a deleted document live again (with
	// SubdocAccessDeleted).
	SubdocReviveDocument SubdocDocFlags = 0x10
	// SubdocReplicaRead reads from a replica vbucket (lookups).
	SubdocReplicaRead SubdocDocFlags = 0x20
)

// LookupSpec is one lookup of a LookupIn: Op is SUBDOC_GET, SUBDOC_EXISTS,
// SUBDOC_GET_COUNT, or GET for the whole document (with an empty path).
type LookupSpec struct {
	Op    gomemcached.CommandCode
	Flags SubdocPathFlags
	Path  string
}

// LookupIn is the list of lookups of one SUBDOC_MULTI_LOOKUP, built with
// its methods (each appends a spec and returns the list, to chain them) or
// by filling Specs. It is not safe for concurrent modification; once
// built it may be sent any number of times, concurrently.
type LookupIn struct {
	Specs    []LookupSpec
	DocFlags SubdocDocFlags
}

func (l *LookupIn) add(op gomemcached.CommandCode, path string, flags SubdocPathFlags) *LookupIn {
	l.Specs = append(l.Specs, LookupSpec{Op: op, Flags: flags, Path: path})
	return l
}

// Get adds a read of the value at path (SUBDOC_GET).
func (l *LookupIn) Get(path string, flags SubdocPathFlags) *LookupIn {
	return l.add(gomemcached.SUBDOC_GET, path, flags)
}

// Exists adds a check that path exists (SUBDOC_EXISTS); its result has no
// value, and the status SUBDOC_PATH_NOT_FOUND if it does not.
func (l *LookupIn) Exists(path string, flags SubdocPathFlags) *LookupIn {
	return l.add(gomemcached.SUBDOC_EXISTS, path, flags)
}

// Count adds a count of the elements of the array or dictionary at path
// (SUBDOC_GET_COUNT); the value is the count in decimal (see
// SubdocResult.Uint).
func (l *LookupIn) Count(path string, flags SubdocPathFlags) *LookupIn {
	return l.add(gomemcached.SUBDOC_GET_COUNT, path, flags)
}

// Doc adds a read of the whole document body (GET with an empty path).
func (l *LookupIn) Doc() *LookupIn { return l.add(gomemcached.GET, "", 0) }

// AppendExtras appends the request extras: the doc flags, if any.
func (l *LookupIn) AppendExtras(dst []byte) []byte {
	if l.DocFlags != 0 {
		dst = append(dst, byte(l.DocFlags))
	}
	return dst
}

// AppendValue appends the request value, the encoded specs. It fails for
// an empty list and for a path longer than 65535 bytes.
func (l *LookupIn) AppendValue(dst []byte) ([]byte, error) {
	if len(l.Specs) == 0 {
		return dst, errNoSpecs
	}
	for _, s := range l.Specs {
		if len(s.Path) > math.MaxUint16 {
			return dst, fieldErr("sub-document path", len(s.Path))
		}
	}
	for _, s := range l.Specs {
		dst = append(dst, byte(s.Op), byte(s.Flags))
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s.Path)))
		dst = append(dst, s.Path...)
	}
	return dst, nil
}

// MutateSpec is one mutation of a MutateIn. Op is a sub-document mutation
// opcode (SUBDOC_DICT_ADD, ..., SUBDOC_COUNTER), or SET or DELETE for the
// whole document (with an empty path).
type MutateSpec struct {
	Op    gomemcached.CommandCode
	Flags SubdocPathFlags
	Path  string
	Value []byte
}

// MutateIn is the list of mutations of one SUBDOC_MULTI_MUTATION, applied
// atomically (all or none), built with its methods or by filling Specs;
// values are JSON unless SubdocBinaryValue says otherwise. DocFlags,
// Expiry (seconds or a Unix time, as for Set; 0 means none) and Cas (0
// means any) apply to the command as a whole. Durability and keeping the
// expiry (PreserveExpiry) come from the ClientContext. Concurrency as for
// LookupIn.
type MutateIn struct {
	Specs    []MutateSpec
	DocFlags SubdocDocFlags
	Expiry   uint32
	Cas      uint64
}

func (m *MutateIn) add(op gomemcached.CommandCode, path string, value []byte, flags SubdocPathFlags) *MutateIn {
	m.Specs = append(m.Specs, MutateSpec{Op: op, Flags: flags, Path: path, Value: value})
	return m
}

// DictAdd adds path, which must not exist, with value (SUBDOC_DICT_ADD).
func (m *MutateIn) DictAdd(path string, value []byte, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_DICT_ADD, path, value, flags)
}

// DictUpsert sets path to value, adding it if it does not exist
// (SUBDOC_DICT_UPSERT).
func (m *MutateIn) DictUpsert(path string, value []byte, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_DICT_UPSERT, path, value, flags)
}

// Replace sets path, which must exist, to value (SUBDOC_REPLACE).
func (m *MutateIn) Replace(path string, value []byte, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_REPLACE, path, value, flags)
}

// Delete removes path (SUBDOC_DELETE).
func (m *MutateIn) Delete(path string, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_DELETE, path, nil, flags)
}

// ArrayPushLast appends value (one or more comma-separated JSON values) to
// the array at path (SUBDOC_ARRAY_PUSH_LAST).
func (m *MutateIn) ArrayPushLast(path string, value []byte, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_ARRAY_PUSH_LAST, path, value, flags)
}

// ArrayPushFirst prepends value to the array at path
// (SUBDOC_ARRAY_PUSH_FIRST).
func (m *MutateIn) ArrayPushFirst(path string, value []byte, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_ARRAY_PUSH_FIRST, path, value, flags)
}

// ArrayInsert inserts value at the array position path names (ending in
// "[n]") (SUBDOC_ARRAY_INSERT).
func (m *MutateIn) ArrayInsert(path string, value []byte, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_ARRAY_INSERT, path, value, flags)
}

// ArrayAddUnique appends value, a JSON primitive, to the array at path
// unless the array holds it already (SUBDOC_ARRAY_ADD_UNIQUE; else the
// spec fails with SUBDOC_PATH_EEXISTS).
func (m *MutateIn) ArrayAddUnique(path string, value []byte, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_ARRAY_ADD_UNIQUE, path, value, flags)
}

// Counter adds delta to the integer at path, creating it from 0 if it does
// not exist (SUBDOC_COUNTER); the spec's result is the new value (see
// SubdocResult.Int).
func (m *MutateIn) Counter(path string, delta int64, flags SubdocPathFlags) *MutateIn {
	return m.add(gomemcached.SUBDOC_COUNTER, path, strconv.AppendInt(nil, delta, 10), flags)
}

// SetDoc replaces the whole document body with value (SET with an empty
// path).
func (m *MutateIn) SetDoc(value []byte) *MutateIn { return m.add(gomemcached.SET, "", value, 0) }

// DeleteDoc deletes the document: its body and user extended attributes
// (DELETE with an empty path).
func (m *MutateIn) DeleteDoc() *MutateIn { return m.add(gomemcached.DELETE, "", nil, 0) }

// AppendExtras appends the request extras: the expiry, if not 0, then
// the doc flags, if any.
func (m *MutateIn) AppendExtras(dst []byte) []byte {
	if m.Expiry != 0 {
		dst = binary.BigEndian.AppendUint32(dst, m.Expiry)
	}
	if m.DocFlags != 0 {
		dst = append(dst, byte(m.DocFlags))
	}
	return dst
}

// AppendValue appends the request value, the encoded specs. It fails for
// an empty list, for more than 256 specs (the result index is one byte),
// and for a path longer than 65535 bytes or a value over 4 GiB.
func (m *MutateIn) AppendValue(dst []byte) ([]byte, error) {
	switch {
	case len(m.Specs) == 0:
		return dst, errNoSpecs
	case len(m.Specs) > math.MaxUint8+1:
		return dst, fieldErr("sub-document spec list", len(m.Specs))
	}
	for _, s := range m.Specs {
		if len(s.Path) > math.MaxUint16 {
			return dst, fieldErr("sub-document path", len(s.Path))
		}
		if uint64(len(s.Value)) > math.MaxUint32 {
			return dst, fieldErr("sub-document value", len(s.Value))
		}
	}
	for _, s := range m.Specs {
		dst = append(dst, byte(s.Op), byte(s.Flags))
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s.Path)))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s.Value)))
		dst = append(dst, s.Path...)
		dst = append(dst, s.Value...)
	}
	return dst, nil
}

// errNoSpecs is the error of a LookupIn or MutateIn without specs.
var errNoSpecs = errors.New("memcached: sub-document command without specs")

// SubdocResult is the result of one spec: its status and value (nil if
// the spec returns none). Value slices the response's memory.
type SubdocResult struct {
	Status gomemcached.Status
	Value  []byte
}

// Uint returns the value as an unsigned decimal number, as SUBDOC_GET_COUNT
// returns it.
func (r SubdocResult) Uint() (uint64, error) {
	if r.Status != gomemcached.SUCCESS {
		return 0, &SubdocError{Index: -1, Status: r.Status}
	}
	return strconv.ParseUint(string(r.Value), 10, 64)
}

// Int returns the value as a signed decimal number, as SUBDOC_COUNTER
// returns it.
func (r SubdocResult) Int() (int64, error) {
	if r.Status != gomemcached.SUCCESS {
		return 0, &SubdocError{Index: -1, Status: r.Status}
	}
	return strconv.ParseInt(string(r.Value), 10, 64)
}

// SubdocError is the failure of one spec of a sub-document command: its
// index in the list (-1 if unknown), and, when known, its opcode and path,
// with the spec's status. errors.Is matches it against the status
// sentinels of the spec's status (gomemcached.ErrPathNotFound for
// SUBDOC_PATH_NOT_FOUND, ...); for a mutation it unwraps to the
// *gomemcached.ServerError of the command (status SUBDOC_BAD_MULTI). It
// leaves the connection usable.
type SubdocError struct {
	Index  int
	Op     gomemcached.CommandCode
	Path   string
	Status gomemcached.Status

	cmd *gomemcached.ServerError
}

func (e *SubdocError) Error() string {
	s := "memcached: sub-document spec"
	if e.Index >= 0 {
		s += " " + strconv.Itoa(e.Index)
	}
	if e.Op != 0 || e.Path != "" {
		s += " (" + e.Op.String() + " " + strconv.Quote(e.Path) + ")"
	}
	return s + " failed: " + e.Status.String()
}

// Is matches the status sentinel for e.Status.
func (e *SubdocError) Is(target error) bool {
	return (&gomemcached.ServerError{Status: e.Status}).Is(target)
}

// Unwrap returns the error of the command as a whole, if any.
func (e *SubdocError) Unwrap() error {
	if e.cmd == nil {
		return nil
	}
	return e.cmd
}

// Fatal reports false: the connection is in step (see gomemcached.IsFatal).
func (e *SubdocError) Fatal() bool { return false }

// LookupResult is the answer to a SUBDOC_MULTI_LOOKUP that reached the
// document: one result per spec, in order, whose values slice the
// response's memory.
type LookupResult struct {
	// Cas is the document's CAS.
	Cas uint64
	// Deleted reports a deleted document (read with SubdocAccessDeleted).
	Deleted bool
	// Results holds one result per spec.
	Results []SubdocResult
}

// Err returns the error of spec i: nil if it succeeded, else a
// *SubdocError.
func (r *LookupResult) Err(i int) error {
	if st := r.Results[i].Status; st != gomemcached.SUCCESS {
		return &SubdocError{Index: i, Status: st}
	}
	return nil
}

// Value returns the value of spec i, or its *SubdocError.
func (r *LookupResult) Value(i int) ([]byte, error) {
	if err := r.Err(i); err != nil {
		return nil, err
	}
	return r.Results[i].Value, nil
}

// Exists reports whether spec i succeeded: for SUBDOC_EXISTS, whether its
// path exists.
func (r *LookupResult) Exists(i int) bool { return r.Results[i].Status == gomemcached.SUCCESS }

// DecodeLookupResults appends to dst the per-spec results in the value of
// a SUBDOC_MULTI_LOOKUP response (GetSubdoc's, say): status(2), value
// length(4), value, repeated. The values slice value.
func DecodeLookupResults(dst []SubdocResult, value []byte) ([]SubdocResult, error) {
	for b := value; len(b) > 0; {
		if len(b) < 6 {
			return dst, shortBody(gomemcached.SUBDOC_MULTI_LOOKUP, "lookup result header cut short")
		}
		n := binary.BigEndian.Uint32(b[2:6])
		if uint64(n) > uint64(len(b)-6) {
			return dst, shortBody(gomemcached.SUBDOC_MULTI_LOOKUP, "lookup result value runs past the end")
		}
		r := SubdocResult{Status: gomemcached.Status(binary.BigEndian.Uint16(b))}
		if n > 0 {
			r.Value = b[6 : 6+n : 6+n]
		}
		dst = append(dst, r)
		b = b[6+n:]
	}
	return dst, nil
}

// DecodeLookupResult decodes the response to a SUBDOC_MULTI_LOOKUP. A
// response that reached the document (SUCCESS, SUBDOC_SUCCESS_DELETED,
// SUBDOC_BAD_MULTI, SUBDOC_MULTI_PATH_FAILURE_DELETED) gives its results,
// failed specs included; any other status gives a *gomemcached.ServerError.
func DecodeLookupResult(res *gomemcached.MCResponse) (*LookupResult, error) {
	var deleted bool
	switch res.Status {
	case gomemcached.SUCCESS, gomemcached.SUBDOC_BAD_MULTI:
	case gomemcached.SUBDOC_SUCCESS_DELETED, gomemcached.SUBDOC_MULTI_PATH_FAILURE_DELETED:
		deleted = true
	default:
		return nil, serverError(res)
	}
	results, err := DecodeLookupResults(nil, res.Body)
	if err != nil {
		return nil, err
	}
	return &LookupResult{Cas: res.Cas, Deleted: deleted, Results: results}, nil
}

// MutateResult is the answer to a SUBDOC_MULTI_MUTATION that succeeded.
type MutateResult struct {
	// Cas is the document's new CAS.
	Cas uint64
	// VbUUID and Seqno are the mutation token, when FeatureMutationToken
	// is on (else 0).
	VbUUID, Seqno uint64
	// Deleted reports that the document is (still) deleted
	// (SUBDOC_SUCCESS_DELETED).
	Deleted bool
	// Results holds one result per spec: status SUCCESS, with the value
	// the spec returns (SUBDOC_COUNTER's new value), nil for the others.
	Results []SubdocResult
}

// DecodeMutateResult decodes the response to a SUBDOC_MULTI_MUTATION of
// nspecs specs. Success (SUCCESS or SUBDOC_SUCCESS_DELETED) gives the
// result: extras of 0 or 16 bytes (vbucket UUID, seqno), then
// index(1) status(2) length(4) value for each spec that returns a value.
// A spec that failed (SUBDOC_BAD_MULTI, SUBDOC_MULTI_PATH_FAILURE_DELETED:
// index(1) status(2)) gives a *SubdocError; other statuses, a
// *gomemcached.ServerError.
func DecodeMutateResult(res *gomemcached.MCResponse, nspecs int) (*MutateResult, error) {
	return decodeMutate(res, nspecs, nil)
}

func decodeMutate(res *gomemcached.MCResponse, nspecs int, specs []MutateSpec) (*MutateResult, error) {
	const op = gomemcached.SUBDOC_MULTI_MUTATION
	out := &MutateResult{Cas: res.Cas}
	switch res.Status {
	case gomemcached.SUCCESS:
	case gomemcached.SUBDOC_SUCCESS_DELETED:
		out.Deleted = true
	case gomemcached.SUBDOC_BAD_MULTI, gomemcached.SUBDOC_MULTI_PATH_FAILURE_DELETED:
		if len(res.Body) < 3 {
			return nil, shortBody(op, "failed spec cut short")
		}
		e := &SubdocError{Index: int(res.Body[0]), Status: gomemcached.Status(binary.BigEndian.Uint16(res.Body[1:3]))}
		e.cmd, _ = serverError(res).(*gomemcached.ServerError)
		if e.Index < len(specs) {
			e.Op, e.Path = specs[e.Index].Op, specs[e.Index].Path
		}
		return nil, e
	default:
		return nil, serverError(res)
	}
	switch len(res.Extras) {
	case 0:
	case 16:
		out.VbUUID = binary.BigEndian.Uint64(res.Extras[0:8])
		out.Seqno = binary.BigEndian.Uint64(res.Extras[8:16])
	default:
		return nil, badBody(op, "extras of "+strconv.Itoa(len(res.Extras))+" bytes")
	}
	out.Results = make([]SubdocResult, nspecs)
	for b := res.Body; len(b) > 0; {
		if len(b) < 7 {
			return nil, shortBody(op, "mutation result header cut short")
		}
		i := int(b[0])
		n := binary.BigEndian.Uint32(b[3:7])
		switch {
		case uint64(n) > uint64(len(b)-7):
			return nil, shortBody(op, "mutation result value runs past the end")
		case i >= nspecs:
			return nil, badBody(op, "result for spec "+strconv.Itoa(i)+" of "+strconv.Itoa(nspecs))
		}
		out.Results[i] = SubdocResult{Status: gomemcached.Status(binary.BigEndian.Uint16(b[1:3]))}
		if n > 0 {
			out.Results[i].Value = b[7 : 7+n : 7+n]
		}
		b = b[7+n:]
	}
	return out, nil
}

// Lookup reads paths of key with one SUBDOC_MULTI_LOOKUP of the specs of
// l. The ClientContext, if not nil, names the collection and a user to
// impersonate (Compressed does not apply: sub-document requests are raw
// bytes). A document that was reached gives a result per spec, in order,
// failed specs included (LookupResult.Err tells them); otherwise the error
// is a *gomemcached.ServerError (errors.Is(err, gomemcached.ErrKeyNotFound)
// for a missing document). A result that does not have one entry per spec
// fails with ErrBadResponse.
func (c *Client) Lookup(ctx context.Context, vb uint16, key string, l *LookupIn, cc *ClientContext) (*LookupResult, error) {
	if l == nil {
		return nil, errNilSpec
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	value, err := l.AppendValue(nil)
	if err != nil {
		return nil, err
	}
	var ex [1]byte
	r := request{opcode: gomemcached.SUBDOC_MULTI_LOOKUP, vb: vb, key: key, extras: l.AppendExtras(ex[:0]), body: value}
	if err := c.c.applyContext(&r, contexts(cc)); err != nil {
		return nil, err
	}
	r.datatype = 0
	res, err := c.c.do(ctx, &r)
	if res == nil {
		return nil, err
	}
	out, err := DecodeLookupResult(res)
	if err != nil {
		return nil, err
	}
	if len(out.Results) != len(l.Specs) {
		return nil, badBody(gomemcached.SUBDOC_MULTI_LOOKUP,
			strconv.Itoa(len(out.Results))+" results for "+strconv.Itoa(len(l.Specs))+" specs")
	}
	return out, nil
}

// Mutate applies the specs of m to key atomically with one
// SUBDOC_MULTI_MUTATION. The ClientContext, if not nil, names the
// collection and a user to impersonate, and may ask for durability or to
// keep the expiry. On success the result has one entry per spec; if a spec
// failed, nothing was changed and the error is a *SubdocError naming it
// (errors.As), which errors.Is matches against the spec's status (say
// gomemcached.ErrPathNotFound); other failures are a
// *gomemcached.ServerError (KEY_ENOENT without SubdocMkdoc, KEY_EEXISTS
// for a CAS mismatch or an existing document with SubdocAdd, ...).
func (c *Client) Mutate(ctx context.Context, vb uint16, key string, m *MutateIn, cc *ClientContext) (*MutateResult, error) {
	if m == nil {
		return nil, errNilSpec
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	value, err := m.AppendValue(nil)
	if err != nil {
		return nil, err
	}
	var ex [5]byte
	r := request{opcode: gomemcached.SUBDOC_MULTI_MUTATION, vb: vb, key: key, cas: m.Cas,
		extras: m.AppendExtras(ex[:0]), body: value}
	if err := c.c.applyContext(&r, contexts(cc)); err != nil {
		return nil, err
	}
	r.datatype = 0
	res, err := c.c.do(ctx, &r)
	if res == nil {
		return nil, err
	}
	return decodeMutate(res, len(m.Specs), m.Specs)
}
