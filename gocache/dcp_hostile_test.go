package gocache_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// Hostile consumers of gocache's DCP producer: requests that cannot be
// served, many of them, a consumer that never reads, and packets no
// consumer should send. Each is answered as kv_engine answers it, costs
// bounded memory and time, and leaves the other connections served.

// liveHeap returns the heap's live bytes after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapObjects returns the bytes of heap objects, live or not yet
// collected.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// witness is a producer that streams vbucket 0 from its high seqno, and
// a plain connection that writes to it: healthy checks that both are still
// served after another connection misbehaved.
type witness struct {
	t  *testing.T
	d  *dcpConn
	w  *dcpConn
	n  int
	vb uint16
}

func newWitness(t *testing.T, addr string) *witness {
	t.Helper()
	d := openDCP(t, addr, fmt.Sprintf("witness-%d", rand.Int()), 0)
	if res := d.call(streamReq(0, 0x40, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("witness stream: 0x%x", res.VBucket)
	}
	return &witness{t: t, d: d, w: dialDCP(t, addr)}
}

// healthy writes a key through a plain connection, reads it back, and
// waits for the witness producer to stream it.
func (wt *witness) healthy() {
	wt.t.Helper()
	wt.n++
	key := fmt.Sprintf("witness-%d", wt.n)
	start := time.Now()
	if res := wt.w.call(gm.MCRequest{Opcode: gm.SET, Key: []byte(key), Extras: make([]byte, 8), Body: []byte("v")}); res.VBucket != 0 {
		wt.t.Fatalf("SET: 0x%x", res.VBucket)
	}
	if res := wt.w.call(gm.MCRequest{Opcode: gm.GET, Key: []byte(key)}); res.VBucket != 0 || string(res.Body) != "v" {
		wt.t.Fatalf("GET: 0x%x %q", res.VBucket, res.Body)
	}
	for {
		pkt, magic := wt.d.must()
		if magic == gm.REQ_MAGIC && pkt.Opcode == gm.UPR_MUTATION && string(pkt.Key) == key {
			break
		}
	}
	if el := time.Since(start); el > 2*time.Second {
		wt.t.Fatalf("witness served after %v", el)
	}
}

// outcome is how a connection answered a packet: a status, or closed.
type outcome struct {
	closed bool
	status gm.Status
}

func (o outcome) String() string {
	if o.closed {
		return "closed"
	}
	return fmt.Sprintf("status 0x%x", uint16(o.status))
}

var closed = outcome{closed: true}

// answerOf reads d until the response with opaque op (skipping stream
// messages) or until the connection closes, within 5 seconds. After a
// response it checks whether the server then closes the connection: an
// EINVAL that closes counts as closed.
func answerOf(t *testing.T, d *dcpConn, op uint32) outcome {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	d.c.SetReadDeadline(deadline)
	var o outcome
	for {
		var pkt gm.MCRequest
		err := d.r.ReadRequest(&pkt)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if o.status != 0 || o.closed {
					return o
				}
				t.Fatal("no answer within 5s")
			}
			if errors.Is(err, io.EOF) || isReset(err) {
				return closed
			}
			t.Fatalf("read: %v", err)
		}
		if d.r.Magic() == gm.RES_MAGIC && pkt.Opaque == op {
			o = outcome{status: gm.Status(pkt.VBucket)}
			if o.status != gm.EINVAL {
				return o
			}
			// Does the server close after its EINVAL?
			d.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
	}
}

// TestDCPHostileStreamRequests: stream requests that cannot be served as
// asked get kv_engine's answers (ERANGE for a start outside its end or
// snapshot, ROLLBACK for a history the vbucket does not have,
// NOT_MY_VBUCKET for a vbucket it does not have), on a connection that
// stays usable.
func TestDCPHostileStreamRequests(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	w := dialDCP(t, addr)
	set := func(vb uint16, key string) {
		t.Helper()
		if res := w.call(gm.MCRequest{Opcode: gm.SET, VBucket: vb, Key: []byte(key), Extras: make([]byte, 8), Body: []byte("v")}); res.VBucket != 0 {
			t.Fatalf("SET: 0x%x", res.VBucket)
		}
	}
	for i := range 4 {
		set(0, fmt.Sprintf("k%d", i))
	}
	d := openDCP(t, addr, "hostile-requests", 0)
	uuid := binary.BigEndian.Uint64(d.call(gm.MCRequest{Opcode: gm.UPR_FAILOVERLOG}).Body)

	// vbucket 2: two histories. Two changes under the first UUID, then it
	// is made a replica and active again (a new UUID from seqno 2), and
	// two more changes.
	set(2, "a")
	set(2, "b")
	old := binary.BigEndian.Uint64(d.call(gm.MCRequest{Opcode: gm.UPR_FAILOVERLOG, VBucket: 2}).Body)
	for _, st := range []byte{2, 1} {
		if res := w.call(gm.MCRequest{Opcode: gm.SET_VBUCKET, VBucket: 2, Extras: []byte{st}}); res.VBucket != 0 {
			t.Fatalf("SET_VBUCKET %d: 0x%x", st, res.VBucket)
		}
	}
	set(2, "c")
	set(2, "d")
	flog := d.call(gm.MCRequest{Opcode: gm.UPR_FAILOVERLOG, VBucket: 2}).Body
	if len(flog) != 32 || binary.BigEndian.Uint64(flog[16:]) != old || binary.BigEndian.Uint64(flog[8:]) != 2 {
		t.Fatalf("vbucket 2's failover log %x, want a new entry at 2 over %x", flog, old)
	}
	cur := binary.BigEndian.Uint64(flog)

	rollback := func(seqno uint64) []byte { return binary.BigEndian.AppendUint64(nil, seqno) }
	for _, tc := range []struct {
		name   string
		req    gm.MCRequest
		status gm.Status
		body   []byte
	}{
		{"StartAfterEnd", streamReq(0, 0, 4, 3, uuid, 4, 4), gm.ERANGE, nil},
		{"StartAfterEndFromZero", streamReq(0, 0, 1, 0, 0, 0, 1), gm.ERANGE, nil},
		{"MaxStartZeroEnd", streamReq(0, 0, math.MaxUint64, 0, uuid, math.MaxUint64, math.MaxUint64), gm.ERANGE, nil},
		{"SnapshotAfterStart", streamReq(0, 0, 2, 10, uuid, 3, 4), gm.ERANGE, nil},
		{"SnapshotBeforeStart", streamReq(0, 0, 3, 10, uuid, 1, 2), gm.ERANGE, nil},
		{"SnapshotInverted", streamReq(0, 0, 2, 10, uuid, 3, 1), gm.ERANGE, nil},
		{"UnknownUUID", streamReq(0, 0, 2, 10, uuid+1, 2, 2), gm.ROLLBACK, rollback(0)},
		{"UnknownUUIDZeroStart", streamReq(0, 0, 0, 10, uuid+1, 0, 0), gm.SUCCESS, nil},
		{"StrictUnknownUUIDZeroStart", streamReq(0, 0x20, 0, 10, uuid+1, 0, 0), gm.ROLLBACK, rollback(0)},
		{"AheadOfHigh", streamReq(0, 0, 9, 20, uuid, 9, 9), gm.ROLLBACK, rollback(4)},
		{"OldHistoryPastBranch", streamReq(2, 0, 3, 10, old, 3, 3), gm.ROLLBACK, rollback(2)},
		{"OldHistoryBeforeBranch", streamReq(2, 0, 1, 10, old, 1, 1), gm.SUCCESS, nil},
		{"CurrentHistory", streamReq(2, 0, 4, 10, cur, 4, 4), gm.SUCCESS, nil},
		{"NoSuchVBucket", streamReq(5000, 0, 0, 10, 0, 0, 0), gm.NOT_MY_VBUCKET, nil},
		{"CollectionsFilterWithoutCollections", func() gm.MCRequest {
			r := streamReq(0, 0, 0, 10, 0, 0, 0)
			r.Body = []byte(`{"collections":["0"]}`)
			return r
		}(), 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := d.send(tc.req)
			o := answerOf(t, d, op)
			if tc.name == "CollectionsFilterWithoutCollections" {
				// A filter is refused without collections (kv_engine:
				// EINVAL) or not served yet: never accepted.
				if !o.closed && o.status == gm.SUCCESS {
					t.Fatalf("filter on a connection without collections: %v", o)
				}
				return
			}
			if o.closed || o.status != tc.status {
				t.Fatalf("got %v, want status 0x%x", o, uint16(tc.status))
			}
			if tc.status == gm.SUCCESS {
				if res := d.call(gm.MCRequest{Opcode: gm.UPR_CLOSESTREAM, VBucket: tc.req.VBucket}); res.VBucket != 0 {
					t.Fatalf("close: 0x%x", res.VBucket)
				}
			}
		})
	}
	// A ROLLBACK's body is the seqno to roll back to.
	for _, tc := range []struct {
		req  gm.MCRequest
		want uint64
	}{
		{streamReq(0, 0, 2, 10, uuid+1, 2, 2), 0},
		{streamReq(0, 0, 9, 20, uuid, 9, 9), 4},
		{streamReq(2, 0, 3, 10, old, 3, 3), 2},
	} {
		res := d.call(tc.req)
		if gm.Status(res.VBucket) != gm.ROLLBACK || !bytes.Equal(res.Body, rollback(tc.want)) {
			t.Fatalf("rollback: 0x%x %x, want %d", res.VBucket, res.Body, tc.want)
		}
	}
	// An empty range ends at once; the connection still streams.
	if res := d.call(streamReq(0, 0, 0, 0, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("empty stream: 0x%x", res.VBucket)
	}
	end, _ := d.must()
	if end.Opcode != gm.UPR_STREAMEND || binary.BigEndian.Uint32(end.Extras) != 0 {
		t.Fatalf("empty stream: %s %x, want STREAM_END OK", end.Opcode, end.Extras)
	}
	// The ended stream leaves the producer before its STREAM_END is
	// sent: a request at once is served.
	if res := d.call(streamReq(0, 0, 0, 2, 0, 0, 0)); res.VBucket != 0 {
		t.Fatalf("stream after its end: 0x%x", res.VBucket)
	}
	var seqnos []uint64
	for {
		pkt, _ := d.must()
		if pkt.Opcode == gm.UPR_MUTATION {
			seqnos = append(seqnos, binary.BigEndian.Uint64(pkt.Extras))
		}
		if pkt.Opcode == gm.UPR_STREAMEND {
			break
		}
	}
	if fmt.Sprint(seqnos) != "[1 2]" {
		t.Fatalf("seqnos %v", seqnos)
	}
	// Extras of the wrong length: EINVAL, and the connection is closed.
	bad := streamReq(0, 0, 0, 10, 0, 0, 0)
	bad.Extras = bad.Extras[:40]
	if o := answerOf(t, d, d.send(bad)); !o.closed {
		t.Fatalf("short extras: %v", o)
	}
}

// TestDCPHostileManyStreamRequests: 10000 stream requests pipelined on
// one connection are all answered (SUCCESS for each of the 1024
// vbuckets, then KEY_EEXISTS, NOT_MY_VBUCKET past them) in bounded time
// and memory, while another connection is served.
func TestDCPHostileManyStreamRequests(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	wt := newWitness(t, addr)
	before := liveHeap()
	d := openDCP(t, addr, "many", 0)
	const n = 10000
	const vbs = 1200 // 1024 and 176 that do not exist
	var buf []byte
	for i := range n {
		req := streamReq(uint16(i%vbs), 0, 0, math.MaxUint64, 0, 0, 0)
		req.Opaque = uint32(i + 1)
		buf, _ = req.AppendTo(buf)
	}
	start := time.Now()
	go func() { d.c.Write(buf) }()
	// Meanwhile another connection is served.
	done := make(chan struct{})
	var slowest atomic.Int64
	go func() {
		defer close(done)
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		r := gm.NewReader(c)
		for i := range 20 {
			t0 := time.Now()
			req := gm.MCRequest{Opcode: gm.NOOP, Opaque: uint32(i)}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := req.Transmit(c); err != nil {
				return
			}
			var res gm.MCRequest
			if err := r.ReadRequest(&res); err != nil {
				slowest.Store(math.MaxInt64)
				return
			}
			slowest.Store(max(slowest.Load(), int64(time.Since(t0))))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	counts := map[gm.Status]int{}
	seen := 0
	d.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for seen < n {
		var pkt gm.MCRequest
		if err := d.r.ReadRequest(&pkt); err != nil {
			t.Fatalf("after %d answers: %v", seen, err)
		}
		if d.r.Magic() != gm.RES_MAGIC {
			continue // the witness's writes are in vbucket 0: a stream message
		}
		seen++
		st := gm.Status(pkt.VBucket)
		counts[st]++
		i := int(pkt.Opaque) - 1
		var want gm.Status
		switch {
		case i%vbs >= 1024:
			want = gm.NOT_MY_VBUCKET
		case i >= vbs:
			want = gm.KEY_EEXISTS
		}
		if st != want {
			t.Fatalf("request %d (vbucket %d): 0x%x, want 0x%x", i, i%vbs, uint16(st), uint16(want))
		}
	}
	el := time.Since(start)
	<-done
	growth := int64(liveHeap()) - int64(before)
	t.Logf("%d stream requests answered in %v (%v); live heap +%.1f MiB; another connection's slowest NOOP %v",
		n, el, counts, float64(growth)/(1<<20), time.Duration(slowest.Load()))
	if counts[gm.SUCCESS] != 1024 {
		t.Fatalf("%d streams opened, want 1024", counts[gm.SUCCESS])
	}
	if el > 30*time.Second {
		t.Fatalf("answered in %v", el)
	}
	if s := time.Duration(slowest.Load()); s > 2*time.Second {
		t.Fatalf("another connection waited %v for a NOOP", s)
	}
	// 1024 streams: each vbucket's change log (1024 entries of 48 bytes,
	// allocated once a cursor follows it: 48 MiB) and each stream's
	// state.
	if growth > 96<<20 {
		t.Fatalf("live heap grew %d MiB with 1024 streams", growth>>20)
	}
	wt.healthy()
}

// TestDCPHostileStalledConsumer: a consumer that streams 16 vbuckets
// without flow control and never reads while a writer makes 200000
// changes costs the producer bounded memory: the connection's send queue
// (1 MiB), what the socket holds, and the vbuckets' change logs (1024
// changes each, holding the values they stored); its streams then end
// as too slow. The writer and other connections are served meanwhile.
func TestDCPHostileStalledConsumer(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	wt := newWitness(t, addr)
	const vbs = 16
	const keys = 1000
	const changes = 200000
	value := bytes.Repeat([]byte("x"), 100)
	w := dialDCP(t, addr)
	// Every key once, before the stall.
	var buf []byte
	for i := range keys {
		req := gm.MCRequest{Opcode: gm.SETQ, VBucket: uint16(i % vbs), Key: []byte(fmt.Sprintf("key-%04d", i)), Extras: make([]byte, 8), Body: value}
		buf, _ = req.AppendTo(buf)
	}
	w.c.Write(buf)
	if res := w.call(gm.MCRequest{Opcode: gm.NOOP}); res.VBucket != 0 {
		t.Fatalf("NOOP: 0x%x", res.VBucket)
	}
	before := liveHeap()

	stalled := openDCP(t, addr, "stalled", 0)
	for vb := range uint16(vbs) {
		op := stalled.send(streamReq(vb, 0x40, 0, math.MaxUint64, 0, 0, 0)) // from latest: live changes only
		if o := answerOf(t, stalled, op); o.closed || o.status != 0 {
			t.Fatalf("stream %d: %v", vb, o)
		}
	}
	// From here on the stalled consumer reads nothing.
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if h := heapObjects(); h > peak.Load() {
				peak.Store(h)
			}
		}
	}()
	start := time.Now()
	const batch = 2000
	for sent := 0; sent < changes; sent += batch {
		buf = buf[:0]
		for i := sent; i < sent+batch; i++ {
			k := i % keys
			req := gm.MCRequest{Opcode: gm.SETQ, VBucket: uint16(k % vbs), Key: []byte(fmt.Sprintf("key-%04d", k)), Extras: make([]byte, 8), Body: value}
			buf, _ = req.AppendTo(buf)
		}
		w.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.c.Write(buf); err != nil {
			t.Fatalf("writer blocked after %d changes: %v", sent, err)
		}
	}
	if res := w.call(gm.MCRequest{Opcode: gm.NOOP}); res.VBucket != 0 {
		t.Fatalf("NOOP: 0x%x", res.VBucket)
	}
	el := time.Since(start)
	close(stop)
	wg.Wait()
	growth := int64(liveHeap()) - int64(before)
	t.Logf("%d changes in %v with a stalled consumer of %d vbuckets: live heap +%.1f MiB, heap objects peak %.1f MiB (from %.1f live)",
		changes, el, vbs, float64(growth)/(1<<20), float64(peak.Load())/(1<<20), float64(before)/(1<<20))
	// Send queue 1 MiB + 16 change logs of 1024 changes (48 bytes and an
	// old 100-byte version each, about 5 MiB), grown by at most 64 Ki
	// changes for the whole cache (cache.Config.ChangeLog, about 13 MiB
	// more) + buffers: 32 MiB is ample and far below what 200000 changes
	// (30 MiB of values alone) would hold.
	if growth > 32<<20 {
		t.Fatalf("live heap grew %.1f MiB", float64(growth)/(1<<20))
	}
	wt.healthy()

	// Once it reads, the stalled consumer gets what was queued, then
	// STREAM_END "too slow" for the streams whose changes were lost.
	ends := 0
	stalled.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for ends < vbs {
		var pkt gm.MCRequest
		if err := stalled.r.ReadRequest(&pkt); err != nil {
			t.Fatalf("stalled consumer, %d stream ends: %v", ends, err)
		}
		if pkt.Opcode == gm.UPR_STREAMEND {
			if r := binary.BigEndian.Uint32(pkt.Extras); r != 4 {
				t.Fatalf("stream end reason %d, want 4 (too slow)", r)
			}
			ends++
		}
	}
	wt.healthy()
}

// TestDCPHostileGarbage: packets no consumer should send a producer.
// Malformed DCP commands get EINVAL and the connection is closed (as
// memcached closes after EINVAL), messages that only a producer sends,
// and a consumer's own commands, close the producer's connection (as
// kv_engine's producer disconnects), packets that cannot be decoded close
// it; other connections are served throughout.
func TestDCPHostileGarbage(t *testing.T) {
	for _, loops := range []int{0, 2} {
		t.Run(fmt.Sprintf("loops=%d", loops), func(t *testing.T) { testDCPHostileGarbage(t, loops) })
	}
}

func testDCPHostileGarbage(t *testing.T, loops int) {
	_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
	wt := newWitness(t, addr)
	producer := func(t *testing.T) *dcpConn {
		d := openDCP(t, addr, fmt.Sprintf("garbage-%d", rand.Int()), 0)
		if res := d.call(streamReq(0, 0, 0, math.MaxUint64, 0, 0, 0)); res.VBucket != 0 {
			t.Fatalf("stream: 0x%x", res.VBucket)
		}
		return d
	}
	req := func(op gm.CommandCode, extras, key, body []byte) gm.MCRequest {
		return gm.MCRequest{Opcode: op, Extras: extras, Key: key, Body: body}
	}
	einval := outcome{status: gm.EINVAL}
	for _, tc := range []struct {
		name string
		req  gm.MCRequest
		want outcome
	}{
		{"BufferAckShortExtras", req(gm.UPR_BUFFERACK, []byte{0, 1}, nil, nil), closed},
		{"BufferAckWithKey", req(gm.UPR_BUFFERACK, make([]byte, 4), []byte("k"), nil), closed},
		{"StreamReqNoExtras", req(gm.UPR_STREAMREQ, nil, nil, nil), closed},
		{"StreamReqLongExtras", req(gm.UPR_STREAMREQ, make([]byte, 56), nil, nil), closed},
		{"StreamReqWithKey", req(gm.UPR_STREAMREQ, make([]byte, 48), []byte("k"), nil), closed},
		{"ControlWithExtras", req(gm.UPR_CONTROL, make([]byte, 4), []byte("enable_noop"), []byte("true")), closed},
		{"ControlNoKey", req(gm.UPR_CONTROL, nil, nil, []byte("true")), closed},
		{"ControlHugeBuffer", req(gm.UPR_CONTROL, nil, []byte("connection_buffer_size"), []byte("99999999999999999999")), einval},
		{"CloseStreamWithExtras", req(gm.UPR_CLOSESTREAM, make([]byte, 4), nil, nil), closed},
		{"FailoverLogWithBody", req(gm.UPR_FAILOVERLOG, nil, nil, []byte("x")), closed},
		{"OpenAgain", req(gm.UPR_OPEN, make([]byte, 8), []byte("again"), nil), einval},
		{"OpenShortExtras", req(gm.UPR_OPEN, make([]byte, 4), []byte("again"), nil), closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := producer(t)
			if o := answerOf(t, d, d.send(tc.req)); o != tc.want {
				t.Fatalf("got %v, want %v", o, tc.want)
			}
			wt.healthy()
		})
	}

	// Every opcode of DCP's range, bare, on a producer connection: kv_engine
	// answers those a producer serves (or EINVAL for their missing
	// fields), and disconnects for those it never takes from its consumer.
	wantOp := map[gm.CommandCode]outcome{
		0x50: closed,                     // DCP_OPEN without extras: EINVAL, closed
		0x51: closed,                     // ADD_STREAM: a consumer's command
		0x52: {status: gm.KEY_ENOENT},    // CLOSE_STREAM of no stream (vbucket 1)
		0x53: closed,                     // STREAM_REQ without extras: EINVAL, closed
		0x54: {status: gm.SUCCESS},       // GET_FAILOVER_LOG
		0x5a: {status: gm.NOT_SUPPORTED}, // FLUSH: obsolete
		0x5c: {status: gm.SUCCESS},       // NOOP
		0x5d: closed,                     // BUFFER_ACK without extras: EINVAL, closed
		0x5e: closed,                     // CONTROL without a key: EINVAL, closed
		0x61: einval,                     // SEQNO_ACKNOWLEDGED: no synchronous replication
		0x55: closed, 0x56: closed, 0x57: closed, 0x58: closed, 0x59: closed, 0x5b: closed,
		0x5f: closed, 0x60: closed, 0x62: closed, 0x63: closed, 0x64: closed, 0x65: closed,
	}
	for op := gm.CommandCode(0x50); op <= 0x65; op++ {
		t.Run(fmt.Sprintf("Opcode0x%02x", uint8(op)), func(t *testing.T) {
			d := producer(t)
			r := req(op, nil, nil, nil)
			r.VBucket = 1
			if o := answerOf(t, d, d.send(r)); o != wantOp[op] {
				t.Fatalf("got %v, want %v", o, wantOp[op])
			}
		})
	}
	wt.healthy()
	// The same on a connection that is not DCP: EINVAL, and it stays
	// open (but the malformed and the obsolete as above).
	t.Run("NotDCP", func(t *testing.T) {
		plain := dialDCP(t, addr)
		for _, op := range []gm.CommandCode{0x51, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65} {
			if o := answerOf(t, plain, plain.send(req(op, nil, nil, nil))); o != einval {
				t.Fatalf("opcode 0x%02x: %v, want EINVAL", uint8(op), o)
			}
		}
		if res := plain.call(gm.MCRequest{Opcode: gm.NOOP}); res.VBucket != 0 {
			t.Fatalf("NOOP: 0x%x", res.VBucket)
		}
	})

	// Headers that cannot be trusted: the connection is closed.
	header := func(magic byte, op gm.CommandCode, keyLen uint16, extLen uint8, bodyLen uint32) []byte {
		h := make([]byte, 24)
		h[0], h[1] = magic, byte(op)
		binary.BigEndian.PutUint16(h[2:], keyLen)
		h[4] = extLen
		binary.BigEndian.PutUint32(h[8:], bodyLen)
		return h
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"ExtrasPastBody", append(header(0x80, gm.UPR_BUFFERACK, 0, 20, 8), make([]byte, 8)...)},
		{"KeyPastBody", append(header(0x80, gm.UPR_CONTROL, 100, 0, 10), make([]byte, 10)...)},
		{"HugeBody", header(0x80, gm.UPR_MUTATION, 0, 0, 0xfffffff0)},
		{"BadMagic", append(header(0x42, gm.UPR_NOOP, 0, 0, 0), 0x42)},
		{"RandomBytes", func() []byte {
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(rand.UintN(256))
			}
			b[0] = 0x99
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := producer(t)
			start := time.Now()
			d.c.Write(tc.raw)
			if o := answerOf(t, d, 0xffffffff); !o.closed {
				t.Fatalf("got %v, want closed", o)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("closed after %v", el)
			}
			wt.healthy()
		})
	}
	// A packet cut short, then the consumer stops writing: the producer
	// waits for the rest without cost, and ends when the consumer goes.
	t.Run("Truncated", func(t *testing.T) {
		d := producer(t)
		raw := append(header(0x80, gm.UPR_CONTROL, 11, 0, 100), "enable_noop"...)
		d.c.Write(raw)
		wt.healthy()
		d.c.(*net.TCPConn).CloseWrite()
		if o := answerOf(t, d, 0xffffffff); !o.closed {
			t.Fatalf("got %v, want closed", o)
		}
		wt.healthy()
	})

	// Responses (magic 0x81) that answer nothing the producer sent, as
	// kv_engine takes them: those that concern one stream are tolerated
	// and the producer streams on; a failure of another kind, a stray
	// NOOP response, or a response to what is not a DCP message closes
	// the connection.
	stray := func(op gm.CommandCode, status gm.Status) gm.MCResponse {
		return gm.MCResponse{Opcode: op, Opaque: 0xdead0000, Status: status, Key: []byte("k"), Body: []byte("body")}
	}
	t.Run("StrayResponsesTolerated", func(t *testing.T) {
		d := producer(t)
		var buf []byte
		for _, res := range []gm.MCResponse{
			stray(gm.UPR_MUTATION, gm.SUCCESS),
			stray(gm.UPR_MUTATION, gm.NOT_MY_VBUCKET),
			stray(gm.UPR_DELETION, gm.KEY_EEXISTS),
			stray(gm.UPR_MUTATION, gm.KEY_ENOENT),
			stray(gm.UPR_SNAPSHOT, gm.EINVAL),
			stray(gm.DCP_SET_VBUCKET_STATE, gm.TMPFAIL),
			stray(gm.UPR_STREAMEND, gm.KEY_ENOENT),
			stray(gm.DCP_SYSTEM_EVENT, 0x0a),
		} {
			buf, _ = res.AppendTo(buf)
		}
		if _, err := d.c.Write(buf); err != nil {
			t.Fatal(err)
		}
		// The producer still streams on that connection.
		if res := wt.w.call(gm.MCRequest{Opcode: gm.SET, Key: []byte("after-responses"), Extras: make([]byte, 8), Body: []byte("v")}); res.VBucket != 0 {
			t.Fatalf("SET: 0x%x", res.VBucket)
		}
		for {
			pkt, magic := d.must()
			if magic == gm.REQ_MAGIC && pkt.Opcode == gm.UPR_MUTATION && string(pkt.Key) == "after-responses" {
				break
			}
		}
		wt.healthy()
	})
	for _, tc := range []struct {
		name string
		res  gm.MCResponse
	}{
		{"MutationFailed", stray(gm.UPR_MUTATION, gm.EINVAL)},
		{"StreamEndFailed", stray(gm.UPR_STREAMEND, gm.TMPFAIL)},
		{"CommitUnknownKey", stray(gm.DCP_COMMIT, gm.KEY_ENOENT)},
		{"NoopNotSent", stray(gm.UPR_NOOP, gm.SUCCESS)},
		{"NotDCP", stray(gm.GET, gm.SUCCESS)},
		{"UnknownOpcode", stray(0xf0, gm.SUCCESS)},
	} {
		t.Run("StrayResponseCloses"+tc.name, func(t *testing.T) {
			d := producer(t)
			buf, _ := tc.res.AppendTo(nil)
			if _, err := d.c.Write(buf); err != nil {
				t.Fatal(err)
			}
			if o := answerOf(t, d, 0xffffffff); !o.closed {
				t.Fatalf("got %v, want closed", o)
			}
			wt.healthy()
		})
	}
	// With v7_dcp_status_codes, KEY_EEXISTS closes too.
	t.Run("StrayResponseClosesV7", func(t *testing.T) {
		d := producer(t)
		if res := d.call(gm.MCRequest{Opcode: gm.UPR_CONTROL, Key: []byte("v7_dcp_status_codes"), Body: []byte("true")}); res.VBucket != 0 {
			t.Fatalf("control: 0x%x", res.VBucket)
		}
		res := stray(gm.UPR_MUTATION, gm.KEY_EEXISTS)
		buf, _ := res.AppendTo(nil)
		if _, err := d.c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if o := answerOf(t, d, 0xffffffff); !o.closed {
			t.Fatalf("got %v, want closed", o)
		}
	})
}
