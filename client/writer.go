package memcached

import (
	"errors"
	"runtime"
	"time"
)

// Writing. Callers encode their requests into one queue (wbuf) under the
// connection's mutex. Whoever finds no write in progress writes the queue
// itself, in one Write call (a lone caller thus writes synchronously, with
// no goroutine switch); requests queued meanwhile by other callers are
// written together by the writer goroutine, which loops until the queue is
// empty. So writes are coalesced under load and flushed as soon as the
// queue empties, and a caller never waits behind more than one write. A
// caller's deadline or context bounds its own write too (see flushLocked):
// the call returns in time, and the writer goroutine finishes the write,
// so that the stream stays in step.

// enqueueLocked encodes r with the given opaque at the end of the queue.
func (c *conn) enqueueLocked(r *request, opaque uint32) error {
	start := len(c.wbuf)
	buf, err := r.appendTo(c.wbuf, opaque)
	if err != nil {
		return err
	}
	c.wbuf = buf
	if c.obs.active() {
		c.wrecs = append(c.wrecs, sentRec{op: r.op(), start: start, n: len(buf) - start})
	}
	return nil
}

// How flushLocked may write.
const (
	// flushCall: a call's requests. Its caller writes the queue itself if
	// no other call is in flight, bounded by its deadline (see
	// flushLocked); else the writer goroutine writes it.
	flushCall = iota
	// flushSync: Transmit's. Its caller writes the queue itself, whatever
	// is in flight, to return once its request is written.
	flushSync
	// flushHandOff: the writer goroutine writes the queue. For calls that
	// a context can end at any moment, which a write deadline cannot
	// express.
	flushHandOff
)

// errWriteCut is flushLocked's error when the caller's deadline passed
// during its write, the writer goroutine finishing it.
var errWriteCut = errors.New("memcached: write left to the writer")

// carry is a write a caller began and left when its deadline passed:
// batch, of which off bytes are written, for the writer goroutine to
// finish.
type carry struct {
	batch []byte
	off   int
	recs  []sentRec
	done  chan struct{}
}

// flushLocked makes sure the queue gets written, and unlocks c.mu. A
// caller that may write (see the modes above), finding no write in
// progress, writes the queue itself and returns that write's error.
// Otherwise it returns nil at once, and the write in progress, or the
// writer goroutine, writes the queue.
//
// dl (zero: none) is the caller's deadline, which bounds its write
// besides WriteTimeout. A deadline passing mid-write leaves the stream out
// of step unless the rest is written, and only a plain socket can resume
// a write so cut (a TLS connection cannot): on one, the caller writes with
// dl on the socket and, if dl passes, leaves the rest to the writer
// goroutine and returns errWriteCut; on other transports a caller with a
// deadline leaves the whole write to the writer goroutine.
func (c *conn) flushLocked(dl time.Time, mode int) error {
	if c.writing || len(c.wbuf) == 0 {
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	if mode == flushHandOff || mode == flushCall && c.ops.len() > 1 || !dl.IsZero() && !c.resumable {
		// Other calls are in flight, and their callers are likely about
		// to queue more: let the writer goroutine write them together.
		// Or the caller cannot bound its own write.
		c.mu.Unlock()
		c.kickWriter()
		return nil
	}
	batch, recs, done := c.takeBatchLocked()
	c.mu.Unlock()

	n, err, cut := c.writeOut(batch, dl)
	if cut {
		c.mu.Lock()
		if c.err == nil {
			// The stream is in step, n bytes into the batch: the writer
			// goroutine writes the rest, keeping the writing flag.
			c.carry = &carry{batch: batch, off: n, recs: recs, done: done}
			c.mu.Unlock()
			c.kickWriter()
			return errWriteCut
		}
		c.mu.Unlock()
	}
	c.wrote(batch, recs, done, err)

	c.mu.Lock()
	c.recycleBatchLocked(batch, recs)
	if err == nil && c.err == nil && len(c.wbuf) > 0 {
		// More was queued during the write: the writer goroutine takes
		// over, keeping the writing flag.
		c.mu.Unlock()
		c.kickWriter()
		return nil
	}
	c.writing = false
	c.mu.Unlock()
	return err
}

// kickWriter wakes the writer goroutine, which the caller has given the
// writing flag.
func (c *conn) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// writeLoop is the writer goroutine: when kicked it writes the queue until
// it is empty, then releases the writing flag.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	for {
		select {
		case <-c.kick:
		case <-c.done:
			return
		}
		// The callers woken with this goroutine are about to queue
		// requests: let them run first, to write theirs in one go.
		runtime.Gosched()
		for {
			c.mu.Lock()
			if cr := c.carry; cr != nil && c.err == nil {
				// Finish the write a caller left.
				c.carry = nil
				c.mu.Unlock()
				_, err, _ := c.writeOut(cr.batch[cr.off:], time.Time{})
				c.wrote(cr.batch, cr.recs, cr.done, err)
				c.mu.Lock()
				c.recycleBatchLocked(cr.batch, cr.recs)
				if err != nil {
					c.writing = false
					c.mu.Unlock()
					break
				}
				c.mu.Unlock()
				continue
			}
			if len(c.wbuf) == 0 || c.err != nil {
				c.writing = false
				c.mu.Unlock()
				break
			}
			batch, recs, done := c.takeBatchLocked()
			c.mu.Unlock()
			_, err, _ := c.writeOut(batch, time.Time{})
			c.wrote(batch, recs, done, err)
			c.mu.Lock()
			c.recycleBatchLocked(batch, recs)
			if err != nil {
				c.writing = false
				c.mu.Unlock()
				break
			}
			c.mu.Unlock()
		}
	}
}

// takeBatchLocked takes the queue for writing and starts an empty one.
func (c *conn) takeBatchLocked() (batch []byte, recs []sentRec, done chan struct{}) {
	batch, c.wbuf, c.wspare = c.wbuf, c.wspare[:0], nil
	recs, c.wrecs, c.wrecSpare = c.wrecs, c.wrecSpare[:0], nil
	done, c.batchCh = c.batchCh, nil
	return batch, recs, done
}

// recycleBatchLocked keeps a written batch's buffers for reuse.
func (c *conn) recycleBatchLocked(batch []byte, recs []sentRec) {
	if cap(batch) <= maxSpareBatch {
		c.wspare = batch[:0]
	}
	c.wrecSpare = recs[:0]
}

// writeOut writes b with the deadline dl (zero: none) besides
// WriteTimeout, and reports whether the write was cut short by dl itself.
func (c *conn) writeOut(b []byte, dl time.Time) (n int, err error, cut bool) {
	callBound := c.armWrite(dl)
	n, err = c.rw.Write(b)
	return n, err, err != nil && callBound && isTimeout(err)
}

// wrote completes the write of a batch: it tells the observers, ends the
// connection if the write failed (a partial packet leaves the stream out
// of step), and signals those waiting for the batch.
func (c *conn) wrote(batch []byte, recs []sentRec, done chan struct{}, err error) {
	if c.obs.active() {
		c.obs.sent(batch, recs, err)
	}
	if err != nil {
		c.fail(err)
	}
	if done != nil {
		close(done)
	}
}

// armWrite sets the socket's write deadline to the earlier of dl and
// WriteTimeout from now, touching the socket only when it changes, and
// reports whether dl is the deadline set.
func (c *conn) armWrite(dl time.Time) bool {
	if c.wdl == nil {
		return false
	}
	callBound := !dl.IsZero()
	if wt := c.opts.WriteTimeout; wt > 0 {
		if t := time.Now().Add(wt); dl.IsZero() || t.Before(dl) {
			dl, callBound = t, false
		}
	}
	if !dl.Equal(c.curWDL) {
		c.wdl.SetWriteDeadline(dl)
		c.curWDL = dl
	}
	return callBound
}

// batchDoneLocked returns a channel closed once what is queued now has been
// written (or the connection has ended).
func (c *conn) batchDoneLocked() chan struct{} {
	if c.batchCh == nil {
		c.batchCh = make(chan struct{})
	}
	return c.batchCh
}
