package gomemcached_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	gm "github.com/f8e615c8/gomemcached"
)

// Encoding appends to a buffer the caller reuses; several packets can share
// one buffer and one write.
func ExampleMCRequest_AppendTo() {
	var buf []byte
	for i, key := range []string{"a", "b"} {
		req := gm.MCRequest{Opcode: gm.GETKQ, Key: []byte(key), Opaque: uint32(i)}
		buf, _ = req.AppendTo(buf)
	}
	noop := gm.MCRequest{Opcode: gm.NOOP, Opaque: 2}
	buf, _ = noop.AppendTo(buf)
	fmt.Println(len(buf), "bytes in one write")
	// Output: 74 bytes in one write
}

// A Reader decodes pipelined packets from a stream through one reused
// buffer; the packet's slices are valid until the next read.
func ExampleReader() {
	var stream bytes.Buffer
	for _, v := range []string{"one", "two"} {
		res := gm.MCResponse{Opcode: gm.GET, Extras: make([]byte, 4), Body: []byte(v)}
		res.Transmit(&stream)
	}
	r := gm.NewReader(&stream)
	var res gm.MCResponse
	for {
		err := r.ReadResponse(&res)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("stream broken:", err)
			return
		}
		fmt.Printf("%s %s\n", res.Status, res.Body)
	}
	// Output:
	// SUCCESS one
	// SUCCESS two
}

// A failed response is an error that errors.Is matches against the status
// sentinels, as the reference's client returns it or wrapped.
func ExampleMCResponse_Is() {
	var err error = &gm.MCResponse{Opcode: gm.GET, Status: gm.KEY_ENOENT}
	err = fmt.Errorf("loading profile: %w", err)
	fmt.Println(errors.Is(err, gm.ErrKeyNotFound), gm.IsNotFound(err), gm.IsFatal(err))
	// Output: true true false
}

// Malformed input is a typed error, never a panic.
func ExampleProtocolError() {
	var res gm.MCResponse
	_, err := res.Receive(bytes.NewReader([]byte("get foo\r\n                    ")), nil)
	fmt.Println(errors.Is(err, gm.ErrProtocol), errors.Is(err, gm.ErrBadMagic))
	// Output: true true
}

// With collections, keys carry their collection id as a LEB128 prefix.
func ExampleSplitCollectionID() {
	req := gm.MCRequest{Opcode: gm.GET, Key: []byte("user:1")}
	req.SetCollectionID(0x80)
	wire := req.Bytes()
	var got gm.MCRequest
	got.Receive(bytes.NewReader(wire), nil)
	cid, key, _ := gm.SplitCollectionID(got.Key)
	fmt.Printf("%#x %s\n", cid, key)
	// Output: 0x80 user:1
}
