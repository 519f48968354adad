package memcached

import (
	"time"

	"github.com/f8e615c8/gomemcached"
)

// The raw API of the reference: Send, Transmit, Receive, TransmitResponse.
// On a pipelined client they coexist with the other calls as follows.
// Send is a call like any other: its response is routed to it. Transmit
// writes a request as it is, opaque included, in order with the other
// calls' requests, and registers nothing: responses whose opaque the client
// did not assign (those without the high bit, 0x80000000, which the
// client's own opaques always have) are queued for Receive, in arrival
// order. The queue holds ClientOptions.ReceiveQueue responses; when it is
// full the connection stops reading until Receive makes room, so a caller
// of Transmit must Receive its responses.

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
// bounded by the deadline set with SetDeadline, if any.
func (c *Client) Transmit(req *gomemcached.MCRequest) error {
	return c.c.transmit(&request{full: req}, req.Opaque, c.c.writeDeadline())
}

// TransmitWithDeadline is Transmit with a deadline for the write. If the
// deadline passes while the request waits behind other writes, it returns
// a *TimeoutError, and the request is still written later.
func (c *Client) TransmitWithDeadline(req *gomemcached.MCRequest, deadline time.Time) error {
	return c.c.transmit(&request{full: req}, req.Opaque, deadline)
}

// TransmitResponse writes res (the answer to a request the server sent,
// in the duplex protocol) and returns once it is written.
func (c *Client) TransmitResponse(res *gomemcached.MCResponse) error {
	return c.c.transmit(&request{res: res}, res.Opaque, c.c.writeDeadline())
}

// transmit queues r with opaque and waits until it is written or dl
// passes.
func (c *conn) transmit(r *request, opaque uint32, dl time.Time) error {
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if err := c.enqueueLocked(r, opaque); err != nil {
		c.mu.Unlock()
		return err
	}
	c.useRawLocked()
	if !c.writing {
		return c.flushLocked(dl, true) // written by this call
	}
	written := c.batchDoneLocked()
	c.mu.Unlock()
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
	if !c.rawMode && c.err == nil {
		c.useRawLocked()
	}
	c.mu.Unlock()
	select {
	case p := <-c.raw:
		return c.received(p.res)
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
		return c.received(p.res)
	case <-timeout:
		return nil, receiveTimeout
	case <-c.done:
		select {
		case p := <-c.raw:
			return c.received(p.res)
		default:
			return nil, c.err
		}
	}
}

func (c *conn) received(res *gomemcached.MCResponse) (*gomemcached.MCResponse, error) {
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
