package mcbench

import (
	"encoding/binary"
	"fmt"
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
// Deletes find the keys of even hash and miss the others (KEY_ENOENT), so
// that both answers are measured; gets always hit.
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
		case gm.DELETE, gm.DELETEQ:
			if hashKey(key)&1 == 1 {
				c.res.Status = gm.KEY_ENOENT
			} else if op == gm.DELETEQ {
				b = b[gm.HDR_LEN+body:]
				continue
			}
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

// loopWorker returns a worker of an endless run on a loopConn, with the
// given fractions of gets and deletes.
func loopWorker(t testing.TB, mode Mode, depth int, get, del float64) *worker {
	cfg := DefaultConfig()
	cfg.Mode, cfg.Depth, cfg.Check, cfg.Duration = mode, depth, true, time.Hour
	cfg.GetFraction, cfg.DeleteFraction = get, del
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

// A round (write, read, check, record) allocates nothing in steady state,
// whatever the mix: gets and sets, with deletes found and missed, or
// deletes only.
func TestRoundAllocs(t *testing.T) {
	for _, mix := range []struct {
		name     string
		get, del float64
	}{{"9:1", 0.9, 0}, {"8:1:1", 0.8, 0.1}, {"0:0:1", 0, 1}} {
		for _, tc := range []struct {
			mode  Mode
			depth int
		}{{Plain, 1}, {Plain, 16}, {Quiet, 1}, {Quiet, 16}} {
			name := fmt.Sprintf("%s %s depth %d", mix.name, tc.mode, tc.depth)
			w := loopWorker(t, tc.mode, tc.depth, mix.get, mix.del)
			for range 100 {
				w.mustRound(t)
			}
			allocs := testing.AllocsPerRun(1000, func() { w.mustRound(t) })
			if allocs != 0 {
				t.Errorf("%s: %v allocations per round", name, allocs)
			}
			st := &w.st
			if st.errors() != 0 || st.mismatched() != 0 || st.misses != 0 || (st.hits == 0) != (mix.get == 0) {
				t.Errorf("%s: errors %d mismatches %d hits %d misses %d: %q", name,
					st.errors(), st.mismatched(), st.hits, st.misses, st.samples)
			}
			if mix.del > 0 && (st.delMisses == 0 || st.delMisses == st.deletes) || mix.del == 0 && st.deletes != 0 {
				t.Errorf("%s: deletes %d, delete misses %d", name, st.deletes, st.delMisses)
			}
		}
	}
}

// BenchmarkRound measures the generator's own cost per operation against
// an in-memory server (which costs about as much again).
func BenchmarkRound(b *testing.B) {
	for _, tc := range []struct {
		name     string
		mode     Mode
		depth    int
		get, del float64
	}{
		{"plain-1", Plain, 1, 0.9, 0},
		{"plain-16", Plain, 16, 0.9, 0},
		{"quiet-16", Quiet, 16, 0.9, 0},
		{"plain-16-8:1:1", Plain, 16, 0.8, 0.1},
		{"quiet-16-8:1:1", Quiet, 16, 0.8, 0.1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := loopWorker(b, tc.mode, tc.depth, tc.get, tc.del)
			b.ReportAllocs()
			ops := w.st.ops()
			for b.Loop() {
				w.mustRound(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(w.st.ops()-ops), "ns/req")
		})
	}
}
