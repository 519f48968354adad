package memcached

import (
	"io"

	"github.com/f8e615c8/gomemcached"
)

// A ResponseWriter is how a Handler answers a request, in the protocol the
// connection speaks: the handler writes gomemcached responses, and the
// writer encodes them. Answers are queued and sent once every request the
// connection has already sent is handled (or earlier, when much is
// queued), in one write. A ResponseWriter is valid only during the
// ServeMC call it is given to, on that call's goroutine; to send from
// elsewhere, use Conn.Send.
type ResponseWriter interface {
	// WriteResponse queues res as an answer. The response is copied: its
	// slices may be reused once WriteResponse returns. It returns the
	// connection's write error, if sending has already failed.
	WriteResponse(res *gomemcached.MCResponse) error
	// WriteStatus queues an answer to req with the given status and value
	// and no extras, key or CAS: the usual error reply.
	WriteStatus(req *gomemcached.MCRequest, status gomemcached.Status, body []byte) error
	// Write queues bytes already encoded in the connection's protocol,
	// for handlers that encode their own packets.
	io.Writer
	// Flush sends what has been queued now rather than when the server
	// would. Under an event loop it never blocks: what the socket does not
	// take goes when it can, and a paused connection sends nothing until
	// its pause ends.
	Flush() error
	// Close closes the connection once the answers queued so far are sent.
	Close()
	// Conn returns the connection: its addresses, its state, Pause and
	// Send.
	Conn() *Conn
}

// binaryWriter answers in the binary protocol: responses are encoded
// straight into the connection's output buffer.
type binaryWriter struct{ c *Conn }

var _ ResponseWriter = (*binaryWriter)(nil)

func (w *binaryWriter) WriteResponse(res *gomemcached.MCResponse) error {
	c := w.c
	if c.werr != nil {
		return c.werr
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

func (w *binaryWriter) WriteStatus(req *gomemcached.MCRequest, status gomemcached.Status, body []byte) error {
	res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: status, Body: body}
	return w.WriteResponse(&res)
}

func (w *binaryWriter) Write(p []byte) (int, error) { return w.c.write(p) }
func (w *binaryWriter) Flush() error                { return w.c.flush() }
func (w *binaryWriter) Close()                      { w.c.closing = true }
func (w *binaryWriter) Conn() *Conn                 { return w.c }
