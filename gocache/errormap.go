package gocache

// The error map answers GET_ERROR_MAP (opcode 0xfe). Where it is specified:
//
//   - couchbase/kv_engine docs/ErrorMap.md ("Error Map Format", "Error
//     Attributes", "Protocol"): the document layout and the attributes.
//   - couchbase/kv_engine etc/couchbase/kv/error_maps/error_map_v2.json and
//     daemon/error_map_manager.cc: the map the server ships, how it derives
//     version 1 from version 2 and how a requested version is chosen;
//     daemon/protocol/mcbp/executors.cc and daemon/mcbp_validators.cc: the
//     command itself.
//   - couchbaselabs/sdk-rfcs rfc/0013-kv-error-map.md ("Getting the Error
//     Map", "Retry Intervals") and rfc/0069-kv-error-map-v2.md: the request
//     and the optional retry specification.
//
// The request's value is exactly two bytes: the highest map version the
// client can read, big-endian. The server answers with the newest version it
// has that is not above that (versions 1 and 2 exist), as JSON. kv_engine
// keeps nothing for version 0 and answers it with KEY_ENOENT; a value that is
// not two bytes long is EINVAL.
//
// The document is one object: "version" (format version), "revision" (bumped
// whenever a code or its attributes change; clients keep the map with the
// highest revision) and "errors". The keys of "errors" are status codes in
// lower-case hexadecimal without "0x" or leading zeros ("0", "1f", "86").
// Each entry has "name" (a short identifier), "desc" (text for messages) and
// "attrs" (a list of attribute strings that tell an unaware client how to
// treat the code).
//
// Version 2 has the same layout as version 1; it only allows attributes
// added later ("rate-limit", "system-constraint", "no-retry"), which clients
// of version 2 must ignore when they do not know them, whereas a version-1
// client may reject the whole map (libcouchbase does). kv_engine therefore
// builds version 1 from version 2 by dropping every attribute outside the
// version-1 set; errorMap does the same.
//
// An entry may also carry "retry", the retry specification of SDK RFC 0013:
// "strategy" (constant, linear or exponential), "interval" and "after"
// (required, ms), "ceil" and "max-duration" (optional, ms). kv_engine's own
// maps never include it, and RFC 0069 tells clients not to act on it. Here
// only the version-2 map has it, on the three temporary failures, as a hint;
// the "auto-retry" attribute, which would ask clients to follow it, is not
// set.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strconv"

	gm "github.com/f8e615c8/gomemcached"
)

// Error map versions gocache serves.
const (
	errorMapV1 = 1
	errorMapV2 = 2
)

// errorMapRevision is the revision of gocache's map, the same for both
// versions. Raise it whenever an entry is added or its attributes change.
const errorMapRevision = 1

// Error attributes, as docs/ErrorMap.md names them.
const (
	attrSuccess      = "success"
	attrItemOnly     = "item-only"
	attrItemLocked   = "item-locked"
	attrItemDeleted  = "item-deleted"
	attrInvalidInput = "invalid-input"
	attrFetchConfig  = "fetch-config"
	attrConnInvalid  = "conn-state-invalidated"
	attrAuth         = "auth"
	attrSpecial      = "special-handling"
	attrSupport      = "support"
	attrTemp         = "temp"
	attrInternal     = "internal"
	attrRetryNow     = "retry-now"
	attrRetryLater   = "retry-later"
	attrSubdoc       = "subdoc"
	attrDCP          = "dcp"
)

// errorMapV1Attrs is the set of attributes a version-1 map may carry: the
// list kv_engine keeps when it turns its version-2 map into version 1.
var errorMapV1Attrs = map[string]bool{
	attrSuccess: true, attrItemOnly: true, attrItemLocked: true,
	attrItemDeleted: true, attrInvalidInput: true, attrFetchConfig: true,
	attrConnInvalid: true, attrAuth: true, attrSpecial: true,
	attrSupport: true, attrTemp: true, attrInternal: true,
	attrRetryNow: true, attrRetryLater: true, attrSubdoc: true, attrDCP: true,
}

// retrySpec is an RFC 0013 retry specification. Times are milliseconds.
type retrySpec struct {
	Strategy    string `json:"strategy"`
	Interval    int    `json:"interval"`
	After       int    `json:"after"`
	Ceil        int    `json:"ceil,omitempty"`
	MaxDuration int    `json:"max-duration,omitempty"`
}

// errorInfo is one entry of the map, in the order it is written.
type errorInfo struct {
	Name  string     `json:"name"`
	Desc  string     `json:"desc"`
	Attrs []string   `json:"attrs"`
	Retry *retrySpec `json:"retry,omitempty"`
}

// errorCode is an entry together with its status.
type errorCode struct {
	status gm.Status
	errorInfo
}

// Retry hints for the temporary failures (version 2 only).
var (
	// EBUSY and ETMPFAIL may be retried at once: a short constant pause.
	retryNowSpec = &retrySpec{Strategy: "constant", Interval: 10, After: 0, MaxDuration: 2000}
	// ENOMEM needs the cache to free memory first: back off linearly.
	retryLaterSpec = &retrySpec{Strategy: "linear", Interval: 100, After: 100, Ceil: 1000, MaxDuration: 10000}
)

// errorCodes lists every status gocache can send, in code order. Names are
// kv_engine's spellings, which differ from gm.StatusNames for 0x86
// (ETMPFAIL there, TMPFAIL here) and 0xa0 (DurabilityInvalidLevel); attributes are those kv_engine gives the
// same codes.
var errorCodes = byCode([]errorCode{
	{gm.SUCCESS, errorInfo{"SUCCESS", "The operation succeeded", []string{attrSuccess}, nil}},
	{gm.KEY_ENOENT, errorInfo{"KEY_ENOENT", "No item has this key", []string{attrItemOnly}, nil}},
	{gm.KEY_EEXISTS, errorInfo{"KEY_EEXISTS", "The key already exists, or its CAS differs from the one given", []string{attrItemOnly}, nil}},
	{gm.E2BIG, errorInfo{"E2BIG", "The value is larger than the item size limit", []string{attrItemOnly, attrInvalidInput}, nil}},
	{gm.EINVAL, errorInfo{"EINVAL", "The request is malformed or its arguments are invalid", []string{attrInternal, attrInvalidInput}, nil}},
	{gm.NOT_STORED, errorInfo{"NOT_STORED", "The item was not stored", []string{attrInternal, attrItemOnly}, nil}},
	{gm.DELTA_BADVAL, errorInfo{"DELTA_BADVAL", "The stored value is not a number that can be incremented or decremented", []string{attrItemOnly, attrInvalidInput}, nil}},
	{gm.NOT_MY_VBUCKET, errorInfo{"NOT_MY_VBUCKET", "This server does not serve the requested vBucket", []string{attrFetchConfig, attrInvalidInput}, nil}},
	{gm.NO_BUCKET, errorInfo{"NO_BUCKET", "The connection has no bucket selected", []string{attrConnInvalid}, nil}},
	{gm.AUTH_STALE, errorInfo{"AUTH_STALE", "The authentication is no longer valid; authenticate again", []string{attrConnInvalid, attrAuth}, nil}},
	{gm.AUTH_ERROR, errorInfo{"AUTH_ERROR", "SASL authentication was refused", []string{attrConnInvalid, attrAuth}, nil}},
	{gm.AUTH_CONTINUE, errorInfo{"AUTH_CONTINUE", "The SASL exchange needs another step", []string{attrSpecial}, nil}},
	{gm.ERANGE, errorInfo{"ERANGE", "A value in the request is out of range", []string{attrInvalidInput}, nil}},
	{gm.ROLLBACK, errorInfo{"ROLLBACK", "The stream must roll back to the seqno in the value", []string{attrDCP, attrSpecial}, nil}},
	{gm.EACCESS, errorInfo{"EACCESS", "The connection is not allowed to run this command", []string{attrSupport}, nil}},
	{gm.UNKNOWN_COMMAND, errorInfo{"UNKNOWN_COMMAND", "The server does not know this opcode", []string{attrSupport}, nil}},
	{gm.ENOMEM, errorInfo{"ENOMEM", "The server is out of memory for items; retry later", []string{attrTemp, attrRetryLater}, retryLaterSpec}},
	{gm.NOT_SUPPORTED, errorInfo{"NOT_SUPPORTED", "The server knows this command but does not support it", []string{attrSupport}, nil}},
	{gm.EINTERNAL, errorInfo{"EINTERNAL", "An internal server error occurred; reconnecting is advised", []string{attrInternal, attrConnInvalid}, nil}},
	{gm.EBUSY, errorInfo{"EBUSY", "The server is busy; retry", []string{attrTemp, attrRetryNow}, retryNowSpec}},
	{gm.TMPFAIL, errorInfo{"ETMPFAIL", "A temporary failure occurred; retry", []string{attrTemp, attrRetryNow}, retryNowSpec}},
	{gm.CAS_VALUE_INVALID, errorInfo{"CAS_VALUE_INVALID", "The CAS in the request is invalid", []string{attrItemOnly}, nil}},
	{gm.UNKNOWN_COLLECTION, errorInfo{"UNKNOWN_COLLECTION", "The request names a collection the server does not know", []string{attrInvalidInput}, nil}},
	{gm.CANNOT_APPLY_COLLECTIONS_MANIFEST, errorInfo{"CANNOT_APPLY_COLLECTIONS_MANIFEST", "The collections manifest cannot be applied to the bucket", []string{attrInvalidInput}, nil}},
	{gm.COLLECTIONS_MANIFEST_AHEAD, errorInfo{"COLLECTIONS_MANIFEST_AHEAD", "The bucket's collections manifest is newer than the one given", []string{attrInvalidInput}, nil}},
	{gm.UNKNOWN_SCOPE, errorInfo{"UNKNOWN_SCOPE", "The request names a scope the server does not know", []string{attrInvalidInput}, nil}},
	{gm.DCP_STREAMID_INVALID, errorInfo{"DCP_STREAMID_INVALID", "The DCP stream id is missing, not wanted or names no stream", []string{attrDCP, attrInvalidInput}, nil}},
	{gm.RANGE_SCAN_CANCELLED, errorInfo{"RangeScanCancelled", "The range scan was cancelled", []string{attrSuccess}, nil}},
	{gm.RANGE_SCAN_MORE, errorInfo{"RangeScanMore", "The range scan has more to send: continue it", []string{attrSuccess}, nil}},
	{gm.XATTR_EINVAL, errorInfo{"XATTR_EINVAL", "The extended attributes are invalid", []string{attrInvalidInput}, nil}},
	{gm.SUBDOC_FIELD_NOT_BINARY_VALUE, errorInfo{"SUBDOC_FIELD_NOT_BINARY_VALUE", "Subdoc: the field is not a binary value", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.VBUUID_NOT_EQUAL, errorInfo{"VbUuidNotEqual", "The vbucket's history is not the one the request names", []string{attrInvalidInput}, nil}},
	{gm.RANGE_SCAN_COMPLETE, errorInfo{"RangeScanComplete", "The range scan is complete", []string{attrSuccess}, nil}},
	{gm.SUBDOC_PATH_NOT_FOUND, errorInfo{"SUBDOC_PATH_ENOENT", "Subdoc: the path is not in the document", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.SUBDOC_PATH_MISMATCH, errorInfo{"SUBDOC_PATH_MISMATCH", "Subdoc: the path and the document disagree on structure", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.SUBDOC_PATH_EINVAL, errorInfo{"SUBDOC_PATH_EINVAL", "Subdoc: the path is invalid", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_PATH_E2BIG, errorInfo{"SUBDOC_PATH_E2BIG", "Subdoc: the path is too long", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_DOC_E2DEEP, errorInfo{"SUBDOC_PATH_E2DEEP", "Subdoc: the path is too deep", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_VALUE_CANTINSERT, errorInfo{"SUBDOC_VALUE_CANTINSERT", "Subdoc: the value cannot be inserted", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_DOC_NOT_JSON, errorInfo{"SUBDOC_DOC_NOTJSON", "Subdoc: the document is not JSON", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.SUBDOC_NUM_ERANGE, errorInfo{"SUBDOC_NUM_ERANGE", "Subdoc: the number at the path is out of range", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.SUBDOC_DELTA_EINVAL, errorInfo{"SUBDOC_DELTA_EINVAL", "Subdoc: the delta is invalid", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.SUBDOC_PATH_EEXISTS, errorInfo{"SUBDOC_PATH_EEXISTS", "Subdoc: the path exists already", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.SUBDOC_VALUE_ETOODEEP, errorInfo{"SUBDOC_VALUE_ETOODEEP", "Subdoc: the value would make the document too deep", []string{attrSubdoc, attrInvalidInput, attrItemOnly}, nil}},
	{gm.SUBDOC_INVALID_COMBO, errorInfo{"SUBDOC_INVALID_COMBO", "Subdoc: lookups and mutations in one command", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_BAD_MULTI, errorInfo{"SUBDOC_MULTI_PATH_FAILURE", "Subdoc: some paths failed; the value says which", []string{attrSubdoc, attrSpecial}, nil}},
	{gm.SUBDOC_SUCCESS_DELETED, errorInfo{"SUBDOC_SUCCESS_DELETED", "Subdoc: success, on a deleted document", []string{attrItemDeleted, attrSuccess, attrSubdoc}, nil}},
	{gm.SUBDOC_XATTR_INVALID_FLAG, errorInfo{"SUBDOC_XATTR_INVALID_FLAG_COMBO", "Subdoc: the flags do not go together", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_XATTR_INVALID_KEY, errorInfo{"SUBDOC_XATTR_INVALID_KEY_COMBO", "Subdoc: the extended attribute keys do not go together", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_XATTR_UNKNOWN_MACRO, errorInfo{"SUBDOC_XATTR_UNKNOWN_MACRO", "Subdoc: unknown macro", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_XATTR_UNKNOWN_VATTR, errorInfo{"SUBDOC_XATTR_UNKNOWN_VATTR", "Subdoc: unknown virtual attribute", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_XATTR_CANT_MODIFY_VATTR, errorInfo{"SUBDOC_XATTR_CANT_MODIFY_VATTR", "Subdoc: virtual attributes cannot be modified", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_MULTI_PATH_FAILURE_DELETED, errorInfo{"SUBDOC_MULTI_PATH_FAILURE_DELETED", "Subdoc: some paths failed, on a deleted document", []string{attrItemDeleted, attrSubdoc, attrSpecial}, nil}},
	{gm.SUBDOC_INVALID_XATTR_ORDER, errorInfo{"SUBDOC_INVALID_XATTR_ORDER", "Subdoc: extended attribute paths must come first", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_XATTR_UNKNOWN_VATTR_MACRO, errorInfo{"SUBDOC_XATTR_UNKNOWN_VATTR_MACRO", "Subdoc: unknown virtual attribute macro", []string{attrSubdoc, attrInvalidInput}, nil}},
	{gm.SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS, errorInfo{"SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS", "Subdoc: only a deleted document can be revived", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE, errorInfo{"SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE", "Subdoc: a deleted document cannot have a value", []string{attrSubdoc, attrItemOnly}, nil}},
	{gm.DURABILITY_INVALID_LEVEL, errorInfo{"DurabilityInvalidLevel", "The durability level cannot be met by this server", []string{attrInvalidInput}, nil}},
})

// byCode returns codes in the order of their statuses.
func byCode(codes []errorCode) []errorCode {
	slices.SortStableFunc(codes, func(a, b errorCode) int { return cmp.Compare(a.status, b.status) })
	return codes
}

// errorMapHeader is the document without its errors, which are written by
// hand so that they come out in code order.
type errorMapHeader struct {
	Version  int `json:"version"`
	Revision int `json:"revision"`
}

// errorMapDocs holds the encoded maps, indexed by version.
var errorMapDocs = [...][]byte{
	errorMapV1: buildErrorMap(errorMapV1),
	errorMapV2: buildErrorMap(errorMapV2),
}

// buildErrorMap encodes the map of the given version: compact JSON with the
// errors in ascending code order.
func buildErrorMap(version int) []byte {
	head, err := json.Marshal(errorMapHeader{Version: version, Revision: errorMapRevision})
	if err != nil {
		panic(err)
	}
	var b bytes.Buffer
	b.Write(head[:len(head)-1]) // leave the object open
	b.WriteString(`,"errors":{`)
	for i, c := range errorCodes {
		info := c.errorInfo
		if version < errorMapV2 {
			info.Retry = nil
			attrs := make([]string, 0, len(info.Attrs))
			for _, a := range info.Attrs {
				if errorMapV1Attrs[a] {
					attrs = append(attrs, a)
				}
			}
			info.Attrs = attrs
		}
		entry, err := json.Marshal(info)
		if err != nil {
			panic(err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strconv.FormatUint(uint64(c.status), 16))
		b.WriteString(`":`)
		b.Write(entry)
	}
	b.WriteString("}}")
	return b.Bytes()
}

// errorMap returns the error map JSON for the highest version the server has
// that is <= max (1 or 2), and that version; ok is false when max is 0.
// The returned slice is shared: callers must not modify it.
func errorMap(max uint16) (doc []byte, version uint16, ok bool) {
	if max == 0 {
		return nil, 0, false
	}
	version = min(max, uint16(len(errorMapDocs)-1))
	return errorMapDocs[version], version, true
}
