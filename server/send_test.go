package memcached

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// feeder is a handler whose UPR_STREAMREQ starts producers on the
// connection: the request's key is the number of streams, its extras the
// packets each sends and their value size. Each stream is a goroutine of
// its own (under the race detector, which limits goroutines, two streams
// share one), sending UPR_MUTATION requests whose opaque is the stream and
// CAS the packet's number, until it is done or the connection ends.
type feeder struct {
	conns chan *Conn
	sent  atomic.Int64
	errs  chan error
	wg    sync.WaitGroup
}

func newFeeder() *feeder { return &feeder{conns: make(chan *Conn, 100), errs: make(chan error, 1<<14)} }

func (f *feeder) ServeMC(w ResponseWriter, req *gm.MCRequest) {
	if req.Opcode != gm.UPR_STREAMREQ {
		w.WriteStatus(req, gm.UNKNOWN_COMMAND, nil)
		return
	}
	var streams int
	fmt.Sscan(string(req.Key), &streams)
	packets, size := int(binary.BigEndian.Uint32(req.Extras)), int(binary.BigEndian.Uint32(req.Extras[4:]))
	c := w.Conn()
	f.conns <- c
	base := req.Opaque
	per := streamsPerProducer()
	for g := 0; g < streams; g += per {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			value := make([]byte, size)
			for i := range packets {
				for s := g; s < min(g+per, streams); s++ {
					pkt := gm.MCRequest{Opcode: gm.UPR_MUTATION, Opaque: base + uint32(s), Cas: uint64(i), Body: value}
					if err := c.Send(context.Background(), &pkt); err != nil {
						f.errs <- err
						return
					}
					f.sent.Add(1)
				}
			}
		}()
	}
}

// streamsPerProducer is how many streams share a producer goroutine.
func streamsPerProducer() int {
	if raceEnabled {
		return 2
	}
	return 1
}

// streamReq asks a feeder for streams on a connection.
func streamReq(streams, packets, size int, base uint32) gm.MCRequest {
	extras := binary.BigEndian.AppendUint32(nil, uint32(packets))
	extras = binary.BigEndian.AppendUint32(extras, uint32(size))
	return gm.MCRequest{Opcode: gm.UPR_STREAMREQ, Key: fmt.Appendf(nil, "%d", streams), Extras: extras, Opaque: base}
}

// A client that stops reading holds up its producers (Send waits) and
// makes the server hold no more than the queue's bound; once it reads
// again every packet arrives, in order; once it is gone, the producers'
// Send fails.
func TestSendSlowReader(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		const limit, size, packets = 64 << 10, 1000, 30000 // 30 MB, more than the socket buffers hold
		f := newFeeder()
		addr := start(t, &Server{EventLoops: loops, Handler: f, SendQueueSize: limit})
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		send(t, nc, streamReq(1, packets, size, 0))
		c := <-f.conns
		// The client reads nothing: the producer stops.
		var stalled int64
		for {
			time.Sleep(100 * time.Millisecond)
			n := f.sent.Load()
			if n == stalled {
				break
			}
			stalled = n
		}
		if stalled >= packets {
			t.Fatalf("all %d packets were sent to a client that reads nothing", stalled)
		}
		now, peak := c.sendq.Load().held()
		if peak > limit || now > limit {
			t.Fatalf("queue holds %d bytes (at most %d) for a limit of %d", now, peak, limit)
		}
		if loops > 0 {
			for _, st := range loopConns(c.srv) {
				if st.pending > limit {
					t.Fatalf("%d bytes of output held beyond the queue", st.pending)
				}
			}
		}
		t.Logf("stalled after %d packets of %d; queue peak %d bytes", stalled, packets, peak)
		// The client reads: everything arrives, in order.
		r := gm.NewReader(nc)
		nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := range packets {
			var res gm.MCResponse
			if err := r.ReadResponse(&res); err != nil {
				select {
				case perr := <-f.errs:
					t.Fatalf("packet %d: %v; the producer failed: %v", i, err, perr)
				default:
				}
				t.Fatalf("packet %d: %v (%d sent)", i, err, f.sent.Load())
			}
			if res.Opcode != gm.UPR_MUTATION || res.Cas != uint64(i) || len(res.Body) != size {
				t.Fatalf("packet %d: %v cas %d, %d bytes", i, res.Opcode, res.Cas, len(res.Body))
			}
		}
		// Teardown: a Send after the client left fails, and Done is closed.
		nc.Close()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after the client left")
		}
		if err := c.Send(context.Background(), &gm.MCRequest{Opcode: gm.UPR_NOOP}); !errors.Is(err, ErrConnClosed) {
			t.Fatalf("Send after the end: %v", err)
		}
	})
}

// A producer waiting on a full queue is released by its context, and by
// the connection's end with ErrConnClosed.
func TestSendWaitEnds(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		f := newFeeder()
		addr := start(t, &Server{EventLoops: loops, Handler: f, SendQueueSize: 4 << 10})
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.(*net.TCPConn).SetReadBuffer(4 << 10)
		const streams = 4
		send(t, nc, streamReq(streams, 1<<20, 1000, 0)) // far more than the socket buffers hold
		c := <-f.conns
		for deadline := time.Now().Add(5 * time.Second); ; {
			n := f.sent.Load()
			time.Sleep(100 * time.Millisecond)
			if f.sent.Load() == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the producers never had to wait")
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		big := gm.MCRequest{Opcode: gm.UPR_MUTATION, Body: make([]byte, 1000)}
		if err := c.Send(ctx, &big); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send to a full queue: %v, want the context's deadline", err)
		}
		if err := c.TrySend(&big); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("TrySend to a full queue: %v, want ErrQueueFull", err)
		}
		nc.Close()
		for range streams / streamsPerProducer() {
			select {
			case err := <-f.errs:
				if !errors.Is(err, ErrConnClosed) {
					t.Fatalf("waiting producer: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a waiting producer was not released by the connection's end")
			}
		}
	})
}

// 10,000 streams, each a producer, over 40 connections with small queues:
// every packet arrives, each stream's in order, with answers to the
// client's own requests in between.
func TestSendManyStreams(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		const conns, perConn, packets = 40, 250, 10
		f := newFeeder()
		srv := &Server{EventLoops: loops, Logger: quiet, SendQueueSize: 16 << 10,
			Handler: HandlerFunc(func(w ResponseWriter, req *gm.MCRequest) {
				if req.Opcode == gm.NOOP {
					w.WriteResponse(&gm.MCResponse{Opcode: gm.NOOP, Opaque: req.Opaque})
					return
				}
				f.ServeMC(w, req)
			})}
		addr := start(t, srv)
		deadline := time.Now().Add(60 * time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- readStreams(addr, uint32(i*perConn), perConn, packets, deadline)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		f.wg.Wait()
		if n := f.sent.Load(); n != conns*perConn*packets {
			t.Fatalf("%d packets sent, want %d", n, conns*perConn*packets)
		}
	})
}

// readStreams asks for streams on a connection of its own and checks what
// arrives: each stream's packets in order, and the answer to a NOOP sent
// in the middle.
func readStreams(addr string, base uint32, streams, packets int, deadline time.Time) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(deadline)
	var wire []byte
	req := streamReq(streams, packets, 100, base)
	wire, _ = req.AppendTo(wire)
	wire, _ = (&gm.MCRequest{Opcode: gm.NOOP, Opaque: 1 << 31}).AppendTo(wire)
	if _, err := nc.Write(wire); err != nil {
		return err
	}
	next := make([]uint64, streams)
	noop := false
	r := gm.NewReader(nc)
	for left := streams * packets; left > 0 || !noop; {
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != nil {
			return fmt.Errorf("streams from %d: %v with %d packets to come", base, err, left)
		}
		if res.Opcode == gm.NOOP {
			noop = true
			continue
		}
		s := int(res.Opaque - base)
		if res.Opcode != gm.UPR_MUTATION || s < 0 || s >= streams || res.Cas != next[s] {
			return fmt.Errorf("stream %d: %v packet %d, want %d", s, res.Opcode, res.Cas, next[s])
		}
		next[s]++
		left--
	}
	return nil
}

// Nothing queued for a paused connection is sent before its pause ends,
// whatever serves it.
func TestSendHeldByPause(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		const pause = 300 * time.Millisecond
		mux := NewServeMux()
		mux.HandleFunc(func(w ResponseWriter, req *gm.MCRequest) {
			c := w.Conn()
			go func() {
				time.Sleep(50 * time.Millisecond)
				c.Send(context.Background(), &gm.MCRequest{Opcode: gm.UPR_NOOP, Opaque: 77})
			}()
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
			c.Pause(pause)
		}, gm.NOOP)
		addr := start(t, &Server{EventLoops: loops, Handler: mux})
		nc, r := dial(t, addr)
		t0 := time.Now()
		send(t, nc, gm.MCRequest{Opcode: gm.NOOP, Opaque: 1})
		got := map[gm.CommandCode]bool{}
		for range 2 {
			res := read(t, r)
			if d := time.Since(t0); d < pause-20*time.Millisecond {
				t.Fatalf("%v arrived %v into a pause of %v", res.Opcode, d, pause)
			}
			got[res.Opcode] = true
		}
		if !got[gm.NOOP] || !got[gm.UPR_NOOP] {
			t.Fatalf("got %v", got)
		}
	})
}

// Close, from a goroutine of the handler's, ends a connection whose client
// has stopped reading: the producers waiting in Send are released with
// ErrConnClosed, Done is closed, the client sees its connection end, and
// the server goes on serving others.
func TestCloseFromProducer(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		f := newFeeder()
		addr := start(t, &Server{EventLoops: loops, Handler: f, SendQueueSize: 4 << 10})
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.(*net.TCPConn).SetReadBuffer(4 << 10)
		const streams = 2
		send(t, nc, streamReq(streams, 1<<20, 1000, 0))
		c := <-f.conns
		for deadline := time.Now().Add(5 * time.Second); ; {
			n := f.sent.Load()
			time.Sleep(100 * time.Millisecond)
			if f.sent.Load() == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the producers never had to wait")
			}
		}
		c.Close(errors.New("consumer too slow"))
		c.Close(nil) // a second Close does nothing
		for range streams / streamsPerProducer() {
			select {
			case err := <-f.errs:
				if !errors.Is(err, ErrConnClosed) {
					t.Fatalf("waiting producer: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not release a waiting producer")
			}
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after Close")
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64<<10)
		total := 0
		for {
			n, err := nc.Read(buf)
			total += n
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("the client's connection did not end (%d bytes read)", total)
				}
				break
			}
		}
		other, r := dial(t, addr)
		send(t, other, streamReq(1, 3, 10, 7))
		for i := range 3 {
			var pkt gm.MCRequest
			if err := r.ReadRequest(&pkt); err != nil {
				t.Fatalf("other connection: %v", err)
			}
			if pkt.Opcode != gm.UPR_MUTATION || pkt.Cas != uint64(i) {
				t.Fatalf("other connection: packet %d is %v cas %d", i, pkt.Opcode, pkt.Cas)
			}
		}
	})
}
