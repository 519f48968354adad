package gocache_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// FuzzDCPConsumerInput sends arbitrary bytes as a DCP consumer's stream,
// after a DCP_OPEN, to an in-process gocache (a goroutine per connection
// or event loops, as mode's bit 1 says; bit 0 negotiates Collections
// first). No input may make a handler panic or keep the connection from
// ending once the consumer stops writing; the server then answers a GET
// on a fresh connection, and the goroutines of the connection end.
func FuzzDCPConsumerInput(f *testing.F) {
	pkt := func(op gm.CommandCode, vb uint16, key, extras, body []byte) []byte {
		r := gm.MCRequest{Opcode: op, VBucket: vb, Key: key, Extras: extras, Body: body, Opaque: 7}
		return r.Bytes()
	}
	control := func(k, v string) []byte { return pkt(gm.UPR_CONTROL, 0, []byte(k), nil, []byte(v)) }
	stream := func(vb uint16, flags uint32, start, end, uuid, snapStart, snapEnd uint64) []byte {
		r := streamReq(vb, flags, start, end, uuid, snapStart, snapEnd)
		r.Opaque = uint32(vb) + 100
		return r.Bytes()
	}
	ack := func(n uint32) []byte {
		return pkt(gm.UPR_BUFFERACK, 0, nil, binary.BigEndian.AppendUint32(nil, n), nil)
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	noopReply := gm.MCResponse{Opcode: gm.UPR_NOOP, Opaque: 1}
	for _, seed := range [][]byte{
		stream(0, 0, 0, math.MaxUint64, 0, 0, 0),
		cat(control("connection_buffer_size", "300"), stream(0, 0, 0, math.MaxUint64, 0, 0, 0), ack(300), ack(300)),
		cat(control("enable_noop", "true"), control("set_noop_interval", "1"), stream(1, 0x40, 0, math.MaxUint64, 0, 0, 0), noopReply.Bytes()),
		cat(control("send_stream_end_on_client_close_stream", "true"), stream(0, 0, 0, 3, 0, 0, 0), pkt(gm.UPR_CLOSESTREAM, 0, nil, nil, nil)),
		cat(control("enable_expiry_opcode", "true"), control("supports_cursor_dropping_vulcan", "true"), stream(0, 0x04, 1, 2, 1, 1, 1)),
		cat(pkt(gm.UPR_FAILOVERLOG, 0, nil, nil, nil), stream(0, 0x20, 2, 10, 12345, 2, 2)),
		cat(stream(0, 0, 0, math.MaxUint64, 0, 0, 0), stream(0, 0, 0, math.MaxUint64, 0, 0, 0), stream(5000, 0, 0, 1, 0, 0, 0)),
		cat(pkt(gm.UPR_NOOP, 0, nil, nil, nil), pkt(gm.UPR_SNAPSHOT, 0, nil, make([]byte, 20), nil)),
		pkt(gm.UPR_MUTATION, 0, []byte("k"), make([]byte, 31), []byte("v")),
		pkt(gm.UPR_OPEN, 0, []byte("again"), make([]byte, 8), nil),
		pkt(gm.UPR_BUFFERACK, 0, nil, []byte{1}, nil),
		cat(stream(0, 0, 0, math.MaxUint64, 0, 0, 0), pkt(gm.SET, 0, []byte("live"), make([]byte, 8), []byte("value"))),
		{0x80, 0x53, 0, 0, 48, 0, 0, 0, 0, 0, 0, 10},
	} {
		f.Add(byte(0), seed)
		f.Add(byte(3), seed)
	}
	var panics atomic.Int64
	log := slog.New(panicLog{&panics})
	var addrs [2]string
	for i := range addrs {
		_, addrs[i] = gocachetest.Start(f, gocache.Config{
			Cache:      cache.Config{VBuckets: 16, MaxBytes: 8 << 20, ChangeLog: 64},
			Logger:     log,
			EventLoops: 2 * i,
		})
		// Something to backfill.
		w := kvConn(f, addrs[i])
		for k := range 20 {
			req := gm.MCRequest{Opcode: gm.SETQ, VBucket: uint16(k % 2), Key: fmt.Appendf(nil, "doc-%d", k), Extras: make([]byte, 8), Body: []byte("value")}
			w.Write(req.Bytes())
		}
		w.Close()
	}
	base := runtime.NumGoroutine()
	var n atomic.Uint64
	f.Fuzz(func(t *testing.T, mode byte, input []byte) {
		addr := addrs[mode>>1&1]
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		var pre []byte
		if mode&1 != 0 {
			hello := gm.MCRequest{Opcode: gm.HELLO, Key: []byte("fuzz"), Body: []byte{0, byte(gm.FeatureCollections)}}
			pre = hello.Bytes()
		}
		ex := make([]byte, 8)
		binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER|gm.DCP_OPEN_INCLUDE_XATTRS)
		open := gm.MCRequest{Opcode: gm.UPR_OPEN, Key: fmt.Appendf(nil, "fuzz-%d", n.Add(1)), Extras: ex}
		pre = append(pre, open.Bytes()...)
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		nc.Write(append(pre, input...))
		nc.(*net.TCPConn).CloseWrite()
		// The connection must end: the server reads the end of the input.
		if _, err := io.Copy(io.Discard, nc); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the connection did not end within 5s of the input's end")
		}
		if p := panics.Load(); p != 0 {
			t.Fatalf("%d handler panics", p)
		}
		// A fresh connection is answered.
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		get := gm.MCRequest{Opcode: gm.GET, Key: []byte("doc-0"), Opaque: 1}
		if _, err := c.Write(get.Bytes()); err != nil {
			t.Fatal(err)
		}
		var res gm.MCRequest
		if err := gm.NewReader(c).ReadRequest(&res); err != nil || res.Opcode != gm.GET {
			t.Fatalf("GET on a fresh connection: %v %s", err, res.Opcode)
		}
		// The goroutines of the fuzzed connection (its producer's too) end.
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > base+16 {
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), base)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// kvConn dials addr for a test's or fuzz target's setup.
func kvConn(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
