//go:build linux

package memcached

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// waitLoopsExit fails t unless every loop srv started has exited.
func waitLoopsExit(t *testing.T, srv *Server) {
	t.Helper()
	srv.mu.Lock()
	set := srv.loops
	srv.mu.Unlock()
	if set == nil {
		return
	}
	for i, lp := range set.loops {
		select {
		case <-lp.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("loop %d still running 5s after the server closed", i)
		}
	}
}

// loopConnState is what a loop holds for one connection.
type loopConnState struct {
	fd      int
	pending int // output bytes not yet sent
	blocked bool
}

// loopConns reports the connections of srv's loops, read on each loop.
func loopConns(srv *Server) []loopConnState {
	srv.mu.Lock()
	set := srv.loops
	srv.mu.Unlock()
	var states []loopConnState
	for _, lp := range set.loops {
		lp.call(func() {
			for _, lc := range lp.conns {
				states = append(states, loopConnState{lc.fd, len(lc.c.out) - lc.wpos, lc.blocked})
			}
		})
	}
	return states
}

func waitConns(t *testing.T, srv *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().CurrConnections != n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := srv.Stats().CurrConnections; got != n {
		t.Fatalf("%d connections, want %d", got, n)
	}
}

// A client that asks for large values and reads nothing makes the server
// hold at most about one value of output: reading and handling stop while
// the socket is full.
func TestLoopOutputBounded(t *testing.T) {
	srv := &Server{EventLoops: 1, Handler: &echoStore{data: map[string][]byte{}}}
	addr := start(t, srv)
	storeValue(t, addr, "big", 1<<20)
	c, _ := dial(t, addr)
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	// 200 GETs, 5.4 KB, ask for 200 MiB.
	send(t, c, gets("big", 200)...)
	time.Sleep(300 * time.Millisecond)
	states := loopConns(srv)
	if len(states) != 1 || !states[0].blocked {
		t.Fatalf("connections %+v, want one blocked", states)
	}
	if p := states[0].pending; p > 1<<20+2*flushThreshold {
		t.Fatalf("%d bytes of output held for a client that reads nothing", p)
	}
}

// A unix client that shuts its socket down while the server is blocked
// writing to it is dropped; the hang-up does not make the loop spin.
func TestLoopHangupWhileBlocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	srv := &Server{EventLoops: 1, Handler: &echoStore{data: map[string][]byte{}}, Logger: quiet}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	uc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	send(t, uc, gm.MCRequest{Opcode: gm.SET, Key: []byte("v"), Body: bytes.Repeat([]byte{'x'}, 20<<10)})
	read(t, gm.NewReader(uc))
	send(t, uc, gets("v", 200)...)
	time.Sleep(100 * time.Millisecond)
	if st := loopConns(srv); len(st) != 1 || !st[0].blocked {
		t.Fatalf("connections %+v, want one blocked", st)
	}
	raw, err := uc.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	waitConns(t, srv, 0)
}

// Once a loop has exited, nothing is written to the numbers its
// descriptors had.
func TestLoopNoWakeAfterExit(t *testing.T) {
	srv := &Server{EventLoops: 2, Logger: quiet}
	l, done := serve(t, srv)
	c, r := dial(t, l.Addr().String())
	send(t, c, gm.MCRequest{Opcode: gm.NOOP})
	read(t, r)
	c.Close()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	waitLoopsExit(t, srv)
	// Take the freed numbers, then post to the exited loops.
	var pairs [][2]int
	defer func() {
		for _, p := range pairs {
			syscall.Close(p[0])
			syscall.Close(p[1])
		}
	}()
	for range 16 {
		p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, p)
	}
	srv.Close()
	buf := make([]byte, 64)
	for _, p := range pairs {
		for _, fd := range p {
			if n, _ := syscall.Read(fd, buf); n > 0 {
				t.Fatalf("fd %d received %x from an exited loop", fd, buf[:n])
			}
		}
	}
}

// Accepted TCP connections have keepalive on, as Go's listeners set it.
func TestLoopKeepAlive(t *testing.T) {
	srv := &Server{EventLoops: 1}
	addr := start(t, srv)
	c, r := dial(t, addr)
	send(t, c, gm.MCRequest{Opcode: gm.NOOP})
	read(t, r)
	states := loopConns(srv)
	if len(states) != 1 {
		t.Fatalf("connections %+v", states)
	}
	for opt, want := range map[[2]int]int{
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE}:   1,
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE}:  keepAliveSecs,
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL}: keepAliveSecs,
		{syscall.IPPROTO_TCP, syscall.TCP_NODELAY}:   1,
	} {
		v, err := syscall.GetsockoptInt(states[0].fd, opt[0], opt[1])
		if err != nil || v != want {
			t.Errorf("socket option %v = %d (%v), want %d", opt, v, err, want)
		}
	}
}
