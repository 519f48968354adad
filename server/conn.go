package memcached

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
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

// Conn is one client connection: its addresses, the handler's state for
// it, and the queue through which other goroutines send to it. The same
// Conn serves every connection model (a goroutine per connection, or an
// event loop) and every protocol; Handlers reach it through
// ResponseWriter.Conn. Its methods are for the goroutine serving it (the
// one calling the handler), but Send, TrySend, Done, RemoteAddr,
// LocalAddr, Server and Logger, which are safe for concurrent use.
type Conn struct {
	// Data is the handler's per-connection state, set by
	// Server.ConnContext; the server never reads it.
	Data any

	srv   *Server
	t     transport
	src   io.Reader // the socket, counting what it reads
	raddr net.Addr
	laddr net.Addr
	log   *slog.Logger
	done  chan struct{} // closed when the connection has ended

	// The protocol, chosen by the first byte (decoder.go): its decoder,
	// and its encoder unless it is binary, which ResponseWriter encodes.
	dec decoder
	enc encoder
	// text is dec for a text connection, served by textHandler.
	text        *textDecoder
	textHandler TextHandler

	req     gomemcached.MCRequest
	out     []byte // answers not yet sent
	closing bool
	// yielded: the last step stopped after Server.ReqsPerEvent requests
	// with more buffered; the transport serves the rest before reading.
	yielded bool
	// responses are the answers queued and not yet sent, counted while
	// Server.ResponseLimit is set.
	responses int
	// holdsInput: the connection counts in Server.ReadBufferLimit.
	holdsInput bool
	werr       error
	sendq      atomic.Pointer[sendQueue]
	// killReason is Close's reason, for the log.
	killReason atomic.Pointer[error]
	qmu        sync.Mutex // for making sendq, and ended
	ended      bool
	bytesIn    atomic.Uint64
	bytesOut   atomic.Uint64
}

// transport is what a connection model does for a connection: how its
// output is sent, how it pauses, how it is woken and closed. conn.go holds
// what is common; stream.go (a goroutine per connection) and, on Linux,
// loopconn_linux.go (an event loop) each implement it.
type transport interface {
	// flush sends the connection's output and what other goroutines
	// have queued for it. A stream blocks until all is written; a loop
	// writes what the socket takes, keeps the rest for when it is
	// writable, and sends nothing while the connection is paused.
	flush() error
	// writeLarge sends the output and then body, copying body only if it
	// cannot go at once.
	writeLarge(body []byte)
	// serving reports whether the connection may handle requests now:
	// it is not paused and its output is not waiting for the socket.
	serving() bool
	// pause stops the connection for d (see Conn.Pause).
	pause(d time.Duration)
	// queued tells the transport that other goroutines queued output
	// for an idle connection (any goroutine may call it).
	queued()
	// netConn returns the net.Conn, nil under an event loop.
	netConn() net.Conn
	// interrupt wakes the connection if it is waiting to read, so that it
	// sees the server shutting down; abort closes it at once. (The event
	// loops do both for all their connections at once.)
	interrupt()
	abort()
	// kill closes the connection from any goroutine (see Conn.Close).
	kill()
}

// newConn returns a connection served by t, reading from src.
func (s *Server) newConn(t transport, src io.Reader, raddr, laddr net.Addr) *Conn {
	c := &Conn{srv: s, t: t, src: src, raddr: raddr, laddr: laddr, done: make(chan struct{})}
	c.log = s.logger().With("remote", raddr.String())
	return c
}

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// LocalAddr returns the address the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// NetConn returns the underlying connection (a *tls.Conn for TLS
// listeners), or nil when an event loop serves the connection. Reading from
// it or writing to it directly breaks the stream.
func (c *Conn) NetConn() net.Conn { return c.t.netConn() }

// Server returns the server the connection belongs to.
func (c *Conn) Server() *Server { return c.srv }

// Logger returns the server's logger with the connection's address.
func (c *Conn) Logger() *slog.Logger { return c.log }

// Done returns a channel that is closed when the connection has ended:
// producers that Send to it stop there.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Pause stops the connection for d: no request of it is read and nothing
// is sent to it until d has passed, answers already written included.
// Other connections go on; a handler uses it to slow a client down (after
// failed authentications, say). On a connection's own goroutine it sleeps;
// on an event loop it only marks the connection. Pauses add up.
func (c *Conn) Pause(d time.Duration) {
	if d > 0 {
		c.t.pause(d)
	}
}

// Close ends the connection from any goroutine: a change feed cutting a
// consumer that is too slow, say. What is queued and not yet written is
// dropped, and so is what the kernel holds unsent: a TCP connection is
// reset. reason, if not nil, is what the server logs as the cause.
// Under EventLoops the connection's loop closes it soon after; on its own
// goroutine, its socket is closed at once. Closing an ended connection
// does nothing.
func (c *Conn) Close(reason error) {
	if reason != nil {
		c.killReason.CompareAndSwap(nil, &reason)
	}
	c.t.kill()
}

// ErrConnClosed is the error of Send to a connection that has ended.
var ErrConnClosed = errors.New("memcached: connection closed")

// A Packet is what Send queues: a *gomemcached.MCRequest (a DCP or TAP
// message, or another request a server makes of its client) or a
// *gomemcached.MCResponse.
type Packet interface {
	Size() int
	AppendTo(dst []byte) ([]byte, error)
}

var (
	_ Packet = (*gomemcached.MCRequest)(nil)
	_ Packet = (*gomemcached.MCResponse)(nil)
)

// Send queues p for the connection, from a goroutine other than the one
// serving it: a change feed, a pushed cluster map. p is encoded at once,
// and may be reused when Send returns. Queued packets go in the same
// batched writes as answers, in the order they were queued; they are never
// sent in the middle of another packet, nor while the connection is
// paused. The queue holds at most Server.SendQueueSize bytes (or one larger
// packet): while it is full, Send waits for the client to read, until ctx
// ends (its error) or the connection does (ErrConnClosed).
//
// A handler must not wait in Send: the queue it waits on may be one that
// only the handler's own goroutine drains (its connection's, or, under
// EventLoops, that of any connection on the same loop). A handler that
// sends to other connections uses TrySend, or hands the packets to a
// goroutine of its own.
func (c *Conn) Send(ctx context.Context, p Packet) error {
	return c.queue().put(ctx, p, c.t, true)
}

// ErrQueueFull is the error of TrySend to a connection whose send queue
// has no room.
var ErrQueueFull = errors.New("memcached: send queue full")

// TrySend is Send without waiting: it fails with ErrQueueFull when the
// queue has no room for p.
func (c *Conn) TrySend(p Packet) error {
	return c.queue().put(context.Background(), p, c.t, false)
}

// queue returns the connection's send queue.
func (c *Conn) queue() *sendQueue {
	if q := c.sendq.Load(); q != nil {
		return q
	}
	return c.newQueue()
}

// newQueue returns the connection's send queue, making it at the first
// Send; a connection that has ended gets a closed one.
func (c *Conn) newQueue() *sendQueue {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if q := c.sendq.Load(); q != nil {
		return q
	}
	q := newSendQueue(c.srv.sendQueueSize())
	if c.ended {
		q.close()
	}
	c.sendq.Store(q)
	return q
}

// takeQueued moves what other goroutines queued into the output.
func (c *Conn) takeQueued() {
	if q := c.sendq.Load(); q != nil {
		c.out = q.take(c.out)
	}
}

// write queues raw bytes.
func (c *Conn) write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

// flush sends the output, unless sending has failed already.
func (c *Conn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	return c.t.flush()
}

// sent drops the output once it is all written, and a buffer that grew
// past maxRetainedOut with it.
func (c *Conn) sent() {
	c.responses = 0
	c.out = c.out[:0]
	if cap(c.out) > maxRetainedOut {
		c.out = nil
	}
}

// fill reads once from the socket into the protocol's buffer, choosing
// the protocol at the first byte.
func (c *Conn) fill() (int, error) {
	if c.dec == nil {
		return c.sniff()
	}
	return c.dec.fill()
}

// buffered returns the bytes read and not yet decoded.
func (c *Conn) buffered() int {
	if c.dec == nil {
		return 0
	}
	return c.dec.buffered()
}

// errMidPacket ends a connection whose client closed it inside a request.
var errMidPacket = &gomemcached.ProtocolError{Kind: gomemcached.ErrTruncated, Detail: "connection closed in mid-request"}

// step is a connection's work once input has arrived, the same for every
// connection model and protocol: each complete request buffered is
// decoded and handed to the handler, in order, until none is left or the
// connection must stop (paused, output blocked, closing); then the
// answers are flushed. It returns why the connection must close: a
// request that could not be decoded (after the answers to those before
// it are sent), a handler that panicked, or a failed write.
func (c *Conn) step() error {
	var stop error
	c.yielded = false
	if c.srv.ReadBufferLimit > 0 && !c.holdInput() {
		c.closing = true
		return errReadBufferLimit
	}
	limit, served := c.srv.ReqsPerEvent, 0
	for c.t.serving() && !c.closing && c.dec != nil && c.dec.ready() {
		if limit > 0 {
			if served == limit {
				// memcached's conn_yields: answer these, let the
				// others run, then go on.
				c.yielded = true
				c.srv.yields.Add(1)
				break
			}
			served++
		}
		if c.srv.ResponseLimit > 0 && !c.reserve(1) {
			// No answer can be queued: memcached closes, dropping
			// what was queued.
			c.out = c.out[:0]
			c.responses = 0
			c.closing, stop = true, errResponseLimit
			break
		}
		if c.text != nil {
			if err := c.text.serve(c.textHandler); err != nil {
				c.closing, stop = true, err
				break
			}
			if c.werr != nil {
				return c.werr
			}
			if len(c.out) >= flushThreshold {
				if err := c.flush(); err != nil {
					return err
				}
			}
			continue
		}
		if err := c.dec.next(&c.req); err != nil {
			if _, ok := err.(*responsePacket); ok {
				if rh, ok := c.srv.Handler.(ResponseHandler); ok {
					if err := c.handleResponse(rh); err != nil {
						c.closing, stop = true, err
						break
					}
					continue
				}
			}
			c.closing, stop = true, err
			break
		}
		if err := c.handle(); err != nil {
			c.closing, stop = true, err
			break
		}
		if c.werr != nil {
			return c.werr
		}
		if len(c.out) >= flushThreshold {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	// Released before the flush: a client that has read the answer may
	// count on another connection being let in.
	if c.holdsInput && c.buffered() == 0 {
		c.releaseReadBuffer()
	}
	if err := c.flush(); err != nil {
		return err
	}
	return stop
}

// Errors that close a connection: idle too long, or over the server's
// memory limits.
var (
	errIdleTimeout     = errors.New("idle timeout")
	errResponseLimit   = errors.New("memcached: too many answers queued (ResponseLimit)")
	errReadBufferLimit = errors.New("memcached: too many connections holding input (ReadBufferLimit)")
)

// reserve takes n answers from the connection's Server.ResponseLimit;
// false, counted in Stats.ResponseOOM, when fewer are left.
func (c *Conn) reserve(n int) bool {
	if c.responses+n > c.srv.ResponseLimit {
		c.srv.respOOM.Add(1)
		return false
	}
	c.responses += n
	return true
}

// holdInput counts the connection in Server.ReadBufferLimit while it has
// input buffered; false, counted in Stats.ReadBufOOM, when the limit is
// reached.
func (c *Conn) holdInput() bool {
	if c.holdsInput || c.buffered() == 0 {
		return true
	}
	if c.srv.readBufs.Add(1) > int64(c.srv.ReadBufferLimit) {
		c.srv.readBufs.Add(-1)
		c.srv.readBufOOM.Add(1)
		return false
	}
	c.holdsInput = true
	return true
}

// releaseReadBuffer stops counting the connection in
// Server.ReadBufferLimit.
func (c *Conn) releaseReadBuffer() {
	if c.holdsInput {
		c.holdsInput = false
		c.srv.readBufs.Add(-1)
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
	h.ServeMC(ResponseWriter{c}, &c.req)
	return nil
}

// handleText runs th on a text request; a panic closes only this
// connection.
func (c *Conn) handleText(th TextHandler, req *TextRequest) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("handler panic", "command", string(req.Line[:min(len(req.Line), 64)]), "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	th.ServeText(ResponseWriter{c}, req)
	return nil
}

// handleResponse gives the current packet, a response, to rh; a panic
// closes only this connection.
func (c *Conn) handleResponse(rh ResponseHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("response handler panic", "opcode", c.req.Opcode, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("response handler panic: %v", p)
		}
	}()
	var res gomemcached.MCResponse
	asResponse(&res, &c.req)
	rh.ServeMCResponse(c, &res)
	return nil
}

// end is the last thing done for a closed connection: producers waiting
// to send to it are told, then Done is closed.
func (c *Conn) end() {
	c.qmu.Lock()
	c.ended = true
	q := c.sendq.Load()
	c.qmu.Unlock()
	if q != nil {
		q.close()
	}
	close(c.done)
}

// logClose logs why the connection ended: malformed input at Info, the
// rest at Debug.
func (c *Conn) logClose(reason error) {
	if r := c.killReason.Load(); r != nil {
		c.log.Info("connection closed", "reason", *r)
		return
	}
	switch {
	case reason == nil:
		c.log.Debug("connection closed")
	case errors.Is(reason, gomemcached.ErrProtocol):
		c.log.Info("connection closed: malformed input", "reason", reason)
	default:
		c.log.Debug("connection closed", "reason", reason)
	}
}
