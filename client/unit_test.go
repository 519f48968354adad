package memcached

// Tests of the parts that need no server: encoding, the opaque map, the
// error types, and the client on an in-memory pipe.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// The client's own encoder writes what MCRequest.AppendTo writes.
func TestRequestEncoding(t *testing.T) {
	frames, _ := gomemcached.AppendFrame(nil, gomemcached.FramePreserveExpiry, nil)
	cases := []struct {
		name string
		r    request
		want gomemcached.MCRequest
	}{
		{"get", request{opcode: gomemcached.GET, vb: 7, key: "key"},
			gomemcached.MCRequest{Opcode: gomemcached.GET, VBucket: 7, Key: []byte("key")}},
		{"set", request{opcode: gomemcached.SET, cas: 99, key: "k", extras: []byte{1, 2, 3, 4, 5, 6, 7, 8}, body: []byte("value"), datatype: 3},
			gomemcached.MCRequest{Opcode: gomemcached.SET, Cas: 99, Key: []byte("k"), Extras: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Body: []byte("value"), DataType: 3}},
		{"noop", request{opcode: gomemcached.NOOP},
			gomemcached.MCRequest{Opcode: gomemcached.NOOP}},
		{"long key", request{opcode: gomemcached.GET, key: strings.Repeat("x", 300)},
			gomemcached.MCRequest{Opcode: gomemcached.GET, Key: bytes.Repeat([]byte("x"), 300)}},
		{"collection", request{opcode: gomemcached.GET, key: "k", cid: [5]byte{0x80, 0x01}, cidLen: 2},
			gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte("k"), CollId: [5]byte{0x80, 0x01}, CollIdLen: 2}},
		{"frames", request{opcode: gomemcached.SET, key: "k", extras: make([]byte, 8), frames: frames},
			gomemcached.MCRequest{Opcode: gomemcached.SET, Key: []byte("k"), Extras: make([]byte, 8),
				FramingExtras: []gomemcached.FrameInfo{{ObjId: gomemcached.FramePreserveExpiry}}}},
	}
	for _, tc := range cases {
		tc.want.Opaque = 0x80000123
		want, err := tc.want.AppendTo(nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := tc.r.appendTo([]byte("prefix"), 0x80000123)
		if err != nil || !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
			t.Errorf("%s:\n got % x, %v\nwant % x", tc.name, got, err, want)
		}
		// Through full, with the opaque replaced.
		full := request{full: &tc.want}
		tc.want.Opaque = 1
		got, err = full.appendTo(nil, 0x80000123)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s via AppendTo: % x, %v", tc.name, got, err)
		}
	}
	bad := []request{
		{opcode: gomemcached.SET, extras: make([]byte, 256)},
		{opcode: gomemcached.GET, key: strings.Repeat("k", 70000)},
		{opcode: gomemcached.GET, key: strings.Repeat("k", 300), frames: frames},
	}
	for _, r := range bad {
		dst := []byte("keep")
		out, err := r.appendTo(dst, 1)
		if !errors.Is(err, gomemcached.ErrProtocol) || string(out) != "keep" {
			t.Errorf("bad request encoded: %q, %v", out, err)
		}
	}
}

func TestOwnResponse(t *testing.T) {
	buf := []byte("ffeeeekkkvvvv")
	src := &gomemcached.MCResponse{Opcode: gomemcached.GET, Status: 1, Opaque: 2, Cas: 3, DataType: 4,
		FlexibleExtras: buf[0:2], Extras: buf[2:6], Key: buf[6:9], Body: buf[9:]}
	own := ownResponse(src)
	copy(buf, "XXXXXXXXXXXXX")
	if string(own.FlexibleExtras) != "ff" || string(own.Extras) != "eeee" || string(own.Key) != "kkk" ||
		string(own.Body) != "vvvv" || own.Opcode != src.Opcode || own.Status != 1 || own.Opaque != 2 ||
		own.Cas != 3 || own.DataType != 4 {
		t.Errorf("copy %v", own)
	}
	own.Key = append(own.Key, 'x') // capped: must not run into the body
	if string(own.Body) != "vvvv" {
		t.Error("sections share capacity")
	}
	empty := ownResponse(&gomemcached.MCResponse{Opcode: gomemcached.NOOP})
	if empty.Body != nil || empty.Extras != nil || empty.FlexibleExtras != nil {
		t.Error("empty packet got sections")
	}
	noBody := ownResponse(&gomemcached.MCResponse{Extras: []byte{0, 0, 0, 0}, Body: buf[:0]})
	if noBody.Body == nil || len(noBody.Body) != 0 || noBody.FlexibleExtras != nil {
		t.Errorf("empty value of a non-empty packet: %#v", noBody.Body)
	}
}

func TestOpaqueMap(t *testing.T) {
	var m opaqueMap
	a, b := &waiter{}, &waiter{}
	if op := m.add(a, 1); op != opaqueTag {
		t.Errorf("first opaque %#x", op)
	}
	if op := m.add(b, 10); op != opaqueTag+1 {
		t.Errorf("range starts at %#x", op)
	}
	if w, taken := m.route(opaqueTag); w != a || !taken {
		t.Error("single waiter not taken")
	}
	if w, taken := m.route(opaqueTag + 10); w != b || taken {
		t.Error("range waiter not routed")
	}
	if w, _ := m.route(opaqueTag + 11); w != nil {
		t.Error("routed past the range")
	}
	// Wrapping skips opaques in use.
	m.next = opaqueTag - 2
	c, d := &waiter{}, &waiter{}
	if op := m.add(c, 5); op != opaqueTag+15 {
		t.Errorf("after wrap: %#x, want %#x (the first block of 5 past the live range)", op, opaqueTag+15)
	}
	if op := m.add(d, 1); op != opaqueTag+20 {
		t.Errorf("next: %#x", op)
	}
	for _, w := range []*waiter{b, c, d} {
		if !m.remove(w, w.base, w.n) {
			t.Errorf("remove(%#x) found nothing", w.base)
		}
	}
	if m.len() != 0 {
		t.Errorf("%d left", m.len())
	}
	if m.remove(b, b.base, b.n) || m.remove(d, d.base, d.n) {
		t.Error("removed twice")
	}
	m.add(a, 1)
	m.add(b, 3)
	if all := m.drain(); len(all) != 2 || m.len() != 0 {
		t.Errorf("drain returned %d", len(all))
	}
}

func TestErrorTypes(t *testing.T) {
	te := &TimeoutError{Op: gomemcached.GET}
	var ne net.Error = te
	if !ne.Timeout() || !errors.Is(te, os.ErrDeadlineExceeded) || !errors.Is(te, context.DeadlineExceeded) ||
		errors.Is(te, ErrClosed) || !strings.Contains(te.Error(), "GET") {
		t.Errorf("TimeoutError: %v", te)
	}
	ce := &ConnError{Err: io.EOF}
	if !errors.Is(ce, ErrClosed) || !errors.Is(ce, io.EOF) || errors.Is(ce, ErrStuck) {
		t.Errorf("ConnError: %v", ce)
	}
	if st := (&ConnError{Err: ErrStuck}); !errors.Is(st, os.ErrDeadlineExceeded) || !errors.Is(st, ErrStuck) {
		t.Errorf("stuck: %v", st)
	}
	ke := checkKey(strings.Repeat("k", 251))
	if !errors.Is(ke, ErrKeyTooLong) || !errors.Is(ke, gomemcached.ErrInvalidArguments) || !strings.Contains(ke.Error(), "251") {
		t.Errorf("key error: %v", ke)
	}
	if checkKey(strings.Repeat("k", 250)) != nil {
		t.Error("250-byte key refused")
	}
	res := &gomemcached.MCResponse{Status: gomemcached.KEY_EEXISTS}
	rv, err := UnwrapMemcachedError(res, res)
	if rv != res || err != nil {
		t.Errorf("UnwrapMemcachedError(res, res) = %v, %v", rv, err)
	}
	if _, err := UnwrapMemcachedError(res, io.EOF); err != io.EOF {
		t.Errorf("UnwrapMemcachedError(res, EOF) = %v", err)
	}
	if _, err := UnwrapMemcachedError(nil, nil); err != nil {
		t.Error(err)
	}
}

// pipeServer answers requests on one end of a net.Pipe with handle.
func pipeServer(t *testing.T, handle func(req *gomemcached.MCRequest) []*gomemcached.MCResponse) *Client {
	cli, srv := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer srv.Close()
		rd := gomemcached.NewReader(srv)
		var req gomemcached.MCRequest
		for rd.ReadRequest(&req) == nil {
			for _, res := range handle(&req) {
				if _, err := res.Transmit(srv); err != nil {
					return
				}
			}
		}
	})
	c := NewClient(cli, ClientOptions{})
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return c
}

// The client works on any MemcachedConnection; net.Pipe is unbuffered, so
// this also shows that writes and reads never wait on each other.
func TestPipe(t *testing.T) {
	store := map[string][]byte{}
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		res := &gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		switch req.Opcode {
		case gomemcached.SET:
			store[string(req.Key)] = append([]byte(nil), req.Body...)
		case gomemcached.GET, gomemcached.GETQ:
			v, ok := store[string(req.Key)]
			if !ok {
				if req.Opcode == gomemcached.GETQ {
					return nil
				}
				res.Status = gomemcached.KEY_ENOENT
			}
			res.Extras, res.Body = []byte{0, 0, 0, 0}, v
		case gomemcached.STAT:
			return []*gomemcached.MCResponse{
				{Opcode: gomemcached.STAT, Opaque: req.Opaque, Key: []byte("a"), Body: []byte("1")},
				{Opcode: gomemcached.STAT, Opaque: req.Opaque, Key: []byte("b"), Body: []byte("2")},
				res,
			}
		}
		return []*gomemcached.MCResponse{res}
	})
	big := bytes.Repeat([]byte("0123456789"), 100_000)
	ok(t)(c.Set(0, "big", 0, 0, big))
	var keys []string
	for i := range 2000 {
		k := "k" + strings.Repeat("x", i%50) + string(rune('a'+i%26))
		keys = append(keys, k)
		if i%3 == 0 {
			ok(t)(c.Set(0, k, 0, 0, []byte(k)))
		}
	}
	keys = append(keys, "big")
	rv := map[string]*gomemcached.MCResponse{}
	if err := c.GetBulk(0, keys, rv, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rv["big"].Body, big) || len(rv) != len(store) {
		t.Errorf("bulk over a pipe: %d results, want %d", len(rv), len(store))
	}
	m, err := c.StatsMap("")
	if err != nil || m["a"] != "1" || m["b"] != "2" || len(m) != 2 {
		t.Errorf("stats over a pipe: %v, %v", m, err)
	}
	_, err = c.Get(0, "nope")
	if !gomemcached.IsNotFound(err) {
		t.Errorf("miss over a pipe: %v", err)
	}
}

// Wrap never fails, and Close closes the transport, as in the reference.
func TestWrapClose(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	c, err := Wrap(cli)
	if err != nil || !c.IsHealthy() {
		t.Fatalf("Wrap: %v", err)
	}
	c.Close()
	if _, err := cli.Write([]byte{0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("transport not closed: %v", err)
	}
}

// The package-level settings are read under a lock when a client is made.
func TestDefaults(t *testing.T) {
	dial, write, name := DefaultDialTimeout, DefaultWriteTimeout, ConnName
	defer func() {
		SetDefaultTimeouts(dial, 0, write)
		SetConnectionName(name)
	}()
	SetDefaultTimeouts(time.Second, 2*time.Second, 3*time.Second)
	SetDefaultDialTimeout(4 * time.Second)
	SetConnectionName("other")
	o := ClientOptions{}.resolve()
	if o.DialTimeout != 4*time.Second || o.ReadTimeout != 2*time.Second || o.WriteTimeout != 3*time.Second ||
		o.StuckTimeout != DefaultStuckTimeout || o.ReceiveQueue != defaultReceiveQueue {
		t.Errorf("resolved %+v", o)
	}
	if o := (ClientOptions{ReadTimeout: time.Minute, StuckTimeout: -1}).resolve(); o.ReadTimeout != time.Minute || o.StuckTimeout != -1 {
		t.Errorf("explicit options overridden: %+v", o)
	}
	cli, srv := net.Pipe()
	defer srv.Close()
	c := NewClient(cli, ClientOptions{})
	defer c.Close()
	if !strings.HasPrefix(c.GetConnName(), "other:") {
		t.Errorf("name %q", c.GetConnName())
	}
}

// The reference's hooks, set before a client is made, see its packets.
func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var sent, received []gomemcached.CommandCode
	TransmitHook = func(req *gomemcached.MCRequest, n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if n != req.Size() || err != nil {
			t.Errorf("TransmitHook: %v %d %v", req, n, err)
		}
		sent = append(sent, req.Opcode)
	}
	ReceiveHook = func(res *gomemcached.MCResponse, n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if res != nil {
			received = append(received, res.Opcode)
		}
	}
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
	})
	TransmitHook, ReceiveHook = nil, nil
	ok(t)(c.Set(0, "k", 0, 0, []byte("v")))
	ok(t)(c.Get(0, "k"))
	mu.Lock()
	defer mu.Unlock()
	want := []gomemcached.CommandCode{gomemcached.SET, gomemcached.GET}
	if !slices.Equal(sent, want) || !slices.Equal(received, want) {
		t.Errorf("hooks saw sent %v, received %v", sent, received)
	}
}

// rawServer runs serve on the server end of a net.Pipe and returns a client
// on the other end, with opts.
func rawServer(t *testing.T, opts ClientOptions, serve func(srv net.Conn)) *Client {
	cli, srv := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer srv.Close()
		serve(srv)
	})
	c := NewClient(cli, opts)
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return c
}

func TestTransmitResponse(t *testing.T) {
	got := make(chan []byte, 1)
	c := rawServer(t, ClientOptions{}, func(srv net.Conn) {
		b := make([]byte, 24+5)
		io.ReadFull(srv, b)
		got <- b
		io.Copy(io.Discard, srv)
	})
	res := &gomemcached.MCResponse{Opcode: gomemcached.UPR_NOOP, Opaque: 42, Body: []byte("hello")}
	if err := c.TransmitResponse(res); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, res.Bytes()) {
		t.Errorf("wrote % x, want % x", b, res.Bytes())
	}
}

// With the features negotiated (as HELLO will), a ClientContext puts its
// collection, user, expiry and durability on the wire.
func TestContextOnTheWire(t *testing.T) {
	reqs := make(chan gomemcached.MCRequest, 1)
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		cp := *req
		cp.Key = append([]byte(nil), req.Key...)
		cp.FramingExtras = append([]gomemcached.FrameInfo(nil), req.FramingExtras...)
		for i := range cp.FramingExtras {
			cp.FramingExtras[i].ObjData = append([]byte(nil), cp.FramingExtras[i].ObjData...)
		}
		reqs <- cp
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
	})
	c.c.feat.collections.Store(true)
	c.c.feat.preserveExpiry.Store(true)
	c.c.feat.syncRepl.Store(true)
	cc := &ClientContext{CollId: 0x80, User: "bob", PreserveExpiry: true,
		DurabilityLevel: gomemcached.DuraMajority, DurabilityTimeout: 1500 * time.Millisecond, Compressed: true}
	ok(t)(c.Set(0, "key", 0, 0, []byte("v"), cc))
	req := <-reqs
	if string(req.Key) != "\x80\x01key" || req.DataType != gomemcached.DatatypeFlagJSON|gomemcached.DatatypeFlagCompressed {
		t.Errorf("key % x, datatype %d", req.Key, req.DataType)
	}
	want := []gomemcached.FrameInfo{
		{ObjId: gomemcached.FrameImpersonate, ObjLen: 3, ObjData: []byte("bob")},
		{ObjId: gomemcached.FramePreserveExpiry, ObjData: []byte{}},
		{ObjId: gomemcached.FrameDurability, ObjLen: 3, ObjData: []byte{1, 0x05, 0xdc}},
	}
	if len(req.FramingExtras) != len(want) {
		t.Fatalf("frames %+v", req.FramingExtras)
	}
	for i, f := range req.FramingExtras {
		if f.ObjId != want[i].ObjId || !bytes.Equal(f.ObjData, want[i].ObjData) {
			t.Errorf("frame %d: %+v, want %+v", i, f, want[i])
		}
	}
	// InitExtras sizes GET_ALL_VB_SEQNOS extras by the features.
	state := VbActive
	for _, tc := range []struct {
		cc   ClientContext
		op   gomemcached.CommandCode
		want int
	}{
		{ClientContext{}, gomemcached.GET_ALL_VB_SEQNOS, 8},
		{ClientContext{VbState: &state}, gomemcached.GET_ALL_VB_SEQNOS, 8},
		{ClientContext{VbState: &state}, gomemcached.GET, 0},
	} {
		req := &gomemcached.MCRequest{Opcode: tc.op}
		tc.cc.InitExtras(req, c)
		if len(req.Extras) != tc.want {
			t.Errorf("InitExtras(%+v, %v): %d bytes, want %d", tc.cc, tc.op, len(req.Extras), tc.want)
		}
	}
	c.c.feat.collections.Store(false)
	req0 := &gomemcached.MCRequest{Opcode: gomemcached.GET_ALL_VB_SEQNOS}
	(&ClientContext{VbState: &state}).InitExtras(req0, c)
	if len(req0.Extras) != 4 {
		t.Errorf("InitExtras without collections: %d bytes", len(req0.Extras))
	}
}

// A full Receive queue stops the reader until Receive makes room; nothing
// is lost or reordered.
func TestReceiveBackpressure(t *testing.T) {
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
	})
	c.c.raw = make(chan rawPacket, 2) // as ReceiveQueue: 2
	// net.Pipe buffers nothing: once the queue is full, the server blocks
	// on its answers and Transmit on its requests, so transmit apart.
	done := make(chan error, 1)
	go func() {
		for i := uint32(1); i <= 6; i++ {
			if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: i}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(20 * time.Millisecond)
	if len(c.c.raw) != 2 {
		t.Errorf("queue holds %d responses, want 2", len(c.c.raw))
	}
	for i := uint32(1); i <= 6; i++ {
		res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
		if err != nil || res.Opaque != i {
			t.Fatalf("Receive %d: %v, %v", i, res, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// opaqueConn hides that a transport is a net.Conn.
type opaqueConn struct{ nc net.Conn }

func (o opaqueConn) Read(b []byte) (int, error)        { return o.nc.Read(b) }
func (o opaqueConn) Write(b []byte) (int, error)       { return o.nc.Write(b) }
func (o opaqueConn) Close() error                      { return o.nc.Close() }
func (o opaqueConn) SetReadDeadline(t time.Time) error { return o.nc.SetReadDeadline(t) }
func (o opaqueConn) SetDeadline(t time.Time) error     { return o.nc.SetDeadline(t) }

// Hijack of a transport that is not a net.Conn hands the queued responses
// back first too.
func TestHijackPlainTransport(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	go func() {
		rd := gomemcached.NewReader(srv)
		var req gomemcached.MCRequest
		for rd.ReadRequest(&req) == nil {
			res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
			res.Transmit(srv)
		}
	}()
	c := NewClient(opaqueConn{cli}, ClientOptions{})
	defer c.Close()
	c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 7})
	waitFor(t, "the response", func() bool { return len(c.c.raw) > 0 })
	conn := c.Hijack()
	if _, ok := conn.(*prefixConn); !ok {
		t.Fatalf("hijacked %T", conn)
	}
	var res gomemcached.MCResponse
	if _, err := res.Receive(conn, nil); err != nil || res.Opaque != 7 {
		t.Errorf("first packet: %v, %v", res, err)
	}
	req := gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 8}
	req.Transmit(conn)
	if _, err := res.Receive(conn, nil); err != nil || res.Opaque != 8 {
		t.Errorf("after the prefix: %v, %v", res, err)
	}
	conn.Close()
}
