package gomemcached_test

import (
	"bytes"
	"io"
	"testing"

	ref "github.com/couchbase/gomemcached"
	gm "github.com/f8e615c8/gomemcached"
)

// Benchmarks of encoding and decoding, ours beside the reference's in the
// same run:
//
//	go test -run '^$' -bench . -benchmem -count 6 . | tee bench.txt
//
// Decoding reads from an endless stream of the same packet, as a connection
// would deliver it.

// loop is an endless stream repeating one packet. It holds the packet
// repeated over at least 64 KiB so that, like a socket, it delivers bulk
// reads cheaply.
type loop struct {
	data []byte
	off  int
}

func newLoop(packet []byte) *loop {
	l := &loop{}
	for len(l.data) < 64<<10 {
		l.data = append(l.data, packet...)
	}
	return l
}

func (l *loop) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

var (
	value100 = bytes.Repeat([]byte("v"), 100)
	benchKey = []byte("user:000000042")
)

type benchCase struct {
	name string
	req  *gm.MCRequest
	rreq *ref.MCRequest
	res  *gm.MCResponse
	rres *ref.MCResponse
}

func benchCases() []benchCase {
	return []benchCase{
		{name: "GetRequest",
			req:  &gm.MCRequest{Opcode: gm.GET, Key: benchKey, Opaque: 7},
			rreq: &ref.MCRequest{Opcode: ref.GET, Key: benchKey, Opaque: 7}},
		{name: "Set100",
			req:  &gm.MCRequest{Opcode: gm.SET, Key: benchKey, Opaque: 7, Extras: make([]byte, 8), Body: value100},
			rreq: &ref.MCRequest{Opcode: ref.SET, Key: benchKey, Opaque: 7, Extras: make([]byte, 8), Body: value100}},
		{name: "GetResponse100",
			res:  &gm.MCResponse{Opcode: gm.GET, Opaque: 7, Cas: 99, Extras: make([]byte, 4), Body: value100},
			rres: &ref.MCResponse{Opcode: ref.GET, Opaque: 7, Cas: 99, Extras: make([]byte, 4), Body: value100}},
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			if c.req != nil {
				b.Run("ours-AppendTo", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						buf, _ = c.req.AppendTo(buf[:0])
					}
				})
				b.Run("ours-Transmit", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						c.req.Transmit(io.Discard)
					}
				})
				b.Run("ours-Bytes", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						c.req.Bytes()
					}
				})
				b.Run("ref-Transmit", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						c.rreq.Transmit(io.Discard)
					}
				})
				b.Run("ref-Bytes", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						c.rreq.Bytes()
					}
				})
				return
			}
			b.Run("ours-AppendTo", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					buf, _ = c.res.AppendTo(buf[:0])
				}
			})
			b.Run("ours-Transmit", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.res.Transmit(io.Discard)
				}
			})
			b.Run("ours-Bytes", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.res.Bytes()
				}
			})
			b.Run("ref-Transmit", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.rres.Transmit(io.Discard)
				}
			})
			b.Run("ref-Bytes", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.rres.Bytes()
				}
			})
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.name, func(b *testing.B) {
			var wire []byte
			if c.req != nil {
				wire = c.req.Bytes()
			} else {
				wire = c.res.Bytes()
			}
			hdr := make([]byte, gm.HDR_LEN)
			body := make([]byte, 256)
			if c.req != nil {
				b.Run("ours-Reader", func(b *testing.B) {
					r := gm.NewReader(newLoop(wire))
					var req gm.MCRequest
					b.ReportAllocs()
					for b.Loop() {
						if err := r.ReadRequest(&req); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("ours-Receive", func(b *testing.B) {
					src := newLoop(wire)
					var req gm.MCRequest
					b.ReportAllocs()
					for b.Loop() {
						if _, err := req.Receive(src, hdr); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("ref-Receive", func(b *testing.B) {
					src := newLoop(wire)
					var req ref.MCRequest
					b.ReportAllocs()
					for b.Loop() {
						if _, err := req.Receive(src, hdr); err != nil {
							b.Fatal(err)
						}
					}
				})
				return
			}
			b.Run("ours-Reader", func(b *testing.B) {
				r := gm.NewReader(newLoop(wire))
				var res gm.MCResponse
				b.ReportAllocs()
				for b.Loop() {
					if err := r.ReadResponse(&res); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ours-ReceiveWithBuf", func(b *testing.B) {
				src := newLoop(wire)
				var res gm.MCResponse
				b.ReportAllocs()
				for b.Loop() {
					if _, err := res.ReceiveWithBuf(src, hdr, body); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ours-Receive", func(b *testing.B) {
				src := newLoop(wire)
				var res gm.MCResponse
				b.ReportAllocs()
				for b.Loop() {
					if _, err := res.Receive(src, hdr); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ref-ReceiveWithBuf", func(b *testing.B) {
				src := newLoop(wire)
				var res ref.MCResponse
				b.ReportAllocs()
				for b.Loop() {
					if _, err := res.ReceiveWithBuf(src, hdr, body); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ref-Receive", func(b *testing.B) {
				src := newLoop(wire)
				var res ref.MCResponse
				b.ReportAllocs()
				for b.Loop() {
					if _, err := res.Receive(src, hdr); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
