package memcached

import (
	"context"
	"errors"
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
// arrives, Do returns ctx's error or a *TimeoutError at once; the
// connection stays in step, for the response is discarded when it
// arrives. If the connection ends, Do returns a *ConnError.
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
		if err := c.submitFenced(w, &r, nil, req.VBucket); err != nil {
			w.release()
			return nil, err
		}
		if _, err := c.await(ctx, w, hard); err != nil {
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

// roundTrip sends r for waiter w and waits for the response, until ctx
// (nil for none) ends or the deadline: the earlier of hard (zero: none) and
// ReadTimeout from now.
func (c *conn) roundTrip(ctx context.Context, w *waiter, r *request, hard time.Time) (*gomemcached.MCResponse, error) {
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			w.release()
			return nil, ctxError(ctx, r.op())
		}
	}
	if !hard.IsZero() && !time.Now().Before(hard) {
		w.release()
		return nil, &TimeoutError{Op: r.op()}
	}
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		w.release()
		return nil, err
	}
	lone := ctx == nil || ctx.Done() == nil
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
	c.flushLocked(time.Time{}, false)
	if own {
		return c.readFor(w, hard)
	}
	return c.await(ctx, w, hard)
}

// submitFenced queues the requests of a call answered behind a fence: tmpl
// once if keys is nil, else tmpl once per key with the key replaced, then
// a NOOP on vbucket vb. w owns one opaque per request plus the fence's;
// its handler sees every response and ends the call at the fence's.
func (c *conn) submitFenced(w *waiter, tmpl *request, keys []string, vb uint16) error {
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
	c.flushLocked(time.Time{}, false)
	return nil
}

// await waits for w's answer and recycles w. The deadline is the earlier of
// hard (zero: none) and ReadTimeout after the call started or, for a call
// answered by many packets (w.h set), after the last packet routed to it.
// If ctx (nil for none) ends or the deadline passes first, the call is
// abandoned: its response will be discarded on arrival.
func (c *conn) await(ctx context.Context, w *waiter, hard time.Time) (*gomemcached.MCResponse, error) {
	var doneC <-chan struct{}
	if ctx != nil {
		doneC = ctx.Done()
	}
	rel := c.opts.ReadTimeout
	rearm := w.h != nil && rel > 0
	start := c.now()
	var timerC <-chan time.Time
	if dl := deadlineOf(hard, rel, time.Now()); !dl.IsZero() {
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
// *TimeoutError for a deadline, else the context's cause.
func ctxError(ctx context.Context, op gomemcached.CommandCode) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &TimeoutError{Op: op}
	}
	return context.Cause(ctx)
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
