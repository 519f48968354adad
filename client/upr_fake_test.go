package memcached

// Tests of the feed against a scripted producer on net.Pipe, for what
// gocache cannot be made to do: answer noops while the receiver does not
// read (gocache's server refuses a consumer's NOOP reply, see
// skipNoResponses), and give back the bytes of messages the feed does not
// deliver.

import (
	"encoding/binary"
	"math"
	"net"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// fakeProducer is the server end of a pipe: it answers DCP_OPEN and
// DCP_CONTROL with success and hands every other packet to the test.
type fakeProducer struct {
	t    *testing.T
	conn net.Conn
	got  chan gomemcached.MCRequest
}

func newFakeProducer(t *testing.T) (*Client, *fakeProducer) {
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	p := &fakeProducer{t: t, conn: srv, got: make(chan gomemcached.MCRequest, 64)}
	go p.serve()
	return NewClient(cli, ClientOptions{}), p
}

func (p *fakeProducer) serve() {
	rd := gomemcached.NewReader(p.conn)
	for {
		var req gomemcached.MCRequest
		if err := rd.ReadRequest(&req); err != nil {
			close(p.got)
			return
		}
		req.Extras, req.Key, req.Body = cloneBytes(req.Extras), cloneBytes(req.Key), cloneBytes(req.Body)
		switch {
		case rd.Magic() == gomemcached.REQ_MAGIC && (req.Opcode == gomemcached.UPR_OPEN || req.Opcode == gomemcached.UPR_CONTROL):
			p.write(dcpPacket(gomemcached.RES_MAGIC, req.Opcode, 0, 0, req.Opaque, 0, nil, nil, nil, nil))
		default:
			req.Cas = uint64(rd.Magic()) // the magic, for the test
			p.got <- req
		}
	}
}

func (p *fakeProducer) write(b []byte) {
	p.conn.SetWriteDeadline(time.Now().Add(dcpWait))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Errorf("producer write: %v", err)
	}
}

// expect returns the next packet the feed sent, failing after dcpWait.
func (p *fakeProducer) expect(op gomemcached.CommandCode, magic byte) gomemcached.MCRequest {
	p.t.Helper()
	select {
	case req, ok := <-p.got:
		if !ok {
			p.t.Fatal("connection closed")
		}
		if req.Opcode != op || byte(req.Cas) != magic {
			p.t.Fatalf("got %s (magic %#x), want %s (%#x)", req.Opcode, byte(req.Cas), op, magic)
		}
		return req
	case <-time.After(dcpWait):
		p.t.Fatalf("no %s", op)
	}
	return gomemcached.MCRequest{}
}

// startFakeStream opens a feed with bufSize, starts it with a channel of
// one event, and opens a stream of dcpVB.
func startFakeStream(t *testing.T, bufSize uint32) (*UprFeed, *fakeProducer, uint32) {
	c, p := newFakeProducer(t)
	feed, _ := c.NewUprFeed()
	t.Cleanup(feed.Close)
	if err := feed.UprOpen("fake", 0, bufSize); err != nil {
		t.Fatal(err)
	}
	if err := feed.StartFeedWithConfig(1); err != nil {
		t.Fatal(err)
	}
	if err := feed.UprRequestStream(dcpVB, 9, 0, 0x77, 0, math.MaxUint64, 0, 0); err != nil {
		t.Fatal(err)
	}
	req := p.expect(gomemcached.UPR_STREAMREQ, gomemcached.REQ_MAGIC)
	// Success: the failover log, one entry of vbuuid 0x77 and seqno 0.
	p.write(dcpPacket(gomemcached.RES_MAGIC, gomemcached.UPR_STREAMREQ, 0, 0, req.Opaque, 0, nil, nil, nil,
		join(u64b(0x77), u64b(0))))
	return feed, p, req.Opaque
}

func fakeMutation(opaque uint32, seqno uint64) []byte {
	return dcpPacket(gomemcached.REQ_MAGIC, gomemcached.UPR_MUTATION, 0, dcpVB, opaque, 1, nil,
		join(u64b(seqno), u64b(1), u32b(0), u32b(0), u32b(0), u16b(0), []byte{0}), // seqnos, flags, exp, lock, nmeta, nru
		[]byte("key"), make([]byte, 100))
}

// TestUprFeedNoopUnderBackpressure: a NOOP is answered at once, with its
// opaque, while the receiver reads nothing and events wait.
func TestUprFeedNoopUnderBackpressure(t *testing.T) {
	feed, p, opaque := startFakeStream(t, 0)
	for i := range 20 {
		p.write(fakeMutation(opaque, uint64(i+1)))
	}
	p.write(dcpPacket(gomemcached.REQ_MAGIC, gomemcached.UPR_NOOP, 0, 0, 0x5151, 0, nil, nil, nil, nil))
	res := p.expect(gomemcached.UPR_NOOP, gomemcached.RES_MAGIC)
	if res.Opaque != 0x5151 || res.VBucket != 0 {
		t.Fatalf("noop reply opaque %#x status %#x", res.Opaque, res.VBucket)
	}
	if ev := nextEvent(t, feed); ev.Opcode != gomemcached.UPR_STREAMREQ || ev.Status != 0 {
		t.Fatalf("first event %s", ev)
	}
	for i := range 20 {
		if ev := nextEvent(t, feed); ev.Seqno != uint64(i+1) {
			t.Fatalf("event %d: %s seqno %d", i, ev, ev.Seqno)
		}
	}
}

// TestUprFeedAcksUndelivered: the bytes of a message the feed does not
// deliver (DCP_SET_VBUCKET_STATE) are acknowledged; a stray mutation for
// a vbucket without a stream ends the feed with an error.
func TestUprFeedAcksUndelivered(t *testing.T) {
	feed, p, opaque := startFakeStream(t, 100) // acks past 20 bytes
	nextEvent(t, feed)                         // the stream request's answer
	state := dcpPacket(gomemcached.REQ_MAGIC, gomemcached.DCP_SET_VBUCKET_STATE, 0, dcpVB, opaque, 0, nil,
		[]byte{1}, nil, nil) // extras: the state, active
	p.write(state)
	ack := p.expect(gomemcached.UPR_BUFFERACK, gomemcached.REQ_MAGIC)
	if n := binary.BigEndian.Uint32(ack.Extras); n != uint32(len(state)) {
		t.Fatalf("acked %d bytes, want %d", n, len(state))
	}
	p.write(dcpPacket(gomemcached.REQ_MAGIC, gomemcached.UPR_MUTATION, 0, dcpVB+1, dcpVB+1, 1, nil,
		join(u64b(1), u64b(1), u32b(0), u32b(0), u32b(0), u16b(0), []byte{0}), []byte("k"), nil))
	ev := nextEvent(t, feed)
	if !ev.IsStreamEnd() || ev.Flags != streamEndDisconnected {
		t.Fatalf("got %s %+v", ev, ev)
	}
	for range feed.C {
	}
	if feed.GetError() == nil {
		t.Error("no error")
	}
}
