package memcached

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	gm "github.com/f8e615c8/gomemcached"
)

// lineDecoder and lineWriter are a toy text protocol, for the seam the
// text protocol plugs into: "get KEY" and "set KEY VALUE" lines become GET
// and SET requests, and answers are lines.
type lineDecoder struct {
	src     io.Reader
	buf     []byte
	line    []byte
	scratch [4096]byte
}

func (d *lineDecoder) fill() (int, error) {
	n, err := d.src.Read(d.scratch[:])
	d.buf = append(d.buf, d.scratch[:n]...)
	return n, err
}

func (d *lineDecoder) ready() bool   { return bytes.IndexByte(d.buf, '\n') >= 0 }
func (d *lineDecoder) buffered() int { return len(d.buf) }

func (d *lineDecoder) next(req *gm.MCRequest) error {
	i := bytes.IndexByte(d.buf, '\n')
	d.line = append(d.line[:0], bytes.TrimRight(d.buf[:i], "\r")...)
	d.buf = d.buf[i+1:]
	*req = gm.MCRequest{}
	f := bytes.Fields(d.line)
	switch {
	case len(f) == 2 && string(f[0]) == "get":
		req.Opcode, req.Key = gm.GET, f[1]
	case len(f) == 3 && string(f[0]) == "set":
		req.Opcode, req.Key, req.Body = gm.SET, f[1], f[2]
	default:
		req.Opcode = 0xfe // unknown: answered UNKNOWN_COMMAND
	}
	return nil
}

// lineEncoder answers in lines.
type lineEncoder struct{}

func (lineEncoder) encode(c *Conn, res *gm.MCResponse) {
	switch {
	case res.Status == gm.SUCCESS && res.Opcode == gm.GET:
		c.out = append(append(append(c.out, "VALUE "...), res.Body...), "\r\n"...)
	case res.Status == gm.SUCCESS:
		c.out = append(c.out, "STORED\r\n"...)
	case res.Status == gm.KEY_ENOENT:
		c.out = append(c.out, "NOT_FOUND\r\n"...)
	default:
		c.out = append(c.out, "ERROR "+res.Status.String()+"\r\n"...)
	}
}

func lineProtocol(c *Conn, src io.Reader) protocol {
	return protocol{dec: &lineDecoder{src: src}, enc: lineEncoder{}}
}

// One handler serves both protocols on one port, each connection in the
// protocol its first byte chose, through the same connection step: what a
// binary client stores a text client reads, and the reverse; a text
// client's pipelined lines are answered with one write.
func TestProtocolByFirstByte(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		srv := &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}}
		srv.textProtocol = lineProtocol
		addr := start(t, srv)
		bin, br := dial(t, addr)
		send(t, bin, gm.MCRequest{Opcode: gm.SET, Key: []byte("k"), Body: []byte("from-binary"), Opaque: 1})
		read(t, br)

		text, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer text.Close()
		before := srv.writes.Load()
		text.Write([]byte("get k\r\nset j from-text\r\nget nope\r\nbogus\r\n"))
		lines := bufio.NewReader(text)
		var got []string
		for range 4 {
			l, err := lines.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, strings.TrimSpace(l))
		}
		if want := "VALUE from-binary|STORED|NOT_FOUND|ERROR UNKNOWN_COMMAND"; strings.Join(got, "|") != want {
			t.Fatalf("text answers %q, want %q", got, want)
		}
		if n := srv.writes.Load() - before; n != 1 {
			t.Errorf("four pipelined lines answered in %d writes", n)
		}
		send(t, bin, gm.MCRequest{Opcode: gm.GET, Key: []byte("j"), Opaque: 2})
		if res := read(t, br); string(res.Body) != "from-text" {
			t.Fatalf("binary GET of what text stored: %q", res.Body)
		}
	})
}

// Without a text protocol, a connection that does not start with a binary
// magic is refused as malformed, and closed at once, however short its
// first line.
func TestNonBinaryFirstByteWithoutText(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		addr := start(t, &Server{EventLoops: loops, Handler: &echoStore{data: map[string][]byte{}}})
		for _, first := range []string{"version\r\n", "\x81", "get k\r\n" + strings.Repeat(" ", 30)} {
			c, r := dial(t, addr)
			c.Write([]byte(first))
			var res gm.MCResponse
			if err := r.ReadResponse(&res); err != io.EOF {
				t.Fatalf("after %q: %v, want the connection closed", first, err)
			}
		}
	})
}
