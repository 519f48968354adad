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

	carry  *carry    // a write a caller left unfinished, for the writer goroutine
	curWDL time.Time // write deadline set on the socket; owned by the writer
	// resumable: a write cut short by its deadline can be resumed (a plain
	// TCP or Unix socket), so a caller may bound its own write by its
	// deadline and leave the rest to the writer goroutine.
	resumable bool

	readRole int                     // who reads the socket: roleNone, roleCaller, ...
	rawMode  atomic.Bool             // Transmit or Receive was used: the goroutine keeps reading; set under mu
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
	rawBytes   atomic.Int64   // their size
	rawRoom    chan struct{}  // signalled when Receive takes one
	dropped    atomic.Uint64  // responses dropped, belonging to nobody before the raw API was used
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
		rawRoom:    make(chan struct{}, 1),
	}
	if d, ok := rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		c.wdl = d
	}
	switch rw.(type) {
	case *net.TCPConn, *net.UnixConn:
		c.resumable = true
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
	own := lone && c.readRole == roleNone && c.ops.len() == 0 && !c.rawMode.Load()
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

// unregisterLocked removes w, which its caller still owns.
func (c *conn) unregisterLocked(w *waiter) {
	c.ops.remove(w, w.base, w.n)
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
// recycled. Only whoever removed w from the opaque map may call it, once.
func (c *conn) finish(w *waiter, res *gomemcached.MCResponse, err error) {
	if w.state.CompareAndSwap(stateWaiting, stateDone) {
		w.res, w.err = res, err
		w.ch <- struct{}{}
		return
	}
	if w.state.CompareAndSwap(stateAbandoned, stateDone) {
		w.release()
	}
	// Done already: answered by someone else, which the opaque map rules
	// out. The caller owns w; leave it alone.
}

// fail ends the connection with cause: every waiting call fails with a
// *ConnError, later calls too, and the goroutines exit. Unless cause is
// ErrHijacked the socket is closed, and fail returns Close's error. Only
// the first call has an effect.
func (c *conn) fail(cause error) error {
	c.mu.Lock()
	return c.failLocked(cause)
}

// failLocked is fail called with c.mu held; it unlocks c.mu.
func (c *conn) failLocked(cause error) error {
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
	var carried chan struct{}
	if c.carry != nil {
		carried = c.carry.done // the writer goroutine will not take it now
		c.carry = nil
	}
	if c.watch != nil {
		c.watch.Stop()
	}
	close(c.done)
	c.mu.Unlock()

	// Answer the calls before closing the socket: a call whose write or
	// read the close interrupts then finds its answer there, rather than
	// taking the interruption for its own deadline.
	for _, w := range waiting {
		c.finish(w, nil, cerr)
	}
	var err error
	if cause != ErrHijacked {
		err = c.rw.Close()
	}
	for _, ch := range [...]chan struct{}{batch, carried} {
		if ch != nil {
			close(ch)
		}
	}
	return err
}

// errRetired is the cause of the ConnError of calls made on a connection
// that its Pool retired (see retire).
var errRetired = errors.New("memcached: connection retired by its pool")

// retire ends the connection as Close does, but only if nothing is in
// flight: no call waiting, nothing queued or being written, no raw use,
// no Hijack. It reports whether it did. Since it checks and ends under
// the lock calls register under, a call made on a retired connection
// fails having sent nothing, with a ConnError caused by errRetired (which
// matches ErrClosed); Pool.Do retries such a call on another connection.
func (c *conn) retire() bool {
	c.mu.Lock()
	if c.err != nil || c.ops.len() > 0 || c.writing || len(c.wbuf) > 0 || c.rawMode.Load() || c.hijacking {
		c.mu.Unlock()
		return false
	}
	c.failLocked(errRetired)
	return true
}

// isRetired reports whether err is that of a call refused, unsent, by a
// retired connection.
func isRetired(err error) bool {
	if err == nil {
		return false
	}
	var ce *ConnError
	return errors.As(err, &ce) && ce.Err == errRetired
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

// dispatch routes one response, which aliases the reader's buffer: to
// the call waiting for it, else to Receive. It returns false if the reader
// must stop (the connection ended while the response waited for room in
// the Receive queue).
func (c *conn) dispatch(res *gomemcached.MCResponse) bool {
	if c.dispatchOwn(res) {
		return true
	}
	return c.unclaimed(res)
}

// dispatchOwn routes res to the call of the client waiting for it, and
// reports whether there was one.
func (c *conn) dispatchOwn(res *gomemcached.MCResponse) bool {
	if res.Opaque&opaqueTag == 0 {
		return false
	}
	c.mu.Lock()
	w, taken := c.ops.route(res.Opaque)
	if w == nil {
		c.mu.Unlock()
		return false
	}
	if taken {
		// Removed from the map: w is ours to answer, and nobody else's.
		c.pending.Store(int32(c.ops.len()))
		c.mu.Unlock()
		if w.state.Load() == stateAbandoned {
			c.finish(w, nil, nil) // a late answer to a call that gave up: recycles w
			return true
		}
		own := ownResponse(res)
		if w.restore {
			own.Opaque = w.orig
		}
		c.finish(w, own, nil)
		return true
	}
	// w stays registered, and fail may drain and answer it as soon as the
	// lock is released (its caller then recycles it): take what the
	// handler needs now, and answer w only if it is still ours to remove.
	h, base, n := w.h, w.base, w.n
	w.progress.Store(c.now())
	c.mu.Unlock()
	if h.handle(res, res.Opaque-base, n) {
		c.mu.Lock()
		removed := c.ops.remove(w, base, n)
		if removed {
			c.pending.Store(int32(c.ops.len()))
		}
		c.mu.Unlock()
		if removed {
			c.finish(w, nil, nil)
		}
	}
	return true
}

// rawPacket is a response queued for Receive, with the magic it came with
// (for Hijack, which hands it back as bytes) and its size on the wire.
type rawPacket struct {
	res   *gomemcached.MCResponse
	magic byte
	size  int
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

// unclaimed handles a response that belongs to no call of the client.
// Until the raw API is used nobody will Receive it: it is dropped (the
// observers have seen it, and it is counted in c.dropped). Then it is
// queued for Receive, waiting for room while the queue holds
// ReceiveQueue responses or ReceiveQueueBytes bytes.
func (c *conn) unclaimed(res *gomemcached.MCResponse) bool {
	if !c.rawMode.Load() {
		c.dropped.Add(1)
		return true
	}
	p := rawPacket{res: c.ownForReceive(res), magic: c.rd.Magic(), size: res.Size()}
	for {
		n := c.rawBytes.Load()
		if n <= 0 || n+int64(p.size) <= int64(c.opts.ReceiveQueueBytes) {
			break // a packet larger than the limit goes into an empty queue
		}
		select {
		case <-c.rawRoom:
		case <-c.done:
			return false
		}
	}
	c.rawBytes.Add(int64(p.size))
	select {
	case c.raw <- p:
		return true
	default:
	}
	select {
	case c.raw <- p:
		return true
	case <-c.done:
		return false
	}
}

// tookRaw accounts for a packet taken from the Receive queue.
func (c *conn) tookRaw(p rawPacket) {
	c.rawBytes.Add(-int64(p.size))
	select {
	case c.rawRoom <- struct{}{}:
	default:
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
