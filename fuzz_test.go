package gomemcached

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// The fuzz targets feed arbitrary bytes to every decoder. A packet that
// decodes must decode the same way on every path and encode back to the same
// bytes, except the magic, which encoding derives from the fields (framing
// extras or not). Anything else must be a clean error: io.EOF for an empty
// stream or a *ProtocolError, never a panic. Seeds: testdata/fuzz and the
// golden vectors.

func FuzzDecodeRequest(f *testing.F) {
	for _, g := range goldenRequests {
		f.Add(g.wire)
	}
	f.Add(flexSetWire)
	f.Fuzz(func(t *testing.T, data []byte) {
		var viaReceive, viaReader MCRequest
		_, errReceive := viaReceive.Receive(bytes.NewReader(data), nil)
		errReader := NewReader(bytes.NewReader(data)).ReadRequest(&viaReader)
		checkDecodeErrors(t, errReceive, errReader)
		if errReceive != nil {
			return
		}
		sameRequest(t, &viaReader, &viaReceive)
		packet := data[:HDR_LEN+binary.BigEndian.Uint32(data[8:12])]
		out, err := viaReceive.AppendTo(nil)
		if err != nil {
			t.Fatalf("re-encoding a decoded request: %v", err)
		}
		wantMagic := byte(REQ_MAGIC)
		if len(viaReceive.FramingExtras) > 0 {
			wantMagic = FLEX_MAGIC
		}
		if out[0] != wantMagic || !bytes.Equal(out[1:], packet[1:]) {
			t.Fatalf("round trip\n in  %x\n out %x", packet, out)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, g := range goldenResponses {
		f.Add(g.wire)
	}
	f.Add(flexGetResponseWire)
	f.Fuzz(func(t *testing.T, data []byte) {
		var viaReceive, viaReader, viaBuf MCResponse
		_, errReceive := viaReceive.Receive(bytes.NewReader(data), nil)
		errReader := NewReader(bytes.NewReader(data)).ReadResponse(&viaReader)
		_, errBuf := viaBuf.ReceiveWithBuf(bytes.NewReader(data), nil, make([]byte, 256))
		checkDecodeErrors(t, errReceive, errReader)
		checkDecodeErrors(t, errReceive, errBuf)
		if errReceive != nil {
			return
		}
		sameResponse(t, &viaReader, &viaReceive)
		sameResponse(t, &viaBuf, &viaReceive)
		viaReceive.ComputeUnits()
		viaReceive.ServerDuration()
		packet := data[:HDR_LEN+binary.BigEndian.Uint32(data[8:12])]
		out, err := viaReceive.AppendTo(nil)
		if err != nil {
			t.Fatalf("re-encoding a decoded response: %v", err)
		}
		wantMagic := byte(RES_MAGIC)
		if len(viaReceive.FlexibleExtras) > 0 {
			wantMagic = FLEX_RES_MAGIC
		}
		if out[0] != wantMagic || !bytes.Equal(out[1:], packet[1:]) {
			t.Fatalf("round trip\n in  %x\n out %x", packet, out)
		}
	})
}

// FuzzFrames checks that NextFrame never reads outside its input and that
// well-formed frames re-encode to the same bytes.
func FuzzFrames(f *testing.F) {
	f.Add([]byte{0x13, 0x01, 0x12, 0x34, 0x46, '^', 'a', 'l', 'i', 'c', 'e'})
	f.Add([]byte{0xff, 0x02, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out []byte
		for b := data; len(b) > 0; {
			id, payload, rest, err := NextFrame(b)
			if err != nil {
				if !errors.Is(err, ErrBadFrame) {
					t.Fatalf("NextFrame error %v", err)
				}
				return
			}
			if out, err = AppendFrame(out, id, payload); err != nil {
				t.Fatal(err)
			}
			b = rest
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("frames re-encode as %x, want %x", out, data)
		}
	})
}

// checkDecodeErrors requires two decoding paths to agree on success and
// every failure to be an expected kind.
func checkDecodeErrors(t *testing.T, a, b error) {
	t.Helper()
	if (a == nil) != (b == nil) {
		t.Fatalf("decoders disagree: %v / %v", a, b)
	}
	for _, err := range []error{a, b} {
		if err != nil && err != io.EOF && !errors.Is(err, ErrProtocol) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
	}
}
