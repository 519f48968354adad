package memcached

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// keeper is a reference-style handler: it keeps the request's slices, as
// the reference's sample server does, which is only safe if each request
// owns its memory.
type keeper struct {
	mu   sync.Mutex
	kept map[string][]byte
}

func (k *keeper) HandleMessage(w io.Writer, req *gm.MCRequest) *gm.MCResponse {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch req.Opcode {
	case gm.SETQ:
		k.kept[string(req.Key)] = req.Body
		return nil
	case gm.GET:
		return &gm.MCResponse{Body: k.kept[string(req.Key)]}
	case gm.QUIT:
		return &gm.MCResponse{Fatal: true}
	case gm.STAT:
		// Complete control: the handler writes its own packets.
		(&gm.MCResponse{Opcode: gm.STAT, Opaque: req.Opaque, Key: []byte("a"), Body: []byte("1")}).Transmit(w)
		return &gm.MCResponse{}
	}
	return &gm.MCResponse{Status: gm.UNKNOWN_COMMAND}
}

func pipelineOfSets() []byte {
	var wire []byte
	for i := range 50 {
		r := gm.MCRequest{Opcode: gm.SETQ, Key: []byte{'k', byte('0' + i%10), byte('0' + i/10)}, Body: bytes.Repeat([]byte{byte(i)}, 10+i)}
		wire, _ = r.AppendTo(wire)
	}
	return wire
}

func checkKept(t *testing.T, k *keeper) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.kept) != 50 {
		t.Fatalf("%d kept", len(k.kept))
	}
	for i := range 50 {
		v := k.kept[string([]byte{'k', byte('0' + i%10), byte('0' + i/10)})]
		if !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 10+i)) {
			t.Fatalf("value %d corrupted: %x", i, v)
		}
	}
}

func TestHandleIO(t *testing.T) {
	k := &keeper{kept: map[string][]byte{}}
	client, srv := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- HandleIO(srv, k) }()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	wire := pipelineOfSets()
	wire, _ = (&gm.MCRequest{Opcode: gm.GET, Key: []byte("k00"), Opaque: 7}).AppendTo(wire)
	wire, _ = (&gm.MCRequest{Opcode: gm.STAT, Opaque: 8}).AppendTo(wire)
	wire, _ = (&gm.MCRequest{Opcode: gm.QUIT, Opaque: 9}).AppendTo(wire)
	go client.Write(wire)
	r := gm.NewReader(client)
	var res gm.MCResponse
	if err := r.ReadResponse(&res); err != nil || res.Opcode != gm.GET || res.Opaque != 7 || len(res.Body) != 10 {
		t.Fatalf("GET: %v %v", err, &res)
	}
	if err := r.ReadResponse(&res); err != nil || string(res.Key) != "a" {
		t.Fatalf("handler's own packet: %v %v", err, &res)
	}
	if err := r.ReadResponse(&res); err != nil || res.Opcode != gm.STAT || res.Opaque != 8 {
		t.Fatalf("STAT end: %v %v", err, &res)
	}
	if err := <-done; err != io.EOF {
		t.Fatalf("HandleIO = %v, want io.EOF after a Fatal answer", err)
	}
	if err := r.ReadResponse(&res); err != io.EOF {
		t.Fatalf("QUIT was answered or the pipe left open: %v", err)
	}
	checkKept(t, k)
}

func TestHandleMessageAndReadPacket(t *testing.T) {
	h := FuncHandler(func(w io.Writer, req *gm.MCRequest) *gm.MCResponse {
		switch req.Opcode {
		case gm.GETQ:
			return nil
		case gm.QUIT:
			return &gm.MCResponse{Fatal: true, Body: []byte("never sent")}
		}
		return &gm.MCResponse{Opcode: gm.FLUSH, Opaque: 1, Body: req.Key}
	})
	var in, out bytes.Buffer
	for _, r := range []gm.MCRequest{
		{Opcode: gm.GET, Key: []byte("x"), Opaque: 42},
		{Opcode: gm.GETQ, Key: []byte("y")},
		{Opcode: gm.QUIT},
	} {
		r.Transmit(&in)
	}
	if err := HandleMessage(&in, &out, h); err != nil {
		t.Fatal(err)
	}
	var res gm.MCResponse
	if _, err := res.Receive(bytes.NewReader(out.Bytes()), nil); err != nil || res.Opcode != gm.GET || res.Opaque != 42 || string(res.Body) != "x" {
		t.Fatalf("answer %v %v: opcode and opaque must come from the request", err, &res)
	}
	n := out.Len()
	if err := HandleMessage(&in, &out, h); err != nil || out.Len() != n {
		t.Fatalf("quiet: %v, %d bytes written", err, out.Len()-n)
	}
	if err := HandleMessage(&in, &out, h); err != io.EOF || out.Len() != n {
		t.Fatalf("fatal: %v, %d bytes written", err, out.Len()-n)
	}
	if _, err := ReadPacket(&in); err != io.EOF {
		t.Fatalf("ReadPacket at the end: %v", err)
	}
	if _, err := ReadPacket(bytes.NewReader([]byte{0x42, 1, 2})); err == nil {
		t.Fatal("ReadPacket accepted garbage")
	}
}

func TestAdapt(t *testing.T) {
	modes(t, func(t *testing.T, loops int) {
		k := &keeper{kept: map[string][]byte{}}
		addr := start(t, &Server{EventLoops: loops, Handler: Adapt(k)})
		c, r := dial(t, addr)
		wire := pipelineOfSets()
		wire, _ = (&gm.MCRequest{Opcode: gm.GET, Key: []byte("k11"), Opaque: 3}).AppendTo(wire)
		wire, _ = (&gm.MCRequest{Opcode: gm.QUIT}).AppendTo(wire)
		c.Write(wire)
		if res := read(t, r); res.Opaque != 3 || res.Opcode != gm.GET || len(res.Body) != 21 {
			t.Fatal(res)
		}
		var res gm.MCResponse
		if err := r.ReadResponse(&res); err != io.EOF {
			t.Fatalf("after a Fatal answer: %v", err)
		}
		checkKept(t, k)
	})
}
