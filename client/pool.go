package memcached

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// ErrPoolClosed is returned by a Pool's methods after Close.
var ErrPoolClosed = errors.New("memcached: pool closed")

// PoolOptions configures a Pool. The zero value is usable: every field has
// a default, documented with it.
type PoolOptions struct {
	// Client configures each connection (dial timeout, TLS, timeouts,
	// observer), and prepares it before the pool uses or lends it:
	// credentials, HELLO features, bucket (see Dial). A connection whose
	// preparation fails is closed, and the caller of Do, Shared or Get
	// gets the *SetupError. Its DialTimeout defaults to
	// DefaultDialTimeout, so connecting is bounded unless set negative.
	Client ClientOptions
	// MaxOpen caps the connections open at once, shared and lent. Zero
	// means 16.
	MaxOpen int
	// MaxShared caps the connections Do and Shared spread calls over.
	// Zero means 2; it is at most MaxOpen. When shared connections hold
	// every slot, Get takes one of them out of sharing (see Get).
	MaxShared int
	// SharedDepth is the number of calls in flight on every shared
	// connection above which Do opens another one (up to MaxShared).
	// Zero means 32.
	SharedDepth int
	// MaxIdle caps the connections kept for Get after Put. Zero means 2;
	// negative means none.
	MaxIdle int
	// IdleTimeout closes connections unused for this long: idle ones in
	// the pool, and shared ones beyond the first (those are first taken
	// out of sharing, and closed IdleTimeout/2 later once no call is in
	// flight on them). Zero means 90 seconds; negative means never.
	IdleTimeout time.Duration
	// PingAfter is the idleness after which Get checks a connection with
	// a NOOP before lending it (it always checks IsHealthy). Zero means 5
	// seconds; negative means never.
	PingAfter time.Duration
}

func (o PoolOptions) resolve() PoolOptions {
	if o.MaxOpen <= 0 {
		o.MaxOpen = 16
	}
	if o.MaxShared <= 0 {
		o.MaxShared = 2
	}
	o.MaxShared = min(o.MaxShared, o.MaxOpen)
	if o.SharedDepth <= 0 {
		o.SharedDepth = 32
	}
	switch {
	case o.MaxIdle == 0:
		o.MaxIdle = 2
	case o.MaxIdle < 0:
		o.MaxIdle = 0
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.PingAfter == 0 {
		o.PingAfter = 5 * time.Second
	}
	return o
}

// Pool keeps connections to one server. It is safe for concurrent use.
//
// A Client already pipelines the calls of many goroutines on its one
// connection, so a pool serves two other ends. Do and Shared spread calls
// over a few shared connections, opening another when every one has
// SharedDepth calls in flight. Get and Put lend a connection to one user
// at a time, for Hijack, Transmit and Receive, or long calls that should
// not delay others. Both kinds count against MaxOpen; Get waits for a
// connection when MaxOpen are open, and so does Shared when none is
// shared (each taking over an idle connection, if any, rather than
// waiting).
type Pool struct {
	network, addr string
	opts          PoolOptions

	slots chan struct{} // one token per open connection
	avail chan struct{} // signalled by Put for Get's waiting callers
	quit  chan struct{} // closed by Close

	snapshot atomic.Pointer[[]*pooledConn] // shared, for Shared's lock-free path

	mu       sync.Mutex
	shared   []*pooledConn
	idle     []*pooledConn // most recently used last
	retiring []*pooledConn // shared ones taken out of sharing by the reaper, to close once unused
	dialing  bool          // a shared connection is being dialled
	closed   bool
	reaper   *time.Timer
}

// pooledConn is a connection of the pool.
type pooledConn struct {
	c        *Client
	lastUsed atomic.Int64 // UnixNano: when Put back, or opened
}

// lastActive returns when the connection was last used (UnixNano): put
// back, opened, or, for a shared one, when it last received data.
func (pc *pooledConn) lastActive() int64 {
	last := pc.lastUsed.Load()
	if recv := pc.c.c.lastRecv.Load(); recv > 0 {
		last = max(last, pc.c.c.born.Add(time.Duration(recv)).UnixNano())
	}
	return last
}

// NewPool returns a pool of connections to addr on network; it connects
// lazily.
func NewPool(network, addr string, opts PoolOptions) *Pool {
	opts = opts.resolve()
	return &Pool{
		network: network,
		addr:    addr,
		opts:    opts,
		slots:   make(chan struct{}, opts.MaxOpen),
		avail:   make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
}

// PoolStats describes a pool at one moment.
type PoolStats struct {
	Open   int // connections open, shared, idle and lent
	Shared int // shared connections
	Idle   int // connections waiting in the pool for Get
}

// Stats returns the pool's counts.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Open: len(p.slots), Shared: len(p.shared), Idle: len(p.idle)}
}

// Do sends req on a shared connection; see Client.Do. A call refused,
// unsent, by a connection the pool has just retired is made again on
// another.
func (p *Pool) Do(ctx context.Context, req *gomemcached.MCRequest) (*gomemcached.MCResponse, error) {
	for {
		c, err := p.Shared(ctx)
		if err != nil {
			return nil, err
		}
		res, err := c.Do(ctx, req)
		if !isRetired(err) {
			return res, err
		}
	}
}

// Shared returns a shared connection, the one with the fewest calls in
// flight, opening one if needed (or taking over an idle one, when MaxOpen
// are open). Use it for any calls, from any number of goroutines, but do
// not Close, Hijack or Put it, nor use Transmit and Receive on it, nor
// change its authentication, features or bucket: lend a connection with
// Get for that. Use it for calls made now, and call Shared again for
// later ones: the pool retires shared connections (see IdleTimeout and
// Get), and calls on a retired connection fail, unsent, with a
// *ConnError matching ErrClosed.
func (p *Pool) Shared(ctx context.Context) (*Client, error) {
	// The common case, without the lock: a healthy shared connection
	// below SharedDepth, or all of them open.
	if snap := p.snapshot.Load(); snap != nil {
		var best *pooledConn
		for _, pc := range *snap {
			if !pc.c.alive() {
				best = nil
				break
			}
			if best == nil || pc.c.Pending() < best.c.Pending() {
				best = pc
			}
		}
		if best != nil && (best.c.Pending() < p.opts.SharedDepth || len(*snap) >= p.opts.MaxShared) {
			return best.c, nil
		}
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		var best *pooledConn
		var dead []*pooledConn
		for i := 0; i < len(p.shared); {
			pc := p.shared[i]
			if !pc.c.alive() {
				dead = append(dead, pc)
				p.shared = append(p.shared[:i], p.shared[i+1:]...)
				p.publishLocked()
				continue
			}
			if best == nil || pc.c.Pending() < best.c.Pending() {
				best = pc
			}
			i++
		}
		grow := best == nil ||
			(best.c.Pending() >= p.opts.SharedDepth && len(p.shared) < p.opts.MaxShared && !p.dialing)
		if !grow {
			p.mu.Unlock()
			p.releaseAll(dead)
			return best.c, nil
		}
		if p.dialing {
			// Another caller is opening the first shared connection.
			p.mu.Unlock()
			p.releaseAll(dead)
			if err := sleepCtx(ctx, time.Millisecond); err != nil {
				return nil, err
			}
			continue
		}
		p.dialing = true
		p.mu.Unlock()
		p.releaseAll(dead)

		// Without a shared connection, wait for a slot or take over an
		// idle connection; with one, open another only if a slot is free
		// (else the error keeps best).
		var c *Client
		var err error
		if best == nil {
			c, err = p.acquire(ctx)
		} else {
			c, err = p.open(ctx)
		}
		p.mu.Lock()
		p.dialing = false
		if err != nil {
			p.mu.Unlock()
			if best != nil {
				return best.c, nil
			}
			return nil, err
		}
		pc := &pooledConn{c: c}
		pc.lastUsed.Store(time.Now().UnixNano())
		if p.closed {
			p.mu.Unlock()
			p.release(pc)
			return nil, ErrPoolClosed
		}
		p.shared = append(p.shared, pc)
		p.publishLocked()
		p.armReaperLocked()
		p.mu.Unlock()
		p.signal() // a Get waiting may now have to take a shared one
		return c, nil
	}
}

// publishLocked publishes the shared connections for Shared's lock-free
// path.
func (p *Pool) publishLocked() {
	snap := slices.Clone(p.shared)
	p.snapshot.Store(&snap)
}

// releaseAll releases each connection of pcs.
func (p *Pool) releaseAll(pcs []*pooledConn) {
	for _, pc := range pcs {
		p.release(pc)
	}
}

// Get lends a connection for exclusive use: an idle one (checked with
// IsHealthy and, after PingAfter of idleness, a NOOP) or a new one, waiting
// until ctx ends if MaxOpen connections are open. Give it back with Put.
//
// If shared connections hold every slot (MaxShared equal to MaxOpen, say),
// none would ever come back to Get: it then takes one out of sharing and,
// once the calls in flight on it are answered, closes it and opens the
// connection it lends in its place.
func (p *Pool) Get(ctx context.Context) (*Client, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if pc := p.popIdleLocked(); pc != nil {
			p.mu.Unlock()
			if p.usable(ctx, pc) {
				return pc.c, nil
			}
			p.release(pc)
			continue
		}
		var victim *pooledConn
		if len(p.shared) >= p.opts.MaxOpen {
			victim = p.unshareLocked()
		}
		p.mu.Unlock()
		if victim != nil {
			return p.takeOver(ctx, victim)
		}
		if c, again, err := p.dialOrWait(ctx); !again {
			return c, err
		}
	}
}

// dialOrWait dials a connection in a slot as soon as one is free, or
// reports again when a connection comes back first (the caller looks for
// it), or fails when ctx ends or the pool closes.
func (p *Pool) dialOrWait(ctx context.Context) (c *Client, again bool, err error) {
	select {
	case p.slots <- struct{}{}:
		c, err = p.dialInSlot(ctx)
		return c, false, err
	case <-p.avail:
		return nil, true, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-p.quit:
		return nil, false, ErrPoolClosed
	}
}

// popIdleLocked takes the most recently used idle connection, nil if none.
func (p *Pool) popIdleLocked() *pooledConn {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	pc := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	if n > 1 {
		p.signal() // for another caller waiting
	}
	return pc
}

// unshareLocked takes the shared connection with the fewest calls in
// flight out of sharing and returns it.
func (p *Pool) unshareLocked() *pooledConn {
	best := 0
	for i, pc := range p.shared {
		if pc.c.Pending() < p.shared[best].c.Pending() {
			best = i
		}
	}
	pc := p.shared[best]
	p.shared = slices.Delete(p.shared, best, best+1)
	p.publishLocked()
	return pc
}

// takeOver retires victim, taken out of sharing, once no call is in flight
// on it, and dials a connection in its slot for Get. If ctx ends first,
// victim is shared again.
func (p *Pool) takeOver(ctx context.Context, victim *pooledConn) (*Client, error) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		if victim.c.c.retire() || !victim.c.alive() {
			victim.c.Close() // keeping its slot
			return p.dialInSlot(ctx)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			p.mu.Lock()
			if !p.closed {
				p.shared = append(p.shared, victim)
				p.publishLocked()
				p.mu.Unlock()
				p.signal()
			} else {
				p.mu.Unlock()
				p.release(victim)
			}
			return nil, ctx.Err()
		case <-p.quit:
			p.release(victim)
			return nil, ErrPoolClosed
		}
	}
}

// dialInSlot dials a connection in a slot the caller took, freeing the
// slot if that fails.
func (p *Pool) dialInSlot(ctx context.Context) (*Client, error) {
	c, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		p.signal()
		return nil, err
	}
	return c, nil
}

// usable checks an idle connection before lending it.
func (p *Pool) usable(ctx context.Context, pc *pooledConn) bool {
	if !pc.c.IsHealthy() {
		return false
	}
	idle := time.Since(time.Unix(0, pc.lastUsed.Load()))
	if p.opts.IdleTimeout > 0 && idle > p.opts.IdleTimeout {
		return false
	}
	if p.opts.PingAfter > 0 && idle > p.opts.PingAfter {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := pc.c.Do(pctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil {
			return false
		}
	}
	return true
}

// Put gives back a connection lent by Get. An unhealthy or hijacked one is
// closed, and so is one beyond MaxIdle, and one whose authentication,
// features or bucket were changed (Auth, EnableFeatures, SelectBucket,
// ...): the pool lends only connections as PoolOptions.Client makes them.
func (p *Pool) Put(c *Client) {
	if c == nil {
		return
	}
	pc := &pooledConn{c: c}
	pc.lastUsed.Store(time.Now().UnixNano())
	p.mu.Lock()
	if p.closed || !c.IsHealthy() || c.c.changed.Load() || c.Pending() > 0 || len(p.idle) >= p.opts.MaxIdle {
		p.mu.Unlock()
		p.release(pc)
	} else {
		p.idle = append(p.idle, pc)
		p.armReaperLocked()
		p.mu.Unlock()
	}
	p.signal()
}

// signal wakes one caller of Get waiting for a connection.
func (p *Pool) signal() {
	select {
	case p.avail <- struct{}{}:
	default:
	}
}

// open dials a connection if a slot is free.
func (p *Pool) open(ctx context.Context) (*Client, error) {
	select {
	case p.slots <- struct{}{}:
		return p.dialInSlot(ctx)
	default:
		return nil, errors.New("memcached: pool full")
	}
}

// acquire returns a connection for Shared to share when none is: a new
// one if a slot is free, else an idle one taken over, else the first of
// these to come, until ctx ends.
func (p *Pool) acquire(ctx context.Context) (*Client, error) {
	for {
		select {
		case p.slots <- struct{}{}:
			return p.dialInSlot(ctx)
		default:
		}
		p.mu.Lock()
		pc := p.popIdleLocked()
		p.mu.Unlock()
		if pc != nil {
			if p.usable(ctx, pc) {
				return pc.c, nil
			}
			p.release(pc)
			continue
		}
		if c, again, err := p.dialOrWait(ctx); !again {
			return c, err
		}
	}
}

// dial connects a new client; the caller holds a slot for it.
func (p *Pool) dial(ctx context.Context) (*Client, error) {
	return Dial(ctx, p.network, p.addr, p.opts.Client)
}

// release closes a connection and frees its slot.
func (p *Pool) release(pc *pooledConn) {
	pc.c.Close()
	<-p.slots
	p.signal()
}

// armReaperLocked makes sure the reaper will run while connections may
// idle.
func (p *Pool) armReaperLocked() {
	if p.opts.IdleTimeout <= 0 || p.closed {
		return
	}
	if p.reaper == nil {
		p.reaper = time.AfterFunc(p.opts.IdleTimeout, p.reap)
	}
}

// reap closes the connections idle for IdleTimeout, and re-arms itself
// while connections remain. Shared connections beyond the first idle as
// long are taken out of sharing first, and closed by a later run once no
// call is in flight on them, by retire, which refuses calls that come
// after, unsent: a caller of Shared that got one just before may use it,
// and Pool.Do, if its call is refused, retries on another.
func (p *Pool) reap() {
	cutoff := time.Now().Add(-p.opts.IdleTimeout).UnixNano()
	var victims []*pooledConn
	p.mu.Lock()
	keep := p.idle[:0]
	for _, pc := range p.idle {
		if pc.lastUsed.Load() < cutoff {
			victims = append(victims, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	retiring := p.retiring
	p.retiring = nil
	for i := len(p.shared) - 1; i >= 1; i-- {
		if pc := p.shared[i]; pc.c.Pending() == 0 && pc.lastActive() < cutoff {
			p.retiring = append(p.retiring, pc)
			p.shared = slices.Delete(p.shared, i, i+1)
			p.publishLocked()
		}
	}
	p.mu.Unlock()

	var busy []*pooledConn
	for _, pc := range retiring {
		if pc.c.c.retire() || !pc.c.alive() {
			victims = append(victims, pc)
		} else {
			busy = append(busy, pc)
		}
	}

	p.mu.Lock()
	if p.closed {
		victims = append(victims, busy...) // Close did not see them
	} else {
		p.retiring = append(p.retiring, busy...)
	}
	p.reaper = nil
	if !p.closed && len(p.idle)+len(p.shared)+len(p.retiring) > 0 {
		p.reaper = time.AfterFunc(p.opts.IdleTimeout/2, p.reap)
	}
	p.mu.Unlock()
	p.releaseAll(victims)
}

// Close closes the shared and idle connections and makes the pool refuse
// further use; connections lent by Get are closed when Put back.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.quit)
	if p.reaper != nil {
		p.reaper.Stop()
		p.reaper = nil
	}
	victims := slices.Concat(p.shared, p.idle, p.retiring)
	p.shared, p.idle, p.retiring = nil, nil, nil
	p.snapshot.Store(nil)
	p.mu.Unlock()
	p.releaseAll(victims)
	return nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
