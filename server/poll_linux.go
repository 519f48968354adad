//go:build linux

package memcached

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// The system calls the event loops make, and what they need to know of
// sockets.

const (
	epollExclusive = 1 << 28 // EPOLLEXCLUSIVE, not in package syscall
	efdNonblock    = 0x800   // EFD_NONBLOCK
	efdCloexec     = 0x80000 // EFD_CLOEXEC
	loopEvents     = 256
	// keepAlive is the TCP keepalive of accepted connections, as Go's
	// listeners set it: probes after 15s idle, every 15s, 9 of them.
	keepAliveSecs   = 15
	keepAliveProbes = 9
)

// errAgain is a non-blocking read that found nothing.
var errAgain = errors.New("memcached: read would block")

// newPoller returns an epoll descriptor and an eventfd it watches, by which
// other goroutines wake the loop.
func newPoller() (epfd, wakefd int, err error) {
	epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return -1, -1, err
	}
	r, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, efdNonblock|efdCloexec, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return -1, -1, errno
	}
	wakefd = int(r)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wakefd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(wakefd)
		return -1, -1, err
	}
	return epfd, wakefd, nil
}

// signal wakes the loop that watches wakefd.
func signal(wakefd int) {
	var one = [8]byte{1}
	syscall.Write(wakefd, one[:])
}

// clearSignal takes the wake-ups signalled so far.
func clearSignal(wakefd int) {
	var buf [8]byte
	syscall.Read(wakefd, buf[:])
}

// readFD reads a non-blocking socket: errAgain when it has nothing, io.EOF
// at its end.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, p)
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
		return n, nil
	}
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

// nanotime is the loops' clock, in unix nanoseconds.
func nanotime() int64 { return time.Now().UnixNano() }
