//go:build linux

package memcached

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
)

// The event loops serve connections the way memcached does: each loop
// waits in epoll (level-triggered) for its sockets, reads once from a
// readable socket, runs the connection step on what arrived, and answers
// the connection's batch with one write. A socket whose writes would block
// stops being read until its output drains. Listening sockets are shared
// by all loops (EPOLLEXCLUSIVE), and a connection stays on the loop that
// accepted it.
//
// By concern: this file is the loop itself; listen_linux.go the listeners
// and accepting; loopconn_linux.go a connection's I/O; timers_linux.go
// pauses and timeouts; poll_linux.go the system calls.

// loopSet is a server's loops.
type loopSet struct {
	loops []*loop
	err   error
}

// loop is one epoll loop and the connections it serves. Its fields are
// the loop goroutine's, but those under mu.
type loop struct {
	srv    *Server
	epfd   int
	wakefd int
	events []syscall.EpollEvent
	conns  map[int32]*loopConn

	listeners map[int32]bool // listening socket fd -> TCP
	muted     map[int32]int64
	paused    map[*loopConn]struct{}
	nextScan  int64 // next check of idle and write timeouts
	// yielded are the connections that stopped after ReqsPerEvent
	// requests with more buffered: served again once the loop has seen
	// to the others' events (spare is the other slice, for reuse).
	yielded, spare []*loopConn

	mu       sync.Mutex
	commands []func()
	sends    []*loopConn // connections other goroutines queued output for
	exited   bool        // run has returned and closed epfd and wakefd

	draining bool // Shutdown: finish what was received, then close
	done     chan struct{}
}

// startLoops starts the server's loops once.
func (s *Server) startLoops() *loopSet {
	s.loopsOnce.Do(func() {
		n := s.EventLoops
		if n < 0 {
			n = runtime.GOMAXPROCS(0)
		}
		set := &loopSet{}
		for range n {
			lp, err := newLoop(s)
			if err != nil {
				set.err = fmt.Errorf("memcached: event loop: %w", err)
				break
			}
			set.loops = append(set.loops, lp)
			// Not locked to its OS thread (runtime.LockOSThread): that
			// raised plain gets and sets at depth 16 by 1.12x but cost
			// DCP feeds, whose producers are goroutines, 0.61 of the
			// writer's ops/s against 0.70 (docs/performance.md).
			go lp.run()
		}
		s.mu.Lock()
		s.loops = set
		s.mu.Unlock()
		// A Close that ran before the loops were stored did not see them.
		if s.shuttingDown() {
			s.shutdownLoops(true)
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loops
}

// shutdownLoops asks the loops to finish (now: drop every connection at
// once).
func (s *Server) shutdownLoops(now bool) {
	s.mu.Lock()
	set := s.loops
	s.mu.Unlock()
	if set == nil {
		return
	}
	for _, lp := range set.loops {
		lp.post(func() { lp.drain(now) })
	}
}

func newLoop(s *Server) (*loop, error) {
	epfd, wakefd, err := newPoller()
	if err != nil {
		return nil, err
	}
	return &loop{
		srv:       s,
		epfd:      epfd,
		wakefd:    wakefd,
		events:    make([]syscall.EpollEvent, loopEvents),
		conns:     map[int32]*loopConn{},
		listeners: map[int32]bool{},
		muted:     map[int32]int64{},
		paused:    map[*loopConn]struct{}{},
		done:      make(chan struct{}),
	}, nil
}

// post queues f to run on the loop and wakes it. Once the loop has exited,
// f is dropped: the loop's descriptors are closed and their numbers may
// belong to other files.
func (l *loop) post(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	l.commands = append(l.commands, f)
	signal(l.wakefd)
}

// postSend tells the loop that lc has queued output, from any goroutine.
func (l *loop) postSend(lc *loopConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	l.sends = append(l.sends, lc)
	if len(l.sends) == 1 && len(l.commands) == 0 {
		signal(l.wakefd)
	}
}

// call runs f on the loop and waits for it, unless the loop has ended.
func (l *loop) call(f func()) {
	ran := make(chan struct{})
	l.post(func() { f(); close(ran) })
	select {
	case <-ran:
	case <-l.done:
	}
}

func (l *loop) run() {
	defer func() {
		l.mu.Lock()
		l.exited = true
		l.mu.Unlock()
		syscall.Close(l.epfd)
		syscall.Close(l.wakefd)
		close(l.done)
	}()
	var sends []*loopConn
	for {
		n, err := syscall.EpollWait(l.epfd, l.events, l.timeout())
		if err != nil && err != syscall.EINTR {
			l.srv.logger().Error("event loop stopped", "error", err)
			l.drain(true)
			return
		}
		now := nanotime()
		for i := range max(n, 0) {
			e := l.events[i]
			switch fd := e.Fd; {
			case fd == int32(l.wakefd):
				sends = l.runCommands(sends[:0])
			case l.hasListener(fd):
				l.accept(int(fd))
			default:
				if lc := l.conns[fd]; lc != nil {
					lc.ready(e.Events, now)
				}
			}
		}
		l.timers(now)
		l.resumeYielded(now)
		if l.draining && len(l.conns) == 0 && len(l.listeners) == 0 && len(l.muted) == 0 {
			return
		}
	}
}

func (l *loop) hasListener(fd int32) bool { _, ok := l.listeners[fd]; return ok }

// yield queues lc, which stopped after ReqsPerEvent requests with more
// buffered, to be served again after the others' events.
func (l *loop) yield(lc *loopConn) {
	if !lc.yieldq {
		lc.yieldq = true
		l.yielded = append(l.yielded, lc)
	}
}

// resumeYielded serves the next part of what the yielded connections have
// buffered; those that yield again wait for the next round.
func (l *loop) resumeYielded(now int64) {
	if len(l.yielded) == 0 {
		return
	}
	ys := l.yielded
	l.yielded = l.spare[:0]
	for i, lc := range ys {
		ys[i] = nil
		lc.yieldq = false
		if l.conns[int32(lc.fd)] == lc && !lc.blocked && lc.resumeAt == 0 {
			lc.active = now
			l.process(lc)
		}
	}
	l.spare = ys[:0]
}

// runCommands runs what other goroutines posted, and sends what they
// queued for the loop's connections. sends is a buffer to reuse, which it
// returns.
func (l *loop) runCommands(sends []*loopConn) []*loopConn {
	clearSignal(l.wakefd)
	l.mu.Lock()
	cmds := l.commands
	l.commands = nil
	sends = append(sends, l.sends...)
	clear(l.sends)
	l.sends = l.sends[:0]
	l.mu.Unlock()
	for _, f := range cmds {
		f()
	}
	for i, lc := range sends {
		if l.conns[int32(lc.fd)] == lc { // not closed since
			l.process(lc)
		}
		sends[i] = nil
	}
	return sends
}

// drain makes the loop stop accepting and close its connections once the
// requests they have sent are answered; now closes them at once.
func (l *loop) drain(now bool) {
	l.draining = true
	for fd := range l.listeners {
		l.removeListener(int(fd))
	}
	for fd := range l.muted {
		delete(l.muted, fd)
	}
	for _, lc := range l.conns {
		if now {
			l.drop(lc, nil)
			continue
		}
		l.process(lc)
	}
}

// errClientGone ends a connection that hung up.
var errClientGone = errors.New("connection closed by the client")
