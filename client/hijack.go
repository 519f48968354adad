package memcached

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// hijackGrace bounds how long Hijack waits for the calls in flight to be
// answered and for the reader to finish a packet it is in the middle of.
const hijackGrace = time.Second

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
// the bytes read.
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
	// when its read is interrupted. Meanwhile collect the responses queued
	// for Receive (the holder may be waiting for room in the queue).
	c.stopReading.Store(true)
	c.rw.SetReadDeadline(time.Unix(1, 0))
	var prefix []byte
	for {
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
		select {
		case p := <-c.raw:
			prefix = p.appendTo(prefix)
		case <-time.After(time.Millisecond):
		}
	}
	for drained := false; !drained; {
		select {
		case p := <-c.raw:
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
		if c.rres.Opaque&opaqueTag != 0 {
			prefix = prefix[:start]
			c.dispatch(c.rres)
		}
	}
	prefix = append(prefix, c.rd.BufferedBytes()...)
	c.rw.SetReadDeadline(time.Time{})
	c.curRDL = time.Time{}

	// Fail what is left and stop the writer, cutting a write that is
	// still stuck after the grace period.
	c.fail(ErrHijacked)
	if writing && c.wdl != nil {
		c.wdl.SetWriteDeadline(time.Unix(1, 0))
		for deadline := time.Now().Add(hijackGrace); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			c.mu.Lock()
			busy := c.writing
			c.mu.Unlock()
			if !busy {
				break
			}
		}
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
