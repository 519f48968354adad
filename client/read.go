package memcached

import (
	"time"

	"github.com/f8e615c8/gomemcached"
)

// Reading. One party at a time holds the read role and reads the socket,
// through one reused buffer (c.rd), routing each response to its call:
//
//   - the reader goroutine, whenever calls from several goroutines are in
//     flight, for calls that can be cancelled (a context with a Done
//     channel), for bulk gets, and for good once Transmit or Receive is
//     used (the raw API needs the stream read at all times);
//   - a lone caller: a call made with nobody else in flight and no context
//     to watch reads its own response, as rueidis's pipe does, which saves
//     the goroutine switch and the wake-up of an idle processor that a
//     hand-off costs. Its deadline is then set on the socket; when it
//     passes, the call is abandoned and the role passes to the goroutine,
//     which goes on reading where the caller stopped (the decoder resumes
//     a packet cut short by a deadline).
//
// The role passes to the goroutine whenever its holder leaves calls in
// flight, and back to nobody when no call is in flight. While nobody holds
// it the socket is not read, as with the reference's client: a server that
// closes an idle connection is noticed by the next call.
const (
	roleNone      = iota // nobody reads
	roleCaller           // a lone caller reads its own response
	roleGoroutine        // the reader goroutine reads
	roleHijack           // Hijack holds the socket
)

// giveReadRoleLocked hands the read role to the reader goroutine.
func (c *conn) giveReadRoleLocked() {
	c.readRole = roleGoroutine
	select {
	case c.readWake <- struct{}{}:
	default:
	}
}

// readLoop is the reader goroutine: it reads whenever it holds the read
// role, until the connection ends.
func (c *conn) readLoop() {
	defer close(c.readerDone)
	for {
		select {
		case <-c.readWake:
		case <-c.done:
			return
		}
		if !c.readAsGoroutine() {
			return
		}
	}
}

// readAsGoroutine reads and routes packets until no call is in flight
// (it then gives up the role and returns true) or the connection ends
// (false).
func (c *conn) readAsGoroutine() bool {
	c.setReadDeadline(time.Time{}) // a lone caller's, left when it went idle
	if c.goIdle() {
		return true // the call that woke us is gone already
	}
	for {
		if c.stopReading.Load() && c.rd.Buffered() == 0 {
			c.releaseRead(roleGoroutine)
			return true
		}
		if err := c.readPacket(); err != nil {
			if c.stopReading.Load() {
				// Hijack interrupted the read; it takes over from here.
				c.releaseRead(roleGoroutine)
				return true
			}
			c.readFailed(err)
			return false
		}
		if !c.dispatch(c.rres) {
			return false
		}
		if !c.rd.Ready() && c.goIdle() {
			return true
		}
	}
}

// goIdle gives up the goroutine's read role if no call is in flight, the
// raw API is not in use and nothing is buffered, and reports whether it
// did.
func (c *conn) goIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	idle := c.ops.len() == 0 && !c.rawMode.Load() && c.rd.Buffered() == 0
	if idle {
		c.readRole = roleNone
	}
	return idle
}

// readPacket reads the next packet into c.rres and reports it to the
// observers. A read error is reported by readFailed, if it ends the
// connection: a lone caller's deadline, or Hijack's interruption, does not.
func (c *conn) readPacket() error {
	if err := c.rd.ReadResponse(c.rres); err != nil {
		return err
	}
	if c.obs.active() {
		c.obs.received(c.rres, c.rres.Size(), nil)
	}
	return nil
}

// readFailed ends the connection with err, the read error of the holder of
// the read role, and reports it to the observers.
func (c *conn) readFailed(err error) {
	if c.obs.active() {
		c.obs.received(nil, 0, err)
	}
	c.fail(err)
}

// readFor reads as a lone caller holding the read role until w is
// answered, the deadline passes (the earlier of hard and ReadTimeout from
// since, when the call started, or from each packet for calls answered by
// many), or the connection ends; then it passes the role on and returns
// w's answer.
func (c *conn) readFor(w *waiter, hard, since time.Time) (*gomemcached.MCResponse, error) {
	rel := c.opts.ReadTimeout
	dl := deadlineOf(hard, rel, since)
	for w.state.Load() == stateWaiting {
		c.setReadDeadline(dl)
		if err := c.readPacket(); err != nil {
			if isTimeout(err) && !c.stopReading.Load() && !dl.IsZero() {
				// Our deadline: give up on the call; the goroutine
				// reads on and discards the answer.
				c.setReadDeadline(time.Time{})
				c.releaseRead(roleCaller)
				return c.abandon(w, &TimeoutError{Op: w.op})
			}
			if !c.stopReading.Load() {
				c.readFailed(err)
			}
			break // w is answered by fail, or by Hijack
		}
		if !c.dispatch(c.rres) {
			break
		}
		if w.h != nil && rel > 0 {
			dl = deadlineOf(hard, rel, time.Now())
		}
	}
	c.releaseRead(roleCaller)
	<-w.ch
	res, err := w.res, w.err
	w.release()
	return res, err
}

// setReadDeadline sets the socket's read deadline, touching it only when it
// changes. The holder of the read role calls it. Once Hijack has asked for
// the read role, the deadline is Hijack's interruption, whatever dl is, so
// that the holder never lifts it.
func (c *conn) setReadDeadline(dl time.Time) {
	if c.stopReading.Load() {
		dl = hijackInterrupt
	}
	if !dl.Equal(c.curRDL) {
		c.rw.SetReadDeadline(dl)
		c.curRDL = dl
	}
}

// releaseRead gives up the read role held by role: to the reader
// goroutine if calls are still in flight or the raw API is in use, else
// to nobody. A read deadline left on the socket is cleared before the
// goroutine reads.
func (c *conn) releaseRead(role int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readRole != role {
		return
	}
	if c.err == nil && !c.stopReading.Load() && role == roleCaller &&
		(c.ops.len() > 0 || c.rawMode.Load() || c.rd.Buffered() > 0) {
		c.setReadDeadline(time.Time{})
		c.giveReadRoleLocked()
		return
	}
	c.readRole = roleNone
}

// useRawLocked switches the connection to the raw API's mode: from now on
// the reader goroutine reads at all times, so that responses nobody waits
// for reach Receive.
func (c *conn) useRawLocked() {
	c.rawMode.Store(true)
	if c.readRole == roleNone {
		c.giveReadRoleLocked()
	}
}
