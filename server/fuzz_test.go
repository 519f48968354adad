package memcached

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// memTransport runs the connection step over bytes, for fuzzing: what the
// connection sends is kept in sent.
type memTransport struct {
	c    *Conn
	sent []byte
}

func (t *memTransport) flush() error {
	t.c.takeQueued()
	t.sent = append(t.sent, t.c.out...)
	t.c.sent()
	return nil
}

func (t *memTransport) writeLarge(body []byte) {
	t.sent = append(append(t.sent, t.c.out...), body...)
	t.c.out = t.c.out[:0]
}

func (t *memTransport) serving() bool       { return true }
func (t *memTransport) pause(time.Duration) {}
func (t *memTransport) queued()             {}
func (t *memTransport) netConn() net.Conn   { return nil }
func (t *memTransport) interrupt()          {}
func (t *memTransport) abort()              {}
func (t *memTransport) kill()               {}

// chunked reads at most n bytes at a time.
type chunked struct {
	r io.Reader
	n int
}

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// FuzzConnStep feeds arbitrary bytes, in chunks of a size the input
// chooses, through a connection's step as either connection model runs
// it: it never panics, stops at the first bad request, and sends only
// whole responses.
func FuzzConnStep(f *testing.F) {
	var pipeline []byte
	for _, r := range []gm.MCRequest{
		{Opcode: gm.SET, Key: []byte("k"), Body: []byte("value")},
		{Opcode: gm.GETKQ, Key: []byte("k")},
		{Opcode: gm.GET, Key: []byte("missing")},
		{Opcode: gm.NOOP},
		{Opcode: gm.GET, Key: []byte("k"), FramingExtras: []gm.FrameInfo{gm.NewStreamIDFrame(3)}},
	} {
		pipeline, _ = r.AppendTo(pipeline)
	}
	f.Add(byte(7), pipeline)
	f.Add(byte(0), pipeline[:30])
	f.Add(byte(1), []byte("get k\r\n"))
	f.Add(byte(200), append(bytes.Clone(pipeline), 0x81, 0, 0, 0))
	f.Fuzz(func(t *testing.T, chunk byte, data []byte) {
		srv := &Server{Handler: &echoStore{data: map[string][]byte{}}, Logger: quiet, MaxValueSize: 1 << 16}
		mt := &memTransport{}
		addr := &net.TCPAddr{}
		c := srv.newConn(mt, chunked{bytes.NewReader(data), int(chunk) + 1}, addr, addr)
		mt.c = c
		for range len(data) + 2 {
			_, rerr := c.fill()
			if err := c.step(); err != nil || c.closing {
				break
			}
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) && !errors.Is(rerr, gm.ErrProtocol) {
					t.Fatalf("fill: %v", rerr)
				}
				break
			}
		}
		r := gm.NewReader(bytes.NewReader(mt.sent))
		for {
			var res gm.MCResponse
			err := r.ReadResponse(&res)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("the connection sent a bad response: %v", err)
			}
		}
	})
}
