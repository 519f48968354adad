package memcached

import (
	"bytes"

	"github.com/f8e615c8/gomemcached"
)

// A ResponseWriter is how a Handler answers a request, in the protocol the
// connection speaks: the handler writes gomemcached responses, and the
// writer encodes them. Answers are queued and sent once every request the
// connection has already sent is handled (or earlier, when much is
// queued), in one write. A ResponseWriter is valid only during the
// ServeMC call it is given to, on that call's goroutine; to send from
// elsewhere, use Conn.Send.
//
// It is a small value rather than an interface so that calls to it are
// static: a response built on the handler's stack stays there (an
// interface method would make every response escape to the heap).
type ResponseWriter struct{ c *Conn }

// encoder encodes answers for a protocol this package does not build in
// (tests of the protocol seam): it is given a copy of each response, which
// it may keep.
type encoder interface {
	encode(c *Conn, res *gomemcached.MCResponse)
}

// WriteResponse queues res as an answer. The response is copied: its
// slices may be reused once WriteResponse returns. It returns the
// connection's write error, if sending has already failed.
func (w ResponseWriter) WriteResponse(res *gomemcached.MCResponse) error {
	c := w.c
	if c.werr != nil {
		return c.werr
	}
	if c.enc != nil {
		c.enc.encode(c, cloneResponse(res))
		return nil
	}
	var err error
	if len(res.Body) < largeValue {
		out, err := res.AppendTo(c.out)
		if err != nil {
			return err
		}
		c.out = out
		return nil
	}
	if c.out, err = res.AppendHeaderTo(c.out); err != nil {
		return err
	}
	c.t.writeLarge(res.Body)
	return c.werr
}

// cloneResponse returns a copy of res that shares no memory with it.
func cloneResponse(res *gomemcached.MCResponse) *gomemcached.MCResponse {
	return &gomemcached.MCResponse{Opcode: res.Opcode, Status: res.Status, Opaque: res.Opaque, Cas: res.Cas,
		DataType: res.DataType, Extras: bytes.Clone(res.Extras), FlexibleExtras: bytes.Clone(res.FlexibleExtras),
		Key: bytes.Clone(res.Key), Body: bytes.Clone(res.Body)}
}

// WriteStatus queues an answer to req with the given status and value and
// no extras, key or CAS: the usual error reply.
func (w ResponseWriter) WriteStatus(req *gomemcached.MCRequest, status gomemcached.Status, body []byte) error {
	res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: status, Body: body}
	return w.WriteResponse(&res)
}

// Write queues bytes already encoded in the connection's protocol, for
// handlers that encode their own packets. It implements io.Writer.
func (w ResponseWriter) Write(p []byte) (int, error) { return w.c.write(p) }

// Flush sends what has been queued now rather than when the server would.
// Under an event loop it never blocks: what the socket does not take goes
// when it can, and a paused connection sends nothing until its pause ends.
func (w ResponseWriter) Flush() error { return w.c.flush() }

// Reserve takes n more answers than the request's own from the
// connection's Server.ResponseLimit, for a handler about to queue many (a
// multi-key get takes one per key, as memcached's response objects). It
// reports false, counted in Stats.ResponseOOM, when fewer are left: the
// handler then answers with an error instead. Without a limit it always
// succeeds. What is reserved is given back once the output is sent.
func (w ResponseWriter) Reserve(n int) bool {
	c := w.c
	if c.srv.ResponseLimit <= 0 || n <= 0 {
		return true
	}
	return c.reserve(n)
}

// Buffered returns how many bytes of answers are queued and not yet sent
// on the connection.
func (w ResponseWriter) Buffered() int { return len(w.c.out) }

// Close closes the connection once the answers queued so far are sent.
func (w ResponseWriter) Close() { w.c.closing = true }

// Conn returns the connection: its addresses, its state, Pause and Send.
func (w ResponseWriter) Conn() *Conn { return w.c }
