package memcached

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// stream serves a connection with a goroutine of its own, over a net.Conn:
// the goroutine reads (blocking), runs the connection step and writes the
// answers (blocking). Output that other goroutines queue while it waits to
// read is written by a second goroutine, started at the first Send; the
// two take turns at the socket.
type stream struct {
	c  *Conn
	nc net.Conn

	wmu  sync.Mutex // held while writing to nc
	werr error      // the queue writer's failure, for the connection
	wbuf []byte     // the queue writer's buffer
	kick chan struct{}
	once sync.Once
	// resumeAt is when a pause ends (unix nanos): the queue writer sends
	// nothing before.
	resumeAt atomic.Int64
}

var _ transport = (*stream)(nil)

// countingReader counts the bytes read from the network.
type countingReader struct {
	nc net.Conn
	c  *Conn
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.nc.Read(p)
	r.c.bytesIn.Add(uint64(n))
	return n, err
}

// newStream returns a connection to be served by a goroutine of its own.
func (s *Server) newStream(nc net.Conn) *stream {
	t := &stream{nc: nc}
	t.c = s.newConn(t, nil, nc.RemoteAddr(), nc.LocalAddr())
	t.c.src = countingReader{nc, t.c}
	return t
}

func (t *stream) netConn() net.Conn { return t.nc }
func (t *stream) serving() bool     { return true } // pauses sleep, writes block
func (t *stream) interrupt()        { t.nc.SetReadDeadline(time.Unix(1, 0)) }
func (t *stream) abort()            { t.nc.Close() }
func (t *stream) kill() {
	if tc, ok := t.nc.(*net.TCPConn); ok {
		tc.SetLinger(0) // reset: what the kernel holds unsent goes too
	}
	t.nc.Close()
}

// pause sleeps for d, or until the server closes: Shutdown does not wait
// out pauses. The queue writer waits too.
func (t *stream) pause(d time.Duration) {
	t.resumeAt.Store(time.Now().Add(d).UnixNano())
	t.sleep(d)
	t.resumeAt.Store(0)
}

// sleep waits for d, the server's closing or the connection's end.
func (t *stream) sleep(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.c.srv.closedCh():
	case <-t.c.done:
	}
}

func (t *stream) flush() error {
	c := t.c
	if len(c.out) == 0 && c.sendq.Load() == nil {
		return nil
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.werr != nil {
		c.werr = t.werr
		return t.werr
	}
	c.takeQueued()
	if len(c.out) == 0 {
		return nil
	}
	n, err := t.writeBuffers(c.out, nil)
	c.bytesOut.Add(uint64(n))
	c.sent()
	if err != nil {
		c.werr = err
	}
	return err
}

// writeLarge sends the output and then body with one writev.
func (t *stream) writeLarge(body []byte) {
	c := t.c
	t.wmu.Lock()
	defer t.wmu.Unlock()
	n, err := t.writeBuffers(c.out, body)
	c.bytesOut.Add(uint64(n))
	c.out = c.out[:0]
	if err != nil {
		c.werr = err
	}
}

// writeBuffers writes a and b (which may be nil) within the server's
// WriteTimeout; t.wmu is held.
func (t *stream) writeBuffers(a, b []byte) (int64, error) {
	if d := t.c.srv.WriteTimeout; d > 0 {
		t.nc.SetWriteDeadline(time.Now().Add(d))
	}
	t.c.srv.writes.Add(1)
	if b == nil {
		n, err := t.nc.Write(a)
		return int64(n), err
	}
	bufs := net.Buffers{a, b}
	return bufs.WriteTo(t.nc)
}

// queued wakes the queue writer, starting it the first time.
func (t *stream) queued() {
	t.once.Do(func() {
		t.kick = make(chan struct{}, 1)
		go t.writeQueued()
	})
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// writeQueued writes what other goroutines queue while the connection's
// own goroutine is not writing, until the connection ends. A failed write
// closes the socket, which ends the connection.
func (t *stream) writeQueued() {
	c := t.c
	q := c.sendq.Load()
	for {
		select {
		case <-t.kick:
		case <-c.done:
			return
		}
		if at := t.resumeAt.Load(); at != 0 {
			t.sleep(time.Until(time.Unix(0, at)))
		}
		t.wmu.Lock()
		t.wbuf = q.take(t.wbuf[:0])
		if len(t.wbuf) > 0 && t.werr == nil {
			n, err := t.writeBuffers(t.wbuf, nil)
			c.bytesOut.Add(uint64(n))
			if err != nil {
				t.werr = err
				t.nc.Close()
			}
		}
		if cap(t.wbuf) > maxRetainedOut {
			t.wbuf = nil
		}
		t.wmu.Unlock()
	}
}

// serve runs the connection until it ends.
func (t *stream) serve() {
	c := t.c
	defer func() {
		t.nc.Close()
		c.srv.forget(c)
	}()
	if tc, ok := t.nc.(*tls.Conn); ok {
		if err := t.handshake(tc); err != nil {
			c.log.Info("connection closed: TLS handshake failed", "reason", err)
			return
		}
	}
	reason := t.loop()
	c.flush()
	c.logClose(reason)
}

// loop reads and serves requests; it returns why it stopped (nil for a
// normal end).
func (t *stream) loop() error {
	c, srv := t.c, t.c.srv
	for {
		if err := c.step(); err != nil || c.closing {
			return err
		}
		if c.yielded {
			// ReqsPerEvent: the answers are sent; let the other
			// goroutines run, then serve the rest of what is
			// buffered.
			runtime.Gosched()
			continue
		}
		if srv.shuttingDown() {
			return nil
		}
		if d := srv.IdleTimeout; d > 0 {
			t.nc.SetReadDeadline(time.Now().Add(d))
			if srv.shuttingDown() { // Shutdown's interrupt came first
				return nil
			}
		}
		if _, err := c.fill(); err != nil {
			// Serve what arrived before the error, then end.
			for {
				if serr := c.step(); serr != nil {
					return serr
				}
				if !c.yielded || c.closing {
					break
				}
				runtime.Gosched()
			}
			switch {
			case srv.shuttingDown():
				return nil
			case err == io.EOF && c.buffered() > 0:
				return errMidPacket
			case err == io.EOF:
				return nil
			case errors.Is(err, os.ErrDeadlineExceeded):
				srv.idleKicks.Add(1)
				return errIdleTimeout
			}
			return err
		}
	}
}

// handshake runs the TLS handshake within the server's HandshakeTimeout.
func (t *stream) handshake(tc *tls.Conn) error {
	srv := t.c.srv
	timeout := srv.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tc.SetDeadline(time.Now().Add(timeout))
	if srv.shuttingDown() {
		return ErrServerClosed
	}
	if err := tc.Handshake(); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	return nil
}
