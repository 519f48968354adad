package gocache_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	ref "github.com/couchbase/gomemcached/client"
	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// dcpConn is a raw DCP consumer connection for the tests.
type dcpConn struct {
	t      *testing.T
	c      net.Conn
	r      *gm.Reader
	opaque uint32
}

func dialDCP(t *testing.T, addr string) *dcpConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dcpConn{t: t, c: c, r: gm.NewReader(c)}
}

// openDCP dials and opens a producer connection with flags beside the
// producer's.
func openDCP(t *testing.T, addr, name string, flags uint32) *dcpConn {
	t.Helper()
	d := dialDCP(t, addr)
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER|flags)
	if res := d.call(gm.MCRequest{Opcode: gm.UPR_OPEN, Key: []byte(name), Extras: ex}); res.VBucket != uint16(gm.SUCCESS) {
		t.Fatalf("DCP_OPEN: status 0x%x", res.VBucket)
	}
	return d
}

func (d *dcpConn) send(req gm.MCRequest) uint32 {
	d.t.Helper()
	d.opaque++
	req.Opaque = d.opaque
	if _, err := req.Transmit(d.c); err != nil {
		d.t.Fatal(err)
	}
	return req.Opaque
}

// read reads the next packet (a request or a response, as magic says)
// within timeout; ok is false if none came.
func (d *dcpConn) read(timeout time.Duration) (pkt gm.MCRequest, magic byte, ok bool) {
	d.t.Helper()
	d.c.SetReadDeadline(time.Now().Add(timeout))
	if err := d.r.ReadRequest(&pkt); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return pkt, 0, false
		}
		d.t.Fatalf("read: %v", err)
	}
	pkt.Extras, pkt.Key, pkt.Body = bytes.Clone(pkt.Extras), bytes.Clone(pkt.Key), bytes.Clone(pkt.Body)
	return pkt, d.r.Magic(), true
}

// must reads the next packet, failing after 5 seconds.
func (d *dcpConn) must() (gm.MCRequest, byte) {
	d.t.Helper()
	pkt, magic, ok := d.read(5 * time.Second)
	if !ok {
		d.t.Fatal("no packet within 5s")
	}
	return pkt, magic
}

// call sends req and returns its response (status in VBucket), skipping
// the stream messages before it.
func (d *dcpConn) call(req gm.MCRequest) gm.MCRequest {
	d.t.Helper()
	op := d.send(req)
	for {
		pkt, magic := d.must()
		if magic == gm.RES_MAGIC && pkt.Opaque == op {
			return pkt
		}
	}
}

func (d *dcpConn) control(key, value string) uint16 {
	d.t.Helper()
	return d.call(gm.MCRequest{Opcode: gm.UPR_CONTROL, Key: []byte(key), Body: []byte(value)}).VBucket
}

func streamReq(vb uint16, flags uint32, start, end, vbuuid, snapStart, snapEnd uint64) gm.MCRequest {
	ex := make([]byte, 48)
	binary.BigEndian.PutUint32(ex[0:], flags)
	binary.BigEndian.PutUint64(ex[8:], start)
	binary.BigEndian.PutUint64(ex[16:], end)
	binary.BigEndian.PutUint64(ex[24:], vbuuid)
	binary.BigEndian.PutUint64(ex[32:], snapStart)
	binary.BigEndian.PutUint64(ex[40:], snapEnd)
	return gm.MCRequest{Opcode: gm.UPR_STREAMREQ, VBucket: vb, Extras: ex}
}

// kv is a plain client of the tests' server.
func kv(t *testing.T, addr string) *ref.Client {
	t.Helper()
	c, err := ref.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// event returns the feed's next event, failing after 5 seconds.
func event(t *testing.T, ch <-chan *ref.UprEvent) *ref.UprEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("feed closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return nil
}

type setDoc struct {
	value []byte
	flags uint32
	cas   uint64
}

// TestDCPReferenceFeed streams vbucket 0 to the reference client's
// UprFeed: the failover log, a disk snapshot of what was written before
// (values, flags and CAS as Set returned them, a deletion), then memory
// snapshots of live mutations, updates and deletions, then a close.
func TestDCPReferenceFeed(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) { testDCPReferenceFeed(t, loops) })
	}
}

func testDCPReferenceFeed(t *testing.T, loops int) {
	_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
	w := kv(t, addr)
	want := map[string]setDoc{}
	for i := range 5 {
		k := fmt.Sprintf("k%d", i)
		v := []byte(fmt.Sprintf("value-%d", i))
		res, err := w.Set(0, k, 100+i, 0, v)
		if err != nil {
			t.Fatal(err)
		}
		want[k] = setDoc{v, uint32(100 + i), res.Cas}
	}
	if _, err := w.Del(0, "k2"); err != nil {
		t.Fatal(err)
	}
	logs, err := w.UprGetFailoverLog([]uint16{0})
	if err != nil || len(*logs[0]) == 0 {
		t.Fatalf("failover log: %v %v", logs, err)
	}
	vbuuid := (*logs[0])[0][0]

	mc := kv(t, addr)
	feed, err := mc.NewUprFeed()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	if err := feed.UprOpen("ref-feed", 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := feed.StartFeed(); err != nil {
		t.Fatal(err)
	}
	if err := feed.UprRequestStream(0, 7, 0, vbuuid, 0, math.MaxUint64, 0, 0); err != nil {
		t.Fatal(err)
	}
	ch := feed.GetUprEventCh()
	e := event(t, ch)
	if e.Opcode != refmc.UPR_STREAMREQ || e.Status != refmc.SUCCESS || e.FailoverLog == nil || (*e.FailoverLog)[0][0] != vbuuid {
		t.Fatalf("stream request: %+v", e)
	}
	e = event(t, ch)
	if e.Opcode != refmc.UPR_SNAPSHOT || e.SnapshotType&0x02 == 0 || e.SnapstartSeq != 0 || e.SnapendSeq != 6 {
		t.Fatalf("want a disk snapshot 0..6, got %+v", e)
	}
	snapStart, snapEnd := e.SnapstartSeq, e.SnapendSeq
	var last uint64
	got := map[string]bool{}
	for range 5 {
		e = event(t, ch)
		if e.Seqno <= last || e.Seqno < snapStart || e.Seqno > snapEnd {
			t.Fatalf("seqno %d after %d outside snapshot %d..%d", e.Seqno, last, snapStart, snapEnd)
		}
		last = e.Seqno
		k := string(e.Key)
		got[k] = true
		if k == "k2" {
			if e.Opcode != refmc.UPR_DELETION {
				t.Fatalf("k2: %s, want a deletion", e.Opcode)
			}
			continue
		}
		d := want[k]
		if e.Opcode != refmc.UPR_MUTATION || !bytes.Equal(e.Value, d.value) || e.Flags != d.flags || e.Cas != d.cas || e.Opaque != 7 {
			t.Fatalf("%s: got %s %q flags %d cas %d opaque %d, want %q %d %d", k, e.Opcode, e.Value, e.Flags, e.Cas, e.Opaque, d.value, d.flags, d.cas)
		}
	}
	if len(got) != 5 {
		t.Fatalf("backfill keys: %v", got)
	}

	// Live changes.
	res5, err := w.Set(0, "k5", 5, 0, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	res0, err := w.Set(0, "k0", 9, 0, []byte("updated"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Del(0, "k1"); err != nil {
		t.Fatal(err)
	}
	type step struct {
		op    refmc.CommandCode
		key   string
		value string
		cas   uint64
	}
	steps := []step{{refmc.UPR_MUTATION, "k5", "new", res5.Cas}, {refmc.UPR_MUTATION, "k0", "updated", res0.Cas}, {refmc.UPR_DELETION, "k1", "", 0}}
	var inSnap bool
	for i := 0; i < len(steps); {
		e = event(t, ch)
		if e.Opcode == refmc.UPR_SNAPSHOT {
			if e.SnapshotType&0x01 == 0 || e.SnapstartSeq <= snapEnd {
				t.Fatalf("memory snapshot: %+v after end %d", e, snapEnd)
			}
			snapStart, snapEnd, inSnap = e.SnapstartSeq, e.SnapendSeq, true
			continue
		}
		s := steps[i]
		i++
		if !inSnap || e.Seqno <= last || e.Seqno < snapStart || e.Seqno > snapEnd {
			t.Fatalf("seqno %d (after %d) outside snapshot %d..%d", e.Seqno, last, snapStart, snapEnd)
		}
		last = e.Seqno
		if e.Opcode != s.op || string(e.Key) != s.key || string(e.Value) != s.value || s.cas != 0 && e.Cas != s.cas {
			t.Fatalf("got %s %q %q cas %d, want %+v", e.Opcode, e.Key, e.Value, e.Cas, s)
		}
	}
	if err := feed.CloseStream(0, 7); err != nil {
		t.Fatal(err)
	}
	if e = event(t, ch); e.Opcode != refmc.UPR_STREAMEND {
		t.Fatalf("after close: %+v", e)
	}
}

// TestDCPEndSeqno: a stream whose end is reached ends with STREAM_END OK,
// after a backfill and after live changes.
func TestDCPEndSeqno(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	w := kv(t, addr)
	for i := range 3 {
		if _, err := w.Set(0, "k"+strconv.Itoa(i), 0, 0, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	d := openDCP(t, addr, "end", 0)
	uuid := binary.BigEndian.Uint64(d.call(gm.MCRequest{Opcode: gm.UPR_FAILOVERLOG}).Body)
	// From 1 to 5: two from the backfill, three live (the last past the
	// end).
	if res := d.call(streamReq(0, 0, 1, 5, uuid, 1, 1)); res.VBucket != uint16(gm.SUCCESS) {
		t.Fatalf("stream request: 0x%x", res.VBucket)
	}
	var seqnos []uint64
	var ops []gm.CommandCode
	go func() {
		time.Sleep(50 * time.Millisecond)
		w.Set(0, "k3", 0, 0, []byte("v"))
		w.Set(0, "k4", 0, 0, []byte("v"))
		w.Set(0, "k5", 0, 0, []byte("v"))
	}()
	for {
		pkt, magic := d.must()
		if magic != gm.REQ_MAGIC {
			t.Fatalf("unexpected response %s", pkt.Opcode)
		}
		ops = append(ops, pkt.Opcode)
		if pkt.Opcode == gm.UPR_MUTATION {
			seqnos = append(seqnos, binary.BigEndian.Uint64(pkt.Extras))
		}
		if pkt.Opcode == gm.UPR_STREAMEND {
			if r := binary.BigEndian.Uint32(pkt.Extras); r != 0 {
				t.Fatalf("stream end reason %d", r)
			}
			break
		}
	}
	if fmt.Sprint(seqnos) != "[2 3 4 5]" {
		t.Fatalf("seqnos %v (%v)", seqnos, ops)
	}
	if ops[0] != gm.UPR_SNAPSHOT {
		t.Fatalf("first message %s", ops[0])
	}
}

// TestDCPStreamRequestErrors: validation, vbucket state and rollback, as
// kv_engine answers them.
func TestDCPStreamRequestErrors(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	w := kv(t, addr)
	for i := range 4 {
		if _, err := w.Set(0, "k"+strconv.Itoa(i), 0, 0, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	d := openDCP(t, addr, "errors", 0)
	flog := d.call(gm.MCRequest{Opcode: gm.UPR_FAILOVERLOG})
	if flog.VBucket != 0 || len(flog.Body) != 16 {
		t.Fatalf("failover log: 0x%x %x", flog.VBucket, flog.Body)
	}
	uuid := binary.BigEndian.Uint64(flog.Body)
	// vbucket 1 as a replica.
	if res := d.call(gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: 1, Extras: []byte{byte(2)}}); res.VBucket != 0 {
		t.Fatalf("SET_VBUCKET: 0x%x", res.VBucket)
	}
	for _, tc := range []struct {
		name   string
		req    gm.MCRequest
		status gm.Status
		body   []byte
	}{
		{"StartAfterEnd", streamReq(0, 0, 3, 2, uuid, 3, 3), gm.ERANGE, nil},
		{"StartBeforeSnapshot", streamReq(0, 0, 1, 10, uuid, 2, 3), gm.ERANGE, nil},
		{"StartAfterSnapshot", streamReq(0, 0, 3, 10, uuid, 1, 2), gm.ERANGE, nil},
		{"Replica", streamReq(1, 0, 0, 10, 0, 0, 0), gm.NOT_MY_VBUCKET, nil},
		{"UnknownUUID", streamReq(0, 0, 2, 10, uuid^1, 2, 2), gm.ROLLBACK, make([]byte, 8)},
		// A snapshot past the high seqno (4) of which the consumer has
		// nothing: no rollback.
		{"EmptySnapshotPastHigh", streamReq(0, 0, 3, 10, uuid, 3, 8), gm.SUCCESS, nil},
		{"Ahead", streamReq(0, 0, 6, 10, uuid, 5, 6), gm.ROLLBACK, binary.BigEndian.AppendUint64(nil, 4)},
		{"Strict", streamReq(0, 0x20, 0, 10, uuid^1, 0, 0), gm.ROLLBACK, make([]byte, 8)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := d.call(tc.req)
			if gm.Status(res.VBucket) != tc.status || tc.body != nil && !bytes.Equal(res.Body, tc.body) {
				t.Fatalf("status 0x%x body %x, want 0x%x %x", res.VBucket, res.Body, uint16(tc.status), tc.body)
			}
			if tc.status == gm.SUCCESS {
				if res := d.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM}); res.VBucket != 0 {
					t.Fatalf("close: 0x%x", res.VBucket)
				}
			}
		})
	}
	// A second stream on a vbucket, a close of none.
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); gm.Status(res.VBucket) != gm.KEY_EEXISTS {
		t.Fatalf("second stream: 0x%x", res.VBucket)
	}
	if res := d.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM, VBucket: 3}); gm.Status(res.VBucket) != gm.KEY_ENOENT {
		t.Fatalf("close of none: 0x%x", res.VBucket)
	}
}

// TestDCPControl: the producer's control keys, and DCP commands on a
// connection that is not DCP.
func TestDCPControl(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	plain := dialDCP(t, addr)
	if res := plain.call(gm.MCRequest{Opcode: gm.UPR_CONTROL, Key: []byte("enable_noop"), Body: []byte("true")}); gm.Status(res.VBucket) != gm.EINVAL {
		t.Fatalf("control on a plain connection: 0x%x", res.VBucket)
	}
	d := openDCP(t, addr, "control", 0)
	for _, tc := range []struct {
		key, value string
		status     gm.Status
	}{
		{"connection_buffer_size", "1024", gm.SUCCESS},
		{"connection_buffer_size", "x", gm.EINVAL},
		{"enable_noop", "true", gm.SUCCESS},
		{"set_noop_interval", "120", gm.SUCCESS},
		{"set_noop_interval", "0.5", gm.EINVAL},
		{"set_priority", "high", gm.SUCCESS},
		{"set_priority", "urgent", gm.EINVAL},
		{"enable_expiry_opcode", "true", gm.SUCCESS},
		{"send_stream_end_on_client_close_stream", "true", gm.SUCCESS},
		{"supports_cursor_dropping_vulcan", "true", gm.SUCCESS},
		{"enable_stream_id", "true", gm.SUCCESS},
		{"no_such_key", "1", gm.EINVAL},
	} {
		if got := gm.Status(d.control(tc.key, tc.value)); got != tc.status {
			t.Errorf("%s=%s: 0x%x, want 0x%x", tc.key, tc.value, uint16(got), uint16(tc.status))
		}
	}
	if res := d.call(gm.MCRequest{Opcode: gm.SELECT_BUCKET, Key: []byte("default")}); gm.Status(res.VBucket) != gm.NOT_SUPPORTED {
		t.Fatalf("SELECT_BUCKET on a DCP connection: 0x%x", res.VBucket)
	}
}

// TestDCPFlowControl: a consumer that stops acknowledging stops the
// producer at its buffer size, in bytes (24 + body of each message), and
// an acknowledgement lets it go on.
func TestDCPFlowControl(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) { testDCPFlowControl(t, loops) })
	}
}

func testDCPFlowControl(t *testing.T, loops int) {
	_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
	w := kv(t, addr)
	value := bytes.Repeat([]byte("x"), 100)
	const n = 100
	for i := range n {
		if _, err := w.Set(0, fmt.Sprintf("key-%03d", i), 0, 0, value); err != nil {
			t.Fatal(err)
		}
	}
	const size = 2000
	d := openDCP(t, addr, "flow", 0)
	if st := d.control("connection_buffer_size", strconv.Itoa(size)); st != 0 {
		t.Fatalf("connection_buffer_size: 0x%x", st)
	}
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	// One message: 24 + 31 extras + 7 key + 100 value.
	const msg = 24 + 31 + 7 + 100
	readAll := func() (bytes, mutations int) {
		for {
			pkt, _, ok := d.read(300 * time.Millisecond)
			if !ok {
				return
			}
			bytes += pkt.Size()
			if pkt.Opcode == gm.UPR_MUTATION {
				mutations++
			}
		}
	}
	got, muts := readAll()
	if got < size || got >= size+msg {
		t.Fatalf("sent %d bytes unacknowledged, want %d to %d", got, size, size+msg)
	}
	total := muts
	for total < n {
		ack := make([]byte, 4)
		binary.BigEndian.PutUint32(ack, uint32(got))
		d.send(gm.MCRequest{Opcode: gm.UPR_BUFFERACK, Extras: ack})
		got, muts = readAll()
		if got == 0 {
			t.Fatalf("nothing sent after an acknowledgement, %d of %d mutations", total, n)
		}
		if got >= size+msg {
			t.Fatalf("sent %d bytes past the window", got)
		}
		total += muts
	}
	if total != n {
		t.Fatalf("%d mutations, want %d", total, n)
	}
}

// TestDCPNoop: with enable_noop a producer with a stream sends a NOOP
// every interval, and closes a connection that answers none within two.
func TestDCPNoop(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	d := openDCP(t, addr, "noop", 0)
	if st := d.control("enable_noop", "true"); st != 0 {
		t.Fatal(st)
	}
	if st := d.control("set_noop_interval", "1"); st != 0 {
		t.Fatal(st)
	}
	// No noop before a stream.
	if pkt, _, ok := d.read(1200 * time.Millisecond); ok {
		t.Fatalf("before any stream: %s", pkt.Opcode)
	}
	start := time.Now()
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	pkt, magic := d.must()
	if magic != gm.REQ_MAGIC || pkt.Opcode != gm.UPR_NOOP {
		t.Fatalf("got %s (magic 0x%x), want a NOOP", pkt.Opcode, magic)
	}
	if el := time.Since(start); el < 900*time.Millisecond || el > 2*time.Second {
		t.Fatalf("noop after %v, want about 1s", el)
	}
	d.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var p gm.MCRequest
	err := d.r.ReadRequest(&p)
	if !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("want the connection closed, got %v %s", err, p.Opcode)
	}
	if el := time.Since(start); el < 1900*time.Millisecond || el > 4*time.Second {
		t.Fatalf("closed after %v, want about 2s", el)
	}
}

// TestDCPChangesLost: a stream whose cursor falls behind the change log
// (here held back by flow control) ends with STREAM_END "too slow", or,
// for a consumer that supports cursor dropping, backfills again and
// misses no key.
func TestDCPChangesLost(t *testing.T) {
	for _, dropping := range []bool{false, true} {
		t.Run(fmt.Sprintf("cursor_dropping=%v", dropping), func(t *testing.T) {
			_, addr := gocachetest.Start(t, gocache.Config{Cache: cache.Config{ChangeLog: 16}})
			w := kv(t, addr)
			d := openDCP(t, addr, "slow", 0)
			if st := d.control("connection_buffer_size", "400"); st != 0 {
				t.Fatal(st)
			}
			if dropping {
				if st := d.control("supports_cursor_dropping_vulcan", "true"); st != 0 {
					t.Fatal(st)
				}
			}
			if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
				t.Fatalf("stream: 0x%x", res.VBucket)
			}
			const n = 600 // past the change log, grown as far as it grows (16 × 16)
			for i := range n {
				if _, err := w.Set(0, fmt.Sprintf("key-%03d", i), 0, 0, []byte("v")); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && len(seen) < n {
				pkt, _, ok := d.read(200 * time.Millisecond)
				if !ok {
					continue
				}
				ack := binary.BigEndian.AppendUint32(nil, uint32(pkt.Size()))
				d.send(gm.MCRequest{Opcode: gm.UPR_BUFFERACK, Extras: ack})
				switch pkt.Opcode {
				case gm.UPR_MUTATION:
					seen[string(pkt.Key)] = true
				case gm.UPR_STREAMEND:
					if dropping {
						t.Fatalf("stream end %d with cursor dropping", binary.BigEndian.Uint32(pkt.Extras))
					}
					if r := binary.BigEndian.Uint32(pkt.Extras); r != 4 {
						t.Fatalf("stream end reason %d, want 4 (too slow)", r)
					}
					return
				}
			}
			if !dropping {
				t.Fatal("no stream end")
			}
			if len(seen) != n {
				t.Fatalf("%d keys of %d", len(seen), n)
			}
		})
	}
}

// TestDCPFlushEndsForRollback: a flush takes away what a stream had not
// sent, and it cannot be backfilled: the stream ends with STREAM_END
// "rollback" (6), with or without cursor dropping, never "too slow".
func TestDCPFlushEndsForRollback(t *testing.T) {
	for _, dropping := range []bool{false, true} {
		t.Run(fmt.Sprintf("cursor_dropping=%v", dropping), func(t *testing.T) {
			_, addr := gocachetest.Start(t, gocache.Config{})
			w := kv(t, addr)
			d := openDCP(t, addr, "flushed", 0)
			if dropping {
				if st := d.control("supports_cursor_dropping_vulcan", "true"); st != 0 {
					t.Fatal(st)
				}
			}
			if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
				t.Fatalf("stream: 0x%x", res.VBucket)
			}
			if _, err := w.Set(0, "before", 0, 0, []byte("v")); err != nil {
				t.Fatal(err)
			}
			for {
				pkt, _ := d.must()
				if pkt.Opcode == gm.UPR_MUTATION {
					break
				}
			}
			if _, err := w.Set(0, "unsent", 0, 0, []byte("v")); err != nil {
				t.Fatal(err)
			}
			fl, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			fl.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(fl, "flush_all\r\n")
			if line, err := bufio.NewReader(fl).ReadString('\n'); err != nil || line != "OK\r\n" {
				t.Fatalf("flush_all: %q, %v", line, err)
			}
			for {
				pkt, _ := d.must()
				switch pkt.Opcode {
				case gm.UPR_MUTATION, gm.UPR_SNAPSHOT:
					continue
				case gm.UPR_STREAMEND:
					if r := binary.BigEndian.Uint32(pkt.Extras); r != 6 {
						t.Fatalf("stream end reason %d, want 6 (rollback)", r)
					}
					return
				default:
					t.Fatalf("got %s", pkt.Opcode)
				}
			}
		})
	}
}

// TestDCPMessages: a collections-aware connection gets keys with their
// collection id; delete times and the expiry opcode give deletions and
// expirations their layouts; a close with
// send_stream_end_on_client_close_stream ends with STREAM_END "closed".
func TestDCPMessages(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	w := kv(t, addr)
	d := dialDCP(t, addr)
	hello := d.call(gm.MCRequest{Opcode: gm.HELLO, Key: []byte("dcp"), Body: binary.BigEndian.AppendUint16(nil, uint16(gm.FeatureCollections))})
	if len(hello.Body) != 2 {
		t.Fatalf("HELLO: %x", hello.Body)
	}
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER|gm.DCP_OPEN_INCLUDE_DELETE_TIMES)
	if res := d.call(gm.MCRequest{Opcode: gm.UPR_OPEN, Key: []byte("messages"), Extras: ex}); res.VBucket != 0 {
		t.Fatalf("open: 0x%x", res.VBucket)
	}
	for _, kv := range [][2]string{{"enable_expiry_opcode", "true"}, {"send_stream_end_on_client_close_stream", "true"}} {
		if st := d.control(kv[0], kv[1]); st != 0 {
			t.Fatalf("%s: 0x%x", kv[0], st)
		}
	}
	if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	if _, err := w.Set(0, "doc", 3, 1, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Set(0, "gone", 0, 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Del(0, "gone"); err != nil {
		t.Fatal(err)
	}
	next := func(op gm.CommandCode) gm.MCRequest {
		t.Helper()
		for {
			pkt, magic := d.must()
			if magic == gm.REQ_MAGIC && pkt.Opcode == op {
				return pkt
			}
			if magic != gm.REQ_MAGIC || pkt.Opcode != gm.UPR_SNAPSHOT {
				t.Fatalf("got %s (magic 0x%x) waiting for %s", pkt.Opcode, magic, op)
			}
		}
	}
	m := next(gm.UPR_MUTATION)
	if string(m.Key) != "\x00doc" || len(m.Extras) != 31 || binary.BigEndian.Uint32(m.Extras[16:]) != 3 || binary.BigEndian.Uint32(m.Extras[20:]) == 0 {
		t.Fatalf("mutation: key %q extras %x", m.Key, m.Extras)
	}
	next(gm.UPR_MUTATION)
	del := next(gm.UPR_DELETION)
	now := uint32(time.Now().Unix())
	if string(del.Key) != "\x00gone" || len(del.Extras) != 21 || binary.BigEndian.Uint32(del.Extras[16:]) > now || binary.BigEndian.Uint32(del.Extras[16:]) < now-60 {
		t.Fatalf("deletion: key %q extras %x", del.Key, del.Extras)
	}
	// "doc" expires after a second; a read finds it expired.
	time.Sleep(2100 * time.Millisecond)
	if _, err := w.Get(0, "doc"); err == nil {
		t.Fatal("doc did not expire")
	}
	exp := next(gm.UPR_EXPIRATION)
	if string(exp.Key) != "\x00doc" || len(exp.Extras) != 20 {
		t.Fatalf("expiration: key %q extras %x", exp.Key, exp.Extras)
	}
	op := d.send(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM})
	for {
		pkt, magic := d.must()
		if magic == gm.RES_MAGIC && pkt.Opaque == op {
			break
		}
	}
	end := next(gm.UPR_STREAMEND)
	if r := binary.BigEndian.Uint32(end.Extras); r != 1 {
		t.Fatalf("stream end reason %d, want 1 (closed)", r)
	}
}

// TestDCPLargeBackfill: a backfill larger than one part (4096 versions)
// comes whole, in one disk snapshot, in seqno order.
func TestDCPLargeBackfill(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	const n = 5000
	wc := dialDCP(t, addr)
	for i := range n {
		req := gm.MCRequest{Opcode: gm.SETQ, Key: []byte(fmt.Sprintf("key-%05d", i)), Extras: make([]byte, 8), Body: []byte("v")}
		if _, err := req.Transmit(wc.c); err != nil {
			t.Fatal(err)
		}
	}
	if res := wc.call(gm.MCRequest{Opcode: gm.NOOP}); res.VBucket != 0 {
		t.Fatalf("NOOP: 0x%x", res.VBucket)
	}
	d := openDCP(t, addr, "large", 0)
	if res := d.call(streamReq(0, 0, 0, n, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	marker, _ := d.must()
	if marker.Opcode != gm.UPR_SNAPSHOT || binary.BigEndian.Uint64(marker.Extras[8:]) != n {
		t.Fatalf("first message %s %x", marker.Opcode, marker.Extras)
	}
	for want := uint64(1); want <= n; want++ {
		pkt, _ := d.must()
		if pkt.Opcode != gm.UPR_MUTATION || binary.BigEndian.Uint64(pkt.Extras) != want {
			t.Fatalf("message %s seqno %d, want a mutation %d", pkt.Opcode, binary.BigEndian.Uint64(pkt.Extras), want)
		}
	}
	if end, _ := d.must(); end.Opcode != gm.UPR_STREAMEND {
		t.Fatalf("after the backfill: %s", end.Opcode)
	}
}

// TestDCPNameReuse: opening a producer with a name in use closes the
// connection that had it.
func TestDCPNameReuse(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	old := openDCP(t, addr, "same", 0)
	openDCP(t, addr, "same", 0)
	old.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var p gm.MCRequest
	if err := old.r.ReadRequest(&p); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("old connection: %v", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestDCPManyStreamBackfill: 1024 streams backfill at once, each in
// several parts (the walks' budget shared by 1024 streams is smaller than
// a vbucket), while their vbuckets change: each stream's seqnos rise,
// none comes twice, and every key's last message has its last value.
func TestDCPManyStreamBackfill(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	const vbs, before, after = 1024, 100, 20
	wc := dialDCP(t, addr)
	write := func(round, n int) {
		var buf []byte
		for vb := range vbs {
			for i := range n {
				// Keys 0..before-1 of each vbucket; the later round
				// writes some of them again.
				req := gm.MCRequest{Opcode: gm.SETQ, VBucket: uint16(vb), Key: fmt.Appendf(nil, "k-%d-%d", vb, i*(before/n)),
					Extras: make([]byte, 8), Body: fmt.Appendf(nil, "r%d", round)}
				buf, _ = req.AppendTo(buf)
			}
		}
		if _, err := wc.c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if res := wc.call(gm.MCRequest{Opcode: gm.NOOP}); res.VBucket != 0 {
			t.Fatalf("NOOP: 0x%x", res.VBucket)
		}
	}
	write(0, before)
	d := openDCP(t, addr, "many", 0)
	var buf []byte
	for vb := range vbs {
		req := streamReq(uint16(vb), 0, 0, before+after, 0, 0, 0)
		req.Opaque = uint32(vb + 1)
		buf, _ = req.AppendTo(buf)
	}
	if _, err := d.c.Write(buf); err != nil {
		t.Fatal(err)
	}
	write(1, after)
	last := make([]uint64, vbs)
	values := map[string]string{}
	for ends := 0; ends < vbs; {
		pkt, magic := d.must()
		vb := int(pkt.Opaque) - 1
		switch {
		case magic == gm.RES_MAGIC:
			if pkt.VBucket != 0 {
				t.Fatalf("stream %d: 0x%x", vb, pkt.VBucket)
			}
		case pkt.Opcode == gm.UPR_MUTATION:
			seqno := binary.BigEndian.Uint64(pkt.Extras)
			if seqno <= last[vb] {
				t.Fatalf("vb %d: seqno %d after %d", vb, seqno, last[vb])
			}
			last[vb] = seqno
			values[string(pkt.Key)] = string(pkt.Body)
		case pkt.Opcode == gm.UPR_STREAMEND:
			if last[vb] != before+after {
				t.Fatalf("vb %d ended at seqno %d", vb, last[vb])
			}
			ends++
		}
	}
	if len(values) != vbs*before {
		t.Fatalf("%d keys, want %d", len(values), vbs*before)
	}
	for vb := range vbs {
		for i := range before {
			want := "r0"
			if i%(before/after) == 0 {
				want = "r1"
			}
			if k := fmt.Sprintf("k-%d-%d", vb, i); values[k] != want {
				t.Fatalf("%s: %q, want %q", k, values[k], want)
			}
		}
	}
}

// TestDCPStreamEndsOnStateChange: an idle stream whose vbucket stops being
// active ends (STREAM_END, reason state changed) without a change to
// wake it, and a request for it at once after its end is answered.
func TestDCPStreamEndsOnStateChange(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	w := dialDCP(t, addr)
	d := openDCP(t, addr, "state", 0)
	if res := d.call(streamReq(5, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream: 0x%x", res.VBucket)
	}
	if pkt, _, ok := d.read(100 * time.Millisecond); ok {
		t.Fatalf("an empty vbucket sent %s", pkt.Opcode)
	}
	if res := w.call(gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: 5, Extras: []byte{2}}); res.VBucket != 0 {
		t.Fatalf("SET_VBUCKET: 0x%x", res.VBucket)
	}
	end, _ := d.must()
	if end.Opcode != gm.UPR_STREAMEND || binary.BigEndian.Uint32(end.Extras) != 2 {
		t.Fatalf("after the state change: %s %x, want STREAM_END state", end.Opcode, end.Extras)
	}
	if res := w.call(gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: 5, Extras: []byte{1}}); res.VBucket != 0 {
		t.Fatalf("SET_VBUCKET: 0x%x", res.VBucket)
	}
	if res := d.call(streamReq(5, 0, 0, 0, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream after its end: 0x%x", res.VBucket)
	}
}
