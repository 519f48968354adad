//go:build linux

package memcached

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// The event loops serve connections the way memcached does: each loop
// waits in epoll (level-triggered) for its sockets, reads once from a
// readable socket, handles every complete request read, and answers the
// connection's batch with one write. A socket whose writes would block
// stops being read until its output drains. Listening sockets are shared
// by all loops (EPOLLEXCLUSIVE), and a connection stays on the loop that
// accepted it.

const (
	epollExclusive = 1 << 28 // EPOLLEXCLUSIVE, not in package syscall
	efdNonblock    = 0x800   // EFD_NONBLOCK
	efdCloexec     = 0x80000 // EFD_CLOEXEC
	loopEvents     = 256
	acceptBackoff  = 100 * time.Millisecond
)

// errAgain is a non-blocking read that found nothing.
var errAgain = errors.New("memcached: read would block")

// loopSet is a server's loops.
type loopSet struct {
	loops []*loop
	err   error
}

// loop is one epoll loop and the connections it serves.
type loop struct {
	srv    *Server
	epfd   int
	wakefd int
	events []syscall.EpollEvent
	conns  map[int32]*Conn

	listeners map[int32]bool // listening socket fd -> TCP
	muted     map[int32]int64
	paused    map[*Conn]struct{}
	nextIdle  int64

	mu       sync.Mutex
	commands []func()

	draining bool // Shutdown: finish what was received, then close
	done     chan struct{}
}

// loopConn is the loop's state of one connection.
type loopConn struct {
	l        *loop
	c        *Conn
	fd       int
	wpos     int    // bytes of c.out already written
	interest uint32 // events registered
	resumeAt int64  // paused until (unix nanos); 0 if not paused
	active   int64  // last read (unix nanos)
	eof      bool
}

// fdReader reads a non-blocking socket for the connection's Reader.
type fdReader struct{ lc *loopConn }

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(r.lc.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errAgain
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		r.lc.c.bytesIn.Add(uint64(n))
		return n, nil
	}
}

// serveEventLoop serves l with the event loops when they are configured
// and l is a TCP or unix listener; it reports whether it did.
func (s *Server) serveEventLoop(l net.Listener) (bool, error) {
	if s.EventLoops == 0 {
		return false, nil
	}
	var isTCP bool
	var sc syscall.Conn
	switch l := l.(type) {
	case *net.TCPListener:
		isTCP, sc = true, l
	case *net.UnixListener:
		sc = l
	default:
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	var lfd int
	if err := rc.Control(func(fd uintptr) { lfd = int(fd) }); err != nil {
		return false, nil
	}
	set := s.startLoops()
	if set.err != nil {
		l.Close()
		return true, set.err
	}
	if s.shuttingDown() {
		l.Close()
		return true, ErrServerClosed
	}
	for _, lp := range set.loops {
		lp.call(func() { lp.addListener(lfd, isTCP) })
	}
	<-s.closedCh()
	// The loops let go of the socket before it is closed, so that they
	// never touch a number the system has given to another file.
	for _, lp := range set.loops {
		lp.call(func() { lp.removeListener(lfd) })
	}
	l.Close()
	return true, ErrServerClosed
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
			go lp.run()
		}
		s.mu.Lock()
		s.loops = set
		s.mu.Unlock()
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
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	r, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, efdNonblock|efdCloexec, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, errno
	}
	wakefd := int(r)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wakefd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(wakefd)
		return nil, err
	}
	return &loop{
		srv:       s,
		epfd:      epfd,
		wakefd:    wakefd,
		events:    make([]syscall.EpollEvent, loopEvents),
		conns:     map[int32]*Conn{},
		listeners: map[int32]bool{},
		muted:     map[int32]int64{},
		paused:    map[*Conn]struct{}{},
		done:      make(chan struct{}),
	}, nil
}

// post queues f to run on the loop and wakes it.
func (l *loop) post(f func()) {
	l.mu.Lock()
	l.commands = append(l.commands, f)
	l.mu.Unlock()
	var one = [8]byte{1}
	syscall.Write(l.wakefd, one[:])
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
		syscall.Close(l.epfd)
		syscall.Close(l.wakefd)
		close(l.done)
	}()
	for {
		n, err := syscall.EpollWait(l.epfd, l.events, l.timeout())
		if err != nil && err != syscall.EINTR {
			l.srv.logger().Error("event loop stopped", "error", err)
			l.drain(true)
			return
		}
		now := time.Now().UnixNano()
		for i := range max(n, 0) {
			e := l.events[i]
			switch fd := e.Fd; {
			case fd == int32(l.wakefd):
				l.runCommands()
			case l.hasListener(fd):
				l.accept(int(fd))
			default:
				c := l.conns[fd]
				if c == nil {
					continue
				}
				lc := c.ev.(*loopConn)
				if lc.resumeAt != 0 && e.Events&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
					// Hang-ups are reported whatever the loop waits for.
					l.drop(c, lc, errors.New("connection closed while paused"))
					continue
				}
				if e.Events&syscall.EPOLLOUT != 0 {
					l.writable(c, lc)
				}
				if e.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 &&
					l.conns[fd] == c {
					l.readable(c, lc, now)
				}
			}
		}
		l.timers(now)
		if l.draining && len(l.conns) == 0 && len(l.listeners) == 0 && len(l.muted) == 0 {
			return
		}
	}
}

func (l *loop) hasListener(fd int32) bool { _, ok := l.listeners[fd]; return ok }

func (l *loop) runCommands() {
	var buf [8]byte
	syscall.Read(l.wakefd, buf[:])
	l.mu.Lock()
	cmds := l.commands
	l.commands = nil
	l.mu.Unlock()
	for _, f := range cmds {
		f()
	}
}

// timeout returns how long to wait for events, in milliseconds: until the
// next paused connection resumes, idle connections are checked or a muted
// listener comes back; -1 for no limit.
func (l *loop) timeout() int {
	next := int64(0)
	consider := func(at int64) {
		if at != 0 && (next == 0 || at < next) {
			next = at
		}
	}
	for c := range l.paused {
		consider(c.ev.(*loopConn).resumeAt)
	}
	for _, at := range l.muted {
		consider(at)
	}
	if l.srv.IdleTimeout > 0 && len(l.conns) > 0 {
		consider(l.nextIdle)
	}
	if next == 0 {
		return -1
	}
	ms := (next - time.Now().UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return int(max(ms, 0))
}

func (l *loop) timers(now int64) {
	for c := range l.paused {
		lc := c.ev.(*loopConn)
		if now >= lc.resumeAt {
			delete(l.paused, c)
			lc.resumeAt = 0
			l.process(c, lc)
		}
	}
	for fd, at := range l.muted {
		if now >= at {
			delete(l.muted, fd)
			isTCP := l.listeners[fd]
			delete(l.listeners, fd)
			if !l.draining {
				l.addListener(int(fd), isTCP)
			}
		}
	}
	if idle := int64(l.srv.IdleTimeout); idle > 0 && now >= l.nextIdle {
		for _, c := range l.conns {
			lc := c.ev.(*loopConn)
			if now-lc.active >= idle && lc.resumeAt == 0 {
				l.drop(c, lc, errors.New("idle timeout"))
			}
		}
		l.nextIdle = now + min(idle/2, int64(time.Second))
	}
}

func (l *loop) addListener(fd int, isTCP bool) {
	if l.draining {
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollExclusive, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.srv.logger().Error("event loop: cannot watch listener", "error", err)
		return
	}
	l.listeners[int32(fd)] = isTCP
}

func (l *loop) removeListener(fd int) {
	if _, ok := l.listeners[int32(fd)]; ok {
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	}
	delete(l.listeners, int32(fd))
	delete(l.muted, int32(fd))
}

// accept takes the connections waiting on a listening socket.
func (l *loop) accept(lfd int) {
	s := l.srv
	isTCP := l.listeners[int32(lfd)]
	for {
		nfd, sa, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch {
		case err == syscall.EAGAIN:
			return
		case err == syscall.EINTR || err == syscall.ECONNABORTED:
			continue
		case err != nil:
			// Out of file descriptors, say: stop watching the listener
			// for a while rather than spin on it.
			s.logger().Warn("accept failed; pausing", "error", err, "for", acceptBackoff)
			syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, lfd, nil)
			l.muted[int32(lfd)] = time.Now().Add(acceptBackoff).UnixNano()
			return
		}
		s.total.Add(1)
		raddr := sockaddrAddr(sa, isTCP)
		if s.MaxConns > 0 && s.current.Load() >= int64(s.MaxConns) {
			s.rejected.Add(1)
			s.logger().Warn("connection limit reached; closing new connection",
				"remote", raddr.String(), "max_conns", s.MaxConns)
			syscall.Close(nfd)
			continue
		}
		if isTCP {
			syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		}
		var laddr net.Addr
		if local, err := syscall.Getsockname(nfd); err == nil {
			laddr = sockaddrAddr(local, isTCP)
		}
		lc := &loopConn{l: l, fd: nfd, active: time.Now().UnixNano(), interest: syscall.EPOLLIN | syscall.EPOLLRDHUP}
		c := s.register(&Conn{srv: s, ev: lc, raddr: raddr, laddr: laddr}, fdReader{lc})
		if c == nil {
			syscall.Close(nfd)
			return
		}
		lc.c = c
		ev := syscall.EpollEvent{Events: lc.interest, Fd: int32(nfd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, nfd, &ev); err != nil {
			l.conns[int32(nfd)] = c
			l.drop(c, lc, err)
			continue
		}
		l.conns[int32(nfd)] = c
	}
}

// sockaddrAddr converts an accepted peer's address.
func sockaddrAddr(sa syscall.Sockaddr, isTCP bool) net.Addr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	if isTCP {
		return &net.TCPAddr{}
	}
	return &net.UnixAddr{Net: "unix"}
}

// readable reads once and handles what arrived.
func (l *loop) readable(c *Conn, lc *loopConn, now int64) {
	if lc.resumeAt != 0 || lc.wpos > 0 {
		return // not reading now
	}
	n, err := c.rd.Fill()
	if n > 0 {
		lc.active = now
	}
	switch {
	case err == nil, err == errAgain:
	case err == io.EOF:
		lc.eof = true
	default:
		l.drop(c, lc, err)
		return
	}
	l.process(c, lc)
}

// writable continues a blocked write, then handling.
func (l *loop) writable(c *Conn, lc *loopConn) {
	if lc.flush(c) != nil {
		l.drop(c, lc, c.werr)
		return
	}
	l.process(c, lc)
}

// process handles the requests buffered for c, writes the answers and
// sets what the loop waits for next on c.
func (l *loop) process(c *Conn, lc *loopConn) {
	for lc.resumeAt == 0 && lc.wpos == 0 && !c.closing && c.rd.Ready() {
		if err := c.rd.ReadRequest(&c.req); err != nil {
			l.drop(c, lc, err)
			return
		}
		if err := c.checkMagic(); err != nil {
			l.drop(c, lc, err)
			return
		}
		if err := c.handle(); err != nil {
			l.drop(c, lc, err)
			return
		}
		if len(c.out) >= flushThreshold && lc.resumeAt == 0 {
			lc.flush(c)
		}
		if c.werr != nil {
			l.drop(c, lc, c.werr)
			return
		}
	}
	if lc.resumeAt != 0 {
		l.paused[c] = struct{}{}
		lc.watch(0)
		return
	}
	if lc.flush(c) != nil {
		l.drop(c, lc, c.werr)
		return
	}
	switch {
	case lc.wpos > 0:
		lc.watch(syscall.EPOLLOUT)
	case c.closing || l.draining && !c.rd.Ready():
		l.drop(c, lc, nil)
	case lc.eof:
		var err error
		if c.rd.Buffered() > 0 {
			err = errors.New("connection closed in mid-packet")
		}
		l.drop(c, lc, err)
	default:
		lc.watch(syscall.EPOLLIN | syscall.EPOLLRDHUP)
	}
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
	for _, c := range l.conns {
		lc := c.ev.(*loopConn)
		if now || lc.resumeAt != 0 {
			l.drop(c, lc, nil)
			continue
		}
		l.process(c, lc)
	}
}

// drop closes c.
func (l *loop) drop(c *Conn, lc *loopConn, reason error) {
	if l.conns[int32(lc.fd)] != c {
		return
	}
	delete(l.conns, int32(lc.fd))
	delete(l.paused, c)
	syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, lc.fd, nil)
	syscall.Close(lc.fd)
	c.logClose(reason)
	l.srv.forget(c)
}

// watch sets the events the loop waits for on the connection.
func (lc *loopConn) watch(events uint32) {
	if lc.interest == events {
		return
	}
	lc.interest = events
	ev := syscall.EpollEvent{Events: events, Fd: int32(lc.fd)}
	syscall.EpollCtl(lc.l.epfd, syscall.EPOLL_CTL_MOD, lc.fd, &ev)
}

// flush writes what it can of c's output without blocking; what is left
// is written when the socket becomes writable.
func (lc *loopConn) flush(c *Conn) error {
	for lc.wpos < len(c.out) {
		c.srv.writes.Add(1)
		n, err := syscall.Write(lc.fd, c.out[lc.wpos:])
		if n > 0 {
			lc.wpos += n
			c.bytesOut.Add(uint64(n))
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return nil
		case err != nil:
			c.werr = err
			return err
		}
	}
	lc.wpos = 0
	c.out = c.out[:0]
	if cap(c.out) > maxRetainedOut {
		c.out = nil
	}
	return nil
}

// writeLarge sends c's output and then body with one writev, without
// copying body unless the socket takes only part of it: the rest is then
// kept in c's output, to go when the socket is writable. A paused or
// blocked connection keeps all of it.
func (lc *loopConn) writeLarge(c *Conn, body []byte) {
	if lc.wpos > 0 || lc.resumeAt != 0 || c.werr != nil {
		c.out = append(c.out, body...)
		return
	}
	var iov [2]syscall.Iovec
	iov[0].Base, iov[0].Len = unsafe.SliceData(c.out), uint64(len(c.out))
	iov[1].Base, iov[1].Len = unsafe.SliceData(body), uint64(len(body))
	var n int
	for {
		c.srv.writes.Add(1)
		r, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(lc.fd), uintptr(unsafe.Pointer(&iov[0])), 2)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 && errno != syscall.EAGAIN {
			c.werr = errno
			return
		}
		if errno == 0 {
			n = int(r)
			c.bytesOut.Add(uint64(n))
		}
		break
	}
	if n < len(c.out) {
		lc.wpos = n
		c.out = append(c.out, body...)
		return
	}
	c.out = append(c.out[:0], body[n-len(c.out):]...)
}

// pause stops reading and writing c until d has passed.
func (lc *loopConn) pause(d time.Duration) {
	lc.resumeAt = time.Now().Add(d).UnixNano()
}
