package memcached

// Faults that a real server cannot be made to produce: one that never
// answers, one that closes in the middle of a response, one that sends
// garbage, one that stops reading, and a proxy in front of the real
// memcached that delays or trickles its answers. Each is a small
// net.Listener on loopback, closed when the test ends.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// fakeServer serves each connection accepted on a loopback listener with
// serve, and returns the address. Listener and connections close when the
// test ends, and the test waits for serve to return.
func fakeServer(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			s, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, s)
			mu.Unlock()
			wg.Go(func() {
				defer s.Close()
				serve(s)
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, s := range conns {
			s.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// silent reads and discards everything, never answering.
func silent(s net.Conn) { io.Copy(io.Discard, s) }

// readRequests reads requests from s until n have arrived or the stream
// ends, and returns them.
func readRequests(s net.Conn, n int) []gomemcached.MCRequest {
	rd := gomemcached.NewReader(s)
	var reqs []gomemcached.MCRequest
	for len(reqs) < n {
		var req gomemcached.MCRequest
		if err := rd.ReadRequest(&req); err != nil {
			break
		}
		reqs = append(reqs, req)
	}
	return reqs
}

// delayProxy forwards to upstream, holding each chunk of the server's
// answers back for delay.
func delayProxy(t testing.TB, upstream string, delay time.Duration) string {
	return fakeServer(t, func(s net.Conn) {
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		defer u.Close()
		go func() { io.Copy(u, s); u.Close() }()
		type chunk struct {
			b  []byte
			at time.Time
		}
		ch := make(chan chunk, 1024)
		go func() {
			defer close(ch)
			for {
				b := make([]byte, 64<<10)
				n, err := u.Read(b)
				if n > 0 {
					ch <- chunk{b[:n], time.Now().Add(delay)}
				}
				if err != nil {
					return
				}
			}
		}()
		for c := range ch {
			time.Sleep(time.Until(c.at))
			if _, err := s.Write(c.b); err != nil {
				return
			}
		}
	})
}

// trickleProxy forwards to upstream, passing the server's answers on in
// pieces of size bytes, one every gap.
func trickleProxy(t testing.TB, upstream string, size int, gap time.Duration) string {
	return fakeServer(t, func(s net.Conn) {
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		defer u.Close()
		go func() { io.Copy(u, s); u.Close() }()
		b := make([]byte, size)
		for {
			n, err := u.Read(b)
			if n > 0 {
				time.Sleep(gap)
				if _, werr := s.Write(b[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

func isTimeoutErr(err error) bool {
	var te *TimeoutError
	return errors.As(err, &te) && errors.Is(err, os.ErrDeadlineExceeded) && errors.Is(err, context.DeadlineExceeded)
}

// A server that never answers: every kind of call times out on its own,
// and the connection stays up.
func TestSilentServerTimeouts(t *testing.T) {
	addr := fakeServer(t, silent)
	c := dialT(t, addr, ClientOptions{ReadTimeout: 100 * time.Millisecond})
	calls := map[string]func() error{
		"Get":  func() error { _, err := c.Get(0, "k"); return err },
		"Set":  func() error { _, err := c.Set(0, "k", 0, 0, []byte("v")); return err },
		"Incr": func() error { _, err := c.Incr(0, "k", 1, 0, 0); return err },
		"GetBulk": func() error {
			return c.GetBulk(0, []string{"a", "b"}, map[string]*gomemcached.MCResponse{}, nil)
		},
		"Stats": func() error { _, err := c.Stats(""); return err },
		"Send":  func() error { _, err := c.Send(&gomemcached.MCRequest{Opcode: gomemcached.NOOP}); return err },
		"DoQuiet": func() error {
			_, err := c.Do(context.Background(), &gomemcached.MCRequest{Opcode: gomemcached.GETQ})
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !isTimeoutErr(err) {
			t.Errorf("%s: %v, want a timeout", name, err)
		}
		if d := time.Since(start); d < 90*time.Millisecond || d > 2*time.Second {
			t.Errorf("%s timed out after %v", name, d)
		}
	}
	// Context deadline and cancellation.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); !isTimeoutErr(err) {
		t.Errorf("Do past the context's deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if _, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); !errors.Is(err, context.Canceled) {
		t.Errorf("Do cancelled: %v", err)
	}
	// Many at once, each on its own.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.Get(0, "k"); !isTimeoutErr(err) {
				t.Errorf("concurrent Get: %v", err)
			}
		})
	}
	wg.Wait()
	if !c.IsHealthy() {
		t.Error("timeouts made the client unhealthy")
	}
	if c.Pending() == 0 {
		t.Error("abandoned calls should keep their opaques until answered")
	}
}

// A server that never answers, with no deadline: the watchdog ends the
// connection and every waiting call fails with the same typed error.
func TestStuckWatchdog(t *testing.T) {
	addr := fakeServer(t, silent)
	c := dialT(t, addr, ClientOptions{StuckTimeout: 200 * time.Millisecond})
	start := time.Now()
	errs := make(chan error, 11)
	for range 10 {
		go func() { _, err := c.Get(0, "k"); errs <- err }()
	}
	go func() { _, err := c.Receive(); errs <- err }()
	for range 11 {
		select {
		case err := <-errs:
			var ce *ConnError
			if !errors.As(err, &ce) || !errors.Is(err, ErrStuck) || !errors.Is(err, ErrClosed) ||
				!errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("waiting call: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("calls still waiting after 5s")
		}
	}
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("connection declared stuck after %v", d)
	}
	if c.IsHealthy() {
		t.Error("stuck client still healthy")
	}
	if _, err := c.Get(0, "k"); !errors.Is(err, ErrStuck) {
		t.Errorf("call after the watchdog: %v", err)
	}
}

// Answers that arrive after their callers gave up are discarded, and the
// connection stays in step.
func TestLateResponsesDiscarded(t *testing.T) {
	mc := peer.Memcached(t)
	p := keyPrefix(t)
	setup := dialT(t, mc)
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = p + strconv.Itoa(i)
		ok(t)(setup.Set(0, keys[i], 0, 0, []byte("v"+strconv.Itoa(i))))
	}
	c := dialT(t, delayProxy(t, mc, 150*time.Millisecond))
	for round := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		_, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(keys[round])})
		cancel()
		if !isTimeoutErr(err) {
			t.Fatalf("Do through a slow proxy: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		err = c.GetBulk(0, keys, map[string]*gomemcached.MCResponse{}, nil)
		c.SetReadDeadline(time.Time{})
		if !isTimeoutErr(err) {
			t.Fatalf("GetBulk through a slow proxy: %v", err)
		}
		// A lone caller reading its own answer, with a deadline.
		waitFor(t, "the late answers", func() bool { return c.Pending() == 0 })
		c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		_, err = c.Get(0, keys[round])
		c.SetReadDeadline(time.Time{})
		if !isTimeoutErr(err) {
			t.Fatalf("Get through a slow proxy: %v", err)
		}
		// Calls after them get their own answers, not the stale ones.
		for _, i := range []int{round + 1, 100 + round} {
			res, err := c.Get(0, keys[i])
			if err != nil || string(res.Body) != "v"+strconv.Itoa(i) {
				t.Fatalf("round %d: Get(%d) = %v %q, %v", round, i, res, res.Body, err)
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); c.Pending() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still registered after their answers came", c.Pending())
		}
	}
}

// A bulk get whose answers trickle in takes longer than ReadTimeout in all,
// but never waits that long for one response: it succeeds, and the
// watchdog, seeing bytes arrive, leaves the connection alone.
func TestBulkDeadlinePerResponse(t *testing.T) {
	mc := peer.Memcached(t, "-I", "2m")
	p := keyPrefix(t)
	setup := dialT(t, mc)
	var keys []string
	for i := range 4 {
		keys = append(keys, p+strconv.Itoa(i))
		ok(t)(setup.Set(0, keys[i], 0, 0, randomBytes(1<<20, uint64(i))))
	}
	// 64 KiB every 25 ms: about 400 ms per value, 1.6 s in all.
	c := dialT(t, trickleProxy(t, mc, 64<<10, 25*time.Millisecond),
		ClientOptions{ReadTimeout: time.Second, StuckTimeout: 300 * time.Millisecond})
	start := time.Now()
	rv := map[string]*gomemcached.MCResponse{}
	if err := c.GetBulk(0, keys, rv, nil); err != nil {
		t.Fatalf("GetBulk after %v: %v", time.Since(start), err)
	}
	// Each piece of 64 KiB is held 25 ms: 4 MiB take at least 1.6 s, longer
	// than ReadTimeout, which must then have applied to each response.
	if d := time.Since(start); d < time.Second {
		t.Errorf("the bulk get took only %v, less than ReadTimeout: the test proves nothing", d)
	}
	for i, k := range keys {
		if res := rv[k]; res == nil || len(res.Body) != 1<<20 || res.Body[7] != randomBytes(8, uint64(i))[7] {
			t.Errorf("value %d wrong", i)
		}
	}
}

// A server that closes in the middle of a response: every waiting call
// fails at once with the typed error, and nothing hangs.
func TestServerClosesMidResponse(t *testing.T) {
	const callers = 10
	addr := fakeServer(t, func(s net.Conn) {
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		reqs := readRequests(s, callers)
		if len(reqs) == 0 {
			return
		}
		res := gomemcached.MCResponse{Opcode: gomemcached.GET, Opaque: reqs[0].Opaque, Extras: make([]byte, 4), Body: make([]byte, 100)}
		s.Write(res.Bytes()[:40]) // half a response
	})
	c := dialT(t, addr)
	errs := make(chan error, callers)
	for i := range callers {
		go func() { _, err := c.Get(0, "k"+strconv.Itoa(i)); errs <- err }()
	}
	for range callers {
		select {
		case err := <-errs:
			var ce *ConnError
			if !errors.As(err, &ce) || !errors.Is(err, ErrClosed) || !errors.Is(err, gomemcached.ErrTruncated) ||
				!errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("waiting call: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("calls still waiting after 5s")
		}
	}
	if c.IsHealthy() {
		t.Error("healthy after the server closed")
	}
	start := time.Now()
	if _, err := c.Get(0, "k"); !errors.Is(err, gomemcached.ErrTruncated) || time.Since(start) > time.Second {
		t.Errorf("call on the dead connection: %v after %v", err, time.Since(start))
	}
	if _, err := c.Receive(); !errors.Is(err, ErrClosed) {
		t.Errorf("Receive on the dead connection: %v", err)
	}
}

// A server that answers one request and closes between packets: io.EOF.
func TestServerClosesBetweenPackets(t *testing.T) {
	addr := fakeServer(t, func(s net.Conn) {
		reqs := readRequests(s, 1)
		if len(reqs) == 1 {
			res := gomemcached.MCResponse{Opcode: reqs[0].Opcode, Opaque: reqs[0].Opaque}
			res.Transmit(s)
		}
		// Half-close, then drain: a close with the client's next request
		// unread would reset the connection instead of ending it.
		s.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, s)
	})
	c := dialT(t, addr)
	if _, err := c.Send(&gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Get(0, "k")
	if !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) {
		t.Errorf("Get after the server closed: %v", err)
	}
}

// Garbage from the server ends the connection with a protocol error.
func TestServerSendsGarbage(t *testing.T) {
	addr := fakeServer(t, func(s net.Conn) {
		readRequests(s, 1)
		s.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		io.Copy(io.Discard, s)
	})
	c := dialT(t, addr)
	_, err := c.Get(0, "k")
	if !errors.Is(err, ErrClosed) || !errors.Is(err, gomemcached.ErrProtocol) || !errors.Is(err, gomemcached.ErrBadMagic) {
		t.Errorf("Get answered with garbage: %v", err)
	}
}

// A response larger than MaxValue ends the connection before it is read.
func TestResponseTooLarge(t *testing.T) {
	addr := fakeServer(t, func(s net.Conn) {
		reqs := readRequests(s, 1)
		if len(reqs) == 1 {
			var h [24]byte
			h[0], h[1] = gomemcached.RES_MAGIC, byte(gomemcached.GET)
			binary.BigEndian.PutUint32(h[8:], 1<<30)
			binary.BigEndian.PutUint32(h[12:], reqs[0].Opaque)
			s.Write(h[:])
		}
		io.Copy(io.Discard, s)
	})
	c := dialT(t, addr, ClientOptions{MaxValue: 1 << 20})
	if _, err := c.Get(0, "k"); !errors.Is(err, gomemcached.ErrBodyTooLarge) {
		t.Errorf("Get answered with 1 GiB: %v", err)
	}
}

// A server that stops reading: the write timeout ends the connection.
func TestWriteTimeout(t *testing.T) {
	stop := make(chan struct{})
	addr := fakeServer(t, func(s net.Conn) { <-stop })
	defer close(stop)
	c := dialT(t, addr, ClientOptions{WriteTimeout: 200 * time.Millisecond, ReadTimeout: 10 * time.Second})
	big := make([]byte, 8<<20)
	var err error
	start := time.Now()
	for i := 0; i < 8 && err == nil; i++ {
		_, err = c.Set(0, "k", 0, 0, big)
	}
	if !errors.Is(err, ErrClosed) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Set to a server that does not read: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// Hijack in the middle of a packet: the reader finishes it, and the
// hijacked connection yields it, then the rest of the stream.
func TestHijackMidPacket(t *testing.T) {
	first := gomemcached.MCResponse{Opcode: gomemcached.GET, Opaque: 1, Extras: make([]byte, 4), Body: []byte("first value")}
	second := gomemcached.MCResponse{Opcode: gomemcached.NOOP, Opaque: 2}
	sent := make(chan struct{})
	addr := fakeServer(t, func(s net.Conn) {
		readRequests(s, 1)
		b := first.Bytes()
		s.Write(b[:10])
		close(sent)
		time.Sleep(200 * time.Millisecond)
		s.Write(b[10:])
		second.Transmit(s)
		io.Copy(io.Discard, s)
	})
	c := dialT(t, addr)
	if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte("k"), Opaque: 1}); err != nil {
		t.Fatal(err)
	}
	<-sent
	time.Sleep(50 * time.Millisecond) // let the reader take the first bytes
	conn := c.Hijack()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []*gomemcached.MCResponse{&first, &second} {
		var got gomemcached.MCResponse
		if _, err := got.Receive(conn, nil); err != nil || got.Opaque != want.Opaque || string(got.Body) != string(want.Body) {
			t.Fatalf("read %v %q, %v; want %v", got, got.Body, err, want)
		}
	}
	conn.Close()
}

// Closing a client fails its waiting calls with ErrClosed itself.
func TestCloseFailsWaiters(t *testing.T) {
	addr := fakeServer(t, silent)
	c := dialT(t, addr)
	errs := make(chan error, 5)
	for range 5 {
		go func() { _, err := c.Get(0, "k"); errs <- err }()
	}
	waitFor(t, "the calls", func() bool { return c.Pending() == 5 })
	c.Close()
	for range 5 {
		err := <-errs
		var ce *ConnError
		if !errors.As(err, &ce) || ce.Err != ErrClosed || err.Error() != ErrClosed.Error() {
			t.Errorf("call waiting at Close: %v", err)
		}
	}
}

// TestReadRoleStress moves the read role back and forth: callers come and
// go, alone or together, with and without contexts, some with deadlines
// short enough to be missed on a proxy that adds latency. Every answer
// must be the right one.
func TestReadRoleStress(t *testing.T) {
	mc := peer.Memcached(t)
	p := keyPrefix(t)
	setup := dialT(t, mc)
	const nkeys = 50
	for i := range nkeys {
		ok(t)(setup.Set(0, p+strconv.Itoa(i), 0, 0, []byte("v"+strconv.Itoa(i))))
	}
	slow := delayProxy(t, mc, 2*time.Millisecond)
	for _, tc := range []struct {
		name string
		addr string
		rt   time.Duration // ReadTimeout, for the calls without a context
	}{
		{"direct", mc, 0},
		{"delayed", slow, 0},
		{"delayed with read timeout", slow, 3 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialT(t, tc.addr, ClientOptions{ReadTimeout: tc.rt})
			deadline := time.Now().Add(3 * time.Second)
			var wg sync.WaitGroup
			var answered, timedOut atomic.Int64
			for g := range 6 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 7))
					for i := 0; i < 400 && time.Now().Before(deadline); i++ {
						k := r.IntN(nkeys)
						key := p + strconv.Itoa(k)
						var res *gomemcached.MCResponse
						var err error
						switch r.IntN(4) {
						case 0: // compat: lone callers read themselves
							res, err = c.Get(0, key)
						case 1: // a context: the goroutine reads
							ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+r.IntN(4))*time.Millisecond)
							res, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(key)})
							cancel()
						case 2: // a bulk get
							rv := map[string]*gomemcached.MCResponse{}
							err = c.GetBulk(0, []string{key, p + "absent", key}, rv, nil)
							res = rv[key]
						case 3: // pause, so the connection goes idle
							time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
							continue
						}
						if isTimeoutErr(err) {
							timedOut.Add(1)
							continue
						}
						if err != nil || res == nil || string(res.Body) != "v"+strconv.Itoa(k) {
							t.Errorf("goroutine %d: key %d answered %v, %v", g, k, res, err)
							return
						}
						answered.Add(1)
					}
				})
			}
			wg.Wait()
			t.Logf("%d answered, %d timed out", answered.Load(), timedOut.Load())
			if answered.Load() == 0 {
				t.Error("nothing answered")
			}
			// In step afterwards, alone (retrying what the read timeout
			// cuts short).
			for i := range nkeys {
				var res *gomemcached.MCResponse
				var err error
				for range 50 {
					if res, err = c.Get(0, p+strconv.Itoa(i)); !isTimeoutErr(err) {
						break
					}
				}
				if err != nil || string(res.Body) != "v"+strconv.Itoa(i) {
					t.Fatalf("after the storm: key %d: %v, %v", i, res, err)
				}
			}
		})
	}
}

// Packets the server sends unasked (here a duplex request, magic 0x82,
// and a response with framing extras) reach Receive, and a Hijack hands
// back the exact bytes of those not received.
func TestHijackKeepsBytes(t *testing.T) {
	frames, _ := gomemcached.AppendFrame(nil, gomemcached.FrameServerDuration, []byte{0, 9})
	push := gomemcached.MCResponse{Opcode: 0x01, Opaque: 5, Key: []byte("cfg"), Body: []byte(`{"rev":1}`)}
	pushBytes := push.Bytes()
	pushBytes[0] = gomemcached.ServerRequestMagic
	flex := gomemcached.MCResponse{Opcode: gomemcached.GET, Opaque: 6, FlexibleExtras: frames, Extras: make([]byte, 4), Body: []byte("v")}
	flexBytes := flex.Bytes()
	want := append(append([]byte(nil), pushBytes...), flexBytes...)
	addr := fakeServer(t, func(s net.Conn) {
		s.Write(pushBytes)
		s.Write(pushBytes)
		s.Write(flexBytes)
		io.Copy(io.Discard, s)
	})
	c := dialT(t, addr)
	res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
	if err != nil || res.Opcode != 0x01 || string(res.Key) != "cfg" {
		t.Fatalf("Receive: %v, %v", res, err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(c.c.raw) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("packets never queued")
		}
	}
	conn := c.Hijack()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, want) {
		t.Errorf("hijacked bytes:\n% x\nwant\n% x (%v)", got, want, err)
	}
	conn.Close()
}
