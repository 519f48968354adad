package memcached

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// Opaques. Every request a Client sends for a call of its own carries an
// opaque from a counter, with the high bit set (opaqueTag); the reader
// routes each response to the call waiting for its opaque. Opaques without
// the high bit belong to the user (Transmit writes them unchanged) and
// their responses go to Receive. The reference's client draws its opaques
// below 2^31, so code ported from it never collides with ours.
const opaqueTag = 0x8000_0000

// Waiter states: a waiter is answered exactly once, by the reader, by the
// connection's failure, or not at all if its caller gave up first, in which
// case whoever would have answered it recycles it.
const (
	stateWaiting uint32 = iota
	stateDone
	stateAbandoned
)

// handler consumes the packets of a call answered by several (stats, bulk
// gets, quiet requests behind a fence). The reader calls handle for each
// packet routed to the call, res aliasing its buffer, i being the index of
// its opaque among the n the call owns, until handle returns true. It runs on the reader goroutine, also after the caller gave up, so
// it must write only to memory the caller reads after the call completes.
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
		if m.wrapped && m.collides(base|opaqueTag, n) {
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

// remove unregisters w; it does nothing if w is not registered.
func (m *opaqueMap) remove(w *waiter) {
	if w.n == 1 {
		if m.single[w.base] == w {
			delete(m.single, w.base)
		}
		return
	}
	for i, r := range m.ranges {
		if r == w {
			last := len(m.ranges) - 1
			m.ranges[i] = m.ranges[last]
			m.ranges[last] = nil
			m.ranges = m.ranges[:last]
			return
		}
	}
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
