package gomemcached

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// repeatReader returns the same bytes over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// pipeline returns n SETs with keys and values of growing length.
func pipeline(n int) ([]MCRequest, []byte) {
	var reqs []MCRequest
	var wire []byte
	for i := range n {
		req := MCRequest{
			Opcode: SETQ, Opaque: uint32(i), Cas: uint64(i) << 32, VBucket: uint16(i % 1024),
			Extras: []byte{0, 0, 0, byte(i), 0, 0, 0, 0},
			Key:    fmt.Appendf(nil, "key:%d", i),
			Body:   bytes.Repeat([]byte{byte(i)}, i*37),
		}
		if i%3 == 0 {
			req.FramingExtras = []FrameInfo{NewStreamIDFrame(uint16(i))}
		}
		reqs = append(reqs, req)
		wire, _ = req.AppendTo(wire)
	}
	return reqs, wire
}

func TestReaderPipelined(t *testing.T) {
	reqs, wire := pipeline(300)
	for name, src := range map[string]io.Reader{
		"whole":         bytes.NewReader(wire),
		"byte by byte":  iotest.OneByteReader(bytes.NewReader(wire)),
		"half reads":    iotest.HalfReader(bytes.NewReader(wire)),
		"data with EOF": iotest.DataErrReader(bytes.NewReader(wire)),
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReaderSize(src, 64)
			var got MCRequest
			for i := range reqs {
				if err := r.ReadRequest(&got); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				want := reqs[i]
				want.Keylen = len(want.Key)
				want.FramingElen = want.framesLen()
				sameRequest(t, &got, &want)
			}
			if err := r.ReadRequest(&got); err != io.EOF {
				t.Fatalf("after the last packet: %v, want io.EOF", err)
			}
		})
	}
}

func TestReaderReady(t *testing.T) {
	_, wire := pipeline(3)
	r := NewReader(bytes.NewReader(wire))
	if r.Ready() || r.Buffered() != 0 {
		t.Fatal("Ready before any read")
	}
	var req MCRequest
	for i := range 3 {
		if err := r.ReadRequest(&req); err != nil {
			t.Fatal(err)
		}
		if rest := wire[len(wire)-r.Buffered():]; !bytes.Equal(r.BufferedBytes(), rest) {
			t.Fatalf("after packet %d: BufferedBytes is not the rest of the stream", i)
		}
		if want := i < 2; r.Ready() != want {
			t.Fatalf("after packet %d: Ready = %v, want %v (buffered %d)", i, r.Ready(), want, r.Buffered())
		}
	}
	// Half a packet buffered is not Ready.
	r = NewReader(iotest.OneByteReader(bytes.NewReader(wire)))
	r.fill(30)
	if r.Ready() {
		t.Fatal("Ready with half a packet")
	}
}

func TestReaderLimitsAndShrinks(t *testing.T) {
	small := MCRequest{Opcode: GET, Key: []byte("k")}
	large := MCRequest{Opcode: SET, Key: []byte("k"), Body: make([]byte, 1<<20)}
	var wire []byte
	wire, _ = large.AppendTo(wire)
	wire, _ = small.AppendTo(wire)
	r := NewReader(bytes.NewReader(wire))
	var req MCRequest
	if err := r.ReadRequest(&req); err != nil || len(req.Body) != 1<<20 {
		t.Fatalf("large packet: %v", err)
	}
	if err := r.ReadRequest(&req); err != nil || string(req.Key) != "k" {
		t.Fatalf("small packet: %v", err)
	}
	if err := r.ReadRequest(&req); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if cap(r.buf) > maxRetainedBuffer {
		t.Fatalf("buffer of %d bytes kept after the large packet", cap(r.buf))
	}

	r = NewReader(bytes.NewReader(wire))
	r.MaxValue = 1000
	if err := r.ReadRequest(&req); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("MaxValue 1000: %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestReaderPassesStreamErrors(t *testing.T) {
	sentinel := errors.New("deadline")
	var req MCRequest
	if err := NewReader(failingReader{sentinel}).ReadRequest(&req); err != sentinel {
		t.Fatalf("ReadRequest = %v, want the stream's error", err)
	}
	if err := NewReader(failingReader{nil}).ReadRequest(&req); err != io.ErrNoProgress {
		t.Fatalf("a reader that returns nothing: %v, want io.ErrNoProgress", err)
	}
	var res MCResponse
	if _, err := res.Receive(failingReader{sentinel}, nil); err != sentinel {
		t.Fatalf("Receive = %v, want the stream's error", err)
	}
	r := NewReader(bytes.NewReader([]byte{0x80}))
	r.Reset(bytes.NewReader(goldenRequests[0].wire))
	if err := r.ReadRequest(&req); err != nil || string(req.Key) != "Hello" || r.Magic() != REQ_MAGIC {
		t.Fatalf("after Reset: %v", err)
	}
}

// The hot paths allocate nothing: reading pipelined packets through a
// Reader, encoding into a reused buffer, Transmit of small packets, and
// ReceiveWithBuf. Plain Receive allocates once, for the body.
func TestAllocations(t *testing.T) {
	set := MCRequest{Opcode: SET, Key: []byte("key:000001"), Extras: make([]byte, 8), Body: make([]byte, 100)}
	flex := set
	flex.FramingExtras = []FrameInfo{NewDurabilityFrame(DuraMajority, 500)}
	res := MCResponse{Opcode: GET, Extras: make([]byte, 4), Body: make([]byte, 100)}
	setWire, flexWire, resWire := set.Bytes(), flex.Bytes(), res.Bytes()

	var req MCRequest
	var got MCResponse
	buf := make([]byte, 0, 512)
	body := make([]byte, 512)
	hdr := make([]byte, HDR_LEN)
	rSet := NewReader(&repeatReader{data: setWire})
	rFlex := NewReader(&repeatReader{data: flexWire})
	rRes := NewReader(&repeatReader{data: resWire})
	resSrc := &repeatReader{data: resWire}
	setSrc := &repeatReader{data: setWire}

	for _, tc := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"Reader.ReadRequest", 0, func() { rSet.ReadRequest(&req) }},
		{"Reader.ReadRequest with frames", 0, func() { rFlex.ReadRequest(&req) }},
		{"Reader.ReadResponse", 0, func() { rRes.ReadResponse(&got) }},
		{"MCRequest.AppendTo", 0, func() { buf, _ = set.AppendTo(buf[:0]) }},
		{"MCRequest.AppendTo with frames", 0, func() { buf, _ = flex.AppendTo(buf[:0]) }},
		{"MCResponse.AppendTo", 0, func() { buf, _ = res.AppendTo(buf[:0]) }},
		{"MCRequest.Transmit", 0, func() { set.Transmit(io.Discard) }},
		{"MCResponse.Transmit", 0, func() { res.Transmit(io.Discard) }},
		{"MCResponse.ReceiveWithBuf", 0, func() { got.ReceiveWithBuf(resSrc, hdr, body) }},
		{"MCResponse.Receive", 1, func() { got.Receive(resSrc, hdr) }},
		{"MCResponse.Receive without header buffer", 1, func() { got.Receive(resSrc, nil) }},
		{"MCRequest.Receive", 1, func() { req.Receive(setSrc, hdr) }},
	} {
		if n := testing.AllocsPerRun(500, tc.f); n > tc.max {
			t.Errorf("%s: %v allocations per run, want at most %v", tc.name, n, tc.max)
		}
	}
}

// Packets read with Receive do not share memory with earlier ones.
func TestReceiveDoesNotAlias(t *testing.T) {
	_, wire := pipeline(5)
	src := bytes.NewReader(wire)
	hdr := make([]byte, HDR_LEN)
	var kept [][]byte
	for range 5 {
		var req MCRequest
		if _, err := req.Receive(src, hdr); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, req.Key)
	}
	for i, k := range kept {
		if want := fmt.Sprintf("key:%d", i); string(k) != want {
			t.Fatalf("key %d = %q, want %q", i, k, want)
		}
	}
}

func TestReceiveWithDatapool(t *testing.T) {
	wire := goldenResponses[1].wire // GET hit, 9-byte body
	var given, returned [][]byte
	getter := func(n uint64) ([]byte, error) {
		b := make([]byte, n, n+10)
		given = append(given, b)
		return b, nil
	}
	done := func(b []byte) { returned = append(returned, b) }
	var res MCResponse
	if _, err := res.ReceiveWithDatapool(bytes.NewReader(wire), nil, getter, done); err != nil {
		t.Fatal(err)
	}
	if string(res.Body) != "World" || len(given) != 1 || &res.Extras[0] != &given[0][0] {
		t.Fatalf("body %q, %d buffers given", res.Body, len(given))
	}
	res.Recycle()
	res.Recycle()
	if len(returned) != 1 || &returned[0][0] != &given[0][0] {
		t.Fatalf("Recycle returned %d buffers", len(returned))
	}
	// A failing getter falls back to an allocation that Recycle ignores.
	failing := func(uint64) ([]byte, error) { return nil, errors.New("pool empty") }
	if _, err := res.ReceiveWithDatapool(bytes.NewReader(wire), nil, failing, done); err != nil || string(res.Body) != "World" {
		t.Fatalf("fallback: %v", err)
	}
	res.Recycle()
	// A getter that returns too small a buffer gets it back at once.
	tiny := func(uint64) ([]byte, error) { return make([]byte, 1), nil }
	if _, err := res.ReceiveWithDatapool(bytes.NewReader(wire), nil, tiny, done); err != nil || string(res.Body) != "World" {
		t.Fatalf("small buffer: %v", err)
	}
	res.Recycle()
	if len(returned) != 2 || len(returned[1]) != 1 {
		t.Fatalf("returned %d buffers", len(returned))
	}
	// A buffer a caller fills itself can be attached too.
	own := make([]byte, 8)
	res.SetRecycle(own, done)
	res.Recycle()
	res.Recycle()
	if len(returned) != 3 || &returned[2][0] != &own[0] {
		t.Fatalf("SetRecycle: returned %d buffers", len(returned))
	}
}

// errAgain stands for a non-blocking socket with nothing to read.
var errAgain = errors.New("would block")

// trickle returns at most n bytes per read and errAgain every other read.
type trickle struct {
	data []byte
	n    int
	odd  bool
}

func (t *trickle) Read(p []byte) (int, error) {
	t.odd = !t.odd
	if t.odd {
		return 0, errAgain
	}
	if len(t.data) == 0 {
		return 0, io.EOF
	}
	m := copy(p[:min(len(p), t.n)], t.data)
	t.data = t.data[m:]
	return m, nil
}

// An event loop reads with Fill and parses what Ready reports.
func TestReaderFillLoop(t *testing.T) {
	reqs, wire := pipeline(200)
	for _, chunk := range []int{1, 7, 100, 5000} {
		r := NewReaderSize(&trickle{data: wire, n: chunk}, 64)
		var got MCRequest
		i := 0
		for rounds := 0; i < len(reqs) && rounds < 10_000_000; rounds++ {
			if _, err := r.Fill(); err != nil && err != errAgain {
				t.Fatalf("chunk %d: Fill: %v after %d packets", chunk, err, i)
			}
			for r.Ready() {
				if err := r.ReadRequest(&got); err != nil {
					t.Fatal(err)
				}
				want := reqs[i]
				want.Keylen = len(want.Key)
				want.FramingElen = want.framesLen()
				sameRequest(t, &got, &want)
				i++
			}
		}
		if i != len(reqs) {
			t.Fatalf("chunk %d: %d packets of %d", chunk, i, len(reqs))
		}
		if _, err := r.Fill(); err != errAgain && err != io.EOF {
			t.Fatalf("at the end: %v", err)
		}
	}
}

// Fill refuses a bad header before growing the buffer for its body.
func TestReaderFillValidates(t *testing.T) {
	huge := hdr(REQ_MAGIC, byte(SET), 0, 1, 0, 0xffffffff)
	r := NewReaderSize(bytes.NewReader(huge), 64)
	if _, err := r.Fill(); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("Fill of a bad header: %v", err)
	}
	if cap(r.buf) > 64 {
		t.Fatalf("buffer grew to %d for a refused packet", cap(r.buf))
	}
	r = NewReaderSize(iotest.OneByteReader(bytes.NewReader([]byte("get foo bar baz qux quux corge\r\n"))), 64)
	var err error
	for i := 0; i < 24 && err == nil; i++ {
		_, err = r.Fill()
	}
	if !errors.Is(err, ErrBadMagic) {
		t.Fatalf("text protocol: %v", err)
	}
}
