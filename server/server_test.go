package memcached

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"

	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

var quiet = slog.New(slog.DiscardHandler)

// echoStore is a small handler: SET stores, GET returns, NOOP answers,
// quiet commands stay silent on success.
type echoStore struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (e *echoStore) ServeMC(w ResponseWriter, req *gm.MCRequest) {
	switch req.Opcode {
	case gm.SET, gm.SETQ:
		e.mu.Lock()
		e.data[string(req.Key)] = bytes.Clone(req.Body)
		e.mu.Unlock()
		if req.Opcode == gm.SET {
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Cas: 1})
		}
	case gm.GET, gm.GETKQ:
		e.mu.Lock()
		v, ok := e.data[string(req.Key)]
		e.mu.Unlock()
		if !ok {
			if req.Opcode == gm.GET {
				w.WriteStatus(req, gm.KEY_ENOENT, nil)
			}
			return
		}
		res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: v}
		if req.Opcode == gm.GETKQ {
			res.Key = req.Key
		}
		w.WriteResponse(&res)
	case gm.NOOP:
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
	case gm.QUIT:
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
		w.Close()
	case 0xee:
		panic("boom")
	default:
		w.WriteStatus(req, gm.UNKNOWN_COMMAND, nil)
	}
}

// modes runs a test with a goroutine per connection and, on Linux, with
// event loops.
func modes(t *testing.T, f func(t *testing.T, loops int)) {
	t.Run("goroutines", func(t *testing.T) { f(t, 0) })
	if runtime.GOOS == "linux" {
		t.Run("eventloops", func(t *testing.T) { f(t, 2) })
	}
}

// start serves srv on a loopback listener and returns its address.
func start(t *testing.T, srv *Server) string {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger = quiet
	}
	l, done := serve(t, srv)
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return l.Addr().String()
}

// serve serves srv on a new loopback listener; Serve's result arrives on
// the channel.
func serve(t *testing.T, srv *Server) (net.Listener, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	return l, done
}

func dial(t *testing.T, addr string) (net.Conn, *gm.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, gm.NewReader(c)
}

func send(t *testing.T, c net.Conn, reqs ...gm.MCRequest) {
	t.Helper()
	var wire []byte
	for _, r := range reqs {
		wire, _ = r.AppendTo(wire)
	}
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, r *gm.Reader) gm.MCResponse {
	t.Helper()
	var res gm.MCResponse
	if err := r.ReadResponse(&res); err != nil {
		t.Fatal(err)
	}
	res.Key, res.Body, res.Extras = bytes.Clone(res.Key), bytes.Clone(res.Body), bytes.Clone(res.Extras)
	return res
}

// A batch of quiet requests and a NOOP, sent in one write, is answered
// with one write.
func TestPipelinedBatchOneWrite(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}}
		addr := start(t, srv)
		c, r := dial(t, addr)
		before := srv.writes.Load()
		var batch []gm.MCRequest
		for i := range 100 {
			batch = append(batch, gm.MCRequest{Opcode: gm.SETQ, Key: fmt.Appendf(nil, "k%d", i), Body: []byte("v"), Opaque: uint32(i)})
		}
		for i := range 100 {
			batch = append(batch, gm.MCRequest{Opcode: gm.GETKQ, Key: fmt.Appendf(nil, "k%d", i*2), Opaque: uint32(1000 + i)})
		}
		batch = append(batch, gm.MCRequest{Opcode: gm.NOOP, Opaque: 9999})
		send(t, c, batch...)
		hits := 0
		for {
			res := read(t, r)
			if res.Opcode == gm.NOOP {
				if res.Opaque != 9999 {
					t.Fatalf("NOOP opaque %d", res.Opaque)
				}
				break
			}
			if want := fmt.Sprintf("k%d", (res.Opaque-1000)*2); string(res.Key) != want {
				t.Fatalf("GETKQ answer %q for opaque %d", res.Key, res.Opaque)
			}
			hits++
		}
		if hits != 50 {
			t.Fatalf("%d hits, want 50", hits)
		}
		if w := srv.writes.Load() - before; w != 1 {
			t.Fatalf("the batch took %d writes, want 1", w)
		}
	})
}

// Requests are answered in order, including across many small writes.
func TestPipelineOrder(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}})
		c, r := dial(t, addr)
		var wire []byte
		for i := range 500 {
			req := gm.MCRequest{Opcode: gm.SET, Key: []byte("k"), Body: bytes.Repeat([]byte{'x'}, i), Opaque: uint32(i)}
			wire, _ = req.AppendTo(wire)
		}
		go func() {
			for len(wire) > 0 {
				n := min(len(wire), 7)
				c.Write(wire[:n])
				wire = wire[n:]
			}
		}()
		for i := range 500 {
			if res := read(t, r); res.Opaque != uint32(i) || res.Status != gm.SUCCESS {
				t.Fatalf("answer %d: %v", i, &res)
			}
		}
	})
}

func TestLargeValueWritev(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}})
		c, r := dial(t, addr)
		big := bytes.Repeat([]byte("0123456789"), 300_000)
		send(t, c,
			gm.MCRequest{Opcode: gm.SET, Key: []byte("big"), Body: big, Opaque: 1},
			gm.MCRequest{Opcode: gm.GET, Key: []byte("big"), Opaque: 2},
			gm.MCRequest{Opcode: gm.GET, Key: []byte("nope"), Opaque: 3})
		if res := read(t, r); res.Opaque != 1 {
			t.Fatal(res)
		}
		if res := read(t, r); res.Opaque != 2 || !bytes.Equal(res.Body, big) {
			t.Fatalf("large value: opaque %d, %d bytes", res.Opaque, len(res.Body))
		}
		if res := read(t, r); res.Opaque != 3 || res.Status != gm.KEY_ENOENT {
			t.Fatal(res)
		}
	})
}

func TestServeMux(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		mux := NewServeMux()
		mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: []byte("v")})
		}, gm.VERSION)
		addr := start(t, &Server{EventLoops: loops, Handler: mux})
		c, r := dial(t, addr)
		send(t, c, gm.MCRequest{Opcode: gm.VERSION, Opaque: 1}, gm.MCRequest{Opcode: gm.GET, Key: []byte("k"), Opaque: 2})
		if res := read(t, r); string(res.Body) != "v" || res.Status != gm.SUCCESS {
			t.Fatal(res)
		}
		if res := read(t, r); res.Status != gm.UNKNOWN_COMMAND || res.Opaque != 2 || string(res.Body) != "Unknown command" {
			t.Fatal(res)
		}
		if mux.Handler(gm.VERSION) == nil || mux.Handler(gm.GET) != nil {
			t.Fatal("Handler lookup")
		}
		// A nil handler answers UNKNOWN_COMMAND too.
		addr2 := start(t, &Server{EventLoops: loops})
		c2, r2 := dial(t, addr2)
		send(t, c2, gm.MCRequest{Opcode: gm.NOOP, Opaque: 4})
		if res := read(t, r2); res.Status != gm.UNKNOWN_COMMAND || res.Opaque != 4 {
			t.Fatal(res)
		}
	})
}

// A malformed packet or a handler panic closes only its own connection.
func TestBadConnectionAlone(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}})
		good, gr := dial(t, addr)
		send(t, good, gm.MCRequest{Opcode: gm.SET, Key: []byte("k"), Body: []byte("v"), Opaque: 1})
		read(t, gr)

		for name, wire := range map[string][]byte{
			"text protocol":   []byte("get foo\r\nget foo bar baz\r\n"),
			"bad lengths":     {0x80, 0, 0, 10, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			"response magic":  (&gm.MCResponse{Opcode: gm.GET}).Bytes(),
			"too large":       {0x80, 1, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			"handler panic":   (&gm.MCRequest{Opcode: 0xee}).Bytes(),
			"truncated frame": {0x08, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x13, 0x01},
		} {
			t.Run(name, func(t *testing.T) {
				bad, br := dial(t, addr)
				bad.Write(wire)
				var res gm.MCResponse
				if err := br.ReadResponse(&res); err != io.EOF {
					t.Fatalf("bad connection: %v, want it closed", err)
				}
				send(t, good, gm.MCRequest{Opcode: gm.GET, Key: []byte("k"), Opaque: 2})
				if res := read(t, gr); string(res.Body) != "v" {
					t.Fatalf("good connection broken: %v", &res)
				}
			})
		}
	})
}

// Thousands of connections fed garbage, cut mid-packet or left idle and
// closed: afterwards goroutines and heap are back to where they were.
func TestNoLeaksAfterHostileConnections(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		if testing.Short() {
			t.Skip("slow")
		}
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}}
		addr := start(t, srv)
		settle := func() (int, uint64) {
			var ms runtime.MemStats
			for range 20 {
				runtime.GC()
				if srv.Stats().CurrConnections == 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			return runtime.NumGoroutine(), ms.HeapAlloc
		}
		g0, h0 := settle()
		half := (&gm.MCRequest{Opcode: gm.SET, Key: []byte("k"), Body: make([]byte, 100_000)}).Bytes()[:5000]
		garbage := bytes.Repeat([]byte{0xde, 0xad}, 100)
		huge := []byte{0x80, 1, 0, 1, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		const n = 3000
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				switch i % 4 {
				case 0:
					c.Write(garbage)
				case 1:
					c.Write(half) // cut mid-packet
				case 2:
					c.Write(huge[:20]) // cut mid-header
				case 3:
					c.Write(append(huge, make([]byte, 1000)...)) // announces 16 MiB, sends 1000 bytes
				}
				c.Close()
			}()
		}
		wg.Wait()
		g1, h1 := settle()
		if g1 > g0+5 {
			t.Errorf("goroutines: %d before, %d after %d hostile connections", g0, g1, n)
		}
		if h1 > h0+4<<20 {
			t.Errorf("heap: %d before, %d after", h0, h1)
		}
		if st := srv.Stats(); st.TotalConnections < n || st.CurrConnections != 0 {
			t.Errorf("stats %+v", st)
		}
		t.Logf("goroutines %d -> %d, heap %d KiB -> %d KiB after %d connections", g0, g1, h0>>10, h1>>10, n)
	})
}

func TestMaxConns(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, MaxConns: 2}
		addr := start(t, srv)
		var conns []net.Conn
		for range 2 {
			c, r := dial(t, addr)
			send(t, c, gm.MCRequest{Opcode: gm.NOOP})
			read(t, r)
			conns = append(conns, c)
		}
		_, r := dial(t, addr)
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != io.EOF {
			t.Fatalf("third connection: %v, want closed", err)
		}
		if st := srv.Stats(); st.RejectedConnections != 1 || st.CurrConnections != 2 {
			t.Fatalf("stats %+v", st)
		}
		conns[0].Close()
		deadline := time.Now().Add(5 * time.Second)
		for srv.Stats().CurrConnections != 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		c, r2 := dial(t, addr)
		send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 3})
		if res := read(t, r2); res.Opaque != 3 {
			t.Fatal(res)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, IdleTimeout: 100 * time.Millisecond})
		c, r := dial(t, addr)
		send(t, c, gm.MCRequest{Opcode: gm.NOOP})
		read(t, r)
		// Stalling mid-packet is idling too.
		c.Write([]byte{0x80, 0x0a, 0})
		start := time.Now()
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != io.EOF {
			t.Fatalf("idle connection: %v", err)
		}
		if d := time.Since(start); d < 80*time.Millisecond || d > 3*time.Second {
			t.Fatalf("closed after %v", d)
		}
	})
}

// Shutdown lets a request being handled finish, answers what was already
// received, then closes; new connections are refused.
func TestShutdown(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	mux := NewServeMux()
	mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
		close(entered)
		<-release
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: []byte("slow")})
	}, gm.GET)
	mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
	}, gm.NOOP)
	srv := &Server{Handler: mux, Logger: quiet}
	addr := start(t, srv)
	busy, br := dial(t, addr)
	idle, ir := dial(t, addr)
	send(t, idle, gm.MCRequest{Opcode: gm.NOOP})
	read(t, ir)
	send(t, busy, gm.MCRequest{Opcode: gm.GET, Key: []byte("k"), Opaque: 1}, gm.MCRequest{Opcode: gm.NOOP, Opaque: 2})
	<-entered
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	// The idle connection is closed promptly.
	var res gm.MCResponse
	if err := ir.ReadResponse(&res); err != io.EOF {
		t.Fatalf("idle connection: %v", err)
	}
	select {
	case <-done:
		t.Fatal("Shutdown returned while a request was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if res := read(t, br); string(res.Body) != "slow" {
		t.Fatal(res)
	}
	if res := read(t, br); res.Opaque != 2 {
		t.Fatalf("pipelined request after the slow one: %v", &res)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a new connection was served after Shutdown")
		}
		c.Close()
	}
}

// With event loops, requests are handled as they arrive: Shutdown answers
// every request already received, closes idle and paused connections, and
// refuses new ones.
func TestShutdownEventLoops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("event loops need Linux")
	}
	mux := NewServeMux()
	mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
		w.Conn().Pause(time.Hour)
	}, gm.GET)
	mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
	}, gm.NOOP)
	srv := &Server{Handler: mux, EventLoops: 2}
	addr := start(t, srv)
	busy, br := dial(t, addr)
	var batch []gm.MCRequest
	for i := range 200 {
		batch = append(batch, gm.MCRequest{Opcode: gm.NOOP, Opaque: uint32(i)})
	}
	send(t, busy, batch...)
	paused, _ := dial(t, addr)
	send(t, paused, gm.MCRequest{Opcode: gm.GET, Key: []byte("k")})
	idle, ir := dial(t, addr)
	send(t, idle, gm.MCRequest{Opcode: gm.NOOP, Opaque: 7})
	read(t, ir)
	for i := range 200 {
		if res := read(t, br); res.Opaque != uint32(i) {
			t.Fatalf("answer %d: %v", i, &res)
		}
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*gm.Reader{"busy": br, "idle": ir} {
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != io.EOF {
			t.Fatalf("%s connection after Shutdown: %v", name, err)
		}
	}
	if srv.Stats().CurrConnections != 0 {
		t.Fatalf("connections left: %d", srv.Stats().CurrConnections)
	}
}

func TestShutdownTimeout(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		block := make(chan struct{})
		defer close(block)
		srv := &Server{EventLoops: loops, Handler: HandlerFunc(func(w ResponseWriter, req *gm.MCRequest) { <-block }), Logger: quiet}
		addr := start(t, srv)
		c, _ := dial(t, addr)
		send(t, c, gm.MCRequest{Opcode: gm.GET, Key: []byte("k")})
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		go func() { time.Sleep(200 * time.Millisecond); block <- struct{}{} }()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v", err)
		}
	})
}

func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mc.sock")
	srv := &Server{Addr: "unix:" + path, Handler: &echoStore{data: map[string][]byte{}}, Logger: quiet}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	defer func() {
		srv.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("ListenAndServe = %v", err)
		}
	}()
	var c net.Conn
	var err error
	for range 100 {
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 5})
	if res := read(t, gm.NewReader(c)); res.Opaque != 5 {
		t.Fatal(res)
	}
}

// connState is a handler's per-connection state in TestConnState.
type connState struct {
	user     string
	features gm.FeatureSet
	greeting string
}

// Per-connection state lives in Conn.Data, set by ConnContext: each
// connection sees its own.
func TestConnState(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		mux := NewServeMux()
		mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
			st := w.Conn().Data.(*connState)
			st.user = string(req.Key)
			st.features.Add(gm.FeatureCollections)
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
		}, gm.SASL_AUTH)
		mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
			st := w.Conn().Data.(*connState)
			body := st.user + "/" + st.greeting
			if st.features.Has(gm.FeatureCollections) && !st.features.Has(gm.FeatureSnappyEverywhere) {
				body += "/collections"
			}
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: []byte(body)})
		}, gm.GET)
		srv := &Server{EventLoops: loops, Handler: mux, ConnContext: func(c *Conn) { c.Data = &connState{greeting: "fresh"} }}
		addr := start(t, srv)
		a, ar := dial(t, addr)
		b, brd := dial(t, addr)
		send(t, a, gm.MCRequest{Opcode: gm.SASL_AUTH, Key: []byte("alice")}, gm.MCRequest{Opcode: gm.GET, Key: []byte("k")})
		read(t, ar)
		if res := read(t, ar); string(res.Body) != "alice/fresh/collections" {
			t.Fatalf("connection a: %q", res.Body)
		}
		send(t, b, gm.MCRequest{Opcode: gm.GET, Key: []byte("k")})
		if res := read(t, brd); string(res.Body) != "/fresh" {
			t.Fatalf("connection b sees a's state: %q", res.Body)
		}
	})
}

// A TLS client that stalls in its handshake is cut off by
// HandshakeTimeout, and holds up no one meanwhile.
func TestTLSHandshakeTimeout(t *testing.T) {
	certFile, keyFile := peer.SelfSignedCert(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: &echoStore{data: map[string][]byte{}}, Logger: quiet,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, HandshakeTimeout: 200 * time.Millisecond}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.ServeTLS(l)
	defer srv.Close()
	stall, _ := net.Dial("tcp", l.Addr().String())
	defer stall.Close()
	stall.Write([]byte{0x16, 0x03, 0x01})
	start := time.Now()
	good, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	good.SetDeadline(time.Now().Add(5 * time.Second))
	send(t, good, gm.MCRequest{Opcode: gm.NOOP, Opaque: 3})
	if res := read(t, gm.NewReader(good)); res.Opaque != 3 {
		t.Fatal(res)
	}
	stall.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := stall.Read(make([]byte, 1)); err == nil {
		t.Fatal("stalled handshake answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stalled handshake closed after %v", d)
	}
}
