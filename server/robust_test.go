package memcached

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// storeValue sets key to a value of size bytes through a connection of
// its own.
func storeValue(t *testing.T, addr, key string, size int) {
	t.Helper()
	c, r := dial(t, addr)
	send(t, c, gm.MCRequest{Opcode: gm.SET, Key: []byte(key), Body: bytes.Repeat([]byte{'x'}, size)})
	read(t, r)
	c.Close()
}

// readAnswers reads n answers with opaques 0..n-1 and the given body size,
// waiting pause after each.
func readAnswers(t *testing.T, r *gm.Reader, n, size int, pause time.Duration) {
	t.Helper()
	for i := range n {
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != nil {
			t.Fatalf("answer %d of %d: %v", i, n, err)
		}
		if res.Opaque != uint32(i) || len(res.Body) != size {
			t.Fatalf("answer %d: opaque %d, %d bytes; want %d bytes", i, res.Opaque, len(res.Body), size)
		}
		time.Sleep(pause)
	}
}

func gets(key string, n int) []gm.MCRequest {
	reqs := make([]gm.MCRequest, n)
	for i := range reqs {
		reqs[i] = gm.MCRequest{Opcode: gm.GET, Key: []byte(key), Opaque: uint32(i)}
	}
	return reqs
}

// Answers larger than the socket buffers reach a client that starts
// reading late: the rest is sent as the socket drains, without the client
// having to send anything more.
func TestLargeAnswersToLateReader(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}})
		storeValue(t, addr, "big", 8<<20)
		storeValue(t, addr, "mid", 30<<10)
		for _, tc := range []struct {
			name string
			key  string
			n    int
			size int
		}{{"one large value", "big", 1, 8 << 20}, {"pipeline", "mid", 400, 30 << 10}} {
			t.Run(tc.name, func(t *testing.T) {
				c, r := dial(t, addr)
				send(t, c, gets(tc.key, tc.n)...)
				time.Sleep(200 * time.Millisecond)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				readAnswers(t, r, tc.n, tc.size, 0)
			})
		}
		t.Run("half-closed", func(t *testing.T) {
			c, r := dial(t, addr)
			send(t, c, append(gets("big", 2), gm.MCRequest{Opcode: gm.NOOP, Opaque: 2})...)
			c.(*net.TCPConn).CloseWrite()
			time.Sleep(200 * time.Millisecond)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			readAnswers(t, r, 2, 8<<20, 0)
			if res := read(t, r); res.Opaque != 2 {
				t.Fatalf("NOOP: %+v", res)
			}
			var res gm.MCResponse
			if err := r.ReadResponse(&res); err != io.EOF {
				t.Fatalf("after the last answer: %v, want EOF", err)
			}
		})
		t.Run("eager reader", func(t *testing.T) {
			for i := range 20 {
				c, r := dial(t, addr)
				send(t, c, gets("big", 1)...)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var res gm.MCResponse
				if err := r.ReadResponse(&res); err != nil || len(res.Body) != 8<<20 {
					t.Fatalf("try %d: %v, %d bytes", i, err, len(res.Body))
				}
				c.Close()
			}
		})
	})
}

// The answers to the requests before a malformed one, or before one whose
// handler panics, are sent before the connection is closed.
func TestAnswersBeforeBadRequest(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}})
		noop := (&gm.MCRequest{Opcode: gm.NOOP, Opaque: 5}).Bytes()
		// Key length 10 in a 5-byte body.
		malformed := []byte{0x80, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5}
		panics := (&gm.MCRequest{Opcode: 0xee}).Bytes()
		for name, bad := range map[string][]byte{"malformed": malformed, "panic": panics} {
			c, r := dial(t, addr)
			c.Write(append(bytes.Clone(noop), bad...))
			if res := read(t, r); res.Opaque != 5 {
				t.Fatalf("%s: %+v", name, res)
			}
			var res gm.MCResponse
			if err := r.ReadResponse(&res); err != io.EOF {
				t.Fatalf("%s: after the NOOP's answer: %v, want EOF", name, err)
			}
		}
	})
}

// WriteTimeout closes a connection that reads none of its answers.
func TestWriteTimeout(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, WriteTimeout: 100 * time.Millisecond}
		addr := start(t, srv)
		storeValue(t, addr, "v", 30<<10)
		c, _ := dial(t, addr)
		send(t, c, gets("v", 400)...)
		deadline := time.Now().Add(5 * time.Second)
		for srv.Stats().CurrConnections != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := srv.Stats().CurrConnections; n != 0 {
			t.Fatalf("%d connections open 5s after a client stopped reading (WriteTimeout 100ms)", n)
		}
	})
}

// IdleTimeout spares a client that is still reading its answers.
func TestIdleTimeoutSparesReader(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, IdleTimeout: 200 * time.Millisecond})
		storeValue(t, addr, "v", 30<<10)
		c, r := dial(t, addr)
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		// 6 MB of answers, more than the socket buffers hold, read at
		// 5ms each: over a second, five idle timeouts.
		send(t, c, gets("v", 200)...)
		readAnswers(t, r, 200, 30<<10, 5*time.Millisecond)
	})
}

// A panicking ConnContext closes its connection only.
func TestConnContextPanic(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		var setups atomic.Int32
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}},
			ConnContext: func(c *Conn) {
				if setups.Add(1) == 1 {
					panic("setup failed")
				}
			}}
		addr := start(t, srv)
		_, r := dial(t, addr)
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != io.EOF {
			t.Fatalf("connection whose setup panicked: %v, want closed", err)
		}
		c, r := dial(t, addr)
		send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 7})
		if res := read(t, r); res.Opaque != 7 {
			t.Fatal(res)
		}
		if n := srv.Stats().CurrConnections; n != 1 {
			t.Fatalf("CurrConnections %d, want 1", n)
		}
	})
}

// pauser pauses each NOOP's connection twice for 50ms, writes the answer
// and flushes it.
func pauser() Handler {
	mux := NewServeMux()
	mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
		w.Conn().Pause(50 * time.Millisecond)
		w.Conn().Pause(50 * time.Millisecond)
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
		w.Flush()
	}, gm.NOOP)
	mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
		w.Conn().Pause(time.Hour)
	}, gm.VERSION)
	return mux
}

// Pauses add up, and nothing is sent during one, flushed or not.
func TestPausesAddUp(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: pauser()})
		c, r := dial(t, addr)
		t0 := time.Now()
		send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 1}, gm.MCRequest{Opcode: gm.NOOP, Opaque: 2})
		for i := range 2 {
			if res := read(t, r); res.Opaque != uint32(i+1) {
				t.Fatal(res)
			}
			if d, want := time.Since(t0), time.Duration(i+1)*100*time.Millisecond; d < want {
				t.Fatalf("answer %d after %v, want at least %v", i+1, d, want)
			}
		}
	})
}

// Shutdown does not wait out a pause.
func TestShutdownEndsPause(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: pauser(), Logger: quiet}
		l, _ := serve(t, srv)
		c, r := dial(t, l.Addr().String())
		send(t, c, gm.MCRequest{Opcode: gm.VERSION, Opaque: 9})
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t0 := time.Now()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with a connection paused for an hour: %v after %v", err, time.Since(t0))
		}
		// The answer written before the pause is sent, as Shutdown
		// promises, then the connection closes.
		if res := read(t, r); res.Opcode != gm.VERSION || res.Opaque != 9 {
			t.Fatalf("answer before the pause: %+v", res)
		}
		var res gm.MCResponse
		if err := r.ReadResponse(&res); !errors.Is(err, io.EOF) {
			t.Fatalf("after the answer: %v, want EOF", err)
		}
	})
}

// Idle time counts from the end of a pause, not across it.
func TestIdleAfterPause(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		mux := NewServeMux()
		mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
			if req.Opaque == 1 {
				w.Conn().Pause(400 * time.Millisecond)
			}
		}, gm.NOOP)
		addr := start(t, &Server{EventLoops: loops, Handler: mux, IdleTimeout: 200 * time.Millisecond})
		c, r := dial(t, addr)
		send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 1})
		read(t, r)
		time.Sleep(60 * time.Millisecond)
		send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 2})
		if res := read(t, r); res.Opaque != 2 {
			t.Fatalf("after the pause: %+v", res)
		}
	})
}

// Closing a listener ends its Serve, as with net/http, and leaves the
// server's other listeners serving, also connections that are given the
// closed listener's descriptor number.
func TestListenerClosedByOwner(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, Logger: quiet}
		addr := start(t, srv)
		l, done := serve(t, srv)
		c, r := dial(t, l.Addr().String())
		send(t, c, gm.MCRequest{Opcode: gm.NOOP})
		read(t, r)
		l.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Serve of a closed listener returned %v, want net.ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Serve still running 2s after its listener was closed")
		}
		// New connections to the other listener take the freed number.
		for i := range 4 {
			c, r := dial(t, addr)
			send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: uint32(i)})
			if res := read(t, r); res.Opaque != uint32(i) {
				t.Fatal(res)
			}
		}
		// The first listener's connection is still served.
		send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 9})
		if res := read(t, r); res.Opaque != 9 {
			t.Fatal(res)
		}
	})
}

// Serve on a closed server returns at once and leaves nothing running.
func TestServeAfterClose(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Logger: quiet}
		srv.Close()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Serve(l); err != ErrServerClosed {
			t.Fatalf("Serve after Close: %v", err)
		}
		if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
			t.Fatal("listener still open after Serve returned")
		}
		waitLoopsExit(t, srv)
	})
}

// Close racing the first Serve stops whatever Serve started.
func TestCloseRacesServe(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		for range 20 {
			srv := &Server{EventLoops: loops, Logger: quiet}
			_, done := serve(t, srv)
			srv.Close()
			select {
			case err := <-done:
				if err != ErrServerClosed {
					t.Fatalf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after Close")
			}
			waitLoopsExit(t, srv)
		}
	})
}

// When Close or Shutdown returns, the listeners' addresses are free: a
// server can be started again on the same port at once.
func TestRelistenAfterClose(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		for _, name := range []string{"Close", "Shutdown"} {
			for i := range 20 {
				srv := &Server{EventLoops: loops, Logger: quiet}
				l, done := serve(t, srv)
				c, r := dial(t, l.Addr().String())
				send(t, c, gm.MCRequest{Opcode: gm.NOOP})
				read(t, r)
				if name == "Close" {
					srv.Close()
				} else if err := srv.Shutdown(context.Background()); err != nil {
					t.Fatal(err)
				}
				l2, err := net.Listen("tcp", l.Addr().String())
				if err != nil {
					t.Fatalf("%s, round %d: listening again on its address: %v", name, i, err)
				}
				l2.Close()
				<-done
			}
		}
	})
}
