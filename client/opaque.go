package memcached

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// Opaques. Every request a Client sends for a call of its own carries an
// opaque from a counter, with the high bit set (opaqueTag); the reader
// routes each response to the call waiting for its opaque. A response
// whose opaque no call of the client waits for belongs to the user (an
// answer to Transmit, or a packet the server sent unasked) and goes to
// Receive. Transmit writes the user's opaques unchanged, and those may
// have the high bit too (the reference's own raw callers use 0xDEADBEEF
// and 0xBEAF0001): Transmit then reserves the opaque, which the counter
// skips from then on, and refuses it while a call of the client has it.
const opaqueTag = 0x8000_0000

// Waiter states: a waiter is answered exactly once, by the reader, by the
// connection's failure, or not at all if its caller gave up first, in which
// case whoever would have answered it recycles it. Whoever removes a
// waiter from the opaque map (under the conn's mutex) is the one who
// answers it: the reader when the last packet of the call arrives, fail
// when the connection ends.
const (
	stateWaiting uint32 = iota
	stateDone
	stateAbandoned
)

// handler consumes the packets of a call answered by several (stats, bulk
// gets, quiet requests behind a fence). The reader calls handle for each
// packet routed to the call, res aliasing its buffer, i being the index of
// its opaque among the n the call owns, until handle returns true. It runs
// on the reader goroutine, also after the caller gave up or the connection
// failed the call, so it must write only to memory the caller reads after
// the call completes successfully.
type handler interface {
	handle(res *gomemcached.MCResponse, i, n uint32) (last bool)
}

// waiter is one call waiting for its response.
type waiter struct {
	ch    chan struct{} // receives one value when res and err are set
	state atomic.Uint32
	res   *gomemcached.MCResponse
	err   error

	op gomemcached.CommandCode // for timeout errors
	h  handler                 // nil: the first packet answers the call
	// base and n are the opaques the call owns: base..base+n-1.
	base, n uint32
	// restore, when set, replaces the response's opaque by orig, the
	// opaque of the caller's request.
	restore bool
	orig    uint32

	progress atomic.Int64 // when a packet last reached h (conn.now)
	timer    *time.Timer  // reused across calls; owned by the caller while waiting
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

func getWaiter(op gomemcached.CommandCode) *waiter {
	w := waiterPool.Get().(*waiter)
	w.op = op
	return w
}

// release returns w to the pool; nobody may use it afterwards.
func (w *waiter) release() {
	w.res, w.err, w.h = nil, nil, nil
	w.restore, w.orig, w.base, w.n = false, 0, 0, 0
	w.progress.Store(0)
	w.state.Store(stateWaiting)
	waiterPool.Put(w)
}

// opaqueMap holds the calls waiting for responses, by opaque. It is not
// safe for concurrent use: the conn's mutex guards it.
type opaqueMap struct {
	next    uint32 // counter below 2^31; the opaque is next|opaqueTag
	wrapped bool   // the counter wrapped: check for collisions
	single  map[uint32]*waiter
	ranges  []*waiter // calls owning several opaques
	// reserved holds the opaques with the high bit that Transmit wrote:
	// the counter skips them for the life of the connection.
	reserved map[uint32]struct{}
}

func (m *opaqueMap) len() int { return len(m.single) + len(m.ranges) }

// add allocates n consecutive opaques to w, registers it and returns the
// first.
func (m *opaqueMap) add(w *waiter, n uint32) uint32 {
	if m.single == nil {
		m.single = make(map[uint32]*waiter)
	}
	for {
		base := m.next
		if uint64(base)+uint64(n) > opaqueTag {
			m.next, m.wrapped = 0, true
			continue
		}
		m.next = base + n
		if m.wrapped && m.collides(base|opaqueTag, n) || m.reservedIn(base|opaqueTag, n) {
			continue
		}
		w.base, w.n = base|opaqueTag, n
		if n == 1 {
			m.single[w.base] = w
		} else {
			m.ranges = append(m.ranges, w)
		}
		return w.base
	}
}

// collides reports whether any of the n opaques from base is in use, which
// is possible only after the counter wrapped.
func (m *opaqueMap) collides(base, n uint32) bool {
	for _, r := range m.ranges {
		if base < r.base+r.n && r.base < base+n {
			return true
		}
	}
	if n == 1 {
		_, ok := m.single[base]
		return ok
	}
	for op := range m.single {
		if op-base < n {
			return true
		}
	}
	return false
}

// reservedIn reports whether any of the n opaques from base is reserved.
func (m *opaqueMap) reservedIn(base, n uint32) bool {
	if len(m.reserved) == 0 {
		return false
	}
	if int(n) <= len(m.reserved) {
		for i := range n {
			if _, ok := m.reserved[base+i]; ok {
				return true
			}
		}
		return false
	}
	for op := range m.reserved {
		if op-base < n {
			return true
		}
	}
	return false
}

// reserve keeps the counter off op, an opaque with the high bit that
// Transmit is about to write. It returns false, reserving nothing, if a
// call waits for op now.
func (m *opaqueMap) reserve(op uint32) bool {
	if _, ok := m.reserved[op]; ok {
		return m.lookup(op) == nil
	}
	if m.lookup(op) != nil {
		return false
	}
	if m.reserved == nil {
		m.reserved = make(map[uint32]struct{})
	}
	m.reserved[op] = struct{}{}
	return true
}

// lookup returns the call that opaque op belongs to, or nil.
func (m *opaqueMap) lookup(op uint32) *waiter {
	if w := m.single[op]; w != nil {
		return w
	}
	for _, r := range m.ranges {
		if op-r.base < r.n {
			return r
		}
	}
	return nil
}

// route returns the call that opaque op belongs to, or nil. A call answered
// by a single packet is removed at once (taken is then true).
func (m *opaqueMap) route(op uint32) (w *waiter, taken bool) {
	if w = m.single[op]; w != nil {
		if w.h == nil {
			delete(m.single, op)
			return w, true
		}
		return w, false
	}
	for _, r := range m.ranges {
		if op-r.base < r.n {
			return r, false
		}
	}
	return nil, false
}

// remove unregisters w, registered with the n opaques from base, and
// reports whether it was registered. base and n are the caller's copies of
// w's, for w may have been recycled since it was drained.
func (m *opaqueMap) remove(w *waiter, base, n uint32) bool {
	if n == 1 {
		if m.single[base] == w {
			delete(m.single, base)
			return true
		}
		return false
	}
	for i, r := range m.ranges {
		if r == w {
			last := len(m.ranges) - 1
			m.ranges[i] = m.ranges[last]
			m.ranges[last] = nil
			m.ranges = m.ranges[:last]
			return true
		}
	}
	return false
}

// drain unregisters and returns every waiter.
func (m *opaqueMap) drain() []*waiter {
	all := make([]*waiter, 0, m.len())
	for _, w := range m.single {
		all = append(all, w)
	}
	all = append(all, m.ranges...)
	clear(m.single)
	m.ranges = nil
	return all
}
