package memcached

import (
	"context"
	"errors"
	"io"

	"github.com/f8e615c8/gomemcached"
)

// Helpers shared by the Couchbase extensions (meta, observe, seqnos,
// collections, sub-documents, range scans): the errors of a malformed
// response value, LEB128 lengths, and the call path of the new,
// context-aware methods.

// ErrBadResponse matches the error of a response that arrived whole but
// whose extras or value do not have the layout its command defines: a
// length that runs past its section, a section of the wrong size, JSON
// that does not parse. The connection stays in step (the packet was framed
// correctly); only that response is unusable. A value cut short also
// matches io.ErrUnexpectedEOF, as the reference's Observe reports it.
var ErrBadResponse = errors.New("memcached: malformed response")

// bodyError is a malformed response: what was wrong, in which command.
type bodyError struct {
	op        gomemcached.CommandCode
	detail    string
	truncated bool  // a length ran past the end
	cause     error // an underlying decoding error (JSON), if any
}

func (e *bodyError) Error() string {
	s := ErrBadResponse.Error() + ": " + e.op.String() + ": " + e.detail
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Is matches ErrBadResponse, and io.ErrUnexpectedEOF for a value cut short.
func (e *bodyError) Is(target error) bool {
	return target == ErrBadResponse || (e.truncated && target == io.ErrUnexpectedEOF)
}

// Unwrap returns the underlying decoding error, if any.
func (e *bodyError) Unwrap() error { return e.cause }

// Fatal reports false: the packet was framed correctly, so the connection
// is in step (see gomemcached.IsFatal).
func (e *bodyError) Fatal() bool { return false }

func badBody(op gomemcached.CommandCode, detail string) error {
	return &bodyError{op: op, detail: detail}
}

func shortBody(op gomemcached.CommandCode, detail string) error {
	return &bodyError{op: op, detail: detail, truncated: true}
}

// errNilSpec is returned by the new methods when given nil specs.
var errNilSpec = errors.New("memcached: nil specification")

// uleb128 decodes an unsigned LEB128 length at the start of b, as range
// scans frame keys and values, and returns it with the bytes after it. It
// fails if b ends inside the number or the number does not fit 32 bits
// (no length on the wire comes near), or if the length runs past the end
// of b.
func uleb128(b []byte) (n int, rest []byte, ok bool) {
	var v uint64
	for i := 0; i < len(b) && i < 5; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 0xffffffff || v > uint64(len(b)-i-1) {
				return 0, b, false
			}
			return int(v), b[i+1:], true
		}
	}
	return 0, b, false
}

// contexts makes the context slice of the compatibility path from the one
// ClientContext of a new method (nil: none).
func contexts(cc *ClientContext) []*ClientContext {
	if cc == nil {
		return nil
	}
	return []*ClientContext{cc}
}

// do sends r for a new, context-aware method, bounded by ctx as well as by
// the client's deadlines, and returns the response in the new style: a
// failed status is a *gomemcached.ServerError, returned with the response.
func (c *conn) do(ctx context.Context, r *request) (*gomemcached.MCResponse, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	res, err := c.roundTrip(ctx, getWaiter(r.op()), r, c.readDeadline())
	if err != nil {
		return nil, err
	}
	c.noteStatus(res)
	return res, serverError(res)
}
