package memcached

import (
	"net"
	"testing"

	gm "github.com/f8e615c8/gomemcached"
)

// BenchmarkPipelinedGets drives one connection with batches of 16 GETs of
// a 100-byte value, each batch in one write, in both connection models:
// the server's cost per request, allocations included (the step, the
// decoder, the handler's answer through its ResponseWriter).
func BenchmarkPipelinedGets(b *testing.B) {
	for _, m := range []struct {
		name  string
		loops int
	}{{"goroutines", 0}, {"eventloops", 1}} {
		b.Run(m.name, func(b *testing.B) {
			store := &echoStore{data: map[string][]byte{"k": make([]byte, 100)}}
			srv := &Server{EventLoops: m.loops, Handler: store, Logger: quiet}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			const depth = 16
			var wire []byte
			for i := range depth {
				wire, _ = (&gm.MCRequest{Opcode: gm.GET, Key: []byte("k"), Opaque: uint32(i)}).AppendTo(wire)
			}
			r := gm.NewReaderSize(c, 64<<10)
			var res gm.MCResponse
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(wire); err != nil {
					b.Fatal(err)
				}
				for range depth {
					if err := r.ReadResponse(&res); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*depth), "ns/request")
		})
	}
}
