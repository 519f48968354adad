package memcached

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/f8e615c8/gomemcached"
)

// The sub-document methods of the reference: GetSubdoc and SetSubdoc send
// SUBDOC_MULTI_LOOKUP and SUBDOC_MULTI_MUTATION with the specs the
// reference builds, and GetBulk uses GetSubDocVal for its lookups. The
// typed builder (LookupIn, MutateIn, Client.Lookup, Client.Mutate) is in
// subdocspec.go. Multi-path requests and responses follow kv_engine's
// docs/SubDocument.md and include/memcached/protocol_binary.h.

// SubDocOp is one mutation of SetSubdoc. The opcode follows from the
// fields: Counter adds the decimal number in Value to the number at Path
// (SUBDOC_COUNTER); a nil Value deletes Path (SUBDOC_DELETE), or the whole
// document when Path is empty and Xattr is false (DELETE); an empty Path
// without Xattr replaces the whole document with Value (SET); anything
// else sets Path to Value (SUBDOC_DICT_UPSERT). Xattr makes Path name an
// extended attribute.
type SubDocOp struct {
	Xattr   bool
	Path    string
	Value   []byte
	Counter bool
}

// opcode returns the opcode of the spec op encodes to.
func (op *SubDocOp) opcode() gomemcached.CommandCode {
	switch {
	case op.Counter:
		return gomemcached.SUBDOC_COUNTER
	case op.Value == nil && op.Path == "" && !op.Xattr:
		// The reference sends SUBDOC_DELETE with an empty path, which
		// kv_engine rejects (EINVAL): the whole-document delete of a
		// multi-mutation is DELETE.
		return gomemcached.DELETE
	case op.Value == nil:
		return gomemcached.SUBDOC_DELETE
	case op.Path == "" && !op.Xattr:
		return gomemcached.SET
	}
	return gomemcached.SUBDOC_DICT_UPSERT
}

// appendSpec appends op as a mutation spec: opcode(1), path flags(1),
// path length(2), value length(4), path, value.
func (op *SubDocOp) appendSpec(dst []byte) []byte {
	flags := gomemcached.SUBDOC_FLAG_NONE_PATH
	if op.Xattr {
		flags = gomemcached.SUBDOC_FLAG_XATTR_PATH
	}
	dst = append(dst, byte(op.opcode()), flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(op.Path)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(op.Value)))
	dst = append(dst, op.Path...)
	return append(dst, op.Value...)
}

// errNoSubdocOps is SetSubdoc's error for an empty list of operations.
var errNoSubdocOps = errors.New("memcached: SetSubdoc: no operations")

// GetSubdoc reads paths of key with one SUBDOC_MULTI_LOOKUP: a
// SUBDOC_GET of each path in subPaths, then of the whole document (see
// GetSubDocVal for the flags). The response's value holds one result per
// lookup (DecodeLookupResults decodes them).
//
// As in the reference, the response is returned without error when some
// lookups failed (SUBDOC_BAD_MULTI, SUBDOC_MULTI_PATH_FAILURE_DELETED) or
// the path was not found; unlike the reference, also when the document is
// deleted and every lookup succeeded (SUBDOC_SUCCESS_DELETED, a success
// status in kv_engine). Other failed statuses are returned as the error
// too.
func (c *Client) GetSubdoc(vb uint16, key string, subPaths []string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := request{opcode: gomemcached.SUBDOC_MULTI_LOOKUP, vb: vb, key: key}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	if err := checkPaths(subPaths); err != nil {
		return nil, err
	}
	r.extras, r.body = GetSubDocVal(subPaths, context)
	res, err := c.c.call(&r)
	if err != nil && IfResStatusError(res) {
		return res, err
	}
	return res, nil
}

// checkPaths fails for a path too long for its 16-bit length.
func checkPaths(paths []string) error {
	for _, p := range paths {
		if len(p) > math.MaxUint16 {
			return fieldErr("sub-document path", len(p))
		}
	}
	return nil
}

// SetSubdoc applies ops to key atomically with one SUBDOC_MULTI_MUTATION,
// with expiry exp and, if cas is not 0, only if the document's CAS is cas.
// The document is created if it does not exist (doc flag MKDOC) or, with
// addOnly, must not exist (ADD); when some op deletes, neither flag is
// sent, as in the reference. The extras are always exp(4) + doc flags(1).
//
// As in the reference, a failed status returns a nil response with the
// response as the error (errors.As finds the *gomemcached.MCResponse; for
// SUBDOC_BAD_MULTI its value holds the index and status of the first op
// that failed, see DecodeMutateResults). No ops fails before anything is
// sent.
func (c *Client) SetSubdoc(vb uint16, key string, ops []SubDocOp, addOnly bool, exp int, cas uint64, context ...*ClientContext) (
	*gomemcached.MCResponse, error) {
	if len(ops) == 0 {
		return nil, errNoSubdocOps
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	n, del := 0, false
	for i := range ops {
		if len(ops[i].Path) > math.MaxUint16 {
			return nil, fieldErr("sub-document path", len(ops[i].Path))
		}
		if uint64(len(ops[i].Value)) > math.MaxUint32 {
			return nil, fieldErr("sub-document value", len(ops[i].Value))
		}
		n += 8 + len(ops[i].Path) + len(ops[i].Value)
		del = del || ops[i].Value == nil
	}
	body := make([]byte, 0, n)
	for i := range ops {
		body = ops[i].appendSpec(body)
	}
	var ex [5]byte
	binary.BigEndian.PutUint32(ex[:4], uint32(exp))
	switch {
	case del:
	case addOnly:
		ex[4] = gomemcached.SUBDOC_FLAG_ADD
	default:
		ex[4] = gomemcached.SUBDOC_FLAG_MKDOC
	}
	r := request{opcode: gomemcached.SUBDOC_MULTI_MUTATION, vb: vb, key: key, cas: cas, extras: ex[:], body: body}
	if err := c.c.applyContext(&r, context); err != nil {
		return nil, err
	}
	res, err := c.c.call(&r)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// GetSubDocVal returns the extras and value of the SUBDOC_MULTI_LOOKUP
// that GetSubdoc and GetBulk send for subPaths: a SUBDOC_GET spec per
// path, then four zero bytes, which kv_engine reads as one more spec, a
// GET of the whole document (opcode 0, no flags, empty path). The paths
// are extended attributes (path flag XATTR_PATH) unless a context sets
// DocumentSubDocPaths. For extended attributes the extras are the doc flag
// ACCESS_DELETED, so that a deleted document's attributes are read too,
// except when the only path is "$document.exptime"; otherwise there are no
// extras.
func GetSubDocVal(subPaths []string, context []*ClientContext) (extraBuf, valueBuf []byte) {
	flag := gomemcached.SUBDOC_FLAG_XATTR_PATH
	for _, cc := range context {
		if cc != nil && cc.DocumentSubDocPaths {
			flag = gomemcached.SUBDOC_FLAG_NONE_PATH
			break
		}
	}
	if flag != 0 && (len(subPaths) != 1 || subPaths[0] != "$document.exptime") {
		extraBuf = []byte{gomemcached.SUBDOC_FLAG_ACCESS_DELETED}
	}
	n := 4
	for _, p := range subPaths {
		n += 4 + len(p)
	}
	valueBuf = make([]byte, 0, n)
	for _, p := range subPaths {
		valueBuf = append(valueBuf, byte(gomemcached.SUBDOC_GET), flag)
		valueBuf = binary.BigEndian.AppendUint16(valueBuf, uint16(len(p)))
		valueBuf = append(valueBuf, p...)
	}
	return extraBuf, append(valueBuf, 0, 0, 0, 0)
}

// IfResStatusError reports whether response, returned with an error by a
// sub-document call, is a real failure: true for a nil response and for
// every status but those of a multi-path command that reached the
// document, whose value holds per-path results: SUBDOC_BAD_MULTI,
// SUBDOC_PATH_NOT_FOUND, SUBDOC_MULTI_PATH_FAILURE_DELETED and (unlike the
// reference, which forgets this success status of kv_engine)
// SUBDOC_SUCCESS_DELETED. As in the reference it is true for SUCCESS too:
// it is meant for responses that came with an error.
func IfResStatusError(response *gomemcached.MCResponse) bool {
	if response == nil {
		return true
	}
	switch response.Status {
	case gomemcached.SUBDOC_BAD_MULTI, gomemcached.SUBDOC_PATH_NOT_FOUND,
		gomemcached.SUBDOC_MULTI_PATH_FAILURE_DELETED, gomemcached.SUBDOC_SUCCESS_DELETED:
		return false
	}
	return true
}
