package memcached

// Helpers for golden wire vectors: a server on a pipe that records the
// bytes of every request the client writes and answers it, and a way to
// write expected packets field by field.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
)

// wireFake is a server on a net.Pipe. It answers HELLO itself (accepting
// every feature asked for) and every other request with what answer
// returns, recording the bytes of each such request.
type wireFake struct {
	mu  sync.Mutex
	raw [][]byte
}

// newWireFake returns a client on a wireFake with features negotiated
// (none: no HELLO).
func newWireFake(t *testing.T, features Features, answer func(req *gomemcached.MCRequest) []*gomemcached.MCResponse) (*Client, *wireFake) {
	t.Helper()
	f := &wireFake{}
	cli, srv := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer srv.Close()
		for {
			raw, err := readPacket(srv)
			if err != nil {
				return
			}
			var req gomemcached.MCRequest
			if _, err := req.Receive(bytes.NewReader(raw), nil); err != nil {
				t.Errorf("the client wrote a malformed request: %v\n% x", err, raw)
				return
			}
			var out []*gomemcached.MCResponse
			if req.Opcode == gomemcached.HELLO {
				out = []*gomemcached.MCResponse{{Opcode: req.Opcode, Opaque: req.Opaque, Body: req.Body}}
			} else {
				f.mu.Lock()
				f.raw = append(f.raw, raw)
				f.mu.Unlock()
				if answer != nil {
					out = answer(&req)
				}
			}
			for _, res := range out {
				if _, err := res.Transmit(srv); err != nil {
					return
				}
			}
		}
	})
	c := NewClient(cli, ClientOptions{ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { c.Close(); wg.Wait() })
	if len(features) > 0 {
		if _, err := c.EnableFeatures(features); err != nil {
			t.Fatalf("HELLO: %v", err)
		}
	}
	return c, f
}

// readPacket reads one whole packet, header and body, from r.
func readPacket(r io.Reader) ([]byte, error) {
	hdr := make([]byte, gomemcached.HDR_LEN)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[8:12])
	pkt := make([]byte, gomemcached.HDR_LEN+int(n))
	copy(pkt, hdr)
	if _, err := io.ReadFull(r, pkt[gomemcached.HDR_LEN:]); err != nil {
		return nil, err
	}
	return pkt, nil
}

// last returns the bytes of the last request recorded, with its opaque
// zeroed if it is one of the client's own (high bit set) and keep is
// false, so that vectors need not know the client's counter.
func (f *wireFake) last(t *testing.T, keep bool) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.raw) == 0 {
		t.Fatal("no request recorded")
	}
	p := bytes.Clone(f.raw[len(f.raw)-1])
	if !keep {
		if binary.BigEndian.Uint32(p[12:16])&opaqueTag == 0 {
			t.Errorf("opaque %#x lacks the client's tag", binary.BigEndian.Uint32(p[12:16]))
		}
		clear(p[12:16])
	}
	return p
}

// count returns how many requests were recorded.
func (f *wireFake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.raw)
}

// lit is literal text in a vector.
type lit string

// vec builds a packet from its fields: strings are hexadecimal (spaces
// ignored), lit values literal bytes, []byte values raw.
func vec(t testing.TB, fields ...any) []byte {
	t.Helper()
	var out []byte
	for _, f := range fields {
		switch f := f.(type) {
		case string:
			b, err := hex.DecodeString(strings.ReplaceAll(f, " ", ""))
			if err != nil {
				t.Fatalf("bad hex %q: %v", f, err)
			}
			out = append(out, b...)
		case lit:
			out = append(out, f...)
		case []byte:
			out = append(out, f...)
		default:
			t.Fatalf("vec: %T", f)
		}
	}
	return out
}

// wantWire compares a recorded request with a vector.
func wantWire(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: request bytes\n got % x\nwant % x", what, got, want)
	}
}

// answerWith answers every request with a SUCCESS response of its opcode and
// opaque carrying res's sections.
func answerWith(res gomemcached.MCResponse) func(*gomemcached.MCRequest) []*gomemcached.MCResponse {
	return func(req *gomemcached.MCRequest) []*gomemcached.MCResponse {
		r := res
		r.Opcode, r.Opaque = req.Opcode, req.Opaque
		return []*gomemcached.MCResponse{&r}
	}
}

// appendUleb128 appends n in unsigned LEB128, for building scan values.
func appendUleb128(dst []byte, n uint64) []byte {
	for n >= 0x80 {
		dst = append(dst, byte(n)|0x80)
		n >>= 7
	}
	return append(dst, byte(n))
}
