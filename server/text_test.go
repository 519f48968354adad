package memcached

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/mctext"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// textSeen is what a TextHandler was given, copied out of the connection's
// buffer.
type textSeen struct {
	Line     string
	Fields   []string
	HasData  bool
	Data     string
	TooLarge bool
	BadChunk bool
}

func seen(req *TextRequest) textSeen {
	s := textSeen{Line: string(req.Line), HasData: req.HasData, Data: string(req.Data),
		TooLarge: req.TooLarge, BadChunk: req.BadChunk}
	for _, f := range req.Fields {
		s.Fields = append(s.Fields, string(f))
	}
	return s
}

func (s textSeen) String() string {
	out := strconv.Quote(s.Line)
	if s.HasData && !s.TooLarge {
		out += fmt.Sprintf(" data=%q", s.Data)
	}
	if s.TooLarge {
		out += " too-large"
	}
	if s.BadChunk {
		out += " bad-chunk"
	}
	return out
}

// textEcho is the tests' own TextHandler: a few of memcached's text
// commands over a map, answered byte for byte as memcached 1.6.18 answers
// them (set, get, gets of missing keys, quit; anything else is ERROR), so
// that the framing can be compared with memcached's on the same input.
// "panic" panics. It records every request when record is set.
type textEcho struct {
	mu     sync.Mutex
	data   map[string]textItem
	record bool
	reqs   []textSeen
	out    []byte // an answer being built, reused
}

type textItem struct {
	flags uint32
	data  []byte
}

func newTextEcho() *textEcho { return &textEcho{data: map[string]textItem{}} }

func (h *textEcho) ServeMC(w ResponseWriter, req *gm.MCRequest) {
	w.WriteStatus(req, gm.UNKNOWN_COMMAND, nil)
}

func (h *textEcho) ServeText(w ResponseWriter, req *TextRequest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.record {
		h.reqs = append(h.reqs, seen(req))
	}
	f := req.Fields
	reply := func(noreply bool, s string) {
		if !noreply {
			w.Write([]byte(s + "\r\n"))
		}
	}
	if len(f) == 0 || len(f[0]) < 2 {
		reply(false, "ERROR")
		return
	}
	switch string(f[0]) {
	case "set":
		// memcached's set_noreply_maybe looks at the last token.
		noreply := (len(f) == 5 || len(f) == 6) && string(f[len(f)-1]) == "noreply"
		switch {
		case req.TooLarge:
			delete(h.data, string(f[1]))
			reply(noreply, "SERVER_ERROR object too large for cache")
		case req.BadChunk:
			reply(noreply, "CLIENT_ERROR bad data chunk")
		case req.HasData:
			flags, _ := mctext.ParseUint32(f[2])
			h.data[string(f[1])] = textItem{flags, bytes.Clone(req.Data)}
			reply(noreply, "STORED")
		case len(f) == 5 || len(f) == 6:
			reply(noreply, "CLIENT_ERROR bad command line format")
		default:
			reply(false, "ERROR")
		}
	case "get", "gets":
		if len(f) < 2 {
			reply(false, "ERROR")
			return
		}
		out := h.out[:0]
		for _, k := range f[1:] {
			if len(k) > mctext.KeyMaxLength {
				reply(false, "CLIENT_ERROR bad command line format")
				return
			}
			if it, ok := h.data[string(k)]; ok {
				out = fmt.Appendf(out, "VALUE %s %d %d\r\n", k, it.flags, len(it.data))
				out = append(append(out, it.data...), "\r\n"...)
			}
		}
		h.out = append(out, "END\r\n"...)
		w.WriteValue(h.out)
	case "quit":
		w.Close()
	case "panic":
		panic("text handler panic")
	default:
		reply(false, "ERROR")
	}
}

func (h *textEcho) seen() []textSeen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]textSeen(nil), h.reqs...)
}

// textDecodeResult is what decoding an input whole saw.
type textDecodeResult struct {
	reqs      []textSeen
	err       error // the framing's, or the handler's panic
	midPacket bool  // input left at the end, inside a request
	maxBuf    int   // the largest the buffer grew
	maxPend   int   // the most bytes buffered and not decoded after a read
}

// decodeText runs the text decoder over src as a connection's step does,
// until src ends or the framing fails, with the server's limits.
func decodeText(srv *Server, src io.Reader, h TextHandler) textDecodeResult {
	if srv.Logger == nil {
		srv.Logger = quiet
	}
	c := &Conn{srv: srv, log: srv.Logger, t: nopTransport{}}
	d := c.newTextDecoder(src, nil)
	c.dec, c.text, c.textHandler = d, d, h
	var res textDecodeResult
	rec, _ := h.(*textEcho)
	for {
		for d.ready() {
			if err := d.serve(h); err != nil {
				res.err = err
				break
			}
			if c.closing {
				break
			}
		}
		if res.err != nil || c.closing {
			break
		}
		_, err := d.fill()
		res.maxBuf = max(res.maxBuf, len(d.buf))
		res.maxPend = max(res.maxPend, d.w-d.r)
		if err != nil {
			for res.err == nil && !c.closing && d.ready() {
				res.err = d.serve(h)
			}
			res.midPacket = res.err == nil && !c.closing && d.buffered() > 0
			break
		}
	}
	if rec != nil {
		res.reqs = rec.seen()
	}
	return res
}

// nopTransport is a connection's transport for driving the decoder
// without a socket: output stays in Conn.out.
type nopTransport struct{}

func (nopTransport) flush() error           { return nil }
func (nopTransport) writeLarge(body []byte) {}
func (nopTransport) serving() bool          { return true }
func (nopTransport) pause(time.Duration)    {}
func (nopTransport) queued()                {}
func (nopTransport) netConn() net.Conn      { return nil }
func (nopTransport) interrupt()             {}
func (nopTransport) abort()                 {}
func (nopTransport) kill()                  {}

// chunkReader returns its input in reads of the sizes in sizes (cycling),
// then io.EOF.
type chunkReader struct {
	in    []byte
	sizes []int
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.in) == 0 {
		return 0, io.EOF
	}
	n := len(r.in)
	if len(r.sizes) > 0 {
		n = min(n, max(1, r.sizes[r.i%len(r.sizes)]))
		r.i++
	}
	n = copy(p, r.in[:n])
	r.in = r.in[n:]
	return n, nil
}

// textPipeline is a pipeline of commands of every shape the framing tells
// apart.
var textPipeline = "set a 0 0 3\r\nabc\r\n" +
	"get a b\r\n" +
	"gets a\n" +
	"\r\n" +
	"\n" +
	"x\r\r\n" +
	"set b 5 0 4 noreply\r\na\r\nb\r\n" +
	"set c 0 0 1\r\nabcd\r\n" + // a bad chunk: "a", then "bc", then the line "d"
	"set d 0 0 -1\r\n" + // no block
	"set e 0 0 4294967297\r\nz\r\n" + // 2^32+1 is 1, as memcached's safe_strtol truncates it
	"cas f 0 0 2 7\r\nhi\r\n" +
	"append g 0 0 1\r\n!\r\n" +
	"ms h 2 T0\r\nhi\r\n" +
	"ms\r\n" +
	"set i 0 0 100\r\n" + strings.Repeat("v", 100) + "\r\n" + // too large at maxValue 64
	"set j 0 0 2\r\nab\r\n" +
	"get j\x00k\r\n" +
	"  get  a   b  \r\n" +
	"\x80\x0a\x00\x00\r\n" +
	"get " + strings.Repeat("k ", 1500) + "\r\n" + // a multi-get over 2048 bytes
	"quit\r\n"

// The decoder frames the same requests whatever the reads' sizes: all at
// once, one byte a read, and every split in two.
func TestTextFramingSplits(t *testing.T) {
	srv := &Server{TextMaxValueSize: 64, ReadBufferSize: 256}
	in := []byte(textPipeline)
	decode := func(sizes ...int) textDecodeResult {
		h := newTextEcho()
		h.record = true
		return decodeText(srv, &chunkReader{in: in, sizes: sizes}, h)
	}
	whole := decode()
	if whole.err != nil || whole.midPacket {
		t.Fatalf("whole input: err %v, mid-packet %v", whole.err, whole.midPacket)
	}
	want := []string{
		`"set a 0 0 3" data="abc"`, `"get a b"`, `"gets a"`, `"\r"`, `""`, `"x\r"`,
		`"set b 5 0 4 noreply" data="a\r\nb"`, `"set c 0 0 1" data="a" bad-chunk`, `"d"`,
		`"set d 0 0 -1"`, `"set e 0 0 4294967297" data="z"`, `"cas f 0 0 2 7" data="hi"`,
		`"append g 0 0 1" data="!"`, `"ms h 2 T0" data="hi"`, `"ms"`,
		`"set i 0 0 100" too-large`, `"set j 0 0 2" data="ab"`, `"get j\x00k"`, `"  get  a   b  "`,
		`"\x80"`, `"\x00\x00"`, strconv.Quote("get " + strings.Repeat("k ", 1500)), `"quit"`,
	}
	var got []string
	for _, r := range whole.reqs {
		got = append(got, r.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f := whole.reqs[17].Fields; !reflect.DeepEqual(f, []string{"get", "j"}) {
		t.Errorf("a NUL ends the fields: %q", f)
	}
	if f := whole.reqs[18].Fields; !reflect.DeepEqual(f, []string{"get", "a", "b"}) {
		t.Errorf("runs of spaces: %q", f)
	}
	check := func(name string, r textDecodeResult) {
		t.Helper()
		if r.err != nil || r.midPacket || !reflect.DeepEqual(r.reqs, whole.reqs) {
			t.Fatalf("%s: err %v, mid-packet %v, %d requests, not the %d of one read", name, r.err, r.midPacket, len(r.reqs), len(whole.reqs))
		}
	}
	check("one byte a read", decode(1))
	check("reads of 1, 2, 3, 5, 7, 11 and 13 bytes", decode(1, 2, 3, 5, 7, 11, 13))
	for i := 1; i < len(in); i++ {
		check(fmt.Sprintf("split at %d", i), decode(i, len(in)))
	}
}

// Input that ends inside a line or a data block is left undecoded: the
// connection ends mid-request, after serving what came before (a
// too-large block's command is served before its block is skipped).
func TestTextEOFMidRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		reqs int
	}{
		{"get a\r\nget b", 1},
		{"get a\r\nset k 0 0 5\r\nab", 1},
		{"get a\r\nset k 0 0 5\r\nabcde\r", 1},
		{"get a\r\nset k 0 0 100\r\nabc", 2},
		{"get a\r\nset k 0 0 100\r\n" + strings.Repeat("v", 101), 2},
	} {
		h := newTextEcho()
		h.record = true
		r := decodeText(&Server{TextMaxValueSize: 64}, &chunkReader{in: []byte(tc.in)}, h)
		if r.err != nil || !r.midPacket || len(r.reqs) != tc.reqs || r.reqs[0].Line != "get a" {
			t.Errorf("%q: err %v, mid-packet %v, requests %v", tc.in, r.err, r.midPacket, r.reqs)
		}
	}
}

// memcached's line rules: more than 2048 bytes with no "\n" close the
// connection, unless they start (after at most 100 spaces) with "get " or
// "gets "; a get line may then grow to MaxTextLine. A line whose "\n" is
// already buffered is served whatever its length.
func TestTextLineLimits(t *testing.T) {
	for _, tc := range []struct {
		in      string
		sizes   []int
		tooLong bool
	}{
		{in: strings.Repeat("x", 2048)},
		{in: strings.Repeat("x", 2049), tooLong: true},
		{in: strings.Repeat("x", 2049), sizes: []int{1}, tooLong: true},
		{in: strings.Repeat("x", 10000) + "\r\n"}, // one read: served
		{in: strings.Repeat("x", 10000) + "\r\n", sizes: []int{1000}, tooLong: true},
		{in: "get " + strings.Repeat("x", 5000), sizes: []int{1}},
		{in: "gets " + strings.Repeat("x", 5000), sizes: []int{100}},
		{in: "get" + strings.Repeat("x", 5000), sizes: []int{100}, tooLong: true},
		{in: "GET " + strings.Repeat("x", 5000), sizes: []int{100}, tooLong: true},
		{in: strings.Repeat(" ", 100) + "get " + strings.Repeat("x", 5000), sizes: []int{100}},
		{in: strings.Repeat(" ", 101) + "get " + strings.Repeat("x", 5000), sizes: []int{100}, tooLong: true},
		{in: "\x00get " + strings.Repeat("x", 5000), sizes: []int{100}, tooLong: true},
		{in: "get " + strings.Repeat("x ", MaxTextLine/2), sizes: []int{1 << 16}, tooLong: true},
		{in: "set k 0 0 5000\r\n" + strings.Repeat("x", 5000), sizes: []int{100}}, // a block is no line
	} {
		name := fmt.Sprintf("%.20q... (%d bytes, reads %v)", tc.in, len(tc.in), tc.sizes)
		r := decodeText(&Server{}, &chunkReader{in: []byte(tc.in), sizes: tc.sizes}, newTextEcho())
		if got := errors.Is(r.err, ErrLineTooLong); got != tc.tooLong {
			t.Errorf("%s: err %v, want too long %v", name, r.err, tc.tooLong)
		}
		if tc.tooLong && !errors.Is(r.err, gm.ErrProtocol) {
			t.Errorf("%s: %v is not ErrProtocol", name, r.err)
		}
		if tc.tooLong && r.maxPend > MaxTextLine+1<<16 {
			t.Errorf("%s: %d bytes buffered before closing", name, r.maxPend)
		}
	}
}

// A too-large data block is skipped through the connection's buffer,
// which does not grow, and the command after it is served.
func TestTextTooLargeSkipped(t *testing.T) {
	const block = 100 << 20
	in := io.MultiReader(strings.NewReader("set big 0 0 "+strconv.Itoa(block)+"\r\n"),
		io.LimitReader(repeatReader('v'), block), strings.NewReader("\r\nget big\r\n"))
	h := newTextEcho()
	h.record = true
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	r := decodeText(&Server{TextMaxValueSize: 1 << 20}, in, h)
	runtime.ReadMemStats(&ms1)
	if r.err != nil || r.midPacket || len(r.reqs) != 2 || !r.reqs[0].TooLarge || r.reqs[0].Data != "" || r.reqs[1].Line != "get big" {
		t.Fatalf("err %v, mid-packet %v, requests %v", r.err, r.midPacket, r.reqs)
	}
	if r.maxBuf > DefaultReadBufferSize {
		t.Errorf("the buffer grew to %d bytes skipping the block", r.maxBuf)
	}
	if a := ms1.TotalAlloc - ms0.TotalAlloc; a > 1<<20 {
		t.Errorf("%d bytes allocated skipping a 100 MiB block", a)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// The buffer grows with what the client sends, not with what it
// announces, and one that grew past 1 MiB goes back to its initial size
// after its request; the split fields of a many-key get are not kept
// either.
func TestTextBufferBounded(t *testing.T) {
	// A block announced, and never sent: nothing grows.
	r := decodeText(&Server{}, &chunkReader{in: []byte("set k 0 0 20000000\r\nabc")}, newTextEcho())
	if r.maxBuf > DefaultReadBufferSize {
		t.Errorf("an announced 20 MB block grew the buffer to %d before it was sent", r.maxBuf)
	}

	var keys strings.Builder
	keys.WriteString("get")
	for i := range 10000 {
		fmt.Fprintf(&keys, " key:%d", i)
	}
	keys.WriteString("\r\n")
	for _, in := range []string{
		keys.String(),
		"get " + strings.Repeat("x", 1<<20-6) + "\r\n",
		"get " + strings.Repeat("x ", 1<<19) + "\r\n",
		"set k 0 0 1048576\r\n" + strings.Repeat("v", 1<<20) + "\r\n",
		"set k 0 0 2097152\r\n" + strings.Repeat("v", 2<<20) + "\r\n",
	} {
		h := newTextEcho()
		h.record = true
		c := &Conn{srv: &Server{TextMaxValueSize: 4 << 20}, log: quiet, t: nopTransport{}}
		d := c.newTextDecoder(io.MultiReader(&chunkReader{in: []byte(in), sizes: []int{4096}}, strings.NewReader("get a\r\n")), nil)
		c.dec, c.text, c.textHandler = d, d, h
		maxBuf := 0
		for len(h.seen()) < 2 {
			if _, err := d.fill(); err != nil {
				t.Fatalf("%.20q: %v", in, err)
			}
			maxBuf = max(maxBuf, len(d.buf))
			for d.ready() {
				if err := d.serve(h); err != nil {
					t.Fatal(err)
				}
			}
		}
		if maxBuf > 2*len(in) || maxBuf < len(in)-4096 {
			t.Errorf("%.20q (%d bytes): the buffer grew to %d", in, len(in), maxBuf)
		}
		if len(in) > maxRetainedOut && len(d.buf) != DefaultReadBufferSize {
			t.Errorf("%.20q: the buffer kept %d bytes", in, len(d.buf))
		}
		if cap(d.fields) > maxRetainedFields {
			t.Errorf("%.20q: %d fields kept", in, cap(d.fields))
		}
		if s := h.seen(); len(s[0].Fields) < 2 || s[1].Line != "get a" {
			t.Errorf("%.20q: %d fields, then %q", in, len(s[0].Fields), s[1].Line)
		}
	}
}

// textConn dials addr and returns the connection and its lines.
func textConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readAll reads until the server closes the connection (true) or is
// silent for wait (false).
func readAll(c net.Conn, r *bufio.Reader, wait time.Duration) ([]byte, bool) {
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			return out, !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// A pipelined batch of text commands is answered with one write, in both
// connection models, and one byte a write gets the same answers.
func TestTextPipelineOneWrite(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: newTextEcho()}
		addr := start(t, srv)
		c, r := textConn(t, addr)
		var batch, want strings.Builder
		for i := range 100 {
			fmt.Fprintf(&batch, "set k%d %d 0 2\r\nv%d\r\n", i, i, i%10)
			want.WriteString("STORED\r\n")
		}
		for i := range 100 {
			fmt.Fprintf(&batch, "get k%d nope\r\n", i)
			fmt.Fprintf(&want, "VALUE k%d %d 2\r\nv%d\r\nEND\r\n", i, i, i%10)
		}
		batch.WriteString("bogus\r\n")
		want.WriteString("ERROR\r\n")
		before := srv.writes.Load()
		c.Write([]byte(batch.String()))
		got := make([]byte, want.Len())
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Fatalf("answers differ:\n%.300q\nwant\n%.300q", got, want.String())
		}
		if n := srv.writes.Load() - before; n != 1 {
			t.Errorf("the batch was answered in %d writes, want 1", n)
		}

		c2, r2 := textConn(t, addr)
		for i := 0; i < batch.Len(); i += 97 {
			c2.Write([]byte(batch.String()[i:min(i+97, batch.Len())]))
		}
		if _, err := io.ReadFull(r2, got); err != nil || string(got) != want.String() {
			t.Fatalf("in small writes: %v, %.300q", err, got)
		}
	})
}

// A text handler's panic closes only its connection, after the answers
// before it; quit closes the connection after the answers before it.
func TestTextHandlerPanic(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: newTextEcho()})
		other, or := textConn(t, addr)
		other.Write([]byte("set k 0 0 1\r\nv\r\n"))
		if l, _ := or.ReadString('\n'); l != "STORED\r\n" {
			t.Fatalf("set: %q", l)
		}
		c, r := textConn(t, addr)
		c.Write([]byte("get k\r\npanic\r\nget k\r\n"))
		if out, closed := readAll(c, r, 2*time.Second); string(out) != "VALUE k 0 1\r\nv\r\nEND\r\n" || !closed {
			t.Fatalf("panic: %q, closed %v", out, closed)
		}
		other.Write([]byte("get k\r\nquit\r\nget k\r\n"))
		if out, closed := readAll(other, or, 2*time.Second); string(out) != "VALUE k 0 1\r\nv\r\nEND\r\n" || !closed {
			t.Fatalf("quit: %q, closed %v", out, closed)
		}
	})
}

// Over a socket: a 10000-key get line is served; a 1 MiB line of anything
// else, with no "\n", is closed on once more than 2048 bytes have arrived,
// with nothing sent but the answers before it; a too-large block is
// skipped, answered before it is all sent.
func TestTextLimitsOverSocket(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		h := newTextEcho()
		srv := &Server{EventLoops: loops, Handler: h, TextMaxValueSize: 1 << 20}
		addr := start(t, srv)

		c, r := textConn(t, addr)
		var get strings.Builder
		get.WriteString("set key:7 0 0 1\r\n7\r\nget")
		for i := range 10000 {
			fmt.Fprintf(&get, " key:%d", i)
		}
		get.WriteString("\r\n")
		c.Write([]byte(get.String()))
		want := "STORED\r\nVALUE key:7 0 1\r\n7\r\nEND\r\n"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
			t.Fatalf("10000-key get: %v %q", err, got)
		}

		c, r = textConn(t, addr)
		in0 := srv.Stats().BytesRead
		go c.Write([]byte("get key:7\r\n" + strings.Repeat("x", 1<<20)))
		if out, closed := readAll(c, r, 5*time.Second); string(out) != "VALUE key:7 0 1\r\n7\r\nEND\r\n" || !closed {
			t.Fatalf("1 MiB line: %q, closed %v", out, closed)
		}
		time.Sleep(50 * time.Millisecond)
		if n := srv.Stats().BytesRead - in0; n > 64<<10 {
			t.Errorf("%d bytes read before closing on a line with no newline", n)
		}

		c, r = textConn(t, addr)
		c.Write([]byte("set big 0 0 104857600\r\n"))
		if l, err := r.ReadString('\n'); err != nil || l != "SERVER_ERROR object too large for cache\r\n" {
			t.Fatalf("too large: %q %v", l, err)
		}
		chunk := bytes.Repeat([]byte("v"), 1<<20)
		for range 100 {
			if _, err := c.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		c.Write([]byte("\r\nget big key:7\r\n"))
		want = "VALUE key:7 0 1\r\n7\r\nEND\r\n"
		got = make([]byte, len(want))
		if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
			t.Fatalf("after a skipped block: %v %q", err, got)
		}
	})
}

// Server.Protocol, memcached's -B: auto chooses by the first byte, binary
// closes a text connection, text frames a binary magic as text.
func TestTextProtocolSelection(t *testing.T) {
	noop := string([]byte{0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, tc := range []struct {
		p        Protocol
		in, want string
		closed   bool
	}{
		{ProtocolAuto, "get k\r\n", "END\r\n", false},
		{ProtocolAuto, noop, "\x81\x0a\x00\x00\x00\x00\x00\x81", false}, // UNKNOWN_COMMAND: status 0x0081
		{ProtocolText, noop + "\r\n", "ERROR\r\nERROR\r\n", false},
		{ProtocolText, "get k\r\n", "END\r\n", false},
		{ProtocolBinary, "get k\r\n", "", true},
	} {
		modes(t, func(t *testing.T, loops int) {
			addr := start(t, &Server{EventLoops: loops, Handler: newTextEcho(), Protocol: tc.p})
			c, r := textConn(t, addr)
			c.Write([]byte(tc.in))
			out, closed := readAll(c, r, 200*time.Millisecond)
			if len(out) > len(tc.want) {
				out = out[:len(tc.want)]
			}
			if string(out) != tc.want || closed != tc.closed {
				t.Errorf("protocol %d, %q: %q, closed %v; want %q, closed %v", tc.p, tc.in, out, closed, tc.want, tc.closed)
			}
		})
	}
	// -B text with a handler that speaks no text: refused.
	addr := start(t, &Server{Handler: &echoStore{data: map[string][]byte{}}, Protocol: ProtocolText})
	c, r := textConn(t, addr)
	c.Write([]byte("get k\r\n"))
	if out, closed := readAll(c, r, 2*time.Second); len(out) != 0 || !closed {
		t.Errorf("text to a binary-only handler: %q, closed %v", out, closed)
	}
}

// textCases are inputs on which memcached's framing is compared with
// ours: each is sent on a new connection, half-closed after it (or, with
// wait, left open), and the answers and whether the server closed must
// be memcached's.
var textCases = []struct {
	in    string
	wait  bool // read until quiet, without half-closing
	split bool // also send it one byte a write
}{
	{in: "set k1 0 0 3\r\nabc\r\nget k1\r\n", split: true},
	{in: "set k1 0 0 1\r\nabcd\r\nget k1\r\n", split: true},
	{in: "set k2 0 0 1\r\nabc\r\nget k2\r\n", split: true},
	{in: "set k2 0 0 10\r\nabc\r\nget k2\r\nget k2\r\n", split: true},
	{in: "set k3 0 0 4\r\na\r\nb\r\nget k3\r\n", split: true},
	{in: "\r\n\n \r\n\r\r\na\r\nab\r\n\t\r\n", split: true},
	{in: "get k1\x00 k3\r\nset k4 0 0 1\x00 junk\r\nx\r\nget k4\r\nge\x00t k4\r\n", split: true},
	{in: "set k5 0 0 -1\r\nset k5 0 0 2147483646\r\nset k5 0 0 2147483647\r\nset k5 0 0 4294967295\r\nget k5\r\n"},
	{in: "set k5 0 0 4294967297\r\nx\r\nget k5\r\n"},
	{in: "set k5 4294967296 0 1\r\ny\r\nget k5\r\nset k5 4294967295 0 1\r\ny\r\nget k5\r\n"},
	{in: "set k5 -1 0 1\r\nset k5 -0 0 1\r\nz\r\nget k5\r\nset k5 1x 0 1\r\nset k5 0x10 0 1\r\nset k5 0 0 +1\r\nq\r\nget k5\r\n"},
	{in: "set k6 0 0 1 \r\nq\r\nset  k6   7 0   1\r\nr\r\nget k6\r\nset k6 8 0 1\t\r\ns\r\nget k6\r\nset k6\t0 0 1\r\n", split: true},
	{in: "set k6 9 0\t1\r\nt\r\nset k6 0 9223372036854775807 1\r\nset k6 0 -1 1\r\nu\r\n"},
	{in: "set " + strings.Repeat("a", 251) + " 0 0 1\r\nx\r\nset " + strings.Repeat("a", 250) + " 0 0 1\r\nx\r\nget " + strings.Repeat("a", 250) + "\r\n"},
	{in: "set k7 0 0 1 noreply\r\nx\r\nget k7\r\nset k7 0 0 1 noreply\r\nxyz\r\nset k7 0 0 -1 noreply\r\nset k7 0 0 1 0 noreply\r\nget k7\r\n", split: true},
	{in: "set k7 0 0 1 extra\r\nx\r\nset k7 0 0\r\nset k7 0 0 1 2 3\r\nset\r\nget\r\nget k7\r\n"},
	{in: "get k1\r\n\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00get k1\r\n"},
	{in: "set k8 0 0 3\r\nabc\r\nset k8 0 0 2097152\r\n" + strings.Repeat("v", 2097152) + "\r\nget k8\r\n"},
	{in: "set k8 0 0 2097152\r\n" + strings.Repeat("v", 2097152) + "XXget k1\r\n"},
	{in: "set k8 0 0 2097152 noreply\r\n" + strings.Repeat("v", 2097152) + "\r\nget k8\r\n"},
	{in: "set k9 0 0 10\r\nabc"},
	{in: "get k1\r\nget k"},
	{in: "get k1\r\nquit\r\nget k1\r\n", split: true},
	{in: "get k1\r\n" + strings.Repeat("x", 3000)},
	{in: strings.Repeat("x", 2048), wait: true},
	{in: strings.Repeat("x", 2049), wait: true},
	{in: "get k1\r\n" + strings.Repeat(" ", 100) + "get " + strings.Repeat("x", 3000), wait: true},
	{in: strings.Repeat(" ", 101) + "get " + strings.Repeat("x", 3000), wait: true},
	{in: "gets " + strings.Repeat("x", 3000), wait: true},
	{in: "get" + strings.Repeat("x", 3000), wait: true},
	{in: "gets " + strings.Repeat("nokey ", 5000) + "k9\r\n"},
}

// On every input of textCases, the framing answers as memcached 1.6.18
// does (with textEcho answering its few commands as memcached does).
func TestTextFramingAgainstMemcached(t *testing.T) {
	mc := peer.Memcached(t)
	modes(t, func(t *testing.T, loops int) {
		ours := start(t, &Server{EventLoops: loops, Handler: newTextEcho(), TextMaxValueSize: 1 << 20})
		theirs := mc
		if loops != 0 {
			theirs = peer.Memcached(t) // fresh keys
		}
		run := func(addr, in string, wait, split bool) (string, bool) {
			c, r := textConn(t, addr)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if split {
					for i := range len(in) {
						c.Write([]byte{in[i]})
					}
				} else {
					c.Write([]byte(in))
				}
				if !wait {
					c.(*net.TCPConn).CloseWrite()
				}
			}()
			d := 5 * time.Second
			if wait {
				d = 300 * time.Millisecond
			}
			out, closed := readAll(c, r, d)
			<-done
			return string(out), closed
		}
		for _, tc := range textCases {
			for _, split := range []bool{false, true} {
				if split && !tc.split {
					continue
				}
				want, wclosed := run(theirs, tc.in, tc.wait, split)
				got, closed := run(ours, tc.in, tc.wait, split)
				if got != want || closed != wclosed {
					t.Errorf("%.80q (split %v):\n got %.300q, closed %v\nwant %.300q, closed %v", tc.in, split, got, closed, want, wclosed)
				}
			}
		}
	})
}

// The framing allocates nothing per request once its buffers have grown.
func TestTextDecodeAllocs(t *testing.T) {
	in := []byte(strings.Repeat("get key:1 key:2\r\nset key:1 0 0 10\r\n0123456789\r\nms key:2 2 T0\r\nhi\r\n", 100))
	src := &loopReader{in: in}
	c := &Conn{srv: &Server{}, log: quiet, t: nopTransport{}}
	d := c.newTextDecoder(src, nil)
	h := textNop{}
	step := func() {
		d.fill()
		for d.ready() {
			d.serve(h)
		}
	}
	for range 100 {
		step()
	}
	if a := testing.AllocsPerRun(1000, step); a != 0 {
		t.Errorf("%v allocations a read of pipelined commands", a)
	}
}

// loopReader returns its input over and over, in reads of at most 4 KiB.
type loopReader struct {
	in  []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p[:min(len(p), 4096)], r.in[r.off:])
	r.off = (r.off + n) % len(r.in)
	return n, nil
}

type textNop struct{}

func (textNop) ServeText(w ResponseWriter, req *TextRequest) {}

// BenchmarkTextDecode measures the text framing alone: lines, fields, a
// data block per set, no handler work.
func BenchmarkTextDecode(b *testing.B) {
	const per = 3
	in := []byte(strings.Repeat("get key:1 key:2\r\nset key:1 0 0 10\r\n0123456789\r\nms key:2 2 T0\r\nhi\r\n", 200))
	c := &Conn{srv: &Server{}, log: quiet, t: nopTransport{}}
	d := c.newTextDecoder(&loopReader{in: in}, nil)
	h := textNop{}
	b.ReportAllocs()
	b.SetBytes(int64(len(in) / 200 / per))
	for b.Loop() {
		for !d.ready() {
			d.fill()
		}
		d.serve(h)
	}
}
