package memcached

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// noops returns n pipelined NOOPs, opaques 0 to n-1, in one buffer.
func noops(n int) []byte {
	var wire []byte
	for i := range n {
		wire, _ = (&gm.MCRequest{Opcode: gm.NOOP, Opaque: uint32(i)}).AppendTo(wire)
	}
	return wire
}

// With ReqsPerEvent, a connection that sent more requests in one write
// answers them a slice at a time, one write per slice, yielding between
// slices (memcached's -R and conn_yields); every answer arrives, in order.
// Without it, the batch is one write and no yield.
func TestReqsPerEvent(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		for _, tc := range []struct{ limit, reqs, yields, writes int }{
			{0, 7, 0, 1}, {2, 7, 3, 4}, {1, 6, 5, 6}, {7, 7, 0, 1},
		} {
			srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, ReqsPerEvent: tc.limit}
			c, r := dial(t, start(t, srv))
			// The connection's first read chooses its protocol: a
			// first request of its own keeps that out of the count.
			send(t, c, gm.MCRequest{Opcode: gm.NOOP, Opaque: 100})
			read(t, r)
			writes := srv.writes.Load()
			c.Write(noops(tc.reqs))
			for i := range tc.reqs {
				if res := read(t, r); res.Opaque != uint32(i) {
					t.Fatalf("limit %d: answer %d has opaque %d", tc.limit, i, res.Opaque)
				}
			}
			st := srv.Stats()
			if int(st.ConnYields) != tc.yields {
				t.Errorf("limit %d, %d requests: %d yields, want %d", tc.limit, tc.reqs, st.ConnYields, tc.yields)
			}
			if n := int(srv.writes.Load() - writes); n != tc.writes {
				t.Errorf("limit %d, %d requests: %d writes, want %d", tc.limit, tc.reqs, n, tc.writes)
			}
			srv.ResetStats()
			if srv.Stats().ConnYields != 0 {
				t.Errorf("ResetStats kept ConnYields")
			}
		}
	})
}

// A connection whose client hangs up after a pipeline larger than
// ReqsPerEvent still has all of it answered.
func TestReqsPerEventThenHangUp(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, ReqsPerEvent: 3}
		c, r := dial(t, start(t, srv))
		c.Write(noops(20))
		c.(*net.TCPConn).CloseWrite()
		for i := range 20 {
			if res := read(t, r); res.Opaque != uint32(i) {
				t.Fatalf("answer %d has opaque %d", i, res.Opaque)
			}
		}
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != io.EOF {
			t.Fatalf("after the answers: %v, want EOF", err)
		}
	})
}

// Connections closed for IdleTimeout are counted (memcached's idle_kicks);
// one that keeps talking is not closed.
func TestIdleKicks(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, IdleTimeout: 200 * time.Millisecond}
		addr := start(t, srv)
		busy, br := dial(t, addr)
		idle, ir := dial(t, addr)
		send(t, idle, gm.MCRequest{Opcode: gm.NOOP})
		read(t, ir)
		for range 6 {
			send(t, busy, gm.MCRequest{Opcode: gm.NOOP})
			read(t, br)
			time.Sleep(60 * time.Millisecond)
		}
		var res gm.MCResponse
		if err := ir.ReadResponse(&res); err != io.EOF {
			t.Fatalf("idle connection: %v, want EOF", err)
		}
		if n := srv.Stats().IdleKicks; n != 1 {
			t.Errorf("IdleKicks %d, want 1", n)
		}
		send(t, busy, gm.MCRequest{Opcode: gm.NOOP})
		read(t, br)
	})
}

// A connection over MaxConns is sent ConnLimitMessage, then closed, as
// memcached's "ERROR Too many open connections".
func TestConnLimitMessage(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		msg := []byte("ERROR Too many open connections\r\n")
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, MaxConns: 1, ConnLimitMessage: msg}
		addr := start(t, srv)
		first, fr := dial(t, addr)
		send(t, first, gm.MCRequest{Opcode: gm.NOOP})
		read(t, fr)
		over, _ := dial(t, addr)
		got, err := io.ReadAll(over)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("refused connection read %q, %v; want %q then EOF", got, err, msg)
		}
		if n := srv.Stats().RejectedConnections; n != 1 {
			t.Errorf("RejectedConnections %d", n)
		}
	})
}

// Over ResponseLimit answers queued unsent, the connection is closed with
// nothing of the batch sent, and the refusal counted (memcached's
// response_obj_oom); a batch within it is answered. Reserve takes from the
// same budget.
func TestResponseLimit(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		reserveOK := make(chan bool, 4)
		h := HandlerFunc(func(w ResponseWriter, req *gm.MCRequest) {
			if req.Opcode == gm.GET {
				reserveOK <- w.Reserve(int(req.Opaque))
			}
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
		})
		srv := &Server{EventLoops: loops, Handler: h, ResponseLimit: 4}
		addr := start(t, srv)
		c, r := dial(t, addr)
		c.Write(noops(4))
		for range 4 {
			read(t, r)
		}
		send(t, c, gm.MCRequest{Opcode: gm.GET, Opaque: 2}, gm.MCRequest{Opcode: gm.GET, Opaque: 2})
		if !<-reserveOK || <-reserveOK {
			t.Errorf("Reserve: 1+2 of 4 should succeed, then 1+2+1+2 fail")
		}
		read(t, r)
		read(t, r)
		if n := srv.Stats().ResponseOOM; n != 1 {
			t.Errorf("ResponseOOM %d after a failed Reserve, want 1", n)
		}

		over, or := dial(t, addr)
		over.Write(noops(5))
		var res gm.MCResponse
		if err := or.ReadResponse(&res); err != io.EOF {
			t.Fatalf("5 requests over a limit of 4: %v (opaque %d), want the connection closed", err, res.Opaque)
		}
		if n := srv.Stats().ResponseOOM; n != 2 {
			t.Errorf("ResponseOOM %d, want 2", n)
		}
	})
}

// Over ReadBufferLimit connections holding input, the next connection
// that receives some is closed and counted (memcached's read_buf_oom); once
// the first one's request is complete and served, others may read again.
func TestReadBufferLimit(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}, ReadBufferLimit: 1}
		addr := start(t, srv)
		wire := noops(1)
		a, ar := dial(t, addr)
		a.Write(wire[:10]) // half a header: held
		deadline := time.Now().Add(5 * time.Second)
		for srv.readBufs.Load() != 1 {
			if time.Now().After(deadline) {
				t.Fatal("the partial request never counted")
			}
			time.Sleep(5 * time.Millisecond)
		}
		b, br := dial(t, addr)
		b.Write(wire)
		var res gm.MCResponse
		if err := br.ReadResponse(&res); err != io.EOF {
			t.Fatalf("second connection with input: %v, want closed", err)
		}
		if n := srv.Stats().ReadBufOOM; n != 1 {
			t.Errorf("ReadBufOOM %d, want 1", n)
		}
		a.Write(wire[10:])
		read(t, ar)
		c, cr := dial(t, addr)
		c.Write(wire)
		read(t, cr)
		a.Close()
		c.Close()
		for srv.readBufs.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("input still counted after the connections ended")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
