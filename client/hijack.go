package memcached

import (
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// hijackGrace bounds how long Hijack waits for the calls in flight to be
// answered, and for the reader to give up the socket.
const hijackGrace = time.Second

// hijackInterrupt is the read deadline with which Hijack interrupts the
// holder of the read role.
var hijackInterrupt = time.Unix(1, 0)

// errHijackStuck ends a connection whose reader did not give the socket
// up to Hijack in time.
var errHijackStuck = errors.New("memcached: hijack: the reader did not stop")

// Hijack takes the connection away from the client and returns it; the
// client becomes unhealthy, and its calls fail with a ConnError caused by
// ErrHijacked. Close then releases the client but leaves the connection
// open: it is the caller's.
//
// Hijack first lets the requests already queued be written, and waits up
// to a second for the calls in flight to be answered (calls still waiting
// then fail, and their responses will reach the caller's reads). It then
// stops the client's reader. Responses the reader had already read for
// Receive but that were not received, then the bytes it had read beyond
// them (a packet it was in the middle of, say), come first out of the
// returned connection's Read, followed by the socket's data; when there
// are none the transport itself is returned, so type assertions such as
// .(net.Conn) keep working.
//
// The responses queued for Receive are encoded again from their decoded
// form, magic included, which gives the bytes that were read; the rest are
// the bytes read. (Responses that belonged to no call, read before
// Transmit or Receive was first used, were dropped: see Receive.) If the
// reader does not give the socket up within a second, Hijack closes the
// connection rather than hand over a socket that is still being read.
func (c *Client) Hijack() MemcachedConnection { return c.c.hijack() }

func (c *conn) hijack() MemcachedConnection {
	c.mu.Lock()
	if c.err != nil || c.hijacking {
		c.mu.Unlock()
		return c.rw
	}
	c.hijacking = true
	c.hijacked.Store(true)
	c.mu.Unlock()

	// Let the queued writes and the calls in flight finish.
	writing := false
	for deadline := time.Now().Add(hijackGrace); ; {
		c.mu.Lock()
		writing = c.writing || len(c.wbuf) > 0
		idle := !writing && c.ops.len() == 0
		dead := c.err != nil
		c.mu.Unlock()
		if idle || dead || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}

	// Take the read role: its holder gives it up at a packet boundary, or
	// when its read is interrupted by the deadline in the past that
	// setReadDeadline imposes from now on (re-applied here until then, in
	// case the holder was setting its own at the same moment). Meanwhile
	// collect the responses queued for Receive (the holder may be waiting
	// for room in the queue). The holder never blocks otherwise, so this
	// is quick; if it is not, the connection is closed rather than handed
	// over while someone else may still read it.
	c.stopReading.Store(true)
	var prefix []byte
	for limit := time.Now().Add(hijackGrace); ; {
		c.rw.SetReadDeadline(hijackInterrupt)
		c.mu.Lock()
		free, dead := c.readRole == roleNone, c.err != nil
		if free {
			c.readRole = roleHijack
		}
		c.mu.Unlock()
		if dead {
			// Ended meanwhile (the socket is closed): nothing to hand over.
			c.rw.SetReadDeadline(time.Time{})
			return c.rw
		}
		if free {
			break
		}
		if !time.Now().Before(limit) {
			c.fail(errHijackStuck)
			return c.rw
		}
		select {
		case p := <-c.raw:
			c.tookRaw(p)
			prefix = p.appendTo(prefix)
		case <-time.After(time.Millisecond):
		}
	}
	for drained := false; !drained; {
		select {
		case p := <-c.raw:
			c.tookRaw(p)
			prefix = p.appendTo(prefix)
		default:
			drained = true
		}
	}
	// Hand over what the reader holds: whole packets that belong to a call
	// still waiting are routed to it, the others are passed on as they
	// came, and so is the start of a packet not yet complete, so that no
	// byte read from the socket is lost.
	for c.rd.Ready() {
		pkt := c.rd.BufferedBytes()
		pkt = pkt[:gomemcached.HDR_LEN+int(binary.BigEndian.Uint32(pkt[8:12]))]
		start := len(prefix)
		prefix = append(prefix, pkt...)
		if err := c.rd.ReadResponse(c.rres); err != nil {
			prefix = prefix[:start] // malformed: passed on below, as it is
			break
		}
		if c.dispatchOwn(c.rres) {
			prefix = prefix[:start]
		}
	}
	prefix = append(prefix, c.rd.BufferedBytes()...)
	c.rw.SetReadDeadline(time.Time{})
	c.curRDL = time.Time{}

	// Fail what is left and stop the writer, cutting a write that is
	// still stuck after the grace period.
	c.fail(ErrHijacked)
	if c.wdl != nil {
		if writing {
			c.wdl.SetWriteDeadline(time.Unix(1, 0))
			for deadline := time.Now().Add(hijackGrace); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				c.mu.Lock()
				busy := c.writing
				c.mu.Unlock()
				if !busy {
					break
				}
			}
		}
		// Hand the socket over without the deadline of the client's last
		// write (a call's, or WriteTimeout's).
		c.wdl.SetWriteDeadline(time.Time{})
	}
	<-c.writerDone
	<-c.readerDone

	if len(prefix) == 0 {
		return c.rw
	}
	if nc, ok := c.rw.(net.Conn); ok {
		return &prefixNetConn{Conn: nc, prefix: prefix}
	}
	return &prefixConn{MemcachedConnection: c.rw, prefix: prefix}
}

// prefixConn is a hijacked transport whose Read yields prefix first.
type prefixConn struct {
	MemcachedConnection
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.MemcachedConnection.Read(b)
}

// prefixNetConn is prefixConn for a net.Conn, which it remains.
type prefixNetConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixNetConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
