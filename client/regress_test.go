package memcached

// Regression tests for the review of the client: each failed before its
// fix. Their names say what must hold.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// echoPipe answers every request with a SUCCESS response of the same
// opcode and opaque (nothing for a quiet opcode).
func echoPipe(t *testing.T) *Client {
	return pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		if req.Opcode.IsQuiet() {
			return nil
		}
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
	})
}

// echoServer answers each request on a TCP connection with a SUCCESS
// response of the same opcode and opaque, and returns its address.
func echoServer(t *testing.T) string {
	return fakeServer(t, func(s net.Conn) {
		rd := gomemcached.NewReader(s)
		var req gomemcached.MCRequest
		for rd.ReadRequest(&req) == nil {
			if _, err := (&gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}).Transmit(s); err != nil {
				return
			}
		}
	})
}

// waitFor polls cond until it holds, failing the test after 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Stats and GetBulk racing Close, through the public API: each call
// returns the full answer or an error, never a partial answer with a nil
// error, and nothing panics (the reader used to answer a multi-packet call
// a second time after Close had, recycling its waiter under its caller).
func TestCloseDuringMultiPacketCalls(t *testing.T) {
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
		c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
			switch req.Opcode {
			case gomemcached.STAT:
				out := make([]*gomemcached.MCResponse, 0, 9)
				for j := range 8 {
					out = append(out, &gomemcached.MCResponse{Opcode: gomemcached.STAT, Opaque: req.Opaque, Key: []byte("s" + strconv.Itoa(j)), Body: []byte("v")})
				}
				return append(out, &gomemcached.MCResponse{Opcode: gomemcached.STAT, Opaque: req.Opaque})
			case gomemcached.GETQ:
				return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque, Extras: make([]byte, 4), Body: []byte("x")}}
			}
			return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
		})
		var wg sync.WaitGroup
		wg.Go(func() {
			if i%2 == 0 {
				st, err := c.Stats("")
				if err == nil && len(st) != 8 {
					t.Errorf("Stats racing Close: %d stats and a nil error", len(st))
				}
				return
			}
			rv := map[string]*gomemcached.MCResponse{}
			if err := c.GetBulk(0, []string{"a", "b", "c"}, rv, nil); err == nil && len(rv) != 3 {
				t.Errorf("GetBulk racing Close: %d values and a nil error", len(rv))
			}
		})
		time.Sleep(time.Duration(rand.IntN(40)) * time.Microsecond)
		c.Close()
		wg.Wait()
	}
	// The waiters recycled meanwhile are sound: calls drawing them work.
	c := echoPipe(t)
	for range 100 {
		if res, err := c.Send(&gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil || res == nil || res.Opcode != gomemcached.NOOP {
			t.Fatalf("NOOP after the storm: %v, %v", res, err)
		}
	}
}

// blockingHandler is a multi-packet handler (as statsCall, bulkCall and
// quietCall are) that holds its first packet until the test lets it go.
type blockingHandler struct {
	inLast, proceed chan struct{}
}

func (h *blockingHandler) handle(res *gomemcached.MCResponse, i, n uint32) bool {
	close(h.inLast)
	<-h.proceed
	return true
}

// A lone call answered by several packets (Stats) whose connection is
// closed while the reader is in its handler gets the ConnError: the reader
// does not answer it a second time (which wiped the error and recycled the
// waiter under the caller).
func TestHandlerCallClosedLone(t *testing.T) {
	c := echoPipe(t)
	h := &blockingHandler{inLast: make(chan struct{}), proceed: make(chan struct{})}
	w := getWaiter(gomemcached.STAT)
	w.h = h
	type result struct {
		res *gomemcached.MCResponse
		err error
	}
	out := make(chan result, 1)
	go func() {
		res, err := c.c.roundTrip(nil, w, &request{opcode: gomemcached.STAT}, time.Time{})
		out <- result{res, err}
	}()
	<-h.inLast
	go c.Close()
	waitFor(t, "the connection to end", func() bool { return !c.alive() })
	time.Sleep(10 * time.Millisecond) // fail has answered the waiter
	close(h.proceed)
	if r := <-out; !errors.Is(r.err, ErrClosed) {
		t.Errorf("call on a connection closed under it returned %v, %v", r.res, r.err)
	}
}

// The same with the reader goroutine (GetBulk's path): once fail has
// answered the call and its caller has recycled the waiter, the reader
// leaves the waiter alone, instead of putting it back in the pool with a
// token in its channel (the next call drawing it then returned at once).
func TestHandlerCallClosedGoroutine(t *testing.T) {
	c := echoPipe(t)
	h := &blockingHandler{inLast: make(chan struct{}), proceed: make(chan struct{})}
	w := getWaiter(gomemcached.GETQ)
	w.h = h
	tmpl := request{opcode: gomemcached.NOOP}
	if err := c.c.submitFenced(w, &tmpl, nil, 0, flushCall, time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.c.await(nil, w, time.Time{}, time.Now()); done <- err }()
	<-h.inLast
	c.c.fail(ErrClosed) // as Close, a write error or the watchdog would
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("await: %v", err)
	}
	// w is in the pool now: hold it, so that the check below sees it
	// rather than a call of another test.
	w2 := getWaiter(gomemcached.NOOP)
	defer w2.release()
	close(h.proceed) // the reader goes on with the handler's "last"
	time.Sleep(20 * time.Millisecond)
	if w2 == w {
		if s := w.state.Load(); s != stateWaiting || len(w.ch) != 0 {
			t.Errorf("pooled waiter poisoned: state %d, %d tokens in its channel", s, len(w.ch))
		}
	}
	if s := w.state.Load(); s == stateDone && len(w.ch) != 0 {
		t.Errorf("waiter answered twice: state %d, %d tokens in its channel", s, len(w.ch))
	}
}

// The reference's raw callers Transmit with the high bit set
// (UprGetFailoverLog's 0xDEADBEEF, upr_feed.go's 0xBEAF0001): the
// responses reach Receive, and the client's own calls never draw those
// opaques afterwards.
func TestTransmitHighBitOpaque(t *testing.T) {
	var mu sync.Mutex
	var seen []uint32
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		mu.Lock()
		seen = append(seen, req.Opaque)
		mu.Unlock()
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
	})
	for _, op := range []uint32{0xDEADBEEF, 0xBEAF0001} {
		if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: op}); err != nil {
			t.Fatal(err)
		}
		res, err := c.ReceiveWithDeadline(time.Now().Add(2 * time.Second))
		if err != nil || res.Opaque != op {
			t.Fatalf("Receive after Transmit(%#x): %v, %v", op, res, err)
		}
	}
	// The counter reaches a reserved opaque: the call skips it.
	c.c.mu.Lock()
	c.c.ops.next = 0xBEAF0001 &^ opaqueTag
	c.c.mu.Unlock()
	if res, err := c.Send(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 7}); err != nil || res.Opaque != 7 {
		t.Fatalf("Send: %v, %v", res, err)
	}
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	if last == 0xBEAF0001 {
		t.Errorf("a call of the client was sent with the reserved opaque %#x", last)
	}
	if res, err := c.ReceiveWithDeadline(time.Now().Add(50 * time.Millisecond)); !isTimeoutErr(err) {
		t.Errorf("Receive after Send: %v, %v", res, err)
	}
}

// A Transmit of an opaque with the high bit that a call of the client is
// waiting for is refused, unsent: its response would answer the call.
func TestTransmitOpaqueInUse(t *testing.T) {
	var mu sync.Mutex
	var held *gomemcached.MCResponse
	var transmitted []uint32
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		mu.Lock()
		defer mu.Unlock()
		if req.Opcode == gomemcached.GET { // hold the GET's answer until the NOOP
			held = &gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Status: gomemcached.KEY_ENOENT}
			return nil
		}
		transmitted = append(transmitted, req.Opaque)
		out := []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
		if held != nil {
			out = append(out, held)
		}
		return out
	})
	c.c.mu.Lock()
	c.c.ops.next = 0xDEADBEEF &^ opaqueTag // the client's next opaque is 0xDEADBEEF
	c.c.mu.Unlock()
	got := make(chan *gomemcached.MCResponse, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		res, _ := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte("k")})
		got <- res
	}()
	waitFor(t, "the GET to be sent", func() bool { mu.Lock(); defer mu.Unlock(); return held != nil })
	if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 0xDEADBEEF}); err != ErrOpaqueInUse {
		t.Errorf("Transmit of the GET's opaque: %v", err)
	}
	if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 1}); err != nil {
		t.Fatal(err)
	}
	if res := <-got; res == nil || res.Opcode != gomemcached.GET || res.Status != gomemcached.KEY_ENOENT {
		t.Errorf("GET answered with %v", res)
	}
	if res, err := c.ReceiveWithDeadline(time.Now().Add(2 * time.Second)); err != nil || res.Opaque != 1 {
		t.Errorf("Receive: %v, %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(transmitted) != 1 || transmitted[0] != 1 {
		t.Errorf("the server saw transmitted opaques %#x, want only 1", transmitted)
	}
}

// A Pool with MaxOpen 1 whose one connection is idle: Shared takes it over
// rather than waiting for a slot (forever, with IdleTimeout negative).
func TestPoolSharedTakesOverIdle(t *testing.T) {
	p := NewPool("tcp", echoServer(t), PoolOptions{MaxOpen: 1, IdleTimeout: -1})
	defer p.Close()
	ctx := context.Background()
	c, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Put(c) // idle now, holding the one slot
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := p.Do(short, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil {
		t.Fatalf("Pool.Do with one idle connection and MaxOpen 1: %v (stats %+v)", err, p.Stats())
	}
	if s := p.Stats(); s != (PoolStats{Open: 1, Shared: 1}) {
		t.Errorf("stats %+v", s)
	}
}

// A Pool whose shared connections hold every slot (MaxOpen 1): Get takes
// one out of sharing rather than waiting forever, and Do and Get then
// share the slot in turn.
func TestPoolGetTakesSharedSlot(t *testing.T) {
	p := NewPool("tcp", echoServer(t), PoolOptions{MaxOpen: 1})
	defer p.Close()
	ctx := context.Background()
	noop := &gomemcached.MCRequest{Opcode: gomemcached.NOOP}
	shared, err := p.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := p.Get(short)
	if err != nil {
		t.Fatalf("Pool.Get with MaxOpen 1 after one Do: %v (stats %+v)", err, p.Stats())
	}
	if c == shared {
		t.Fatal("Get lent the shared connection")
	}
	if _, err := shared.Do(ctx, noop); !errors.Is(err, ErrClosed) {
		t.Errorf("call on the connection taken out of sharing: %v", err)
	}
	if s := p.Stats(); s != (PoolStats{Open: 1}) {
		t.Errorf("stats with the connection lent: %+v", s)
	}
	// Do waits for the slot, and gets it back when the lent one is idle.
	done := make(chan error, 1)
	go func() { _, err := p.Do(short, noop); done <- err }()
	time.Sleep(20 * time.Millisecond)
	p.Put(c)
	if err := <-done; err != nil {
		t.Errorf("Do after Put: %v (stats %+v)", err, p.Stats())
	}
}

// A shared connection that the lock-free path of Shared returned just
// before the reaper found it idle is still usable: the reaper takes it out
// of sharing, and closes it (retires it) on a later run only, and only if
// no call is in flight; a call on it after that fails, unsent.
func TestPoolReapSparesFreshShared(t *testing.T) {
	addr := echoServer(t)
	p := NewPool("tcp", addr, PoolOptions{IdleTimeout: time.Hour})
	defer p.Close()
	ctx := context.Background()
	if _, err := p.Shared(ctx); err != nil {
		t.Fatal(err)
	}
	// A second shared connection, idle for longer than IdleTimeout.
	p.slots <- struct{}{}
	c2, err := Dial(ctx, "tcp", addr, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pc := &pooledConn{c: c2}
	pc.lastUsed.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	p.mu.Lock()
	p.shared = append(p.shared, pc)
	p.publishLocked()
	p.mu.Unlock()

	got := (*p.snapshot.Load())[1].c // as Shared's lock-free path returns it
	p.reap()
	noop := &gomemcached.MCRequest{Opcode: gomemcached.NOOP}
	if _, err := got.Do(ctx, noop); err != nil {
		t.Fatalf("call on a shared connection the reaper found idle: %v", err)
	}
	if s := p.Stats(); s != (PoolStats{Open: 2, Shared: 1}) {
		t.Errorf("stats after the first reap: %+v", s)
	}
	p.reap()
	if s := p.Stats(); s != (PoolStats{Open: 1, Shared: 1}) {
		t.Errorf("stats after the second reap: %+v", s)
	}
	_, err = got.Do(ctx, noop)
	var ce *ConnError
	if !errors.Is(err, ErrClosed) || !errors.As(err, &ce) || !isRetired(err) {
		t.Errorf("call on a retired connection: %v", err)
	}
	if _, err := p.Do(ctx, noop); err != nil {
		t.Errorf("Pool.Do: %v", err)
	}
}

// A context bounds a call also while it writes its own request: a lone
// Do to a server that does not read returns when the context ends, not
// when the watchdog ends the connection (3s): within 2s, room for a busy
// machine.
func TestContextBoundsWrite(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	addr := fakeServer(t, func(s net.Conn) { <-stop }) // never reads
	c := dialT(t, addr, ClientOptions{StuckTimeout: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.SET, Key: []byte("k"), Extras: make([]byte, 8), Body: make([]byte, 16<<20)})
	if d := time.Since(start); d > 2*time.Second || !isTimeoutErr(err) {
		t.Errorf("Do with a 200ms context returned after %v: %v", d, err)
	}
	// Cancelled rather than timed out, likewise.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.SET, Key: []byte("k"), Extras: make([]byte, 8), Body: make([]byte, 1<<20)})
	if d := time.Since(start); d > 2*time.Second || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Do returned after %v: %v", d, err)
	}
}

// slowReader is a server that reads nothing for a while, then answers
// every request.
func slowReader(pause time.Duration) func(net.Conn) {
	return func(s net.Conn) {
		time.Sleep(pause)
		rd := gomemcached.NewReader(s)
		var req gomemcached.MCRequest
		for rd.ReadRequest(&req) == nil {
			if _, err := (&gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}).Transmit(s); err != nil {
				return
			}
		}
	}
}

// ReadTimeout bounds a lone call's write too, on a plain socket (the
// caller writes with the deadline and leaves the rest of the write to the
// writer goroutine) and on another transport (the writer goroutine writes
// it all); either way the connection stays in step.
func TestDeadlineBoundsWrite(t *testing.T) {
	big := make([]byte, 16<<20)
	// The server starts reading after pause; the Set must end long before,
	// with a timeout. (The margin is wide: on a loaded machine a 200ms
	// timer may fire late.)
	const pause = 3 * time.Second
	check := func(t *testing.T, c *Client) {
		start := time.Now()
		_, err := c.Set(0, "k", 0, 0, big)
		if d := time.Since(start); d > pause/2 || !isTimeoutErr(err) {
			t.Errorf("Set with ReadTimeout 200ms to a server not reading returned after %v: %v", d, err)
		}
		// The write goes on, and the answer comes, once the server reads.
		waitFor(t, "the answer to the Set", func() bool { return c.Pending() == 0 })
		if res, err := c.Get(0, "k"); err != nil || res.Opcode != gomemcached.GET {
			t.Errorf("Get after it: %v, %v", res, err)
		}
	}
	t.Run("tcp", func(t *testing.T) {
		c := dialT(t, fakeServer(t, slowReader(pause)), ClientOptions{ReadTimeout: 200 * time.Millisecond})
		if !c.c.resumable {
			t.Fatal("a TCP connection is not resumable")
		}
		check(t, c)
	})
	t.Run("pipe", func(t *testing.T) {
		c := rawServer(t, ClientOptions{ReadTimeout: 200 * time.Millisecond}, slowReader(pause))
		check(t, c)
	})
}

// closeSpy is a transport that records, when closed, whether a waiter had
// been answered.
type closeSpy struct {
	net.Conn
	w        *waiter
	answered atomic.Int32 // 1 answered, 2 not
}

func (s *closeSpy) Close() error {
	if w := s.w; w != nil {
		if w.state.Load() == stateDone {
			s.answered.Store(1)
		} else {
			s.answered.Store(2)
		}
	}
	return s.Conn.Close()
}

// fail answers the waiting calls before it closes the socket, so that a
// call that the close interrupts (its write, its read) finds its
// ConnError, rather than taking the interruption for its own deadline.
func TestFailAnswersBeforeClose(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	go io.Copy(io.Discard, srv)
	spy := &closeSpy{Conn: cli}
	c := NewClient(spy, ClientOptions{})
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
		errc <- err
	}()
	waitFor(t, "the call", func() bool { return c.Pending() == 1 })
	c.c.mu.Lock()
	for _, w := range c.c.ops.single {
		spy.w = w
	}
	c.c.mu.Unlock()
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("call: %v", err)
	}
	if spy.answered.Load() != 1 {
		t.Error("the socket was closed before the waiting call was answered")
	}
}

// A Transmit whose deadline has passed sends nothing and returns a
// *TimeoutError; the connection stays up (it used to put the past
// deadline on the socket, fail the write and end the connection).
func TestTransmitPastDeadline(t *testing.T) {
	c := dialT(t, echoServer(t))
	err := c.TransmitWithDeadline(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 1}, time.Now().Add(-time.Millisecond))
	if !isTimeoutErr(err) {
		t.Errorf("TransmitWithDeadline(past) = %v", err)
	}
	if res, err := c.Send(&gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil || res.Opaque != 0 {
		t.Errorf("the next call on the connection: %v, %v", res, err)
	}
	if res, err := c.ReceiveWithDeadline(time.Now().Add(50 * time.Millisecond)); !isTimeoutErr(err) {
		t.Errorf("the expired Transmit was sent: Receive %v, %v", res, err)
	}
}

// A Transmit whose deadline passes while its request is being written
// returns a *TimeoutError, and the request is still written whole: the
// connection stays in step.
func TestTransmitDeadlineMidWrite(t *testing.T) {
	// The server reads nothing for 2 s; the 100 ms deadline must end the
	// call well before (1 s leaves room for a loaded machine: it once
	// took 421 ms under -race with every package's tests running).
	c := dialT(t, fakeServer(t, slowReader(2*time.Second)))
	big := &gomemcached.MCRequest{Opcode: gomemcached.SET, Key: []byte("k"), Extras: make([]byte, 8), Body: make([]byte, 16<<20), Opaque: 5}
	start := time.Now()
	err := c.TransmitWithDeadline(big, time.Now().Add(100*time.Millisecond))
	if d := time.Since(start); d > time.Second || !isTimeoutErr(err) {
		t.Errorf("TransmitWithDeadline returned after %v: %v", d, err)
	}
	if res, err := c.ReceiveWithDeadline(time.Now().Add(10 * time.Second)); err != nil || res.Opaque != 5 || res.Opcode != gomemcached.SET {
		t.Errorf("Receive: %v, %v", res, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if res, err := c.Send(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 6}); err != nil || res.Opaque != 6 {
		t.Errorf("Send after it: %v, %v", res, err)
	}
}

// A quiet request whose context has ended, or whose deadline has passed,
// is not sent, as a non-quiet one is not.
func TestQuietNotSentAfterEnd(t *testing.T) {
	var mu sync.Mutex
	var seen []gomemcached.CommandCode
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		mu.Lock()
		seen = append(seen, req.Opcode)
		mu.Unlock()
		if req.Opcode.IsQuiet() {
			return nil
		}
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	set := func(op gomemcached.CommandCode) *gomemcached.MCRequest {
		return &gomemcached.MCRequest{Opcode: op, Key: []byte("a"), Extras: make([]byte, 8)}
	}
	if _, err := c.Do(ctx, set(gomemcached.SET)); !errors.Is(err, context.Canceled) {
		t.Errorf("SET: %v", err)
	}
	if _, err := c.Do(ctx, set(gomemcached.SETQ)); !errors.Is(err, context.Canceled) {
		t.Errorf("SETQ: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Send(set(gomemcached.SETQ)); !isTimeoutErr(err) {
		t.Errorf("SETQ after the deadline: %v", err)
	}
	if err := c.GetBulk(0, []string{"a", "b"}, map[string]*gomemcached.MCResponse{}, nil); !isTimeoutErr(err) {
		t.Errorf("GetBulk after the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	alive(t, c)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != gomemcached.NOOP {
		t.Errorf("the server saw %v, want only the NOOP", seen)
	}
}

// Packets that belong to no call, before the raw API is used, are dropped
// rather than queued for a Receive that nobody makes: they used to fill
// the queue, and then the reader stopped and every call stalled.
func TestUnclaimedDroppedBeforeRaw(t *testing.T) {
	push := &gomemcached.MCResponse{Opcode: gomemcached.NOOP, Opaque: 9, Body: make([]byte, 1000)}
	c := rawServer(t, ClientOptions{ReceiveQueue: 2, ReadTimeout: 2 * time.Second}, func(s net.Conn) {
		rd := gomemcached.NewReader(s)
		var req gomemcached.MCRequest
		for rd.ReadRequest(&req) == nil {
			for range 5 {
				if _, err := push.Transmit(s); err != nil {
					return
				}
			}
			if _, err := (&gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}).Transmit(s); err != nil {
				return
			}
		}
	})
	for i := range 4 {
		// Through the reader goroutine, and as a lone caller.
		var err error
		if i%2 == 0 {
			_, err = c.Do(context.Background(), &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
			cancel()
		}
		if err != nil {
			t.Fatalf("call %d with unclaimed packets around: %v", i, err)
		}
	}
	if n := len(c.c.raw); n != 0 {
		t.Errorf("%d unclaimed packets queued", n)
	}
	if c.c.dropped.Load() == 0 {
		t.Error("nothing counted as dropped")
	}
}

// In raw mode the Receive queue is bounded in bytes too.
func TestReceiveQueueBytes(t *testing.T) {
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque, Body: bytes.Repeat([]byte{byte(req.Opaque)}, 600)}}
	})
	c.c.opts.ReceiveQueueBytes = 1000 // as the option would
	for i := uint32(1); i <= 3; i++ {
		if err := c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: i}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a queued response", func() bool { return len(c.c.raw) > 0 })
	time.Sleep(20 * time.Millisecond)
	if n, b := len(c.c.raw), c.c.rawBytes.Load(); n != 1 || b != 624 {
		t.Errorf("queue holds %d responses, %d bytes; want 1, 624", n, b)
	}
	for i := uint32(1); i <= 3; i++ {
		res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second))
		if err != nil || res.Opaque != i || len(res.Body) != 600 || res.Body[0] != byte(i) {
			t.Fatalf("Receive %d: %v, %v", i, res, err)
		}
	}
	if b := c.c.rawBytes.Load(); b != 0 {
		t.Errorf("%d bytes counted in an empty queue", b)
	}
	// A response larger than the bound still comes through.
	c.c.opts.ReceiveQueueBytes = 100
	c.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 4})
	if res, err := c.ReceiveWithDeadline(time.Now().Add(5 * time.Second)); err != nil || res.Opaque != 4 {
		t.Errorf("Receive of a response larger than the bound: %v, %v", res, err)
	}
}

// countingObserver counts the read errors reported.
type countingObserver struct{ readErrs atomic.Int32 }

func (o *countingObserver) PacketSent(gomemcached.CommandCode, int, error) {}
func (o *countingObserver) PacketReceived(res *gomemcached.MCResponse, n int, err error) {
	if err != nil {
		o.readErrs.Add(1)
	}
}

// A lone call's deadline passing is not reported to the Observer as the
// read error that ended the connection; the connection's end is.
func TestObserverCallTimeoutNotReadError(t *testing.T) {
	obs := &countingObserver{}
	c := dialT(t, fakeServer(t, silent), ClientOptions{ReadTimeout: 30 * time.Millisecond, Observer: obs})
	for range 3 {
		if _, err := c.Get(0, "k"); !isTimeoutErr(err) {
			t.Fatalf("Get from a silent server: %v", err)
		}
	}
	if n := obs.readErrs.Load(); n != 0 {
		t.Errorf("%d read errors reported for call timeouts", n)
	}
	c.Close()
	if n := obs.readErrs.Load(); n > 1 {
		t.Errorf("%d read errors reported at Close", n)
	}
}

// The Stats family on a failed status return what was read before it, as
// the reference does.
func TestStatsPartialOnFailure(t *testing.T) {
	c := pipeServer(t, func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		return []*gomemcached.MCResponse{
			{Opcode: gomemcached.STAT, Opaque: req.Opaque, Key: []byte("a"), Body: []byte("1")},
			{Opcode: gomemcached.STAT, Opaque: req.Opaque, Key: []byte("b"), Body: []byte("2")},
			{Opcode: gomemcached.STAT, Opaque: req.Opaque, Status: gomemcached.EACCESS},
		}
	})
	failed := func(err error) bool {
		res, ok := err.(*gomemcached.MCResponse)
		return ok && res.Status == gomemcached.EACCESS
	}
	st, err := c.Stats("")
	if !failed(err) || len(st) != 2 || st[1] != (StatValue{"b", "2"}) {
		t.Errorf("Stats: %v, %v", st, err)
	}
	var seen []string
	err = c.StatsFunc("", func(k, v []byte) { seen = append(seen, string(k)+"="+string(v)) })
	if !failed(err) || len(seen) != 2 || seen[0] != "a=1" {
		t.Errorf("StatsFunc: %v, %v", seen, err)
	}
	m, err := c.StatsMap("")
	if !failed(err) || len(m) != 2 || m["a"] != "1" || m["b"] != "2" {
		t.Errorf("StatsMap: %v, %v", m, err)
	}
	sm := map[string]string{"b": "old", "z": "old"}
	err = c.StatsMapForSpecifiedStats("", sm)
	if !failed(err) || sm["b"] != "2" || sm["z"] != "" {
		t.Errorf("StatsMapForSpecifiedStats: %v, %v", sm, err)
	}
}

// A call whose context was cancelled with a cause returns an error that
// matches both context.Canceled (ctx.Err()) and the cause; one whose
// deadline passed, a *TimeoutError that also matches the cause.
func TestContextCauseError(t *testing.T) {
	c := dialT(t, fakeServer(t, silent))
	cause := errors.New("shutting down")
	noop := &gomemcached.MCRequest{Opcode: gomemcached.NOOP}

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if _, err := c.Do(ctx, noop); !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
		t.Errorf("Do with a context cancelled before: %v", err)
	}
	ctx, cancel = context.WithCancelCause(context.Background())
	time.AfterFunc(20*time.Millisecond, func() { cancel(cause) })
	if _, err := c.Do(ctx, noop); !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
		t.Errorf("Do with a context cancelled meanwhile: %v", err)
	}
	ctx, cancelT := context.WithTimeoutCause(context.Background(), 20*time.Millisecond, cause)
	defer cancelT()
	if _, err := c.Do(ctx, noop); !isTimeoutErr(err) || !errors.Is(err, cause) {
		t.Errorf("Do with a timeout with a cause: %v", err)
	}
	ctx, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.Do(ctx, noop); err != context.Canceled {
		t.Errorf("Do with a plain cancelled context: %v", err)
	}
}

// Once Hijack asks for the read role, the holder cannot lift Hijack's
// interruption by setting a deadline of its own (it used to, the socket's
// deadline and curRDL disagreeing, and Hijack waited without limit).
func TestHijackInterruptSticks(t *testing.T) {
	c := echoPipe(t)
	c.c.stopReading.Store(true)
	defer c.c.stopReading.Store(false)
	c.c.setReadDeadline(time.Now().Add(time.Hour))
	if !c.c.curRDL.Equal(hijackInterrupt) {
		t.Errorf("the holder's deadline replaced Hijack's: %v", c.c.curRDL)
	}
	c.c.setReadDeadline(time.Time{})
	if !c.c.curRDL.Equal(hijackInterrupt) {
		t.Errorf("the holder cleared Hijack's deadline: %v", c.c.curRDL)
	}
}
