package memcached

import (
	"runtime"
	"time"
)

// Writing. Callers encode their requests into one queue (wbuf) under the
// connection's mutex. Whoever finds no write in progress writes the queue
// itself, in one Write call (a lone caller thus writes synchronously, with
// no goroutine switch); requests queued meanwhile by other callers are
// written together by the writer goroutine, which loops until the queue is
// empty. So writes are coalesced under load and flushed as soon as the
// queue empties, and a caller never waits behind more than one write.

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

// flushLocked makes sure the queue gets written, and unlocks c.mu. A lone
// caller (no write in progress, no other call in flight, or sync set)
// writes the queue itself, with write deadline dl (zero: only
// WriteTimeout), and returns that write's error. Otherwise it returns nil
// at once, and the write in progress, or the writer goroutine, writes the
// queue.
func (c *conn) flushLocked(dl time.Time, sync bool) error {
	if c.writing || len(c.wbuf) == 0 {
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	if !sync && c.ops.len() > 1 {
		// Other calls are in flight, and their callers are likely about
		// to queue more: let the writer goroutine write them together.
		c.mu.Unlock()
		c.kickWriter()
		return nil
	}
	batch, recs, done := c.takeBatchLocked()
	c.mu.Unlock()

	err := c.writeBatch(batch, recs, done, dl)

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
			if len(c.wbuf) == 0 || c.err != nil {
				c.writing = false
				c.mu.Unlock()
				break
			}
			batch, recs, done := c.takeBatchLocked()
			c.mu.Unlock()
			err := c.writeBatch(batch, recs, done, time.Time{})
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

// writeBatch writes one batch; a failed write ends the connection, since
// a partial packet leaves the stream out of step.
func (c *conn) writeBatch(batch []byte, recs []sentRec, done chan struct{}, dl time.Time) error {
	c.armWrite(dl)
	_, err := c.rw.Write(batch)
	if c.obs.active() {
		c.obs.sent(batch, recs, err)
	}
	if err != nil {
		c.fail(err)
	}
	if done != nil {
		close(done)
	}
	return err
}

// armWrite sets the socket's write deadline to the earlier of dl and
// WriteTimeout from now, touching the socket only when it changes.
func (c *conn) armWrite(dl time.Time) {
	if c.wdl == nil {
		return
	}
	if wt := c.opts.WriteTimeout; wt > 0 {
		if t := time.Now().Add(wt); dl.IsZero() || t.Before(dl) {
			dl = t
		}
	}
	if dl.Equal(c.curWDL) {
		return
	}
	c.wdl.SetWriteDeadline(dl)
	c.curWDL = dl
}

// batchDoneLocked returns a channel closed once what is queued now has been
// written (or the connection has ended).
func (c *conn) batchDoneLocked() chan struct{} {
	if c.batchCh == nil {
		c.batchCh = make(chan struct{})
	}
	return c.batchCh
}
