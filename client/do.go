package memcached

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// Do sends req and returns its response. It is the context-aware core
// under the compatibility methods, safe for concurrent use: concurrent
// calls are pipelined on the connection.
//
// req is not modified and may be reused once Do returns. Its Opaque is not
// sent: the client puts its own on the wire, to route the response, and
// gives the response req's Opaque back.
//
// The response owns its memory. When its status is not SUCCESS (or
// AUTH_CONTINUE) Do returns it together with a *gomemcached.ServerError,
// which errors.Is matches against the status sentinels
// (gomemcached.ErrKeyNotFound, ...).
//
// If ctx ends, or ClientOptions.ReadTimeout passes, before the response
// arrives, Do returns ctx's error (matching ctx.Err() and, if one was
// given, the context's cause) or a *TimeoutError at once, also while the
// request is being written; the connection stays in step, for the write
// is finished and the response discarded when it arrives. If ctx has
// ended already, Do sends nothing. If the connection ends, Do returns a
// *ConnError.
//
// Do expects one response per request. For a quiet opcode (GETQ, SETQ,
// ...) it sends a NOOP after req and returns a nil response and a nil error
// if the server stayed silent (a miss, or a quiet mutation that
// succeeded). For an opcode answered by several packets (STAT) it returns
// the first; use Stats.
func (c *Client) Do(ctx context.Context, req *gomemcached.MCRequest) (*gomemcached.MCResponse, error) {
	res, err := c.c.send(ctx, req, c.c.readDeadline())
	if err != nil || res == nil {
		return res, err
	}
	return res, serverError(res)
}

// send sends a caller's request and returns its response, a transport or
// timeout error, or (for a quiet opcode the server left unanswered) nil and
// nil. hard is an absolute deadline for the response (zero: none).
func (c *conn) send(ctx context.Context, req *gomemcached.MCRequest, hard time.Time) (*gomemcached.MCResponse, error) {
	r := request{full: req}
	if req.Opcode.IsQuiet() {
		q := &quietCall{}
		w := getWaiter(req.Opcode)
		w.h = q
		if err := c.fenced(ctx, w, &r, nil, req.VBucket, hard); err != nil {
			return nil, err
		}
		if q.res != nil {
			q.res.Opaque = req.Opaque
		}
		return q.res, nil
	}
	w := getWaiter(req.Opcode)
	w.restore, w.orig = true, req.Opaque
	return c.roundTrip(ctx, w, &r, hard)
}

// startErr returns the error of a call that must not start, its context
// (nil for none) ended or its deadline hard (zero: none) passed; nil if it
// may.
func startErr(ctx context.Context, op gomemcached.CommandCode, hard time.Time, now time.Time) error {
	if ctx != nil && ctx.Err() != nil {
		return ctxError(ctx, op)
	}
	if !hard.IsZero() && !now.Before(hard) {
		return &TimeoutError{Op: op}
	}
	return nil
}

// cancellable reports whether ctx (nil for none) can end.
func cancellable(ctx context.Context) bool { return ctx != nil && ctx.Done() != nil }

// roundTrip sends r for waiter w and waits for the response, until ctx
// (nil for none) ends or the deadline: the earlier of hard (zero: none) and
// ReadTimeout from now. Both bound the write of the request too.
func (c *conn) roundTrip(ctx context.Context, w *waiter, r *request, hard time.Time) (*gomemcached.MCResponse, error) {
	now := time.Now()
	if err := startErr(ctx, r.op(), hard, now); err != nil {
		w.release()
		return nil, err
	}
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		w.release()
		return nil, err
	}
	lone := !cancellable(ctx)
	opaque, own := c.registerLocked(w, 1, lone)
	if err := c.enqueueLocked(r, opaque); err != nil {
		c.unregisterLocked(w)
		if own {
			c.readRole = roleNone
		}
		c.mu.Unlock()
		w.release()
		return nil, err
	}
	dl := deadlineOf(hard, c.opts.ReadTimeout, now)
	if lone {
		c.flushLocked(dl, flushCall)
	} else {
		c.flushLocked(time.Time{}, flushHandOff) // ctx bounds the call, not the write
	}
	if own {
		return c.readFor(w, hard, now)
	}
	return c.await(ctx, w, hard, now)
}

// fenced sends the requests of a call answered behind a fence (see
// submitFenced) and waits for the fence, as roundTrip does. It recycles w.
func (c *conn) fenced(ctx context.Context, w *waiter, tmpl *request, keys []string, vb uint16, hard time.Time) error {
	now := time.Now()
	if err := startErr(ctx, w.op, hard, now); err != nil {
		w.release()
		return err
	}
	mode, dl := flushHandOff, time.Time{}
	if !cancellable(ctx) {
		mode, dl = flushCall, deadlineOf(hard, c.opts.ReadTimeout, now)
	}
	if err := c.submitFenced(w, tmpl, keys, vb, mode, dl); err != nil {
		w.release()
		return err
	}
	_, err := c.await(ctx, w, hard, now)
	return err
}

// submitFenced queues the requests of a call answered behind a fence: tmpl
// once if keys is nil, else tmpl once per key with the key replaced, then
// a NOOP on vbucket vb, and flushes them with mode and deadline dl. w owns
// one opaque per request plus the fence's; its handler sees every response
// and ends the call at the fence's.
func (c *conn) submitFenced(w *waiter, tmpl *request, keys []string, vb uint16, mode int, dl time.Time) error {
	n := uint32(len(keys))
	if keys == nil {
		n = 1
	}
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	base, _ := c.registerLocked(w, n+1, false)
	start, nrecs := len(c.wbuf), len(c.wrecs)
	for i := range n {
		if keys != nil {
			tmpl.key = keys[i]
		}
		if err := c.enqueueLocked(tmpl, base+i); err != nil {
			c.wbuf, c.wrecs = c.wbuf[:start], c.wrecs[:nrecs]
			c.unregisterLocked(w)
			c.mu.Unlock()
			return err
		}
	}
	fence := request{opcode: gomemcached.NOOP, vb: vb}
	c.enqueueLocked(&fence, base+n)
	c.flushLocked(dl, mode)
	return nil
}

// await waits for w's answer and recycles w. The deadline is the earlier of
// hard (zero: none) and ReadTimeout after since, when the call started,
// or, for a call answered by many packets (w.h set), after the last packet
// routed to it. If ctx (nil for none) ends or the deadline passes first,
// the call is abandoned: its response will be discarded on arrival.
func (c *conn) await(ctx context.Context, w *waiter, hard, since time.Time) (*gomemcached.MCResponse, error) {
	var doneC <-chan struct{}
	if ctx != nil {
		doneC = ctx.Done()
	}
	rel := c.opts.ReadTimeout
	rearm := w.h != nil && rel > 0
	start := int64(since.Sub(c.born))
	var timerC <-chan time.Time
	if dl := deadlineOf(hard, rel, since); !dl.IsZero() {
		timerC = w.startTimer(time.Until(dl))
	} else if doneC == nil {
		<-w.ch // nothing else to wait for
		res, err := w.res, w.err
		w.release()
		return res, err
	}
	for {
		select {
		case <-w.ch:
			w.stopTimer()
			res, err := w.res, w.err
			w.release()
			return res, err
		case <-doneC:
			return c.abandon(w, ctxError(ctx, w.op))
		case <-timerC:
			if rearm {
				// Re-arm from the last packet the call received.
				last := max(start, w.progress.Load())
				next := time.Now().Add(time.Duration(last + int64(rel) - c.now()))
				if !hard.IsZero() && hard.Before(next) {
					next = hard
				}
				if d := time.Until(next); d > 0 {
					w.timer.Reset(d)
					continue
				}
			}
			return c.abandon(w, &TimeoutError{Op: w.op})
		}
	}
}

// abandon gives up on w with err, unless its answer arrived meanwhile, which
// is then returned.
func (c *conn) abandon(w *waiter, err error) (*gomemcached.MCResponse, error) {
	w.stopTimer()
	if w.state.CompareAndSwap(stateWaiting, stateAbandoned) {
		return nil, err // w now belongs to the reader or to fail
	}
	<-w.ch
	res, rerr := w.res, w.err
	w.release()
	return res, rerr
}

// startTimer arms w's timer for d and returns its channel.
func (w *waiter) startTimer(d time.Duration) <-chan time.Time {
	if d <= 0 {
		d = 1
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	return w.timer.C
}

func (w *waiter) stopTimer() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// deadlineOf returns the earlier of hard and rel after now; zero values
// mean none.
func deadlineOf(hard time.Time, rel time.Duration, now time.Time) time.Time {
	if rel <= 0 {
		return hard
	}
	if t := now.Add(rel); hard.IsZero() || t.Before(hard) {
		return t
	}
	return hard
}

// ctxError returns the error for a call whose context ended: a
// *TimeoutError for a deadline (unwrapping to the context's cause, if one
// was given), else the context's error, which also matches the context's
// cause if one was given (context.WithCancelCause), so that errors.Is
// matches both context.Canceled and the cause.
func ctxError(ctx context.Context, op gomemcached.CommandCode) error {
	err := ctx.Err()
	cause := context.Cause(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		te := &TimeoutError{Op: op}
		if cause != err {
			te.cause = cause
		}
		return te
	}
	if cause == nil || cause == err {
		return err
	}
	return fmt.Errorf("%w: %w", err, cause)
}

// readDeadline returns the deadline set by SetReadDeadline or SetDeadline,
// zero if none.
func (c *conn) readDeadline() time.Time {
	if ns := c.readDL.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// writeDeadline returns the write deadline set by SetDeadline, zero if none.
func (c *conn) writeDeadline() time.Time {
	if ns := c.writeDL.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// quietCall collects the answer to a quiet request sent behind a fence.
type quietCall struct {
	res *gomemcached.MCResponse
}

func (q *quietCall) handle(res *gomemcached.MCResponse, i, n uint32) bool {
	if i == n-1 {
		return true // the fence
	}
	q.res = ownResponse(res)
	return false
}
