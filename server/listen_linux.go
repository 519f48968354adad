//go:build linux

package memcached

import (
	"net"
	"syscall"
	"time"
)

// The listeners the event loops share: Serve hands a listener's socket to
// every loop, and each accepts from it when it is readable.

const (
	acceptBackoff = 100 * time.Millisecond
	ownerCheck    = 100 * time.Millisecond // how often Serve checks that its listener is open
)

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
			l.muted[int32(lfd)] = nanotime() + int64(acceptBackoff)
			return
		}
		raddr := sockaddrAddr(sa, isTCP)
		var laddr net.Addr
		if local, err := syscall.Getsockname(nfd); err == nil {
			laddr = sockaddrAddr(local, isTCP)
		}
		lc := l.newConn(nfd, raddr, laddr)
		if err := s.register(lc.c); err != nil {
			if err == errConnLimit && len(s.ConnLimitMessage) > 0 {
				syscall.Write(nfd, s.ConnLimitMessage) // a new socket takes it
			}
			syscall.Close(nfd)
			if err == ErrServerClosed {
				return
			}
			continue // over MaxConns, or ConnContext panicked
		}
		if isTCP {
			setTCPOptions(nfd)
		}
		l.conns[int32(nfd)] = lc
		ev := syscall.EpollEvent{Events: lc.interest, Fd: int32(nfd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, nfd, &ev); err != nil {
			l.drop(lc, err)
		}
	}
}
