package memcached

import (
	"context"
	"sync"
)

// DefaultSendQueueSize bounds the bytes queued for a connection by Send
// unless Server.SendQueueSize says otherwise.
const DefaultSendQueueSize = 1 << 20

// sendQueue holds the packets that other goroutines queued for one
// connection, encoded, until its transport takes them into its output. It
// is bounded in bytes: a producer waits while the queue is full, so a
// client that does not read holds at most the bound (or one larger packet)
// on the server, however much its producers have to send.
type sendQueue struct {
	mu     sync.Mutex
	buf    []byte
	limit  int
	closed bool
	// space, when producers wait, is closed (and dropped) when the queue
	// is emptied or closed.
	space chan struct{}
	peak  int // the most bytes held at once
}

func newSendQueue(limit int) *sendQueue { return &sendQueue{limit: limit} }

// put encodes p into the queue, waiting for room first if wait (else
// failing with ErrQueueFull), and tells t when the queue was empty, so that
// it sends.
func (q *sendQueue) put(ctx context.Context, p Packet, t transport, wait bool) error {
	size := p.Size()
	q.mu.Lock()
	for !q.closed && len(q.buf) > 0 && len(q.buf)+size > q.limit {
		if !wait {
			q.mu.Unlock()
			return ErrQueueFull
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	if q.closed {
		q.mu.Unlock()
		return ErrConnClosed
	}
	wasEmpty := len(q.buf) == 0
	buf, err := p.AppendTo(q.buf)
	if err != nil {
		q.mu.Unlock()
		return err
	}
	q.buf = buf
	q.peak = max(q.peak, len(buf))
	q.mu.Unlock()
	if wasEmpty {
		t.queued()
	}
	return nil
}

// take appends what is queued to dst, empties the queue and lets waiting
// producers go on.
func (q *sendQueue) take(dst []byte) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf) == 0 {
		return dst
	}
	dst = append(dst, q.buf...)
	q.buf = q.buf[:0]
	if cap(q.buf) > 2*q.limit {
		q.buf = nil
	}
	q.release()
	return dst
}

// close drops what is queued and makes every Send, waiting or to come,
// fail with ErrConnClosed.
func (q *sendQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed, q.buf = true, nil
	q.release()
}

// release wakes the producers waiting for room; q.mu is held.
func (q *sendQueue) release() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// held returns the bytes queued now and the most held at once.
func (q *sendQueue) held() (now, peak int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf), q.peak
}
