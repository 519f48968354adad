package subdoc

// Error is the failure of a sub-document operation. The values are those
// of subjson, which kv_engine maps to its SUBDOC_* statuses.
type Error uint8

// Errors.
const (
	// ErrPathNotFound: a component of the path does not exist
	// (SUBDOC_PATH_ENOENT).
	ErrPathNotFound Error = iota + 1
	// ErrPathMismatch: the path treats a value as the wrong type, such as
	// an index into an object (SUBDOC_PATH_MISMATCH).
	ErrPathMismatch
	// ErrPathInvalid: the path does not parse, or does not suit the
	// operation (SUBDOC_PATH_EINVAL).
	ErrPathInvalid
	// ErrPathTooBig: the path has too many components (SUBDOC_PATH_E2BIG).
	ErrPathTooBig
	// ErrDocTooDeep: the document nests deeper than MaxDepth
	// (SUBDOC_DOC_E2DEEP).
	ErrDocTooDeep
	// ErrValueCantInsert: the value is not JSON where it is to go, or
	// the operation cannot apply to the root (SUBDOC_VALUE_CANTINSERT).
	ErrValueCantInsert
	// ErrDocNotJSON: the document is not JSON (SUBDOC_DOC_NOTJSON).
	ErrDocNotJSON
	// ErrNumTooBig: Counter's number does not fit an int64
	// (SUBDOC_NUM_ERANGE).
	ErrNumTooBig
	// ErrDeltaInvalid: Counter's delta is not a non-zero int64
	// (SUBDOC_DELTA_EINVAL).
	ErrDeltaInvalid
	// ErrDeltaOverflow: the counter would overflow; kv_engine answers it
	// SUBDOC_VALUE_CANTINSERT.
	ErrDeltaOverflow
	// ErrPathExists: DictAdd's key or ArrayAddUnique's value is there
	// already (SUBDOC_PATH_EEXISTS).
	ErrPathExists
	// ErrValueTooDeep: inserting the value would nest the document deeper
	// than MaxDepth (SUBDOC_VALUE_ETOODEEP).
	ErrValueTooDeep
	// ErrValueEmpty: the operation needs a value (kv_engine's validators
	// refuse such a request before it gets here).
	ErrValueEmpty
	// ErrXattrs: a value's extended attributes are malformed.
	ErrXattrs
)

var errorText = [...]string{
	ErrPathNotFound:    "subdoc: path not found",
	ErrPathMismatch:    "subdoc: path mismatch",
	ErrPathInvalid:     "subdoc: invalid path",
	ErrPathTooBig:      "subdoc: path has too many components",
	ErrDocTooDeep:      "subdoc: document too deep",
	ErrValueCantInsert: "subdoc: value cannot be inserted",
	ErrDocNotJSON:      "subdoc: document is not JSON",
	ErrNumTooBig:       "subdoc: number out of range",
	ErrDeltaInvalid:    "subdoc: invalid delta",
	ErrDeltaOverflow:   "subdoc: counter overflow",
	ErrPathExists:      "subdoc: path exists",
	ErrValueTooDeep:    "subdoc: value too deep",
	ErrValueEmpty:      "subdoc: value missing",
	ErrXattrs:          "subdoc: malformed extended attributes",
}

func (e Error) Error() string {
	if int(e) < len(errorText) && errorText[e] != "" {
		return errorText[e]
	}
	return "subdoc: unknown error"
}
