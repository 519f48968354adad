//go:build linux

package memcached

import (
	"errors"
	"math"
	"time"
)

// The loops' timers: paused connections, muted listeners, and idle and
// write timeouts. There is no timer per connection: each loop computes how
// long epoll may wait from the nearest deadline, and checks them all when
// it wakes.

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
	for lc := range l.paused {
		consider(lc.resumeAt)
	}
	for _, at := range l.muted {
		consider(at)
	}
	if l.srv.IdleTimeout > 0 || l.srv.WriteTimeout > 0 {
		if len(l.conns) > 0 {
			consider(l.nextScan)
		}
	}
	if len(l.yielded) > 0 {
		return 0 // yielded connections have requests buffered
	}
	if next == 0 {
		return -1
	}
	ms := (next - nanotime() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return int(min(max(ms, 0), math.MaxInt32)) // the kernel reads an int32
}

// timers does what is due at now: resumes paused connections, watches
// muted listeners again, closes connections idle or blocked too long.
func (l *loop) timers(now int64) {
	for lc := range l.paused {
		if now >= lc.resumeAt {
			delete(l.paused, lc)
			lc.resumeAt = 0
			lc.active = now // idle time counts from the end of the pause
			l.process(lc)
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
		for _, lc := range l.conns {
			switch {
			case lc.resumeAt != 0:
			case lc.blocked:
				if write > 0 && now-lc.blockedAt >= write {
					l.drop(lc, errors.New("write timeout"))
				}
			case idle > 0 && now-lc.active >= idle:
				l.srv.idleKicks.Add(1)
				l.drop(lc, errIdleTimeout)
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

// pause stops reading and writing the connection for d more.
func (lc *loopConn) pause(d time.Duration) {
	lc.resumeAt = max(lc.resumeAt, nanotime()) + int64(d)
}

// pausedNow reports whether the connection is paused. A draining loop ends
// pauses first: Shutdown does not wait them out, but still answers what
// the client sent.
func (lc *loopConn) pausedNow() bool {
	if lc.resumeAt != 0 && lc.l.draining {
		delete(lc.l.paused, lc)
		lc.resumeAt = 0
	}
	return lc.resumeAt != 0
}
