package gomemcached

import (
	"errors"
	"fmt"
	"io"
)

// Errors about the stream of packets itself. Each is returned wrapped in a
// *ProtocolError that also matches ErrProtocol, so
//
//	errors.Is(err, gomemcached.ErrProtocol)   // the stream cannot be trusted
//	errors.Is(err, gomemcached.ErrBadMagic)   // and why
//
// both work. After any of them the connection is out of step and must be
// closed.
var (
	// ErrProtocol matches every malformed-packet error.
	ErrProtocol = errors.New("gomemcached: protocol error")
	// ErrBadMagic: the first byte of a header is not a known magic.
	ErrBadMagic = errors.New("gomemcached: bad magic")
	// ErrBadLength: the lengths in a header or body disagree (frames + extras
	// + key exceed the body, an inner length runs past its section).
	ErrBadLength = errors.New("gomemcached: inconsistent lengths")
	// ErrBodyTooLarge: the packet announces a value over the size limit.
	ErrBodyTooLarge = errors.New("gomemcached: body too large")
	// ErrBadFrame: the framing extras are malformed.
	ErrBadFrame = errors.New("gomemcached: malformed framing extras")
	// ErrTruncated: the stream ended inside a packet. It also matches
	// io.ErrUnexpectedEOF.
	ErrTruncated = fmt.Errorf("gomemcached: truncated packet: %w", io.ErrUnexpectedEOF)
	// ErrKeyTooLong: encoding a packet whose key (with its collection id)
	// does not fit the key length field of its magic: 65535 bytes, or 255
	// with framing extras.
	ErrKeyTooLong = errors.New("gomemcached: key too long for the packet's magic")
	// ErrFieldTooLong: encoding a packet whose extras or framing extras
	// exceed 255 bytes, a frame over 270 bytes or a body over 4 GiB.
	ErrFieldTooLong = errors.New("gomemcached: field too long to encode")
)

// ErrorInvalidOp is returned by FrameInfo accessors asked about a frame of
// another type.
var ErrorInvalidOp error = errors.New("gomemcached: operation not applicable to this frame")

// ErrorObjLenNotMatch is returned when a FrameInfo's ObjLen disagrees with its
// data or its type.
var ErrorObjLenNotMatch error = errors.New("gomemcached: frame length does not match its data")

// ProtocolError is a malformed packet: Kind is one of the Err sentinels of
// this package, Detail says what was seen.
type ProtocolError struct {
	Kind   error
	Detail string
}

func protoErr(kind error, detail string) *ProtocolError {
	return &ProtocolError{Kind: kind, Detail: detail}
}

func (e *ProtocolError) Error() string {
	if e.Detail == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Detail
}

// Unwrap returns Kind and ErrProtocol, so errors.Is matches either.
func (e *ProtocolError) Unwrap() []error { return []error{e.Kind, ErrProtocol} }

// Sentinels for failed responses, one per status a caller commonly tests.
// errors.Is matches them against a *ServerError and against an *MCResponse
// used as an error, so
//
//	if errors.Is(err, gomemcached.ErrKeyNotFound) { ... }
//
// works on what this module's client returns, old API or new.
var (
	ErrKeyNotFound       = statusErr(KEY_ENOENT, "key not found")
	ErrKeyExists         = statusErr(KEY_EEXISTS, "key exists")
	ErrValueTooLarge     = statusErr(E2BIG, "value too large")
	ErrInvalidArguments  = statusErr(EINVAL, "invalid arguments")
	ErrNotStored         = statusErr(NOT_STORED, "not stored")
	ErrDeltaBadValue     = statusErr(DELTA_BADVAL, "incr/decr on a non-numeric value")
	ErrNotMyVBucket      = statusErr(NOT_MY_VBUCKET, "not my vbucket")
	ErrNoBucket          = statusErr(NO_BUCKET, "no bucket selected")
	ErrLocked            = statusErr(LOCKED, "document locked")
	ErrAuthStale         = statusErr(AUTH_STALE, "authentication stale")
	ErrAuthFailed        = statusErr(AUTH_ERROR, "authentication failed")
	ErrRange             = statusErr(ERANGE, "value out of range")
	ErrRollback          = statusErr(ROLLBACK, "rollback required")
	ErrAccessDenied      = statusErr(EACCESS, "access denied")
	ErrUnknownCommand    = statusErr(UNKNOWN_COMMAND, "unknown command")
	ErrOutOfMemory       = statusErr(ENOMEM, "out of memory")
	ErrNotSupported      = statusErr(NOT_SUPPORTED, "not supported")
	ErrInternal          = statusErr(EINTERNAL, "internal server error")
	ErrBusy              = statusErr(EBUSY, "server busy")
	ErrTempFail          = statusErr(TMPFAIL, "temporary failure")
	ErrUnknownCollection = statusErr(UNKNOWN_COLLECTION, "unknown collection")
	ErrUnknownScope      = statusErr(UNKNOWN_SCOPE, "unknown scope")
	ErrPathNotFound      = statusErr(SUBDOC_PATH_NOT_FOUND, "sub-document path not found")
)

// statusError is the type of the status sentinels: it matches any failure
// carrying its status.
type statusError struct {
	status Status
	msg    string
}

func statusErr(s Status, msg string) error { return &statusError{s, "gomemcached: " + msg} }

func (e *statusError) Error() string { return e.msg }

// matchStatus reports whether target is the status sentinel for s.
func matchStatus(s Status, target error) bool {
	t, ok := target.(*statusError)
	return ok && t.status == s
}

// ServerError is a response whose status is not SUCCESS, returned as an
// error by the new APIs of this module. errors.Is matches it against the
// status sentinels (ErrKeyNotFound, ...); errors.As extracts it to read the
// status. A ServerError leaves the connection usable unless IsFatal says
// otherwise.
type ServerError struct {
	Opcode CommandCode
	Status Status
	Opaque uint32
	// Body is the response's value, a copy: Couchbase servers put an
	// explanation there (JSON with "error":{"context":...}) when XERROR was
	// negotiated.
	Body []byte
}

func (e *ServerError) Error() string {
	s := "gomemcached: " + e.Opcode.String() + ": " + e.Status.String()
	if d, ok := StatusDesc[e.Status]; ok {
		s += " (" + d + ")"
	}
	if len(e.Body) > 0 && len(e.Body) <= 512 {
		s += ": " + string(e.Body)
	}
	return s
}

// Is matches the status sentinel for e.Status.
func (e *ServerError) Is(target error) bool { return matchStatus(e.Status, target) }

// statusOf returns the status an error carries: that of an *MCResponse or a
// *ServerError anywhere in its chain, else UNKNOWN_STATUS.
func statusOf(err error) Status {
	var res *MCResponse
	if errors.As(err, &res) {
		return res.Status
	}
	var se *ServerError
	if errors.As(err, &se) {
		return se.Status
	}
	return UNKNOWN_STATUS
}

// fatalStatuses are the statuses after which the reference's client drops
// the connection.
var fatalStatuses = map[Status]bool{
	DELTA_BADVAL:   true,
	NO_BUCKET:      true,
	AUTH_STALE:     true,
	AUTH_ERROR:     true,
	ERANGE:         true,
	ROLLBACK:       true,
	EACCESS:        true,
	ENOMEM:         true,
	NOT_SUPPORTED:  true,
	UNKNOWN_STATUS: true,
}

// IsFatal reports whether e should end the connection it came from. A failed
// response (an *MCResponse or *ServerError) is fatal only for the statuses
// DELTA_BADVAL, NO_BUCKET, AUTH_STALE, AUTH_ERROR, ERANGE, ROLLBACK, EACCESS,
// ENOMEM and NOT_SUPPORTED. An error with a Fatal() bool method in its chain
// (a client's timeout that left the connection in step, say) answers for
// itself. Any other non-nil error (I/O, protocol) is fatal, since unread
// data may be left on the wire.
func IsFatal(e error) bool {
	if e == nil {
		return false
	}
	var f interface{ Fatal() bool }
	if errors.As(e, &f) {
		return f.Fatal()
	}
	return fatalStatuses[statusOf(e)]
}

// IsNotFound reports whether e is a KEY_ENOENT response.
func IsNotFound(e error) bool {
	return e != nil && statusOf(e) == KEY_ENOENT
}

// IsTenantLimit reports whether e is a response refused by a tenant limit
// (statuses RATE_LIMITED_NETWORK_INGRESS to BUCKET_SIZE_LIMIT_EXCEEDED).
func IsTenantLimit(e error) bool {
	if e == nil {
		return false
	}
	s := statusOf(e)
	return s >= RATE_LIMITED_NETWORK_INGRESS && s <= BUCKET_SIZE_LIMIT_EXCEEDED
}
