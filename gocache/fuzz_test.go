package gocache_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
)

// panicLog counts the handler panics the server logs.
type panicLog struct{ n *atomic.Int64 }

func (h panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		h.n.Add(1)
	}
	return nil
}
func (h panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicLog) WithGroup(string) slog.Handler      { return h }

// FuzzKVExtensions sends arbitrary packets of the Couchbase commands to a
// gocache server, on a connection that negotiated XERROR and, by the first
// byte, Collections: no input may make a handler panic, and the server
// answers a fresh connection afterwards.
func FuzzKVExtensions(f *testing.F) {
	pkt := func(op gm.CommandCode, vb uint16, key, extras, body []byte) []byte {
		r := gm.MCRequest{Opcode: op, VBucket: vb, Key: key, Extras: extras, Body: body}
		return r.Bytes()
	}
	meta := make([]byte, 30)
	binary.BigEndian.PutUint64(meta[16:], 7)
	binary.BigEndian.PutUint16(meta[28:], 40)
	for _, seed := range [][]byte{
		pkt(gm.SET_VBUCKET, 3, nil, []byte{2}, nil),
		pkt(gm.SET_VBUCKET, 0xffff, nil, []byte{0, 0, 0, 9}, []byte("{}")),
		pkt(gm.DEL_VBUCKET, 7, nil, nil, []byte("async=0")),
		pkt(gm.GET_ALL_VB_SEQNOS, 0, nil, []byte{0, 0, 0, 0, 0, 0, 0, 8}, nil),
		pkt(gm.OBSERVE, 0, nil, nil, []byte{0, 1, 0, 3, 'k', 'e', 'y', 0, 2, 0xff, 0xff}),
		pkt(gm.OBSERVE_SEQNO, 1, nil, nil, []byte{1, 2, 3, 4, 5, 6, 7, 8}),
		pkt(gm.GET_META, 0, []byte{0x80, 0x00, 'k'}, []byte{2}, nil),
		pkt(gm.SET_WITH_META, 0, []byte{0x08, 'k'}, meta, []byte("value")),
		pkt(gm.DELETE_WITH_META, 0, []byte{0x00, 'k'}, meta[:28], nil),
		pkt(gm.GET_RANDOM_KEY, 0, nil, []byte{0, 0, 0, 8}, nil),
		pkt(gm.COLLECTIONS_SET_MANIFEST, 0, nil, nil, []byte(testManifest)),
		pkt(gm.COLLECTIONS_GET_CID, 0, []byte("app.users"), nil, nil),
		pkt(gm.COLLECTIONS_GET_SCOPE_ID, 0, nil, nil, []byte(".")),
	} {
		f.Add(byte(1), seed)
		f.Add(byte(0), seed)
	}
	var panics atomic.Int64
	_, addr := gocachetest.Start(f, gocache.Config{
		Cache:    cache.Config{VBuckets: 16, MaxBytes: 8 << 20},
		Manifest: []byte(testManifest),
		Logger:   slog.New(panicLog{&panics}),
	})
	f.Fuzz(func(t *testing.T, mode byte, input []byte) {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		features := []byte{0, 0x07}
		if mode&1 != 0 {
			features = append(features, 0, 0x12)
		}
		hello := gm.MCRequest{Opcode: gm.HELLO, Body: features}
		nc.SetDeadline(time.Now().Add(time.Second))
		nc.Write(hello.Bytes())
		nc.Write(input)
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		io.Copy(io.Discard, nc)
		if n := panics.Load(); n != 0 {
			t.Fatalf("%d handler panics", n)
		}
	})
}
