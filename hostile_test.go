package gomemcached

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// hdr builds a 24-byte header: magic, opcode, the key length field (two
// bytes, or frames and key with the alternative magics), extras length and
// total body length.
func hdr(magic, op byte, b2, b3, ext byte, bodylen uint32) []byte {
	h := make([]byte, HDR_LEN)
	h[0], h[1], h[2], h[3], h[4] = magic, op, b2, b3, ext
	binary.BigEndian.PutUint32(h[8:], bodylen)
	return h
}

// decoders reads one packet from wire with every decoding path of the
// package and returns their errors by name.
func decoders(wire []byte) map[string]error {
	var req MCRequest
	var res MCResponse
	_, reqErr := req.Receive(bytes.NewReader(wire), nil)
	_, resErr := res.Receive(bytes.NewReader(wire), make([]byte, HDR_LEN))
	_, bufErr := res.ReceiveWithBuf(bytes.NewReader(wire), nil, make([]byte, 64))
	return map[string]error{
		"MCRequest.Receive":         reqErr,
		"MCResponse.Receive":        resErr,
		"MCResponse.ReceiveWithBuf": bufErr,
		"Reader.ReadRequest":        NewReader(bytes.NewReader(wire)).ReadRequest(&req),
		"Reader.ReadResponse":       NewReader(bytes.NewReader(wire)).ReadResponse(&res),
	}
}

func TestHostileInput(t *testing.T) {
	valid := append(hdr(REQ_MAGIC, byte(SET), 0, 1, 0, 3), 'k', 'v', 'v')
	for _, tc := range []struct {
		name string
		wire []byte
		want error
	}{
		{"empty stream", nil, io.EOF},
		{"unknown magic", hdr(0x42, 0, 0, 0, 0, 0), ErrBadMagic},
		{"text protocol", []byte("get foo\r\nget bar baz qux quux\r\n"), ErrBadMagic},
		{"truncated header", valid[:10], ErrTruncated},
		{"truncated body", valid[:len(valid)-1], ErrTruncated},
		{"extras and key exceed body", hdr(REQ_MAGIC, 0, 0, 5, 4, 8), ErrBadLength},
		{"key exceeds body", hdr(RES_MAGIC, 0, 0xff, 0xff, 0, 10), ErrBadLength},
		{"frames exceed body", hdr(FLEX_MAGIC, 0, 200, 0, 0, 100), ErrBadLength},
		{"frames, extras and key exceed body", hdr(FLEX_RES_MAGIC, 0, 10, 10, 10, 29), ErrBadLength},
		{"value over MaxBodyLen", hdr(REQ_MAGIC, byte(SET), 0, 1, 0, uint32(MaxBodyLen)+2), ErrBodyTooLarge},
		{"body of 4 GiB", hdr(RES_MAGIC, 0, 0, 0, 0, 0xffffffff), ErrBodyTooLarge},
		{"frame overruns frames", append(hdr(FLEX_MAGIC, 0, 2, 0, 0, 2), 0x13, 0x01), ErrBadFrame},
		{"frame escape missing", append(hdr(FLEX_MAGIC, 0, 1, 0, 0, 1), 0xf0), ErrBadFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for path, err := range decoders(tc.wire) {
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", path, err, tc.want)
				}
				if tc.want != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Errorf("%s: %v does not match ErrProtocol", path, err)
				}
				if tc.want == ErrTruncated && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("%s: %v does not match io.ErrUnexpectedEOF", path, err)
				}
			}
		})
	}
}

// Responses never carry extended metadata; requests do when their extras
// say so, and the length must fit the value.
func TestHostileExtMeta(t *testing.T) {
	extras := make([]byte, 31)
	binary.BigEndian.PutUint16(extras[28:], 50) // 50 bytes of metadata...
	wire := append(hdr(REQ_MAGIC, byte(UPR_MUTATION), 0, 1, 31, 31+1+10), extras...)
	wire = append(wire, 'k')
	wire = append(wire, make([]byte, 10)...) // ...but only 10 bytes of value
	var req MCRequest
	if _, err := req.Receive(bytes.NewReader(wire), nil); !errors.Is(err, ErrBadLength) {
		t.Fatalf("Receive: %v, want ErrBadLength", err)
	}
	if err := NewReader(bytes.NewReader(wire)).ReadRequest(&req); !errors.Is(err, ErrBadLength) {
		t.Fatalf("ReadRequest: %v, want ErrBadLength", err)
	}
	binary.BigEndian.PutUint16(wire[HDR_LEN+28:], 4)
	if _, err := req.Receive(bytes.NewReader(wire), nil); err != nil {
		t.Fatal(err)
	}
	if len(req.Body) != 6 || len(req.ExtMeta) != 4 || !bytes.Equal(req.Bytes(), wire) {
		t.Fatalf("body %d extmeta %d", len(req.Body), len(req.ExtMeta))
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A header that announces the largest allowed body, followed by a few bytes
// and the end of the stream, must not cost the announced size.
func TestNoAllocationFromAnnouncedLength(t *testing.T) {
	wire := append(hdr(REQ_MAGIC, byte(SET), 0, 1, 0, uint32(MaxBodyLen)), "kvvvvvv"...)
	for path, run := range map[string]func() error{
		"Reader.ReadRequest": func() error { var req MCRequest; return NewReader(bytes.NewReader(wire)).ReadRequest(&req) },
		"MCRequest.Receive": func() error {
			var req MCRequest
			_, err := req.Receive(bytes.NewReader(wire), nil)
			return err
		},
		"MCResponse.Receive": func() error {
			var res MCResponse
			_, err := res.Receive(bytes.NewReader(wire), nil)
			return err
		},
	} {
		var err error
		n := allocated(func() { err = run() })
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v, want ErrTruncated", path, err)
		}
		if n > 2<<20 {
			t.Errorf("%s allocated %d bytes for a packet of %d bytes", path, n, len(wire))
		}
	}
}

func TestEncodeLimits(t *testing.T) {
	big := make([]byte, 1<<16)
	for _, tc := range []struct {
		name string
		req  MCRequest
		want error
	}{
		{"key of 65536", MCRequest{Key: big}, ErrKeyTooLong},
		{"key and collection over 65535", func() MCRequest {
			r := MCRequest{Key: big[:65535]}
			r.SetCollectionID(1)
			return r
		}(), ErrKeyTooLong},
		{"flex key of 256", MCRequest{Key: big[:256], FramingExtras: []FrameInfo{{FrameBarrier, 0, nil}}}, ErrKeyTooLong},
		{"impersonation key of 256", func() MCRequest {
			r := MCRequest{Key: big[:256]}
			r.SetImpersonate("u")
			return r
		}(), ErrKeyTooLong},
		{"extras of 256", MCRequest{Extras: big[:256]}, ErrFieldTooLong},
		{"frames of 256", MCRequest{FramingExtras: []FrameInfo{{FrameOpenTracing, 254, big[:254]}}}, ErrFieldTooLong},
		{"frame longer than its data", MCRequest{FramingExtras: []FrameInfo{{FrameImpersonate, 4, []byte("ab")}}}, ErrorObjLenNotMatch},
		{"frame id 300", MCRequest{FramingExtras: []FrameInfo{{300, 0, nil}}}, ErrFieldTooLong},
		{"CollIdLen 6", MCRequest{CollIdLen: 6}, ErrFieldTooLong},
		{"UserLen 129", MCRequest{UserLen: 129}, ErrFieldTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prefix")
			out, err := tc.req.AppendTo(dst)
			if !errors.Is(err, tc.want) || string(out) != "prefix" {
				t.Fatalf("AppendTo = %q, %v; want prefix, %v", out, err, tc.want)
			}
			if b := tc.req.Bytes(); b != nil {
				t.Fatalf("Bytes = %d bytes, want nil", len(b))
			}
			if n, err := tc.req.Transmit(io.Discard); n != 0 || err == nil {
				t.Fatalf("Transmit = %d, %v", n, err)
			}
			if n, _ := tc.req.FillHeaderBytes(make([]byte, 1<<17)); n != 0 {
				t.Fatalf("FillHeaderBytes = %d", n)
			}
		})
	}
	for _, tc := range []struct {
		name string
		res  MCResponse
		want error
	}{
		{"key of 65536", MCResponse{Key: big}, ErrKeyTooLong},
		{"flex key of 256", MCResponse{Key: big[:256], FlexibleExtras: []byte{0}}, ErrKeyTooLong},
		{"extras of 256", MCResponse{Extras: big[:256]}, ErrFieldTooLong},
		{"frames of 256", MCResponse{FlexibleExtras: big[:256]}, ErrFieldTooLong},
	} {
		t.Run("response "+tc.name, func(t *testing.T) {
			if out, err := tc.res.AppendTo(nil); !errors.Is(err, tc.want) || out != nil {
				t.Fatalf("AppendTo = %d bytes, %v; want %v", len(out), err, tc.want)
			}
			if tc.res.Bytes() != nil || tc.res.HeaderBytes() != nil {
				t.Fatal("Bytes or HeaderBytes of an unencodable response")
			}
			if _, err := tc.res.Transmit(io.Discard); err == nil {
				t.Fatal("Transmit succeeded")
			}
		})
	}
}

// Large packets go out as their header part and their value; the bytes on
// the wire are the same.
func TestTransmitLarge(t *testing.T) {
	body := []byte(strings.Repeat("v", 100<<10))
	req := MCRequest{Opcode: SET, Key: []byte("k"), Extras: make([]byte, 8), Body: body, ExtMeta: []byte{1, 2}}
	var w bytes.Buffer
	if n, err := req.Transmit(&w); err != nil || n != req.Size() || !bytes.Equal(w.Bytes(), req.Bytes()) {
		t.Fatalf("request Transmit = %d, %v", n, err)
	}
	if !bytes.Equal(req.HeaderBytes(), req.Bytes()[:req.HdrSize()]) {
		t.Fatal("HeaderBytes is not the start of Bytes")
	}
	if h, err := req.AppendHeaderTo([]byte("x")); err != nil || !bytes.Equal(h[1:], req.HeaderBytes()) {
		t.Fatalf("request AppendHeaderTo: %v", err)
	}
	res := MCResponse{Opcode: GET, Extras: make([]byte, 4), Body: body}
	if h, err := res.AppendHeaderTo(nil); err != nil || !bytes.Equal(h, res.Bytes()[:len(h)]) || len(h) != HDR_LEN+4 {
		t.Fatalf("response AppendHeaderTo: %v", err)
	}
	w.Reset()
	if n, err := res.Transmit(&w); err != nil || n != res.Size() || !bytes.Equal(w.Bytes(), res.Bytes()) {
		t.Fatalf("response Transmit = %d, %v", n, err)
	}
	// And a large body read back with Receive grows to its size.
	var got MCResponse
	if _, err := got.Receive(bytes.NewReader(res.Bytes()), nil); err != nil || !bytes.Equal(got.Body, body) {
		t.Fatalf("Receive: %v", err)
	}
	huge := MCResponse{Opcode: GET, Body: []byte(strings.Repeat("h", 3<<20+7))}
	if _, err := got.Receive(bytes.NewReader(huge.Bytes()), nil); err != nil || !bytes.Equal(got.Body, huge.Body) {
		t.Fatalf("Receive of 3 MiB: %v", err)
	}
}

func TestBytesPreallocated(t *testing.T) {
	req := MCRequest{Opcode: GET, Key: []byte("key"), Opaque: 7}
	out := bytes.Repeat([]byte{0xff}, req.Size()+3)
	req.BytesPreallocated(out)
	if !bytes.Equal(out[:req.Size()], req.Bytes()) || !bytes.Equal(out[req.Size():], []byte{0, 0, 0}) {
		t.Fatalf("BytesPreallocated = %x", out)
	}
	short := bytes.Repeat([]byte{0xff}, 5)
	req.BytesPreallocated(short)
	if !bytes.Equal(short, make([]byte, 5)) {
		t.Fatalf("BytesPreallocated(short) = %x", short)
	}
	hdr := make([]byte, req.HdrSize())
	if n, half := req.FillHeaderBytes(hdr); n != req.HdrSize() || half || !bytes.Equal(hdr, req.Bytes()) {
		t.Fatalf("FillHeaderBytes = %d, %v", n, half)
	}
	if n, _ := req.FillHeaderBytes(hdr[:10]); n != 0 {
		t.Fatalf("FillHeaderBytes(short) = %d", n)
	}
}
