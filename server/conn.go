package memcached

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

const (
	// flushThreshold flushes the output buffer early while a long
	// pipeline is still being answered.
	flushThreshold = 64 << 10
	// largeValue is the value size from which a response is sent with
	// writev instead of being copied into the output buffer.
	largeValue = 32 << 10
	// maxRetainedOut is the largest output buffer a connection keeps.
	maxRetainedOut = 1 << 20
)

// Conn is one client connection, as a Handler sees it: where responses are
// written and where per-connection state lives. Its methods are for the
// connection's own goroutine (the one calling the handler).
type Conn struct {
	// User is the authenticated user; the server never reads it.
	User string
	// Bucket is the selected bucket; the server never reads it.
	Bucket string
	// Features are the negotiated HELLO features; the server never reads
	// them.
	Features FeatureSet
	// Data is for the handler's own per-connection state.
	Data any

	srv      *Server
	nc       net.Conn // nil when an event loop serves the connection
	ev       loopSide // set when an event loop serves the connection
	raddr    net.Addr
	laddr    net.Addr
	rd       *gomemcached.Reader
	out      []byte
	req      gomemcached.MCRequest
	closing  bool
	werr     error
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	log      *slog.Logger
}

// countingReader counts the bytes read from the network.
type countingReader struct{ c *Conn }

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.c.nc.Read(p)
	r.c.bytesIn.Add(uint64(n))
	return n, err
}

// loopSide is the event loop's part of a connection it serves
// (eventloop_linux.go).
type loopSide interface {
	// flushConn sends c's output now, unless the connection is paused or
	// its output is waiting for the socket to drain.
	flushConn(c *Conn) error
	writeLarge(c *Conn, body []byte)
	pause(d time.Duration)
}

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// LocalAddr returns the address the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// NetConn returns the underlying connection (a *tls.Conn for TLS
// listeners), or nil when an event loop serves the connection. Reading from
// it or writing to it directly breaks the stream.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Pause stops the connection for d: no request of it is read and nothing
// is sent to it until d has passed, responses already written included.
// Other connections go on; a handler uses it to slow a client down (after
// failed authentications, say). On a connection's own goroutine it sleeps;
// on an event loop it only marks the connection. Pauses add up.
func (c *Conn) Pause(d time.Duration) {
	if d <= 0 {
		return
	}
	if c.ev != nil {
		c.ev.pause(d)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.srv.closedCh(): // Shutdown does not wait out pauses
	}
}

// Server returns the server the connection belongs to.
func (c *Conn) Server() *Server { return c.srv }

// Logger returns the server's logger with the connection's address.
func (c *Conn) Logger() *slog.Logger { return c.log }

// Close closes the connection once the responses written so far are sent.
func (c *Conn) Close() { c.closing = true }

// WriteResponse queues res to be sent. The response is copied: its slices
// may be reused once WriteResponse returns. It returns the connection's
// write error, if sending has already failed.
func (c *Conn) WriteResponse(res *gomemcached.MCResponse) error {
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
	if c.ev != nil {
		c.ev.writeLarge(c, res.Body)
	} else {
		c.writeBuffers(res.Body)
	}
	return c.werr
}

// WriteStatus queues a response to req with the given status and value
// and no extras, key or CAS: the usual error reply.
func (c *Conn) WriteStatus(req *gomemcached.MCRequest, status gomemcached.Status, body []byte) error {
	res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: status, Body: body}
	return c.WriteResponse(&res)
}

// Write queues raw bytes, for handlers that encode their own packets. It
// implements io.Writer.
func (c *Conn) Write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

// Flush sends what has been queued now rather than when the server would.
// On an event loop it never blocks: what the socket does not take goes
// when it can, and a paused connection sends nothing until its pause ends.
func (c *Conn) Flush() error {
	if c.werr != nil || len(c.out) == 0 {
		return c.werr
	}
	if c.ev != nil {
		return c.ev.flushConn(c)
	}
	c.armWrite()
	c.srv.writes.Add(1)
	n, err := c.nc.Write(c.out)
	c.bytesOut.Add(uint64(n))
	c.out = c.out[:0]
	if cap(c.out) > maxRetainedOut {
		c.out = nil
	}
	if err != nil {
		c.werr = err
	}
	return err
}

// writeBuffers sends the queued output and then body with one writev.
func (c *Conn) writeBuffers(body []byte) {
	c.armWrite()
	bufs := net.Buffers{c.out, body}
	c.srv.writes.Add(1)
	n, err := bufs.WriteTo(c.nc)
	c.bytesOut.Add(uint64(n))
	c.out = c.out[:0]
	if err != nil {
		c.werr = err
	}
}

func (c *Conn) armWrite() {
	if t := c.srv.WriteTimeout; t > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(t))
	}
}

// unknownCommands answers every request with UNKNOWN_COMMAND.
var unknownCommands = NewServeMux()

// serve runs the connection until it ends.
func (c *Conn) serve() {
	defer c.srv.forget(c)
	defer c.nc.Close()
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := c.handshake(tc); err != nil {
			c.log.Info("connection closed: TLS handshake failed", "reason", err)
			return
		}
	}
	reason := c.loop()
	c.Flush()
	c.logClose(reason)
}

// logClose logs why the connection ended: malformed input at Info, the
// rest at Debug.
func (c *Conn) logClose(reason error) {
	switch {
	case reason == nil:
		c.log.Debug("connection closed")
	case errors.Is(reason, gomemcached.ErrProtocol):
		c.log.Info("connection closed: malformed input", "reason", reason)
	default:
		c.log.Debug("connection closed", "reason", reason)
	}
}

// checkMagic refuses packets that are not requests.
func (c *Conn) checkMagic() error {
	if m := c.rd.Magic(); m != gomemcached.REQ_MAGIC && m != gomemcached.FLEX_MAGIC {
		return &gomemcached.ProtocolError{Kind: gomemcached.ErrBadMagic,
			Detail: fmt.Sprintf("magic 0x%02x is not a request", m)}
	}
	return nil
}

// handshake runs the TLS handshake within the server's HandshakeTimeout.
func (c *Conn) handshake(tc *tls.Conn) error {
	timeout := c.srv.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tc.SetDeadline(time.Now().Add(timeout))
	if c.srv.shuttingDown() {
		return ErrServerClosed
	}
	if err := tc.Handshake(); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	return nil
}

// loop reads and handles requests; it returns why it stopped (nil for a
// normal end).
func (c *Conn) loop() error {
	for {
		if !c.rd.Ready() {
			if err := c.Flush(); err != nil {
				return err
			}
			if c.srv.shuttingDown() {
				return nil
			}
			if t := c.srv.IdleTimeout; t > 0 {
				c.nc.SetReadDeadline(time.Now().Add(t))
				if c.srv.shuttingDown() {
					return nil
				}
			}
		}
		if err := c.rd.ReadRequest(&c.req); err != nil {
			if err == io.EOF || c.srv.shuttingDown() {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return errors.New("idle timeout")
			}
			return err
		}
		if err := c.checkMagic(); err != nil {
			return err
		}
		if err := c.handle(); err != nil {
			return err
		}
		if c.closing {
			return nil
		}
		if c.werr != nil {
			return c.werr
		}
		if len(c.out) >= flushThreshold {
			if err := c.Flush(); err != nil {
				return err
			}
		}
	}
}

// handle runs the handler on the current request; a panic closes only this
// connection.
func (c *Conn) handle() (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("handler panic", "opcode", c.req.Opcode, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	h := c.srv.Handler
	if h == nil {
		h = unknownCommands
	}
	h.ServeMC(c, &c.req)
	return nil
}
