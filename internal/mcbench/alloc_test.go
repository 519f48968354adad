package mcbench

import (
	"encoding/binary"
	"io"
	"math"
	"net"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// loopConn is an in-memory connection to a server that holds every key's
// derived value: it answers what is written to it, without allocating once
// its buffer has grown, so that a worker's round can be measured alone.
type loopConn struct {
	vals *values
	out  []byte
	off  int
	res  gm.MCResponse
	vbuf []byte
	ext  [4]byte
}

func newLoopConn(vals *values) *loopConn {
	c := &loopConn{vals: vals}
	binary.BigEndian.PutUint32(c.ext[:], valueFlags)
	return c
}

func (c *loopConn) Write(p []byte) (int, error) {
	for b := p; len(b) >= gm.HDR_LEN; {
		op := gm.CommandCode(b[1])
		keylen, extlen := int(binary.BigEndian.Uint16(b[2:])), int(b[4])
		body := int(binary.BigEndian.Uint32(b[8:]))
		key := b[gm.HDR_LEN+extlen : gm.HDR_LEN+extlen+keylen]
		c.res.Opcode, c.res.Opaque, c.res.Status = op, binary.BigEndian.Uint32(b[12:]), gm.SUCCESS
		c.res.Extras, c.res.Key, c.res.Body = nil, nil, nil
		switch op {
		case gm.GET, gm.GETKQ:
			c.vbuf = c.vals.appendValue(c.vbuf[:0], hashKey(key))
			c.res.Extras, c.res.Body = c.ext[:], c.vbuf
			if op == gm.GETKQ {
				c.res.Key = key
			}
		case gm.SETQ:
			b = b[gm.HDR_LEN+body:]
			continue
		}
		c.out, _ = c.res.AppendTo(c.out)
		b = b[gm.HDR_LEN+body:]
	}
	return len(p), nil
}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.off == len(c.out) {
		return 0, io.EOF
	}
	n := copy(p, c.out[c.off:])
	if c.off += n; c.off == len(c.out) {
		c.out, c.off = c.out[:0], 0
	}
	return n, nil
}

func (c *loopConn) Close() error                       { return nil }
func (c *loopConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *loopConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *loopConn) SetDeadline(t time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(t time.Time) error { return nil }

// loopWorker returns a worker of an endless run on a loopConn.
func loopWorker(t testing.TB, mode Mode, depth int) *worker {
	cfg := DefaultConfig()
	cfg.Mode, cfg.Depth, cfg.Check, cfg.Duration = mode, depth, true, time.Hour
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := newRun(cfg)
	r.end.Store(math.MaxInt64)
	w := newWorker(r, 0)
	c := newLoopConn(r.vals)
	w.conn, w.cr.r = c, c
	w.rd.Reset(&w.cr)
	return w
}

func (w *worker) mustRound(t testing.TB) {
	if done, err := w.round(); err != nil || done {
		t.Fatalf("round: done %v, %v", done, err)
	}
}

// A round (write, read, check, record) allocates nothing in steady state.
func TestRoundAllocs(t *testing.T) {
	for _, tc := range []struct {
		mode  Mode
		depth int
	}{{Plain, 1}, {Plain, 16}, {Quiet, 1}, {Quiet, 16}} {
		w := loopWorker(t, tc.mode, tc.depth)
		for range 100 {
			w.mustRound(t)
		}
		allocs := testing.AllocsPerRun(1000, func() { w.mustRound(t) })
		if allocs != 0 {
			t.Errorf("%s depth %d: %v allocations per round", tc.mode, tc.depth, allocs)
		}
		if w.st.errors() != 0 || w.st.mismatched() != 0 || w.st.hits == 0 || w.st.misses != 0 {
			t.Errorf("%s depth %d: errors %d mismatches %d hits %d misses %d: %q", tc.mode, tc.depth,
				w.st.errors(), w.st.mismatched(), w.st.hits, w.st.misses, w.st.samples)
		}
	}
}

// BenchmarkRound measures the generator's own cost per operation against
// an in-memory server (which costs about as much again).
func BenchmarkRound(b *testing.B) {
	for _, tc := range []struct {
		name  string
		mode  Mode
		depth int
	}{{"plain-1", Plain, 1}, {"plain-16", Plain, 16}, {"quiet-16", Quiet, 16}} {
		b.Run(tc.name, func(b *testing.B) {
			w := loopWorker(b, tc.mode, tc.depth)
			b.ReportAllocs()
			ops := w.st.gets + w.st.sets
			for b.Loop() {
				w.mustRound(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(w.st.gets+w.st.sets-ops), "ns/req")
		})
	}
}
