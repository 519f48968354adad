package gomemcached

import "maps"

// Status is the status field of a response: SUCCESS or the reason a request
// failed. Values follow couchbase/kv_engine's include/mcbp/protocol/status.h.
type Status uint16

// Statuses. The names and values of this group are those of
// github.com/couchbase/gomemcached.
const (
	SUCCESS           = Status(0x00)
	KEY_ENOENT        = Status(0x01)
	KEY_EEXISTS       = Status(0x02)
	E2BIG             = Status(0x03)
	EINVAL            = Status(0x04)
	NOT_STORED        = Status(0x05)
	DELTA_BADVAL      = Status(0x06)
	NOT_MY_VBUCKET    = Status(0x07)
	NO_BUCKET         = Status(0x08)
	LOCKED            = Status(0x09)
	WOULD_THROTTLE    = Status(0x0c)
	CONFIG_ONLY       = Status(0x0d)
	CAS_VALUE_INVALID = Status(0x0f)
	AUTH_STALE        = Status(0x1f)
	AUTH_ERROR        = Status(0x20)
	AUTH_CONTINUE     = Status(0x21)
	ERANGE            = Status(0x22)
	ROLLBACK          = Status(0x23)
	EACCESS           = Status(0x24)
	NOT_INITIALIZED   = Status(0x25)

	RATE_LIMITED_NETWORK_INGRESS = Status(0x30)
	RATE_LIMITED_NETWORK_EGRESS  = Status(0x31)
	RATE_LIMITED_MAX_CONNECTIONS = Status(0x32)
	RATE_LIMITED_MAX_COMMANDS    = Status(0x33)
	SCOPE_SIZE_LIMIT_EXCEEDED    = Status(0x34)
	BUCKET_SIZE_LIMIT_EXCEEDED   = Status(0x35)

	BUCKET_RESIDENT_RATIO_TOO_LOW = Status(0x36)
	BUCKET_DATA_SIZE_TOO_BIG      = Status(0x37)
	BUCKET_DISK_SPACE_TOO_LOW     = Status(0x38)

	UNKNOWN_COMMAND    = Status(0x81)
	ENOMEM             = Status(0x82)
	NOT_SUPPORTED      = Status(0x83)
	EINTERNAL          = Status(0x84)
	EBUSY              = Status(0x85)
	TMPFAIL            = Status(0x86)
	XATTR_EINVAL       = Status(0x87)
	UNKNOWN_COLLECTION = Status(0x88)

	DURABILITY_INVALID_LEVEL      = Status(0xa0)
	DURABILITY_IMPOSSIBLE         = Status(0xa1)
	SYNC_WRITE_IN_PROGRESS        = Status(0xa2)
	SYNC_WRITE_AMBIGUOUS          = Status(0xa3)
	SYNC_WRITE_RECOMMITINPROGRESS = Status(0xa4)

	RANGE_SCAN_MORE     = Status(0xa6)
	RANGE_SCAN_COMPLETE = Status(0xa7)

	SUBDOC_PATH_NOT_FOUND             = Status(0xc0)
	SUBDOC_INVALID_COMBO              = Status(0xcb)
	SUBDOC_BAD_MULTI                  = Status(0xcc) // one or more paths of a multi-path command failed
	SUBDOC_SUCCESS_DELETED            = Status(0xcd)
	SUBDOC_MULTI_PATH_FAILURE_DELETED = Status(0xd3)

	// UNKNOWN_STATUS is not sent by servers: it stands for a failure that
	// did not come from a response, such as an I/O error.
	UNKNOWN_STATUS = Status(0xffff)
)

// Statuses beyond the reference's list.
const (
	UNKNOWN_FRAME_INFO                = Status(0x80)
	NO_COLLECTIONS_MANIFEST           = Status(0x89)
	CANNOT_APPLY_COLLECTIONS_MANIFEST = Status(0x8a)
	COLLECTIONS_MANIFEST_AHEAD        = Status(0x8b)
	UNKNOWN_SCOPE                     = Status(0x8c)
	DCP_STREAMID_INVALID              = Status(0x8d)

	SUBDOC_PATH_MISMATCH           = Status(0xc1)
	SUBDOC_PATH_EINVAL             = Status(0xc2)
	SUBDOC_PATH_E2BIG              = Status(0xc3)
	SUBDOC_DOC_E2DEEP              = Status(0xc4)
	SUBDOC_VALUE_CANTINSERT        = Status(0xc5)
	SUBDOC_DOC_NOT_JSON            = Status(0xc6)
	SUBDOC_NUM_ERANGE              = Status(0xc7)
	SUBDOC_DELTA_EINVAL            = Status(0xc8)
	SUBDOC_PATH_EEXISTS            = Status(0xc9)
	SUBDOC_VALUE_ETOODEEP          = Status(0xca)
	SUBDOC_XATTR_INVALID_FLAG      = Status(0xce)
	SUBDOC_XATTR_INVALID_KEY       = Status(0xcf)
	SUBDOC_XATTR_UNKNOWN_MACRO     = Status(0xd0)
	SUBDOC_XATTR_UNKNOWN_VATTR     = Status(0xd1)
	SUBDOC_XATTR_CANT_MODIFY_VATTR = Status(0xd2)
	SUBDOC_INVALID_XATTR_ORDER     = Status(0xd4)

	RANGE_SCAN_CANCELLED = Status(0xa5)
	VBUUID_NOT_EQUAL     = Status(0xa8) // a range scan's snapshot requirement names another vbucket history

	SUBDOC_XATTR_UNKNOWN_VATTR_MACRO         = Status(0xd5)
	SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS = Status(0xd6)
	SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE  = Status(0xd7)
	SUBDOC_FIELD_NOT_BINARY_VALUE            = Status(0xd8)
)

// StatusNames maps every status this package names to its name, as in the
// reference. Treat it as read-only: String reads a copy taken when the
// package is initialised, so that it is safe for concurrent use whatever a
// program does to the map.
var StatusNames = map[Status]string{
	SUCCESS: "SUCCESS", KEY_ENOENT: "KEY_ENOENT", KEY_EEXISTS: "KEY_EEXISTS",
	E2BIG: "E2BIG", EINVAL: "EINVAL", NOT_STORED: "NOT_STORED",
	DELTA_BADVAL: "DELTA_BADVAL", NOT_MY_VBUCKET: "NOT_MY_VBUCKET",
	NO_BUCKET: "NO_BUCKET", LOCKED: "LOCKED", WOULD_THROTTLE: "WOULD_THROTTLE",
	CONFIG_ONLY: "CONFIG_ONLY", CAS_VALUE_INVALID: "CAS_VALUE_INVALID",
	AUTH_STALE: "AUTH_STALE", AUTH_ERROR: "AUTH_ERROR", AUTH_CONTINUE: "AUTH_CONTINUE",
	ERANGE: "ERANGE", ROLLBACK: "ROLLBACK", EACCESS: "EACCESS",
	NOT_INITIALIZED: "NOT_INITIALIZED",

	RATE_LIMITED_NETWORK_INGRESS: "RATE_LIMITED_NETWORK_INGRESS",
	RATE_LIMITED_NETWORK_EGRESS:  "RATE_LIMITED_NETWORK_EGRESS",
	RATE_LIMITED_MAX_CONNECTIONS: "RATE_LIMITED_MAX_CONNECTIONS",
	RATE_LIMITED_MAX_COMMANDS:    "RATE_LIMITED_MAX_COMMANDS",
	SCOPE_SIZE_LIMIT_EXCEEDED:    "SCOPE_SIZE_LIMIT_EXCEEDED",
	BUCKET_SIZE_LIMIT_EXCEEDED:   "BUCKET_SIZE_LIMIT_EXCEEDED",

	BUCKET_RESIDENT_RATIO_TOO_LOW: "BUCKET_RESIDENT_RATIO_TOO_LOW",
	BUCKET_DATA_SIZE_TOO_BIG:      "BUCKET_DATA_SIZE_TOO_BIG",
	BUCKET_DISK_SPACE_TOO_LOW:     "BUCKET_DISK_SPACE_TOO_LOW",

	UNKNOWN_FRAME_INFO: "UNKNOWN_FRAME_INFO", UNKNOWN_COMMAND: "UNKNOWN_COMMAND",
	ENOMEM: "ENOMEM", NOT_SUPPORTED: "NOT_SUPPORTED", EINTERNAL: "EINTERNAL",
	EBUSY: "EBUSY", TMPFAIL: "TMPFAIL", XATTR_EINVAL: "XATTR_EINVAL",
	UNKNOWN_COLLECTION: "UNKNOWN_COLLECTION", NO_COLLECTIONS_MANIFEST: "NO_COLLECTIONS_MANIFEST",
	CANNOT_APPLY_COLLECTIONS_MANIFEST: "CANNOT_APPLY_COLLECTIONS_MANIFEST",
	COLLECTIONS_MANIFEST_AHEAD:        "COLLECTIONS_MANIFEST_AHEAD",
	UNKNOWN_SCOPE:                     "UNKNOWN_SCOPE",
	DCP_STREAMID_INVALID:              "DCP_STREAMID_INVALID",

	DURABILITY_INVALID_LEVEL:      "DURABILITY_INVALID_LEVEL",
	DURABILITY_IMPOSSIBLE:         "DURABILITY_IMPOSSIBLE",
	SYNC_WRITE_IN_PROGRESS:        "SYNC_WRITE_IN_PROGRESS",
	SYNC_WRITE_AMBIGUOUS:          "SYNC_WRITE_AMBIGUOUS",
	SYNC_WRITE_RECOMMITINPROGRESS: "SYNC_WRITE_RECOMMITINPROGRESS",
	RANGE_SCAN_MORE:               "RANGE_SCAN_MORE",
	RANGE_SCAN_COMPLETE:           "RANGE_SCAN_COMPLETE",

	SUBDOC_PATH_NOT_FOUND: "SUBDOC_PATH_NOT_FOUND", SUBDOC_PATH_MISMATCH: "SUBDOC_PATH_MISMATCH",
	SUBDOC_PATH_EINVAL: "SUBDOC_PATH_EINVAL", SUBDOC_PATH_E2BIG: "SUBDOC_PATH_E2BIG",
	SUBDOC_DOC_E2DEEP: "SUBDOC_DOC_E2DEEP", SUBDOC_VALUE_CANTINSERT: "SUBDOC_VALUE_CANTINSERT",
	SUBDOC_DOC_NOT_JSON: "SUBDOC_DOC_NOT_JSON", SUBDOC_NUM_ERANGE: "SUBDOC_NUM_ERANGE",
	SUBDOC_DELTA_EINVAL: "SUBDOC_DELTA_EINVAL", SUBDOC_PATH_EEXISTS: "SUBDOC_PATH_EEXISTS",
	SUBDOC_VALUE_ETOODEEP: "SUBDOC_VALUE_ETOODEEP", SUBDOC_INVALID_COMBO: "SUBDOC_INVALID_COMBO",
	SUBDOC_BAD_MULTI: "SUBDOC_BAD_MULTI", SUBDOC_SUCCESS_DELETED: "SUBDOC_SUCCESS_DELETED",
	SUBDOC_XATTR_INVALID_FLAG:                "SUBDOC_XATTR_INVALID_FLAG",
	SUBDOC_XATTR_INVALID_KEY:                 "SUBDOC_XATTR_INVALID_KEY",
	SUBDOC_XATTR_UNKNOWN_MACRO:               "SUBDOC_XATTR_UNKNOWN_MACRO",
	SUBDOC_XATTR_UNKNOWN_VATTR:               "SUBDOC_XATTR_UNKNOWN_VATTR",
	SUBDOC_XATTR_CANT_MODIFY_VATTR:           "SUBDOC_XATTR_CANT_MODIFY_VATTR",
	SUBDOC_MULTI_PATH_FAILURE_DELETED:        "SUBDOC_MULTI_PATH_FAILURE_DELETED",
	SUBDOC_INVALID_XATTR_ORDER:               "SUBDOC_INVALID_XATTR_ORDER",
	RANGE_SCAN_CANCELLED:                     "RANGE_SCAN_CANCELLED",
	VBUUID_NOT_EQUAL:                         "VBUUID_NOT_EQUAL",
	SUBDOC_XATTR_UNKNOWN_VATTR_MACRO:         "SUBDOC_XATTR_UNKNOWN_VATTR_MACRO",
	SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS: "SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS",
	SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE:  "SUBDOC_DELETED_DOCUMENT_CANT_HAVE_VALUE",
	SUBDOC_FIELD_NOT_BINARY_VALUE:            "SUBDOC_FIELD_NOT_BINARY_VALUE",
	UNKNOWN_STATUS:                           "UNKNOWN_STATUS",
}

// StatusDesc maps statuses to a sentence for people: what went wrong.
var StatusDesc = map[Status]string{
	SUCCESS:            "Success",
	KEY_ENOENT:         "Not found",
	KEY_EEXISTS:        "Data exists for key",
	E2BIG:              "Too large",
	EINVAL:             "Invalid arguments",
	NOT_STORED:         "Not stored",
	DELTA_BADVAL:       "Non-numeric server-side value for incr or decr",
	NOT_MY_VBUCKET:     "The vbucket belongs to another server",
	NO_BUCKET:          "Not connected to a bucket",
	LOCKED:             "The document is locked",
	AUTH_STALE:         "Authentication context is stale; authenticate again",
	AUTH_ERROR:         "Authentication failed",
	AUTH_CONTINUE:      "Authentication continues",
	ERANGE:             "Value outside the legal range",
	ROLLBACK:           "Rollback required",
	EACCESS:            "No access",
	NOT_INITIALIZED:    "The node is being initialized",
	UNKNOWN_COMMAND:    "Unknown command",
	ENOMEM:             "Out of memory",
	NOT_SUPPORTED:      "Not supported",
	EINTERNAL:          "Internal error",
	EBUSY:              "Server busy",
	TMPFAIL:            "Temporary failure",
	XATTR_EINVAL:       "Invalid XATTR syntax",
	UNKNOWN_COLLECTION: "Unknown collection",
	UNKNOWN_SCOPE:      "Unknown scope",

	RATE_LIMITED_NETWORK_INGRESS: "Network ingress rate limit exceeded",
	RATE_LIMITED_NETWORK_EGRESS:  "Network egress rate limit exceeded",
	RATE_LIMITED_MAX_CONNECTIONS: "Too many connections",
	RATE_LIMITED_MAX_COMMANDS:    "Command rate limit exceeded",
	SCOPE_SIZE_LIMIT_EXCEEDED:    "Scope size limit exceeded",
	BUCKET_SIZE_LIMIT_EXCEEDED:   "Bucket size limit exceeded",

	DURABILITY_INVALID_LEVEL: "Invalid durability level",
	DURABILITY_IMPOSSIBLE:    "Durability requirements cannot be met",
	SYNC_WRITE_IN_PROGRESS:   "A synchronous write is in progress on the key",
	SYNC_WRITE_AMBIGUOUS:     "The outcome of the synchronous write is unknown",
	SUBDOC_PATH_NOT_FOUND:    "Sub-document path not found",
	SUBDOC_BAD_MULTI:         "One or more sub-document paths failed",
}

// statusNames is StatusNames as the package defines it, for String.
var statusNames = maps.Clone(StatusNames)

// String returns the status's name (see StatusNames), or its value in hex
// ("0x2e") when it has none.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return hexByte(uint16(s))
}

// ErrorMapVersion is the version of the error map GET_ERROR_MAP asks for.
type ErrorMapVersion uint16

// Error map versions.
const (
	ErrorMapInvalidVersion = 0 // no version
	ErrorMapCB50           = 1 // Couchbase Server 5.0 and later
	ErrorMapCB75           = 2 // Couchbase Server 7.5 and later
)
