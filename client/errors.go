package memcached

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/f8e615c8/gomemcached"
)

// Errors of the connection as a whole. A call that fails because its
// connection is gone returns a *ConnError, which matches ErrClosed and
// unwraps to the cause.
var (
	// ErrClosed matches every error of a call made on, or waiting on, a
	// connection that has ended: closed by Close, by the server, by an I/O
	// or protocol error, by Hijack or by the stuck-connection watchdog.
	ErrClosed = errors.New("memcached: connection closed")
	// ErrHijacked is the cause of the ConnError returned by calls made
	// after Hijack.
	ErrHijacked = errors.New("memcached: connection hijacked")
	// ErrStuck is the cause of the ConnError with which the watchdog ends
	// a connection that received nothing for ClientOptions.StuckTimeout
	// while requests were outstanding. It also matches
	// os.ErrDeadlineExceeded.
	ErrStuck = &stuckError{}
	// ErrKeyTooLong is returned, before anything is sent, by the key-value
	// methods for a key over MaxKeyLen bytes: memcached answers such a key
	// with EINVAL and closes the connection, which would fail every other
	// request pipelined on it. It matches gomemcached.ErrInvalidArguments.
	ErrKeyTooLong = &keyError{}
	// ErrNoCollections is returned for a ClientContext naming a collection
	// other than the default on a connection that has not negotiated
	// collections (as the reference does).
	ErrNoCollections = errors.New("memcached: client does not use collections but a collection was specified")
	// ErrOpaqueInUse is returned, before anything is sent, by Transmit for
	// an opaque with the high bit set (0x80000000) that a call of the
	// client is waiting for: the responses could not be told apart. The
	// client's own opaques have that bit; Transmit reserves any such
	// opaque it writes, so that the client stops using it.
	ErrOpaqueInUse = errors.New("memcached: opaque in use by a call of the client")
)

// Errors of the reference, returned where the reference returns them.
var (
	// ErrPreserveExpiryNotSupported: a ClientContext asks to preserve the
	// expiry on a connection that did not negotiate the feature.
	ErrPreserveExpiryNotSupported = errors.New("PreserveExpiry is not supported")
	// ErrDurabilityNotSupported: a ClientContext asks for durability on a
	// connection that did not negotiate synchronous replication.
	ErrDurabilityNotSupported = errors.New("Durability is not supported")
)

// MaxKeyLen is the longest key, in bytes, that the key-value methods send.
const MaxKeyLen = 250

// ConnError is the error of a call whose connection has ended. It matches
// ErrClosed with errors.Is and unwraps to Err, the reason the connection
// ended (ErrClosed itself after Close, io.EOF when the server closed it,
// gomemcached.ErrTruncated when it closed mid-packet, ErrStuck, ErrHijacked,
// a net error, ...).
type ConnError struct {
	Err error
}

// Error describes the failure: ErrClosed's message after Close, else the
// cause's.
func (e *ConnError) Error() string {
	if e.Err == ErrClosed {
		return ErrClosed.Error()
	}
	return "memcached: connection failed: " + strings.TrimPrefix(e.Err.Error(), "memcached: ")
}

// Unwrap returns the cause.
func (e *ConnError) Unwrap() error { return e.Err }

// Is reports whether target is ErrClosed.
func (e *ConnError) Is(target error) bool { return target == ErrClosed }

// Fatal reports true: the connection has ended (see gomemcached.IsFatal),
// whatever the cause says of itself.
func (e *ConnError) Fatal() bool { return true }

// TimeoutError is the error of a call whose deadline (from its context, a
// SetDeadline or SetReadDeadline, or ClientOptions.ReadTimeout) passed
// before its response arrived. The connection stays usable: the response,
// when it comes, is discarded. It matches os.ErrDeadlineExceeded and
// context.DeadlineExceeded, and is a net.Error whose Timeout is true.
type TimeoutError struct {
	// Op is the opcode of the request that timed out.
	Op gomemcached.CommandCode

	receive bool  // the timeout of a Receive, which has no request
	cause   error // the cause given to the call's context, if any
}

// Error names the opcode that timed out.
func (e *TimeoutError) Error() string {
	if e.receive {
		return "memcached: receive: timeout"
	}
	return "memcached: " + e.Op.String() + ": timeout waiting for the response"
}

// Is matches os.ErrDeadlineExceeded and context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded || target == context.DeadlineExceeded
}

// Unwrap returns the cause given to the context whose deadline passed
// (context.WithDeadlineCause, WithTimeoutCause), nil if none.
func (e *TimeoutError) Unwrap() error { return e.cause }

// Timeout reports true.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports true: a later call may succeed.
func (e *TimeoutError) Temporary() bool { return true }

// Fatal reports false: the call timed out, not the connection, which stays
// in step (see gomemcached.IsFatal). A connection that is truly stuck ends
// with a *ConnError caused by ErrStuck instead.
func (e *TimeoutError) Fatal() bool { return false }

type stuckError struct{}

func (e *stuckError) Error() string {
	return "memcached: no data from the server with requests outstanding"
}

func (e *stuckError) Is(target error) bool {
	return target == ErrStuck || target == os.ErrDeadlineExceeded
}

type keyError struct{ n int }

func (e *keyError) Error() string {
	if e.n == 0 {
		return "memcached: key longer than " + strconv.Itoa(MaxKeyLen) + " bytes"
	}
	return "memcached: key of " + strconv.Itoa(e.n) + " bytes is longer than " + strconv.Itoa(MaxKeyLen)
}

func (e *keyError) Is(target error) bool {
	return target == ErrKeyTooLong || target == gomemcached.ErrInvalidArguments
}

// checkKey returns ErrKeyTooLong (with the length) for a key too long to send.
func checkKey(key string) error {
	if len(key) > MaxKeyLen {
		return &keyError{n: len(key)}
	}
	return nil
}

// statusError returns the error for a failed response in the reference's
// style: the response itself, or nil for SUCCESS and AUTH_CONTINUE.
func statusError(res *gomemcached.MCResponse) error {
	if res.Status == gomemcached.SUCCESS || res.Status == gomemcached.AUTH_CONTINUE {
		return nil
	}
	return res
}

// serverError returns the error for a failed response in the style of the
// new APIs: a *gomemcached.ServerError, or nil for SUCCESS and
// AUTH_CONTINUE.
func serverError(res *gomemcached.MCResponse) error {
	if res.Status == gomemcached.SUCCESS || res.Status == gomemcached.AUTH_CONTINUE {
		return nil
	}
	return &gomemcached.ServerError{Opcode: res.Opcode, Status: res.Status, Opaque: res.Opaque, Body: res.Body}
}
