package memcached

import (
	"time"

	"github.com/f8e615c8/gomemcached"
)

// The raw API of the reference: Send, Transmit, Receive, TransmitResponse.
// On a pipelined client they coexist with the other calls as follows.
// Send is a call like any other: its response is routed to it. Transmit
// writes a request as it is, opaque included, in order with the other
// calls' requests, and registers nothing: responses whose opaque no call
// of the client waits for are queued for Receive, in arrival order. The
// client's own opaques all have the high bit (0x80000000) set; Transmit
// may use such opaques too (the reference's DCP code does), and reserves
// each one it writes: the client stops drawing it, for the life of the
// connection, and a Transmit of one that a call of the client waits for
// fails with ErrOpaqueInUse.
//
// The queue holds ClientOptions.ReceiveQueue responses and
// ReceiveQueueBytes bytes; when it is full the connection stops reading
// until Receive makes room, so a caller of Transmit must Receive its
// responses. Until Transmit or Receive is first used, responses that
// belong to no call are dropped (after the Observer has seen them), since
// nobody will Receive them.

// Send sends req and returns its response, with a failed status returned
// as the error too, as in the reference. It is Do without a context; see
// Do for how opaques, quiet opcodes and deadlines are handled.
func (c *Client) Send(req *gomemcached.MCRequest) (rv *gomemcached.MCResponse, err error) {
	res, err := c.c.send(nil, req, c.c.readDeadline())
	if err != nil || res == nil {
		return res, err
	}
	c.c.noteStatus(res)
	return res, statusError(res)
}

// Transmit writes req as it is, opaque included, and returns once it is
// written; it does not wait for a response (see Receive). The write is
// bounded by the deadline set with SetDeadline, if any, as with
// TransmitWithDeadline. An opaque with the high bit set is reserved (see
// the package documentation); if a call of the client is waiting for it,
// Transmit sends nothing and returns ErrOpaqueInUse.
func (c *Client) Transmit(req *gomemcached.MCRequest) error {
	return c.c.transmit(&request{full: req}, req.Opaque, c.c.writeDeadline())
}

// TransmitWithDeadline is Transmit with a deadline for the write. If the
// deadline passes while the request waits behind other writes, or while it
// is being written, it returns a *TimeoutError, and the request is still
// written (whole) later; the connection stays usable. If the deadline has
// passed already, it returns a *TimeoutError and sends nothing.
func (c *Client) TransmitWithDeadline(req *gomemcached.MCRequest, deadline time.Time) error {
	return c.c.transmit(&request{full: req}, req.Opaque, deadline)
}

// TransmitResponse writes res (the answer to a request the server sent,
// in the duplex protocol) and returns once it is written.
func (c *Client) TransmitResponse(res *gomemcached.MCResponse) error {
	return c.c.transmit(&request{res: res}, res.Opaque, c.c.writeDeadline())
}

// transmit queues r with opaque and waits until it is written or dl
// passes. A deadline already passed sends nothing.
func (c *conn) transmit(r *request, opaque uint32, dl time.Time) error {
	if !dl.IsZero() && !time.Now().Before(dl) {
		return &TimeoutError{Op: r.op()}
	}
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if r.res == nil && opaque&opaqueTag != 0 && !c.ops.reserve(opaque) {
		c.mu.Unlock()
		return ErrOpaqueInUse
	}
	if err := c.enqueueLocked(r, opaque); err != nil {
		c.mu.Unlock()
		return err
	}
	c.useRawLocked()
	if !c.writing && (dl.IsZero() || c.resumable) {
		// Written by this call.
		switch err := c.flushLocked(dl, flushSync); {
		case err == errWriteCut:
			return &TimeoutError{Op: r.op()} // the writer goroutine finishes it
		case err != nil:
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.err != nil {
				return c.err
			}
			return err
		}
		return nil
	}
	written := c.batchDoneLocked()
	c.flushLocked(time.Time{}, flushHandOff)
	var timeout <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-written:
	case <-timeout:
		return &TimeoutError{Op: r.op()}
	}
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Receive returns the next response that belongs to no call of the client
// (an answer to Transmit, see above), waiting for it until the deadline
// set with SetReadDeadline or SetDeadline, if any. A failed status is
// returned as the error too. Once the connection has ended and the queue
// is empty it returns the connection's *ConnError.
func (c *Client) Receive() (*gomemcached.MCResponse, error) {
	return c.c.receive(c.c.readDeadline())
}

// ReceiveWithDeadline is Receive with the given deadline, after which it
// returns a *TimeoutError; the connection stays usable.
func (c *Client) ReceiveWithDeadline(deadline time.Time) (*gomemcached.MCResponse, error) {
	return c.c.receive(deadline)
}

// receiveTimeout is the error of a Receive whose deadline passed.
var receiveTimeout = &TimeoutError{Op: gomemcached.NOOP, receive: true}

func (c *conn) receive(dl time.Time) (*gomemcached.MCResponse, error) {
	c.mu.Lock()
	if !c.rawMode.Load() && c.err == nil && !c.hijacking {
		c.useRawLocked()
	}
	c.mu.Unlock()
	select {
	case p := <-c.raw:
		return c.received(p)
	default:
	}
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return nil, receiveTimeout
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case p := <-c.raw:
		return c.received(p)
	case <-timeout:
		return nil, receiveTimeout
	case <-c.done:
		select {
		case p := <-c.raw:
			return c.received(p)
		default:
			return nil, c.err
		}
	}
}

func (c *conn) received(p rawPacket) (*gomemcached.MCResponse, error) {
	c.tookRaw(p)
	res := p.res
	err := statusError(res)
	if err != nil {
		c.noteStatus(res)
	}
	return res, err
}

// UnwrapMemcachedError returns rv and a nil error when err is rv itself (a
// failed status), so that callers can handle the status without treating
// it as a failure; other errors are returned as they are.
func UnwrapMemcachedError(rv *gomemcached.MCResponse,
	err error) (*gomemcached.MCResponse, error) {
	if rv != nil && err == error(rv) {
		return rv, nil
	}
	return rv, err
}
