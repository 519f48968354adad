package gocache_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	ref "github.com/couchbase/gomemcached/client"
	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// tapPeer is a raw TAP consumer connection for the tests.
type tapPeer struct {
	t *testing.T
	c net.Conn
	r *gm.Reader
}

func dialTap(t *testing.T, addr string) *tapPeer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &tapPeer{t: t, c: c, r: gm.NewReader(c)}
}

// connect sends TAP_CONNECT with 4 bytes of flags and body.
func (p *tapPeer) connect(name string, flags gm.TapConnectFlag, body []byte) {
	p.t.Helper()
	p.send(gm.MCRequest{Opcode: gm.TAP_CONNECT, Key: []byte(name),
		Extras: binary.BigEndian.AppendUint32(nil, uint32(flags)), Body: body})
}

func (p *tapPeer) send(req gm.MCRequest) {
	p.t.Helper()
	if _, err := req.Transmit(p.c); err != nil {
		p.t.Fatal(err)
	}
}

// next reads the next packet within timeout: ok is false if none came,
// err is set if the connection ended.
func (p *tapPeer) next(timeout time.Duration) (pkt gm.MCRequest, magic byte, ok bool, err error) {
	p.c.SetReadDeadline(time.Now().Add(timeout))
	if err := p.r.ReadRequest(&pkt); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return pkt, 0, false, nil
		}
		return pkt, 0, false, err
	}
	pkt.Extras, pkt.Key, pkt.Body = bytes.Clone(pkt.Extras), bytes.Clone(pkt.Key), bytes.Clone(pkt.Body)
	return pkt, p.r.Magic(), true, nil
}

// must returns the next message of the producer, failing after 5 seconds.
func (p *tapPeer) must() gm.MCRequest {
	p.t.Helper()
	pkt, magic, ok, err := p.next(5 * time.Second)
	if err != nil || !ok {
		p.t.Fatalf("no message within 5s: %v", err)
	}
	if magic != gm.REQ_MAGIC {
		p.t.Fatalf("magic 0x%x, opcode %s, status %d: %q", magic, pkt.Opcode, pkt.VBucket, pkt.Body)
	}
	return pkt
}

// mustSkip is must, skipping the mutations of key.
func (p *tapPeer) mustSkip(key string) gm.MCRequest {
	p.t.Helper()
	for {
		if pkt := p.must(); pkt.Opcode != gm.TAP_MUTATION || string(pkt.Key) != key {
			return pkt
		}
	}
}

// quiet checks that nothing comes for d.
func (p *tapPeer) quiet(d time.Duration) {
	p.t.Helper()
	if pkt, _, ok, err := p.next(d); ok || err != nil {
		p.t.Fatalf("got %s (opaque %d) / %v, want nothing", pkt.Opcode, pkt.Opaque, err)
	}
}

// closed checks that the producer closes the connection within 5 seconds.
func (p *tapPeer) closed() {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pkt, _, ok, err := p.next(time.Until(deadline))
		if err != nil {
			return
		}
		if !ok {
			break
		}
		p.t.Logf("before the close: %s", pkt.Opcode)
	}
	p.t.Fatal("connection not closed within 5s")
}

func (p *tapPeer) ack(pkt gm.MCRequest, status gm.Status) {
	p.t.Helper()
	res := gm.MCResponse{Opcode: pkt.Opcode, Opaque: pkt.Opaque, Status: status}
	if _, err := res.Transmit(p.c); err != nil {
		p.t.Fatal(err)
	}
}

func tapFlags(pkt gm.MCRequest) uint16 { return binary.BigEndian.Uint16(pkt.Extras[2:]) }

// expectControl checks that pkt is op with the 4-byte value (TAP_OPAQUE's
// code, TAP_VBUCKET_SET's state) for vbucket vb, asking for an ack if ack.
func expectControl(t *testing.T, pkt gm.MCRequest, op gm.CommandCode, vb uint16, value uint32, ack bool) {
	t.Helper()
	if pkt.Opcode != op || pkt.VBucket != vb || len(pkt.Extras) != 12 || binary.BigEndian.Uint16(pkt.Extras) != 4 ||
		binary.BigEndian.Uint32(pkt.Extras[8:]) != value || pkt.Extras[4] != 0xff {
		t.Fatalf("got %s vb %d extras %x, want %s vb %d value %d", pkt.Opcode, pkt.VBucket, pkt.Extras, op, vb, value)
	}
	if got := tapFlags(pkt)&gm.TAP_ACK != 0; got != ack {
		t.Fatalf("%s: ack requested %v, want %v", op, got, ack)
	}
}

// expectMutation checks a TAP_MUTATION of key with value and flags.
func expectMutation(t *testing.T, pkt gm.MCRequest, vb uint16, key, value string, flags uint32) {
	t.Helper()
	if pkt.Opcode != gm.TAP_MUTATION || pkt.VBucket != vb || string(pkt.Key) != key || string(pkt.Body) != value ||
		len(pkt.Extras) != 16 || binary.BigEndian.Uint32(pkt.Extras[8:]) != flags {
		t.Fatalf("got %s vb %d %q=%q extras %x, want a mutation vb %d %q=%q flags %d",
			pkt.Opcode, pkt.VBucket, pkt.Key, pkt.Body, pkt.Extras, vb, key, value, flags)
	}
}

func startTap(t *testing.T, vbuckets, loops int) (*gocache.Server, string) {
	t.Helper()
	cfg := gocache.Config{EventLoops: loops}
	cfg.Cache.VBuckets = vbuckets
	return gocachetest.Start(t, cfg)
}

func refClient(t *testing.T, addr string) *ref.Client {
	t.Helper()
	c, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refTapNext returns the feed's next event; ok is false once it ended.
func refTapNext(t *testing.T, feed *ref.TapFeed) (ref.TapEvent, bool) {
	t.Helper()
	select {
	case e, ok := <-feed.C:
		return e, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no tap event within 5s")
	}
	return ref.TapEvent{}, false
}

type tapDoc struct {
	vb    uint16
	value []byte
	flags uint32
	cas   uint64
}

// writeDocs stores n documents over vbuckets vbs, values of every byte.
func writeDocs(t *testing.T, c *ref.Client, n int, vbs int) map[string]tapDoc {
	t.Helper()
	want := map[string]tapDoc{}
	for i := range n {
		k := fmt.Sprintf("doc-%d", i)
		v := make([]byte, i*37)
		for j := range v {
			v[j] = byte(i + j)
		}
		flags := uint32(i) * 0x01020304
		if i == n-1 {
			flags = 0xffffffff
		}
		vb := uint16(i % vbs)
		res, err := c.Set(vb, k, int(flags), 0, v)
		if err != nil {
			t.Fatal(err)
		}
		want[k] = tapDoc{vb, v, flags, res.Cas}
	}
	return want
}

// TestTapReferenceDump: the reference client dumps what was stored, each
// key once with its value, flags and CAS byte for byte, each vbucket's
// backfill marked, no deleted key, then the feed ends without error.
func TestTapReferenceDump(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			_, addr := startTap(t, 4, loops)
			w := refClient(t, addr)
			want := writeDocs(t, w, 12, 4)
			if _, err := w.Set(3, "gone", 0, 0, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Del(3, "gone"); err != nil {
				t.Fatal(err)
			}
			mc := refClient(t, addr)
			feed, err := mc.StartTapFeed(ref.TapArguments{Dump: true})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			begun := map[uint16]bool{}
			ended := map[uint16]bool{}
			for range 100 {
				e, ok := refTapNext(t, feed)
				if !ok {
					break
				}
				switch e.Opcode {
				case ref.TapBeginBackfill:
					begun[e.VBucket] = true
				case ref.TapEndBackfill:
					if !begun[e.VBucket] {
						t.Fatalf("end of backfill of vb %d before its beginning", e.VBucket)
					}
					ended[e.VBucket] = true
				case ref.TapMutation:
					d, ok := want[string(e.Key)]
					if !ok || got[string(e.Key)] {
						t.Fatalf("unexpected or repeated %s", e)
					}
					got[string(e.Key)] = true
					if !begun[e.VBucket] || ended[e.VBucket] || e.VBucket != d.vb || !bytes.Equal(e.Value, d.value) ||
						e.Flags != d.flags || e.Cas != d.cas {
						t.Fatalf("%s: vb %d flags %x cas %d, want vb %d flags %x cas %d, value equal %v",
							e.Key, e.VBucket, e.Flags, e.Cas, d.vb, d.flags, d.cas, bytes.Equal(e.Value, d.value))
					}
				default:
					t.Fatalf("unexpected %s", e)
				}
			}
			if len(got) != len(want) || len(begun) != 4 || len(ended) != 4 {
				t.Fatalf("dumped %d of %d keys, %d backfills begun, %d ended", len(got), len(want), len(begun), len(ended))
			}
			if feed.Error != nil {
				t.Fatalf("feed error: %v", feed.Error)
			}
		})
	}
}

// refTapSync writes a key on vbucket vb until the feed shows it: the
// producer follows changes from then on.
func refTapSync(t *testing.T, w *ref.Client, feed *ref.TapFeed, vb uint16) {
	t.Helper()
	for range 50 {
		if _, err := w.Set(vb, "sync", 0, 0, []byte("s")); err != nil {
			t.Fatal(err)
		}
		select {
		case e, ok := <-feed.C:
			if !ok {
				t.Fatalf("feed ended: %v", feed.Error)
			}
			if e.Opcode == ref.TapMutation && string(e.Key) == "sync" {
				return
			}
			t.Fatalf("before sync: %s", e)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("the feed never followed changes")
}

// TestTapReferenceLive: with the default arguments (backfill date "only
// new") the reference client gets none of what was stored before, then
// the live sets and deletes, in order, with their CAS.
func TestTapReferenceLive(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			_, addr := startTap(t, 4, loops)
			w := refClient(t, addr)
			writeDocs(t, w, 5, 4)
			mc := refClient(t, addr)
			feed, err := mc.StartTapFeed(ref.DefaultTapArguments())
			if err != nil {
				t.Fatal(err)
			}
			refTapSync(t, w, feed, 1)
			a, err := w.Set(2, "a", 1, 0, []byte("alpha"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := w.Set(2, "b", 7, 0, []byte("beta")) // in order within a vbucket
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Del(2, "a"); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				op    ref.TapOpcode
				vb    uint16
				key   string
				value string
				flags uint32
				cas   uint64
			}{{ref.TapMutation, 2, "a", "alpha", 1, a.Cas}, {ref.TapMutation, 2, "b", "beta", 7, b.Cas}, {ref.TapDeletion, 2, "a", "", 0, 0}}
			for _, s := range steps {
				e, ok := refTapNext(t, feed)
				if !ok {
					t.Fatalf("feed ended: %v", feed.Error)
				}
				if e.Opcode != s.op || e.VBucket != s.vb || string(e.Key) != s.key || string(e.Value) != s.value ||
					e.Flags != s.flags || s.cas != 0 && e.Cas != s.cas {
					t.Fatalf("got %s vb %d cas %d, want %s %s vb %d cas %d", e, e.VBucket, e.Cas, s.op, s.key, s.vb, s.cas)
				}
			}
			// The reference's feed sees Close only at its next event:
			// closing the client ends it.
			feed.Close()
			mc.Close()
			for range 10 {
				if _, ok := refTapNext(t, feed); !ok {
					return
				}
			}
			t.Fatal("feed not ended by Close")
		})
	}
}

// TestTapReferenceVBucketFilter: a dump of vbucket 2 only has vbucket 2's
// keys.
func TestTapReferenceVBucketFilter(t *testing.T) {
	_, addr := startTap(t, 4, 0)
	w := refClient(t, addr)
	want := writeDocs(t, w, 16, 4)
	mc := refClient(t, addr)
	feed, err := mc.StartTapFeed(ref.TapArguments{Dump: true, VBuckets: []uint16{2}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range 100 {
		e, ok := refTapNext(t, feed)
		if !ok {
			break
		}
		if e.VBucket != 2 {
			t.Fatalf("event of vbucket %d: %s", e.VBucket, e)
		}
		if e.Opcode == ref.TapMutation {
			if d := want[string(e.Key)]; d.vb != 2 || !bytes.Equal(d.value, e.Value) {
				t.Fatalf("%s: want vb %d", e, d.vb)
			}
			n++
		}
	}
	if n != 4 || feed.Error != nil {
		t.Fatalf("%d keys of vbucket 2, want 4; error %v", n, feed.Error)
	}
}

// TestTapReferenceAckCheckpoint: the reference client acknowledges what
// the producer asks it to, through a dump with checkpoints and acks.
func TestTapReferenceAckCheckpoint(t *testing.T) {
	_, addr := startTap(t, 2, 0)
	w := refClient(t, addr)
	want := writeDocs(t, w, 6, 2)
	mc := refClient(t, addr)
	feed, err := mc.StartTapFeed(ref.TapArguments{Dump: true, SupportAck: true, Checkpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	var ops []ref.TapOpcode
	keys := 0
	for range 100 {
		e, ok := refTapNext(t, feed)
		if !ok {
			break
		}
		ops = append(ops, e.Opcode)
		if e.Opcode == ref.TapMutation {
			if d := want[string(e.Key)]; !bytes.Equal(d.value, e.Value) || d.flags != e.Flags {
				t.Fatalf("%s differs", e)
			}
			keys++
		}
	}
	// Per vbucket: begin, checkpoint start, its 3 keys, checkpoint end, end.
	wantOps := []ref.TapOpcode{ref.TapBeginBackfill, ref.TapCheckpointStart, ref.TapMutation, ref.TapMutation, ref.TapMutation,
		ref.TapCheckpointEnd, ref.TapEndBackfill}
	wantOps = append(wantOps, wantOps...)
	if fmt.Sprint(ops) != fmt.Sprint(wantOps) || keys != 6 || feed.Error != nil {
		t.Fatalf("events %v, want %v; error %v", ops, wantOps, feed.Error)
	}
}

// TestTapAckWindow: with SUPPORT_ACK, a control message holds back
// everything until it is acknowledged; data flows until the window (here
// 4 × 2 messages) is unacknowledged, the message that fills it asking for
// an ack; an ack opens it again.
func TestTapAckWindow(t *testing.T) {
	srv, addr := startTap(t, 1, 0)
	gocache.SetTapLimits(srv, 4, 2, time.Minute, 10*time.Millisecond)
	w := refClient(t, addr)
	p := dialTap(t, addr)
	p.connect("acks", gm.SUPPORT_ACK|gm.BACKFILL, binary.BigEndian.AppendUint64(nil, ^uint64(0)))
	nack := p.must()
	expectControl(t, nack, gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_ENABLE_AUTO_NACK, true)
	if nack.Opaque != 1 {
		t.Fatalf("first message numbered %d", nack.Opaque)
	}
	if _, err := w.Set(0, "k0", 0, 0, []byte("v0")); err != nil {
		t.Fatal(err)
	}
	p.quiet(200 * time.Millisecond) // waits for the control message's ack
	p.ack(nack, gm.SUCCESS)
	m := p.must()
	expectMutation(t, m, 0, "k0", "v0", 0)
	if m.Opaque != 2 || tapFlags(m)&gm.TAP_ACK == 0 {
		t.Fatalf("k0: opaque %d flags %x: want 2, an ack asked (last before idle)", m.Opaque, tapFlags(m))
	}
	for i := 1; i <= 20; i++ {
		if _, err := w.Set(0, fmt.Sprintf("k%d", i), 0, 0, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// k0 is unacknowledged: 7 more fill the window of 8.
	var last gm.MCRequest
	got := 0
	for {
		pkt, _, ok, err := p.next(300 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		last = pkt
		got++
		if got > 7 {
			t.Fatalf("%d messages unacknowledged, window is 8", got+1)
		}
	}
	if got != 7 || tapFlags(last)&gm.TAP_ACK == 0 {
		t.Fatalf("%d messages before the window filled, last flags %x", got, tapFlags(last))
	}
	seen := 1 + got
	for seen < 21 {
		p.ack(last, gm.SUCCESS)
		for {
			pkt, _, ok, err := p.next(300 * time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			last = pkt
			seen++
		}
		if tapFlags(last)&gm.TAP_ACK == 0 {
			t.Fatalf("stalled at %d messages without asking for an ack", seen)
		}
	}
	if seen != 21 || string(last.Key) != "k20" {
		t.Fatalf("%d mutations, last %q", seen, last.Key)
	}
}

// TestTapTmpfail: a message refused with TMPFAIL is sent again, with the
// ones after it, in order; another refusal closes the connection.
func TestTapTmpfail(t *testing.T) {
	srv, addr := startTap(t, 1, 0)
	gocache.SetTapLimits(srv, 100, 10, time.Minute, 10*time.Millisecond)
	w := refClient(t, addr)
	for _, k := range []string{"a", "b"} {
		if _, err := w.Set(0, k, 0, 0, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	p := dialTap(t, addr)
	p.connect("tmpfail", gm.SUPPORT_ACK|gm.DUMP, nil)
	for _, code := range []uint32{gm.TAP_OPAQUE_ENABLE_AUTO_NACK, gm.TAP_OPAQUE_INITIAL_VBUCKET_STREAM} {
		pkt := p.must()
		expectControl(t, pkt, gm.TAP_OPAQUE, 0, code, true)
		p.ack(pkt, gm.SUCCESS)
	}
	a, b := p.must(), p.must()
	expectMutation(t, a, 0, "a", "a", 0)
	expectMutation(t, b, 0, "b", "b", 0)
	p.quiet(100 * time.Millisecond) // CLOSE_BACKFILL waits for the backfill's acks
	p.ack(a, gm.TMPFAIL)
	a2, b2 := p.must(), p.must()
	expectMutation(t, a2, 0, "a", "a", 0)
	expectMutation(t, b2, 0, "b", "b", 0)
	if a2.Opaque <= b.Opaque || b2.Opaque != a2.Opaque+1 || tapFlags(b2)&gm.TAP_ACK == 0 {
		t.Fatalf("sent again as %d, %d (flags %x) after %d", a2.Opaque, b2.Opaque, tapFlags(b2), b.Opaque)
	}
	p.ack(b2, gm.SUCCESS)
	end := p.must()
	expectControl(t, end, gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_CLOSE_BACKFILL, true)
	p.ack(end, gm.KEY_ENOENT)
	p.closed()
}

// TestTapSlowConsumerCut: a consumer that acknowledges nothing is cut
// after the grace period; other connections go on.
func TestTapSlowConsumerCut(t *testing.T) {
	srv, addr := startTap(t, 1, 0)
	gocache.SetTapLimits(srv, 4, 1, 200*time.Millisecond, 10*time.Millisecond)
	w := refClient(t, addr)
	p := dialTap(t, addr)
	p.connect("slow", gm.SUPPORT_ACK, nil)
	start := time.Now()
	p.closed()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("cut after %v, before the grace period", d)
	}
	if _, err := w.Set(0, "still", 0, 0, []byte("here")); err != nil {
		t.Fatal(err)
	}
	if res, err := w.Get(0, "still"); err != nil || string(res.Body) != "here" {
		t.Fatalf("other connection: %v %v", res, err)
	}
}

// TestTapFlush: a flush while the feed is open sends TAP_FLUSH, then what
// is stored after it.
func TestTapFlush(t *testing.T) {
	_, addr := startTap(t, 2, 0)
	w := refClient(t, addr)
	p := dialTap(t, addr)
	p.connect("flush", gm.BACKFILL, binary.BigEndian.AppendUint64(nil, ^uint64(0)))
	synced := false
	for i := 0; i < 50 && !synced; i++ {
		if _, err := w.Set(1, "sync", 0, 0, []byte("s")); err != nil {
			t.Fatal(err)
		}
		pkt, _, ok, err := p.next(100 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		synced = ok && pkt.Opcode == gm.TAP_MUTATION
	}
	if !synced {
		t.Fatal("the feed never followed changes")
	}
	if err := w.Transmit(&refmc.MCRequest{Opcode: refmc.FLUSH}); err != nil {
		t.Fatal(err)
	}
	if res, err := w.Receive(); err != nil || res.Opcode != refmc.FLUSH {
		t.Fatalf("flush: %v %v", res, err)
	}
	if _, err := w.Set(0, "after", 3, 0, []byte("flush")); err != nil {
		t.Fatal(err)
	}
	for {
		pkt := p.must()
		if pkt.Opcode == gm.TAP_MUTATION && string(pkt.Key) == "sync" {
			continue // sent again before the flush
		}
		if pkt.Opcode != gm.TAP_FLUSH || len(pkt.Extras) != 8 {
			t.Fatalf("got %s, want TAP_FLUSH", pkt.Opcode)
		}
		break
	}
	expectMutation(t, p.must(), 0, "after", "flush", 3)
}

// TestTapTakeover: a takeover of vbucket 1 sets it pending at the
// consumer, sends its backfill, then sets it dead here and active there,
// and ends; the vbucket then refuses operations.
func TestTapTakeover(t *testing.T) {
	_, addr := startTap(t, 4, 0)
	w := refClient(t, addr)
	want := writeDocs(t, w, 8, 4)
	p := dialTap(t, addr)
	p.connect("takeover", gm.LIST_VBUCKETS|gm.TAKEOVER_VBUCKETS|gm.SUPPORT_ACK, []byte{0, 1, 0, 1})
	step := func(op gm.CommandCode, vb uint16, value uint32) {
		t.Helper()
		pkt := p.must()
		expectControl(t, pkt, op, vb, value, true)
		p.ack(pkt, gm.SUCCESS)
	}
	step(gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_ENABLE_AUTO_NACK)
	step(gm.TAP_VBUCKET_SET, 1, 3) // pending
	step(gm.TAP_OPAQUE, 1, gm.TAP_OPAQUE_INITIAL_VBUCKET_STREAM)
	var last gm.MCRequest
	for range 2 {
		m := p.must()
		d := want[string(m.Key)]
		expectMutation(t, m, 1, string(m.Key), string(d.value), d.flags)
		last = m
	}
	p.ack(last, gm.SUCCESS)
	step(gm.TAP_OPAQUE, 1, gm.TAP_OPAQUE_CLOSE_BACKFILL)
	step(gm.TAP_VBUCKET_SET, 1, 1) // active
	end := p.must()
	expectControl(t, end, gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_CLOSE_TAP_STREAM, false)
	if _, err := w.Get(1, "doc-1"); !isStatus(err, refmc.NOT_MY_VBUCKET) {
		t.Fatalf("get from the vbucket taken over: %v", err)
	}
	if _, err := w.Get(2, "doc-2"); err != nil {
		t.Fatalf("another vbucket: %v", err)
	}
}

func isStatus(err error, st refmc.Status) bool {
	var res *refmc.MCResponse
	return errors.As(err, &res) && res.Status == st
}

// TestTapRegisteredClient: a registered consumer that acknowledges, and
// reconnects, resumes after what it acknowledged in each vbucket, without
// a backfill.
func TestTapRegisteredClient(t *testing.T) {
	_, addr := startTap(t, 2, 0)
	w := refClient(t, addr)
	future := binary.BigEndian.AppendUint64(nil, ^uint64(0))
	flags := gm.REGISTERED_CLIENT | gm.BACKFILL | gm.SUPPORT_ACK
	// next returns p's next message but the control ones, acknowledging
	// those that ask.
	next := func(p *tapPeer, timeout time.Duration) (gm.MCRequest, bool) {
		t.Helper()
		for {
			pkt, _, ok, err := p.next(timeout)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return pkt, false
			}
			if tapFlags(pkt)&gm.TAP_ACK != 0 {
				p.ack(pkt, gm.SUCCESS)
			}
			if pkt.Opcode != gm.TAP_OPAQUE {
				return pkt, true
			}
		}
	}
	p := dialTap(t, addr)
	p.connect("reg", flags, future)
	synced := false
	for i := 0; i < 50 && !synced; i++ {
		if _, err := w.Set(1, "sync", 0, 0, []byte("s")); err != nil {
			t.Fatal(err)
		}
		_, synced = next(p, 100*time.Millisecond)
	}
	if !synced {
		t.Fatal("the feed never followed changes")
	}
	if _, err := w.Set(0, "x1", 0, 0, []byte("one")); err != nil {
		t.Fatal(err)
	}
	for {
		m, ok := next(p, 5*time.Second)
		if !ok {
			t.Fatal("x1 not sent")
		}
		if string(m.Key) == "x1" {
			expectMutation(t, m, 0, "x1", "one", 0)
			break
		}
	}
	p.quiet(100 * time.Millisecond) // the ack is in
	p.c.Close()
	if _, err := w.Set(0, "x2", 0, 0, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Del(1, "sync"); err != nil {
		t.Fatal(err)
	}
	q := dialTap(t, addr)
	q.connect("reg", flags, future)
	got := map[string]gm.CommandCode{}
	for range 2 {
		m, ok := next(q, 5*time.Second)
		if !ok {
			t.Fatalf("resumed with %v only", got)
		}
		got[string(m.Key)] = m.Opcode
	}
	if got["x2"] != gm.TAP_MUTATION || got["sync"] != gm.TAP_DELETE {
		t.Fatalf("resumed with %v, want x2's mutation and sync's deletion", got)
	}
	if m, ok := next(q, 200*time.Millisecond); ok {
		t.Fatalf("then %s %q", m.Opcode, m.Key)
	}
}

// TestTapCheckpointKeysOnly: checkpoint ids continue from the consumer's,
// around the backfill, and keys-only mutations carry no value.
func TestTapCheckpointKeysOnly(t *testing.T) {
	_, addr := startTap(t, 1, 0)
	w := refClient(t, addr)
	if _, err := w.Set(0, "k", 9, 0, []byte("value")); err != nil {
		t.Fatal(err)
	}
	p := dialTap(t, addr)
	body := []byte{0, 1, 0, 0} // one checkpoint: vbucket 0 ...
	body = binary.BigEndian.AppendUint64(body, 41)
	p.connect("cp", gm.CHECKPOINT|gm.REQUEST_KEYS_ONLY|gm.DUMP|gm.FIX_FLAG_BYTEORDER, body)
	expectControl(t, p.must(), gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_ENABLE_CHECKPOINT_SYNC, false)
	expectControl(t, p.must(), gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_INITIAL_VBUCKET_STREAM, false)
	for _, want := range []struct {
		op  gm.CommandCode
		key string
	}{{gm.TAP_CHECKPOINT_START, "checkpoint_start"}, {gm.TAP_MUTATION, "k"}, {gm.TAP_CHECKPOINT_END, "checkpoint_end"}} {
		m := p.must()
		if m.Opcode != want.op || string(m.Key) != want.key || len(m.Extras) != 16 {
			t.Fatalf("got %s %q, want %s %q", m.Opcode, m.Key, want.op, want.key)
		}
		if want.op == gm.TAP_MUTATION {
			if len(m.Body) != 0 || tapFlags(m) != gm.TAP_NO_VALUE|gm.TAP_FLAG_NETWORK_BYTE_ORDER ||
				binary.BigEndian.Uint32(m.Extras[8:]) != 9 {
				t.Fatalf("keys-only mutation: body %q flags %x extras %x", m.Body, tapFlags(m), m.Extras)
			}
		} else if len(m.Body) != 8 || binary.BigEndian.Uint64(m.Body) != 42 {
			t.Fatalf("%s: checkpoint id %x, want 42", m.Opcode, m.Body)
		}
	}
	expectControl(t, p.must(), gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_CLOSE_BACKFILL, false)
	expectControl(t, p.must(), gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_CLOSE_TAP_STREAM, false)
}

// TestTapHostileConnect: malformed connects are answered EINVAL with the
// reason and their connection is closed; a feed on another connection
// and the other clients go on.
func TestTapHostileConnect(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			_, addr := startTap(t, 4, loops)
			w := refClient(t, addr)
			live := dialTap(t, addr)
			live.connect("live", gm.BACKFILL, binary.BigEndian.AppendUint64(nil, ^uint64(0)))
			tapSyncRaw(t, w, live)
			for _, tc := range []struct {
				name   string
				extras []byte
				body   []byte
			}{
				{"ShortExtras", []byte{0, 0}, nil},
				{"LongExtras", make([]byte, 8), nil},
				{"UnknownFlags", []byte{0xff, 0xff, 0xff, 0xff}, nil},
				{"ShortBackfill", []byte{0, 0, 0, 1}, []byte{1, 2, 3}},
				{"NoVBucketCount", []byte{0, 0, 0, 4}, []byte{1}},
				{"VBucketListOverflow", []byte{0, 0, 0, 4}, []byte{0xff, 0xff, 0, 1}},
				{"VBucketOutOfRange", []byte{0, 0, 0, 4}, []byte{0, 1, 0, 4}},
				{"CheckpointOverflow", []byte{0, 0, 0, 0x40}, []byte{0, 9, 0, 0}},
				{"RegisteredNoName", []byte{0, 0, 0, 0x80}, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					p := dialTap(t, addr)
					name := "hostile"
					if tc.name == "RegisteredNoName" {
						name = ""
					}
					p.send(gm.MCRequest{Opcode: gm.TAP_CONNECT, Key: []byte(name), Extras: tc.extras, Body: tc.body})
					res, magic, ok, err := p.next(5 * time.Second)
					if err != nil || !ok || magic != gm.RES_MAGIC || res.Opcode != gm.TAP_CONNECT || gm.Status(res.VBucket) != gm.EINVAL ||
						!bytes.Contains(res.Body, []byte("TAP_CONNECT")) {
						t.Fatalf("answer: magic 0x%x %s status 0x%x %q, %v", magic, res.Opcode, res.VBucket, res.Body, err)
					}
					p.closed()
				})
			}
			if _, err := w.Set(2, "after", 0, 0, []byte("hostile")); err != nil {
				t.Fatal(err)
			}
			for {
				m := live.must()
				if string(m.Key) == "after" {
					expectMutation(t, m, 2, "after", "hostile", 0)
					break
				}
			}
			// A second connect on a TAP connection: refused, left open.
			live.connect("again", 0, nil)
			res, magic, ok, err := live.next(5 * time.Second)
			if err != nil || !ok || magic != gm.RES_MAGIC || gm.Status(res.VBucket) != gm.EINVAL {
				t.Fatalf("second connect: magic 0x%x status 0x%x %v", magic, res.VBucket, err)
			}
		})
	}
}

// tapSyncRaw writes a key until p's feed shows it, then drains what
// more of it comes.
func tapSyncRaw(t *testing.T, w *ref.Client, p *tapPeer) {
	t.Helper()
	for range 50 {
		if _, err := w.Set(1, "sync", 0, 0, []byte("s")); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := p.next(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		} else if ok {
			for ok {
				_, _, ok, err = p.next(50 * time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
			}
			return
		}
	}
	t.Fatal("the feed never followed changes")
}

// TestTapConnectNoFlags: a connect without extras has no flags: it sends
// everything stored, then the changes.
func TestTapConnectNoFlags(t *testing.T) {
	_, addr := startTap(t, 1, 0)
	w := refClient(t, addr)
	if _, err := w.Set(0, "old", 0, 0, []byte("o")); err != nil {
		t.Fatal(err)
	}
	p := dialTap(t, addr)
	p.send(gm.MCRequest{Opcode: gm.TAP_CONNECT})
	expectControl(t, p.must(), gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_INITIAL_VBUCKET_STREAM, false)
	expectMutation(t, p.must(), 0, "old", "o", 0)
	expectControl(t, p.must(), gm.TAP_OPAQUE, 0, gm.TAP_OPAQUE_CLOSE_BACKFILL, false)
	if _, err := w.Set(0, "new", 0, 0, []byte("n")); err != nil {
		t.Fatal(err)
	}
	expectMutation(t, p.must(), 0, "new", "n", 0)
	if _, err := w.Del(0, "new"); err != nil {
		t.Fatal(err)
	}
	if d := p.must(); d.Opcode != gm.TAP_DELETE || string(d.Key) != "new" || len(d.Extras) != 8 || d.Cas == 0 {
		t.Fatalf("got %s %q extras %x cas %d, want a deletion", d.Opcode, d.Key, d.Extras, d.Cas)
	}
}

// TestTapStalledConsumerCut: a consumer that reads nothing keeps its
// producer blocked on a full send queue; it is cut after the grace
// period (its connection reset), and the other connections go on.
func TestTapStalledConsumerCut(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) {
			srv, addr := startTap(t, 1, loops)
			gocache.SetTapLimits(srv, 1000, 10, 200*time.Millisecond, 10*time.Millisecond)
			w := refClient(t, addr)
			big := bytes.Repeat([]byte("x"), 1000<<10)
			for i := range 24 {
				if _, err := w.Set(0, fmt.Sprintf("big-%d", i), 0, 0, big); err != nil {
					t.Fatal(err)
				}
			}
			p := dialTap(t, addr)
			p.send(gm.MCRequest{Opcode: gm.TAP_CONNECT}) // everything, then live
			time.Sleep(time.Second)
			// Cut: what was sent can be read, then the end; not cut, all
			// 24 would come and then nothing.
			n := 0
			for {
				pkt, _, ok, err := p.next(2 * time.Second)
				if err != nil {
					break
				}
				if !ok {
					t.Fatalf("not cut: read %d mutations, then nothing", n)
				}
				if pkt.Opcode == gm.TAP_MUTATION {
					n++
				}
			}
			if n >= 24 {
				t.Fatalf("all %d mutations came before the cut", n)
			}
			if res, err := w.Get(0, "big-0"); err != nil || len(res.Body) != len(big) {
				t.Fatalf("other connection: %v", err)
			}
		})
	}
}

// BenchmarkTapDump: a dump of 10000 documents of 100 bytes, read raw.
func BenchmarkTapDump(b *testing.B) {
	cfg := gocache.Config{}
	cfg.Cache.VBuckets = 1
	_, addr := gocachetest.Start(b, cfg)
	w, err := ref.Connect("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	const n = 10000
	v := bytes.Repeat([]byte("v"), 100)
	for i := range n {
		if _, err := w.Set(0, fmt.Sprintf("doc-%d", i), 0, 0, v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		r := gm.NewReader(c)
		req := gm.MCRequest{Opcode: gm.TAP_CONNECT, Extras: binary.BigEndian.AppendUint32(nil, uint32(gm.DUMP))}
		if _, err := req.Transmit(c); err != nil {
			b.Fatal(err)
		}
		got := 0
		var pkt gm.MCRequest
		for {
			if err := r.ReadRequest(&pkt); err != nil {
				b.Fatal(err)
			}
			if pkt.Opcode == gm.TAP_MUTATION {
				got++
			}
			if pkt.Opcode == gm.TAP_OPAQUE && binary.BigEndian.Uint32(pkt.Extras[8:]) == gm.TAP_OPAQUE_CLOSE_TAP_STREAM {
				break
			}
		}
		c.Close()
		if got != n {
			b.Fatalf("%d of %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/doc")
}
