package memcached

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/ring"
)

// KV is the key-value surface that a Client (one server) and Servers (many)
// share, with the same signatures: application code written against it
// does not change when it moves from one server to many.
type KV interface {
	Do(ctx context.Context, req *gomemcached.MCRequest) (*gomemcached.MCResponse, error)
	Get(vb uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error)
	GetAndTouch(vb uint16, key string, exp int, context ...*ClientContext) (*gomemcached.MCResponse, error)
	GetBulk(vb uint16, keys []string, rv map[string]*gomemcached.MCResponse, subPaths []string, context ...*ClientContext) error
	Set(vb uint16, key string, flags int, exp int, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error)
	SetCas(vb uint16, key string, flags int, exp int, cas uint64, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error)
	Add(vb uint16, key string, flags int, exp int, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error)
	Append(vb uint16, key string, data []byte, context ...*ClientContext) (*gomemcached.MCResponse, error)
	Del(vb uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error)
	Incr(vb uint16, key string, amt, def uint64, exp int, context ...*ClientContext) (uint64, error)
	Decr(vb uint16, key string, amt, def uint64, exp int, context ...*ClientContext) (uint64, error)
	Close() error
}

var (
	_ KV = (*Client)(nil)
	_ KV = (*Servers)(nil)
)

var (
	// ErrNoServers is returned by a Servers' calls when every server is
	// ejected.
	ErrNoServers = errors.New("memcached: no server available (all ejected)")
	// ErrServersClosed is returned by a Servers' calls after Close.
	ErrServersClosed = errors.New("memcached: servers closed")
	// errNoKey is Servers.Do's error for a request without a key to route.
	errNoKey = errors.New("memcached: Servers.Do routes by key and the request has none")
)

// DefaultRetryTimeout is ServersOptions.RetryTimeout's default, as
// libmemcached's MEMCACHED_BEHAVIOR_RETRY_TIMEOUT.
const DefaultRetryTimeout = 2 * time.Second

// ServersOptions configures Servers. The zero value is usable: no server is
// ever ejected (libmemcached's default), and each server's Pool has
// PoolOptions' defaults.
type ServersOptions struct {
	// Pool configures the pool of connections to each server.
	Pool PoolOptions
	// FailureLimit is the number of consecutive failures (a connection
	// that cannot be opened or ends, a timeout; not a miss or another
	// status the server answers) after which a server is ejected: its
	// keys go where a ring of the remaining servers places them, as
	// libmemcached's MEMCACHED_BEHAVIOR_AUTO_EJECT_HOSTS with
	// SERVER_FAILURE_LIMIT does. Zero (the default) never ejects: calls
	// for a failing server's keys fail with a *NodeError.
	FailureLimit int
	// RetryTimeout is how long a server stays ejected before it is tried
	// again (a connection and a NOOP); if it answers it is restored, its
	// keys coming back to it, else it stays ejected for another
	// RetryTimeout. Zero means DefaultRetryTimeout.
	RetryTimeout time.Duration
	// OnEvent, when set, is called for each ejection, restoration and
	// failed retry, one call at a time and in the order they happened,
	// from the goroutine whose call made it happen or from a retry
	// timer. It may call the Servers' methods; it should not block long,
	// for that call waits.
	OnEvent func(ServerEvent)
}

// ServerEventKind says what happened to a server.
type ServerEventKind uint8

const (
	// ServerEjected: the server failed FailureLimit times in a row and
	// was taken off the ring.
	ServerEjected ServerEventKind = iota + 1
	// ServerRestored: the server answered after RetryTimeout and is back
	// on the ring.
	ServerRestored
	// ServerRetryFailed: the server did not answer after RetryTimeout and
	// stays ejected for another.
	ServerRetryFailed
)

func (k ServerEventKind) String() string {
	switch k {
	case ServerEjected:
		return "ejected"
	case ServerRestored:
		return "restored"
	case ServerRetryFailed:
		return "retry failed"
	}
	return fmt.Sprintf("ServerEventKind(%d)", uint8(k))
}

// ServerEvent is a change of a server's state, reported to
// ServersOptions.OnEvent.
type ServerEvent struct {
	Kind ServerEventKind
	Addr string
	// Err is the reason: the last failure for ServerEjected and
	// ServerRetryFailed; nil for ServerRestored.
	Err  error
	Time time.Time
}

// ServerStats are one server's counters, since New.
type ServerStats struct {
	Addr    string
	Ejected bool
	// Calls counts calls routed to the server (a multi-key call counts
	// once per server it reaches); Failures, those that failed as
	// FailureLimit counts; Consecutive, the failures since the last
	// success.
	Calls, Failures, Consecutive uint64
	Ejections, Restores          uint64
}

// NodeError is the error of a call that failed for its server: it could
// not be reached, its connection ended or it did not answer in time. It
// unwraps to the cause (a *ConnError, a *TimeoutError, a dial error).
type NodeError struct {
	Addr string
	Err  error
}

func (e *NodeError) Error() string { return "memcached: server " + e.Addr + ": " + e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// Servers is a client of many memcached servers: each key goes to the
// server a ring.Ring places it on (libmemcached's ketama by default, so a
// Go service and a C or PHP one agree on every key's server), through a
// Pool per server. Multi-key calls are split per server and sent
// concurrently. With ServersOptions.FailureLimit, failing servers are
// ejected and retried as libmemcached does.
//
// Servers is safe for concurrent use. Its reference-style methods
// (Get, Set, ..., the KV interface) behave as Client's do, on the key's
// server; Do and the multi-key calls take a context.
type Servers struct {
	cfg   ring.Config
	opts  ServersOptions
	nodes []*serverNode
	route atomic.Pointer[serverRoute]

	mu     sync.Mutex // ejection state, rebuilds, closed, queued
	closed bool
	queued []ServerEvent // events for OnEvent, in the order they happened
	evMu   sync.Mutex    // held while calling OnEvent: one call at a time
}

// serverRoute is the ring in use: of the live servers only.
type serverRoute struct {
	ring *ring.Ring // nil: none live
	live []int      // the ring's index -> node index
}

// serverNode is one server with its pool and state.
type serverNode struct {
	srv  ring.Server
	pool *Pool

	ejected bool        // guarded by Servers.mu
	timer   *time.Timer // the retry, while ejected

	consecutive atomic.Int64
	calls       atomic.Uint64
	failures    atomic.Uint64
	ejections   atomic.Uint64
	restores    atomic.Uint64
}

// NewServers returns a client of servers, placing keys as c says. It
// connects lazily. It fails as ring.New does for the list.
func NewServers(servers []ring.Server, c ring.Config, opts ServersOptions) (*Servers, error) {
	r, err := ring.New(servers, c)
	if err != nil {
		return nil, err
	}
	if opts.RetryTimeout <= 0 {
		opts.RetryTimeout = DefaultRetryTimeout
	}
	s := &Servers{cfg: c, opts: opts, nodes: make([]*serverNode, len(servers))}
	live := make([]int, len(servers))
	for i, srv := range servers {
		network := "tcp"
		if strings.HasPrefix(srv.Addr, "/") {
			network = "unix"
		}
		s.nodes[i] = &serverNode{srv: srv, pool: NewPool(network, srv.Addr, opts.Pool)}
		live[i] = i
	}
	s.route.Store(&serverRoute{ring: r, live: live})
	return s, nil
}

// Close closes every server's pool and stops the retries.
func (s *Servers) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, n := range s.nodes {
		if n.timer != nil {
			n.timer.Stop()
		}
	}
	s.mu.Unlock()
	for _, n := range s.nodes {
		n.pool.Close()
	}
	return nil
}

// Addrs returns the servers' addresses, in the order given to NewServers.
func (s *Servers) Addrs() []string {
	a := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		a[i] = n.srv.Addr
	}
	return a
}

// Pick returns the address of the server that key goes to now, "" if
// every server is ejected.
func (s *Servers) Pick(key string) string {
	n, err := s.pick(key)
	if err != nil {
		return ""
	}
	return n.srv.Addr
}

// Stats returns each server's counters, in the order given to NewServers.
func (s *Servers) Stats() []ServerStats {
	st := make([]ServerStats, len(s.nodes))
	s.mu.Lock()
	for i, n := range s.nodes {
		st[i].Addr, st[i].Ejected = n.srv.Addr, n.ejected
	}
	s.mu.Unlock()
	for i, n := range s.nodes {
		st[i].Calls = n.calls.Load()
		st[i].Failures = n.failures.Load()
		st[i].Consecutive = uint64(n.consecutive.Load())
		st[i].Ejections = n.ejections.Load()
		st[i].Restores = n.restores.Load()
	}
	return st
}

// pick returns the node key goes to.
func (s *Servers) pick(key string) (*serverNode, error) {
	r := s.route.Load()
	if r.ring == nil {
		if s.isClosed() {
			return nil, ErrServersClosed
		}
		return nil, ErrNoServers
	}
	return s.nodes[r.live[r.ring.Pick(key)]], nil
}

// pickBytes is pick for a key in bytes.
func (s *Servers) pickBytes(key []byte) (*serverNode, error) {
	r := s.route.Load()
	if r.ring == nil {
		return s.pick("")
	}
	return s.nodes[r.live[r.ring.PickBytes(key)]], nil
}

func (s *Servers) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// shared returns a shared connection to n, or the failure to get one
// (recorded).
func (s *Servers) shared(ctx context.Context, n *serverNode) (*Client, error) {
	c, err := n.pool.Shared(ctx)
	if err != nil {
		if errors.Is(err, ErrPoolClosed) {
			return nil, ErrServersClosed
		}
		return nil, err
	}
	return c, nil
}

// call runs f on a shared connection to key's server, and records how it
// went. A call refused, unsent, by a connection its pool just retired is
// made again.
func (s *Servers) call(key string, f func(c *Client) (*gomemcached.MCResponse, error)) (*gomemcached.MCResponse, error) {
	n, err := s.pick(key)
	if err != nil {
		return nil, err
	}
	for {
		c, err := s.shared(context.Background(), n)
		var res *gomemcached.MCResponse
		if err == nil {
			res, err = f(c)
			if err != nil && isRetired(err) {
				continue
			}
		}
		return res, s.done(n, err)
	}
}

// isFailure reports whether err, a call's error, counts against its
// server: not a status the server answered, a key refused before sending,
// a caller's cancellation or Close.
func isFailure(err error) bool {
	switch err.(type) {
	case nil, *gomemcached.MCResponse, *gomemcached.ServerError:
		return false // the common cases, without errors.As's allocations
	}
	var res *gomemcached.MCResponse
	var se *gomemcached.ServerError
	var ke *keyError
	switch {
	case errors.As(err, &res), errors.As(err, &se), errors.As(err, &ke),
		errors.Is(err, context.Canceled), errors.Is(err, ErrServersClosed),
		errors.Is(err, errNilMap), errors.Is(err, errNoKey), errors.Is(err, errBadCounter):
		return false
	}
	return true
}

// done records the outcome of a call to n and returns its error, a
// failure wrapped in a *NodeError. A failure may eject n.
func (s *Servers) done(n *serverNode, err error) error {
	n.calls.Add(1)
	if !isFailure(err) {
		if n.consecutive.Load() != 0 {
			n.consecutive.Store(0)
		}
		return err
	}
	n.failures.Add(1)
	c := n.consecutive.Add(1)
	if s.opts.FailureLimit > 0 && c >= int64(s.opts.FailureLimit) {
		s.eject(n, err)
	}
	return &NodeError{Addr: n.srv.Addr, Err: err}
}

// eject takes n off the ring, if it is on it, and arms its retry.
func (s *Servers) eject(n *serverNode, reason error) {
	s.mu.Lock()
	if n.ejected || s.closed {
		s.mu.Unlock()
		return
	}
	n.ejected = true
	n.ejections.Add(1)
	s.rebuildLocked()
	n.timer = time.AfterFunc(s.opts.RetryTimeout, func() { s.retry(n) })
	s.queueLocked(ServerEvent{Kind: ServerEjected, Addr: n.srv.Addr, Err: reason})
	s.mu.Unlock()
	s.emit()
}

// retry tries an ejected n again: restored if it answers a NOOP, else
// ejected for another RetryTimeout.
func (s *Servers) retry(n *serverNode) {
	timeout := min(s.opts.RetryTimeout, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := n.pool.Shared(ctx)
	if err == nil {
		_, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
	}
	s.mu.Lock()
	if s.closed || !n.ejected {
		s.mu.Unlock()
		return
	}
	if err != nil {
		n.timer = time.AfterFunc(s.opts.RetryTimeout, func() { s.retry(n) })
		s.queueLocked(ServerEvent{Kind: ServerRetryFailed, Addr: n.srv.Addr, Err: err})
		s.mu.Unlock()
		s.emit()
		return
	}
	n.ejected, n.timer = false, nil
	n.consecutive.Store(0)
	n.restores.Add(1)
	s.rebuildLocked()
	s.queueLocked(ServerEvent{Kind: ServerRestored, Addr: n.srv.Addr})
	s.mu.Unlock()
	s.emit()
}

// rebuildLocked publishes the ring of the servers not ejected: what
// libmemcached's auto-eject computes, a continuum of the live servers
// alone.
func (s *Servers) rebuildLocked() {
	var servers []ring.Server
	var live []int
	for i, n := range s.nodes {
		if !n.ejected {
			servers = append(servers, n.srv)
			live = append(live, i)
		}
	}
	r := &serverRoute{}
	if len(servers) > 0 {
		if rg, err := ring.New(servers, s.cfg); err == nil {
			// A sublist of a list New took is always taken.
			r.ring, r.live = rg, live
		}
	}
	s.route.Store(r)
}

// queueLocked queues ev for OnEvent, in the order of the state changes
// (made under s.mu).
func (s *Servers) queueLocked(ev ServerEvent) {
	if s.opts.OnEvent != nil {
		ev.Time = time.Now()
		s.queued = append(s.queued, ev)
	}
}

// emit calls OnEvent for the events queued, one call at a time and in
// order, without s.mu held (OnEvent may call Stats, Pick, ...).
func (s *Servers) emit() {
	if s.opts.OnEvent == nil {
		return
	}
	s.evMu.Lock()
	defer s.evMu.Unlock()
	for {
		s.mu.Lock()
		if len(s.queued) == 0 {
			s.mu.Unlock()
			return
		}
		ev := s.queued[0]
		s.queued = s.queued[1:]
		s.mu.Unlock()
		s.opts.OnEvent(ev)
	}
}

// Do sends req to the server its key goes to; see Client.Do. A failure of
// that server is a *NodeError.
func (s *Servers) Do(ctx context.Context, req *gomemcached.MCRequest) (*gomemcached.MCResponse, error) {
	if len(req.Key) == 0 {
		return nil, errNoKey
	}
	n, err := s.pickBytes(req.Key)
	if err != nil {
		return nil, err
	}
	var res *gomemcached.MCResponse
	c, err := s.shared(ctx, n)
	if err == nil {
		res, err = n.pool.doOn(ctx, c, req)
	}
	return res, s.done(n, err)
}

// doOn is Pool.Do starting with the shared connection c.
func (p *Pool) doOn(ctx context.Context, c *Client, req *gomemcached.MCRequest) (*gomemcached.MCResponse, error) {
	res, err := c.Do(ctx, req)
	if err == nil || !isRetired(err) {
		return res, err
	}
	return p.Do(ctx, req)
}

// Get is Client.Get on key's server.
func (s *Servers) Get(vb uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return s.call(key, func(c *Client) (*gomemcached.MCResponse, error) { return c.Get(vb, key, context...) })
}

// GetAndTouch is Client.GetAndTouch on key's server.
func (s *Servers) GetAndTouch(vb uint16, key string, exp int, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return s.call(key, func(c *Client) (*gomemcached.MCResponse, error) { return c.GetAndTouch(vb, key, exp, context...) })
}

// Set is Client.Set on key's server.
func (s *Servers) Set(vb uint16, key string, flags int, exp int, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return s.call(key, func(c *Client) (*gomemcached.MCResponse, error) { return c.Set(vb, key, flags, exp, body, context...) })
}

// SetCas is Client.SetCas on key's server.
func (s *Servers) SetCas(vb uint16, key string, flags int, exp int, cas uint64, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return s.call(key, func(c *Client) (*gomemcached.MCResponse, error) {
		return c.SetCas(vb, key, flags, exp, cas, body, context...)
	})
}

// Add is Client.Add on key's server.
func (s *Servers) Add(vb uint16, key string, flags int, exp int, body []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return s.call(key, func(c *Client) (*gomemcached.MCResponse, error) { return c.Add(vb, key, flags, exp, body, context...) })
}

// Append is Client.Append on key's server.
func (s *Servers) Append(vb uint16, key string, data []byte, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return s.call(key, func(c *Client) (*gomemcached.MCResponse, error) { return c.Append(vb, key, data, context...) })
}

// Del is Client.Del on key's server.
func (s *Servers) Del(vb uint16, key string, context ...*ClientContext) (*gomemcached.MCResponse, error) {
	return s.call(key, func(c *Client) (*gomemcached.MCResponse, error) { return c.Del(vb, key, context...) })
}

// Incr is Client.Incr on key's server.
func (s *Servers) Incr(vb uint16, key string, amt, def uint64, exp int, context ...*ClientContext) (uint64, error) {
	return s.arith(key, func(c *Client) (uint64, error) { return c.Incr(vb, key, amt, def, exp, context...) })
}

// Decr is Client.Decr on key's server.
func (s *Servers) Decr(vb uint16, key string, amt, def uint64, exp int, context ...*ClientContext) (uint64, error) {
	return s.arith(key, func(c *Client) (uint64, error) { return c.Decr(vb, key, amt, def, exp, context...) })
}

func (s *Servers) arith(key string, f func(c *Client) (uint64, error)) (uint64, error) {
	var v uint64
	_, err := s.call(key, func(c *Client) (*gomemcached.MCResponse, error) {
		var err error
		v, err = f(c)
		return nil, err
	})
	return v, err
}
