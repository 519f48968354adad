//go:build linux

package memcached

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// loopConn is an event loop's side of a connection it serves: the socket,
// what the loop waits for on it, and its output in progress. It is the
// connection's transport; all of it is the loop goroutine's.
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
	// yieldq: the connection is in its loop's yielded list; it reads
	// nothing more until what it has buffered is served.
	yieldq bool
	reason error // why the connection is closing, for the log
}

var _ transport = (*loopConn)(nil)

// fdReader reads the socket for the connection's decoder.
type fdReader struct{ lc *loopConn }

func (r fdReader) Read(p []byte) (int, error) {
	n, err := readFD(r.lc.fd, p)
	r.lc.c.bytesIn.Add(uint64(n))
	return n, err
}

// newConn returns the connection of an accepted socket, to be registered.
func (l *loop) newConn(fd int, raddr, laddr net.Addr) *loopConn {
	lc := &loopConn{l: l, fd: fd, active: nanotime(), interest: syscall.EPOLLIN | syscall.EPOLLRDHUP}
	lc.c = l.srv.newConn(lc, fdReader{lc}, raddr, laddr)
	return lc
}

func (lc *loopConn) netConn() net.Conn { return nil }
func (lc *loopConn) serving() bool     { return !lc.pausedNow() && !lc.blocked }
func (lc *loopConn) interrupt()        {} // the loop drains its connections itself
func (lc *loopConn) abort()            {} // and drops them all at once
func (lc *loopConn) queued()           { lc.l.postSend(lc) }
func (lc *loopConn) kill() {
	lc.l.post(func() {
		if lc.l.conns[int32(lc.fd)] == lc {
			// A reset: what the kernel holds unsent goes too.
			syscall.SetsockoptLinger(lc.fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1})
		}
		lc.l.drop(lc, nil)
	})
}

// ready handles the events epoll reported for the connection.
func (lc *loopConn) ready(events uint32, now int64) {
	l := lc.l
	if events&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0 &&
		(lc.resumeAt != 0 || lc.blocked && events&syscall.EPOLLOUT == 0) {
		// Hang-ups are reported whatever the loop waits for; a connection
		// that is not being read and cannot be written to is gone.
		l.drop(lc, errClientGone)
		return
	}
	if events&syscall.EPOLLOUT != 0 {
		lc.writable()
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 &&
		l.conns[int32(lc.fd)] == lc {
		lc.readable(now)
	}
}

// readable reads once and serves what arrived.
func (lc *loopConn) readable(now int64) {
	if lc.resumeAt != 0 || lc.blocked || lc.yieldq {
		return // not reading now
	}
	n, err := lc.c.fill()
	if n > 0 {
		lc.active = now
	}
	switch {
	case err == nil, err == errAgain:
	case err == io.EOF:
		lc.eof = true
	default:
		lc.l.drop(lc, err)
		return
	}
	lc.l.process(lc)
}

// writable continues a blocked write, then serving.
func (lc *loopConn) writable() {
	if lc.send() != nil {
		lc.l.drop(lc, lc.c.werr)
		return
	}
	lc.l.process(lc)
}

// process runs the connection step and sets what the loop waits for next
// on the connection, or closes it.
func (l *loop) process(lc *loopConn) {
	c := lc.c
	if err := c.step(); err != nil {
		if c.werr != nil {
			l.drop(lc, c.werr)
			return
		}
		lc.reason = err // closing: sent what was answered, now close
	}
	switch {
	case lc.pausedNow():
		l.paused[lc] = struct{}{}
		lc.watch(0)
	case lc.blocked:
		lc.watch(syscall.EPOLLOUT)
	case c.closing || l.draining && !(c.dec != nil && c.dec.ready()):
		l.drop(lc, lc.reason)
	case c.yielded:
		l.yield(lc)
	case lc.eof:
		var err error
		if c.buffered() > 0 {
			err = errMidPacket
		}
		l.drop(lc, err)
	default:
		lc.watch(syscall.EPOLLIN | syscall.EPOLLRDHUP)
	}
}

// drop closes the connection.
func (l *loop) drop(lc *loopConn, reason error) {
	if l.conns[int32(lc.fd)] != lc {
		return
	}
	delete(l.conns, int32(lc.fd))
	delete(l.paused, lc)
	syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, lc.fd, nil)
	syscall.Close(lc.fd)
	lc.c.logClose(reason)
	l.srv.forget(lc.c)
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

// flush sends the output and what was queued for the connection, unless
// it is paused or waiting for the socket to drain.
func (lc *loopConn) flush() error {
	if lc.resumeAt != 0 || lc.blocked {
		return nil
	}
	lc.c.takeQueued()
	return lc.send()
}

// block notes that the socket did not take all of the output.
func (lc *loopConn) block() {
	if !lc.blocked {
		lc.blocked = true
		lc.blockedAt = nanotime()
	}
}

// send writes what it can of the output without blocking; what is left
// is written when the socket becomes writable.
func (lc *loopConn) send() error {
	c := lc.c
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
		lc.active = nanotime()
	}
	lc.wpos = 0
	c.sent()
	return nil
}

// writeLarge sends the output and then body with one writev, without
// copying body unless the socket takes only part of it: the rest is then
// kept in the output, to go when the socket is writable. A paused or
// blocked connection keeps all of it.
func (lc *loopConn) writeLarge(body []byte) {
	c := lc.c
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
