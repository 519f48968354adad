//go:build linux

package memcached

import (
	"errors"
	"fmt"
	"io"
	"math"
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
	ownerCheck     = 100 * time.Millisecond // how often Serve checks that its listener is open
	// keepAlive is the TCP keepalive of accepted connections, as Go's
	// listeners set it: probes after 15s idle, every 15s, 9 of them.
	keepAliveSecs   = 15
	keepAliveProbes = 9
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
	nextScan  int64 // next check of idle and write timeouts

	mu       sync.Mutex
	commands []func()
	exited   bool // run has returned and closed epfd and wakefd

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
	active   int64  // last read, or end of the last blocked write (unix nanos)
	eof      bool
	// blocked: the socket took less than all of c.out; nothing more is
	// read or handled until it has, and the loop waits for EPOLLOUT.
	blocked   bool
	blockedAt int64 // when blocked became true (unix nanos)
	reason    error // why the connection is closing, for the log
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
	if s.shuttingDown() {
		l.Close()
		return true, ErrServerClosed
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	// The loops watch a duplicate of the socket, which is theirs to close:
	// its number cannot be reused while they hold it, even if l's owner
	// closes l.
	lfd := -1
	cerr := rc.Control(func(fd uintptr) {
		lfd, err = dupCloexec(int(fd))
	})
	if cerr != nil || err != nil {
		return false, nil
	}
	// Close and Shutdown wait until the socket is closed, so that its
	// address is free again when they return.
	s.mu.Lock()
	if s.shuttingDown() {
		s.mu.Unlock()
		syscall.Close(lfd)
		l.Close()
		return true, ErrServerClosed
	}
	s.loopServes.Add(1)
	s.mu.Unlock()
	defer s.loopServes.Done()
	set := s.startLoops()
	if set.err != nil {
		syscall.Close(lfd)
		l.Close()
		return true, set.err
	}
	for _, lp := range set.loops {
		lp.call(func() { lp.addListener(lfd, isTCP) })
	}
	// Serve ends when the server closes, or when l's owner closes l,
	// which nothing reports: l is checked now and then.
	result := ErrServerClosed
	tick := time.NewTicker(ownerCheck)
	defer tick.Stop()
wait:
	for {
		select {
		case <-s.closedCh():
			break wait
		case <-tick.C:
			if err := rc.Control(func(uintptr) {}); err != nil {
				if !s.shuttingDown() {
					result = err
				}
				break wait
			}
		}
	}
	// The loops let go of the socket before it is closed, so that they
	// never touch a number the system has given to another file.
	for _, lp := range set.loops {
		lp.call(func() { lp.removeListener(lfd) })
	}
	syscall.Close(lfd)
	l.Close()
	return true, result
}

// dupCloexec duplicates fd, close-on-exec.
func dupCloexec(fd int) (int, error) {
	for {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		default:
			return -1, errno
		}
	}
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
// Once the loop has exited, f is dropped: the loop's descriptors are
// closed and their numbers may belong to other files.
func (l *loop) post(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	l.commands = append(l.commands, f)
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
		l.mu.Lock()
		l.exited = true
		l.mu.Unlock()
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
				if e.Events&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0 &&
					(lc.resumeAt != 0 || lc.blocked && e.Events&syscall.EPOLLOUT == 0) {
					// Hang-ups are reported whatever the loop waits
					// for; a connection that is not being read and
					// cannot be written to is gone.
					l.drop(c, lc, errors.New("connection closed by the client"))
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
	if l.srv.IdleTimeout > 0 || l.srv.WriteTimeout > 0 {
		if len(l.conns) > 0 {
			consider(l.nextScan)
		}
	}
	if next == 0 {
		return -1
	}
	ms := (next - time.Now().UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return int(min(max(ms, 0), math.MaxInt32)) // the kernel reads an int32
}

func (l *loop) timers(now int64) {
	for c := range l.paused {
		lc := c.ev.(*loopConn)
		if now >= lc.resumeAt {
			delete(l.paused, c)
			lc.resumeAt = 0
			lc.active = now // idle time counts from the end of the pause
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
	idle, write := int64(l.srv.IdleTimeout), int64(l.srv.WriteTimeout)
	if (idle > 0 || write > 0) && now >= l.nextScan {
		for _, c := range l.conns {
			lc := c.ev.(*loopConn)
			switch {
			case lc.resumeAt != 0:
			case lc.blocked:
				if write > 0 && now-lc.blockedAt >= write {
					l.drop(c, lc, errors.New("write timeout"))
				}
			case idle > 0 && now-lc.active >= idle:
				l.drop(c, lc, errors.New("idle timeout"))
			}
		}
		period := int64(time.Second)
		for _, t := range [2]int64{idle, write} {
			if t > 0 {
				period = min(period, t/2)
			}
		}
		l.nextScan = now + period
	}
}

func (l *loop) addListener(fd int, isTCP bool) {
	if l.draining {
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollExclusive, Fd: int32(fd)}
	err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
	if err == syscall.EINVAL {
		// Before Linux 4.5: no EPOLLEXCLUSIVE, every loop wakes.
		ev.Events = syscall.EPOLLIN
		err = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
	}
	if err != nil {
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
		raddr := sockaddrAddr(sa, isTCP)
		var laddr net.Addr
		if local, err := syscall.Getsockname(nfd); err == nil {
			laddr = sockaddrAddr(local, isTCP)
		}
		lc := &loopConn{l: l, fd: nfd, active: time.Now().UnixNano(), interest: syscall.EPOLLIN | syscall.EPOLLRDHUP}
		c, err := s.register(&Conn{srv: s, ev: lc, raddr: raddr, laddr: laddr}, fdReader{lc})
		if err != nil {
			syscall.Close(nfd)
			if err == ErrServerClosed {
				return
			}
			continue // over MaxConns, or ConnContext panicked
		}
		if isTCP {
			setTCPOptions(nfd)
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

// setTCPOptions sets what Go's TCP listeners set on an accepted
// connection: no Nagle delay, and keepalive probes, so that a client that
// vanished does not hold its connection for ever.
func setTCPOptions(fd int) {
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, keepAliveSecs)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, keepAliveSecs)
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveProbes)
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
	if lc.resumeAt != 0 || lc.blocked {
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
	if lc.send(c) != nil {
		l.drop(c, lc, c.werr)
		return
	}
	l.process(c, lc)
}

// process handles the requests buffered for c, writes the answers and
// sets what the loop waits for next on c.
func (l *loop) process(c *Conn, lc *loopConn) {
	for !l.pausedNow(c, lc) && !lc.blocked && !c.closing && c.rd.Ready() {
		err := c.rd.ReadRequest(&c.req)
		if err == nil {
			err = c.checkMagic()
		}
		if err == nil {
			err = c.handle()
		}
		if err != nil {
			// The stream can no longer be trusted: send the answers
			// to the requests before, then close.
			c.closing, lc.reason = true, err
			break
		}
		if len(c.out) >= flushThreshold && lc.resumeAt == 0 {
			lc.send(c)
		}
		if c.werr != nil {
			l.drop(c, lc, c.werr)
			return
		}
	}
	if l.pausedNow(c, lc) {
		l.paused[c] = struct{}{}
		lc.watch(0)
		return
	}
	if lc.send(c) != nil {
		l.drop(c, lc, c.werr)
		return
	}
	switch {
	case lc.blocked:
		lc.watch(syscall.EPOLLOUT)
	case c.closing || l.draining && !c.rd.Ready():
		l.drop(c, lc, lc.reason)
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

// pausedNow reports whether c is paused. A draining loop ends pauses
// first: Shutdown does not wait them out, but still answers what c sent.
func (l *loop) pausedNow(c *Conn, lc *loopConn) bool {
	if lc.resumeAt != 0 && l.draining {
		delete(l.paused, c)
		lc.resumeAt = 0
	}
	return lc.resumeAt != 0
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
		if now {
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

// flushConn is Conn.Flush on a loop.
func (lc *loopConn) flushConn(c *Conn) error {
	if lc.resumeAt != 0 || lc.blocked {
		return nil
	}
	return lc.send(c)
}

// block notes that the socket did not take all of c's output.
func (lc *loopConn) block() {
	if !lc.blocked {
		lc.blocked = true
		lc.blockedAt = time.Now().UnixNano()
	}
}

// send writes what it can of c's output without blocking; what is left
// is written when the socket becomes writable.
func (lc *loopConn) send(c *Conn) error {
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
			lc.block()
			return nil
		case err != nil:
			c.werr = err
			return err
		}
	}
	if lc.blocked {
		// Idle time counts from when the connection could read again.
		lc.blocked = false
		lc.active = time.Now().UnixNano()
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
	if lc.blocked || lc.resumeAt != 0 || c.werr != nil {
		c.out = append(c.out, body...)
		return
	}
	var iov [2]syscall.Iovec
	iov[0].Base, iov[0].Len = unsafe.SliceData(c.out[lc.wpos:]), uint64(len(c.out)-lc.wpos)
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
	head := len(c.out) - lc.wpos
	if n < head+len(body) {
		lc.block()
	}
	if n < head {
		lc.wpos += n
		c.out = append(c.out, body...)
		return
	}
	lc.wpos = 0
	c.out = append(c.out[:0], body[n-head:]...)
}

// pause stops reading and writing c for d more.
func (lc *loopConn) pause(d time.Duration) {
	lc.resumeAt = max(lc.resumeAt, time.Now().UnixNano()) + int64(d)
}
