package memcached

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// readBufSize is the initial size of the reader's buffer; it grows for
// larger packets and shrinks back (see gomemcached.Reader).
const readBufSize = 16 << 10

// maxSpareBatch is the largest write buffer kept for reuse after a flush.
const maxSpareBatch = 1 << 20

// conn is the state of a Client: its transport, the reader and writer
// goroutines, the write queue and the calls waiting for responses.
//
// Locking: mu guards the opaque map, the write queue and the fields marked
// below. The reader and the writer goroutine own their buffers; whoever
// holds the writing flag owns the socket's write side.
type conn struct {
	rw   MemcachedConnection
	wdl  interface{ SetWriteDeadline(time.Time) error } // nil if rw has none
	opts ClientOptions
	obs  observers
	born time.Time

	mu        sync.Mutex
	ops       opaqueMap
	err       error // why the connection ended (a *ConnError); nil while up
	hijacking bool  // Hijack has started: refuse new calls
	wbuf      []byte
	wspare    []byte
	wrecs     []sentRec // packets in wbuf, kept only for observers
	wrecSpare []sentRec
	writing   bool          // someone owns the socket's write side
	batchCh   chan struct{} // closed when wbuf's current content is written
	busySince int64         // when ops last became non-empty (conn.now)
	watchOn   bool          // the watchdog timer is armed

	curWDL time.Time // write deadline set on the socket; owned by the writer

	readRole int                     // who reads the socket: roleNone, roleCaller, ...
	rawMode  bool                    // Transmit or Receive was used: the goroutine keeps reading
	curRDL   time.Time               // read deadline set on the socket; owned by the read role
	rd       *gomemcached.Reader     // owned by the read role
	rres     *gomemcached.MCResponse // the packet being read; owned by the read role

	pending     atomic.Int32 // calls waiting (for Pool)
	lastRecv    atomic.Int64 // when bytes last arrived (conn.now)
	stopReading atomic.Bool  // Hijack: release the read role at a packet boundary
	statusFatal atomic.Bool  // the last call ended with a fatal status
	hijacked    atomic.Bool  // Hijack has started

	done       chan struct{} // closed when the connection ends
	kick       chan struct{} // wakes the writer goroutine
	readWake   chan struct{} // hands the read role to the reader goroutine
	readerDone chan struct{}
	writerDone chan struct{}
	raw        chan rawPacket // responses for Receive
	watch      *time.Timer    // guarded by mu

	// Settings of the compatibility API.
	readDL, writeDL atomic.Int64 // SetReadDeadline / SetDeadline, UnixNano; 0 none
	replica         atomic.Bool
	name            atomic.Pointer[string]
	dataPool        atomic.Pointer[dataPool]
	feat            features
	bucket          atomic.Pointer[string] // the last bucket selected
	// changed is set by the methods that change what the connection is
	// (authentication, HELLO, bucket), so that a Pool does not lend it
	// again as if it were as its options made it.
	changed atomic.Bool
}

// dataPool is the allocator set by EnableDataPool.
type dataPool struct {
	get  func(uint64) ([]byte, error)
	done func([]byte)
}

func newConn(rw MemcachedConnection, opts ClientOptions) *conn {
	opts = opts.resolve()
	c := &conn{
		rw:         rw,
		opts:       opts,
		obs:        observers{obs: opts.Observer, tx: TransmitHook, rx: ReceiveHook},
		born:       time.Now(),
		done:       make(chan struct{}),
		kick:       make(chan struct{}, 1),
		readWake:   make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		raw:        make(chan rawPacket, opts.ReceiveQueue),
	}
	if d, ok := rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		c.wdl = d
	}
	if opts.Name != "" {
		c.name.Store(&opts.Name)
	}
	c.rd = gomemcached.NewReaderSize(stampReader{c}, readBufSize)
	c.rd.MaxValue = opts.MaxValue
	c.rres = new(gomemcached.MCResponse)
	go c.readLoop()
	go c.writeLoop()
	return c
}

// now returns the time since the connection was made, on the monotonic
// clock.
func (c *conn) now() int64 { return int64(time.Since(c.born)) }

// usableLocked returns the error for a new call, nil if it may proceed.
func (c *conn) usableLocked() error {
	switch {
	case c.err != nil:
		return c.err
	case c.hijacking:
		return &ConnError{Err: ErrHijacked}
	}
	return nil
}

// registerLocked allocates n opaques to w and registers it, and makes sure
// someone reads the answer: the caller itself if lone is set and nobody
// reads the socket (it then holds the read role, and registerLocked
// returns true), else the reader goroutine.
func (c *conn) registerLocked(w *waiter, n uint32, lone bool) (uint32, bool) {
	own := lone && c.readRole == roleNone && c.ops.len() == 0 && !c.rawMode
	switch {
	case own:
		c.readRole = roleCaller
	case c.readRole == roleNone:
		c.giveReadRoleLocked()
	}
	op := c.ops.add(w, n)
	c.pending.Store(int32(c.ops.len()))
	if c.opts.StuckTimeout > 0 {
		if c.ops.len() == 1 {
			c.busySince = c.now()
		}
		if !c.watchOn {
			c.watchOn = true
			if c.watch == nil {
				c.watch = time.AfterFunc(c.opts.StuckTimeout, c.checkStuck)
			} else {
				c.watch.Reset(c.opts.StuckTimeout)
			}
		}
	}
	return op, own
}

// unregisterLocked removes w.
func (c *conn) unregisterLocked(w *waiter) {
	c.ops.remove(w)
	c.pending.Store(int32(c.ops.len()))
}

// checkStuck is the watchdog: it ends the connection if calls are waiting
// and nothing has arrived for StuckTimeout.
func (c *conn) checkStuck() {
	c.mu.Lock()
	if c.err != nil || c.ops.len() == 0 {
		c.watchOn = false
		c.mu.Unlock()
		return
	}
	quiet := c.now() - max(c.lastRecv.Load(), c.busySince)
	if limit := int64(c.opts.StuckTimeout); quiet < limit {
		c.watch.Reset(time.Duration(limit - quiet))
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.fail(ErrStuck)
}

// finish answers w, unless its caller gave up, in which case w is
// recycled.
func (c *conn) finish(w *waiter, res *gomemcached.MCResponse, err error) {
	if !w.state.CompareAndSwap(stateWaiting, stateDone) {
		w.release()
		return
	}
	w.res, w.err = res, err
	w.ch <- struct{}{}
}

// fail ends the connection with cause: every waiting call fails with a
// *ConnError, later calls too, and the goroutines exit. Unless cause is
// ErrHijacked the socket is closed, and fail returns Close's error. Only
// the first call has an effect.
func (c *conn) fail(cause error) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil
	}
	cerr := &ConnError{Err: cause}
	c.err = cerr
	waiting := c.ops.drain()
	c.pending.Store(0)
	batch := c.batchCh
	c.batchCh = nil
	if c.watch != nil {
		c.watch.Stop()
	}
	close(c.done)
	c.mu.Unlock()

	var err error
	if cause != ErrHijacked {
		err = c.rw.Close()
	}
	for _, w := range waiting {
		c.finish(w, nil, cerr)
	}
	if batch != nil {
		close(batch)
	}
	return err
}

// close implements Client.Close: it ends the connection and waits for the
// goroutines to exit.
func (c *conn) close() error {
	err := c.fail(ErrClosed)
	<-c.readerDone
	<-c.writerDone
	return err
}

// stampReader reads from the transport and records when bytes arrive, for
// the watchdog.
type stampReader struct{ c *conn }

func (s stampReader) Read(p []byte) (int, error) {
	n, err := s.c.rw.Read(p)
	if n > 0 {
		s.c.lastRecv.Store(s.c.now())
	}
	return n, err
}

// isTimeout reports whether err is a deadline error of the transport.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dispatch routes one response, which aliases the reader's buffer. It
// returns false if the reader must stop (the connection ended while the
// response waited for room in the Receive queue).
func (c *conn) dispatch(res *gomemcached.MCResponse) bool {
	if res.Opaque&opaqueTag == 0 {
		return c.unclaimed(res)
	}
	c.mu.Lock()
	w, taken := c.ops.route(res.Opaque)
	if taken {
		c.pending.Store(int32(c.ops.len()))
	}
	c.mu.Unlock()
	if w == nil {
		return true // a late answer to a call that gave up: discard it
	}
	if w.h == nil {
		if w.state.Load() == stateAbandoned {
			c.finish(w, nil, nil) // recycles w
			return true
		}
		own := ownResponse(res)
		if w.restore {
			own.Opaque = w.orig
		}
		c.finish(w, own, nil)
		return true
	}
	w.progress.Store(c.now())
	if w.h.handle(res, res.Opaque-w.base, w.n) {
		c.mu.Lock()
		c.unregisterLocked(w)
		c.mu.Unlock()
		c.finish(w, nil, nil)
	}
	return true
}

// rawPacket is a response queued for Receive, with the magic it came with
// (for Hijack, which hands it back as bytes).
type rawPacket struct {
	res   *gomemcached.MCResponse
	magic byte
}

// appendTo appends the packet as it was on the wire: request and response
// headers share their layout, so encoding the response and putting the
// magic back gives the bytes read.
func (p rawPacket) appendTo(dst []byte) []byte {
	start := len(dst)
	out, err := p.res.AppendTo(dst)
	if err != nil {
		return dst
	}
	out[start] = p.magic
	return out
}

// unclaimed queues a response that belongs to no call of the client for
// Receive, waiting for room if the queue is full.
func (c *conn) unclaimed(res *gomemcached.MCResponse) bool {
	own := rawPacket{res: c.ownForReceive(res), magic: c.rd.Magic()}
	select {
	case c.raw <- own:
		return true
	default:
	}
	select {
	case c.raw <- own:
		return true
	case <-c.done:
		return false
	}
}

// ownForReceive copies a response for Receive, into memory from the data
// pool when EnableDataPool set one: the getter is asked for the length of
// the body (framing extras, extras, key and value), as when the reference
// reads a packet, and Recycle hands the buffer to the done function.
func (c *conn) ownForReceive(res *gomemcached.MCResponse) *gomemcached.MCResponse {
	dp := c.dataPool.Load()
	n := len(res.FlexibleExtras) + len(res.Extras) + len(res.Key) + len(res.Body)
	if dp == nil || n == 0 {
		return ownResponse(res)
	}
	buf, err := dp.get(uint64(n))
	if err != nil || cap(buf) < n {
		if err == nil && buf != nil && dp.done != nil {
			dp.done(buf) // too small: straight back, as the reference does
		}
		return ownResponse(res)
	}
	out := copyResponse(res, buf[:n])
	out.SetRecycle(buf, dp.done)
	return out
}
