package memcached_test

import (
	"fmt"
	"net"
	"sync"

	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// A tiny key-value server: a ServeMux routes GET and SET, the server
// pipelines and flushes, handlers copy what they keep.
func ExampleServer() {
	var mu sync.Mutex
	store := map[string][]byte{}
	mux := memcached.NewServeMux()
	mux.HandleFunc(func(w memcached.ResponseWriter, req *gm.MCRequest) {
		mu.Lock()
		store[string(req.Key)] = append([]byte(nil), req.Body...) // req is only valid during the call
		mu.Unlock()
		if !req.Opcode.IsQuiet() {
			w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque})
		}
	}, gm.SET, gm.SETQ)
	mux.HandleFunc(func(w memcached.ResponseWriter, req *gm.MCRequest) {
		mu.Lock()
		v, ok := store[string(req.Key)]
		mu.Unlock()
		if !ok {
			w.WriteStatus(req, gm.KEY_ENOENT, []byte("Not found"))
			return
		}
		w.WriteResponse(&gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque, Body: v})
	}, gm.GET)

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &memcached.Server{Handler: mux}
	go srv.Serve(l)
	defer srv.Close()

	conn, _ := net.Dial("tcp", l.Addr().String())
	defer conn.Close()
	var wire []byte
	wire, _ = (&gm.MCRequest{Opcode: gm.SETQ, Key: []byte("greeting"), Body: []byte("hello")}).AppendTo(wire)
	wire, _ = (&gm.MCRequest{Opcode: gm.GET, Key: []byte("greeting"), Opaque: 1}).AppendTo(wire)
	conn.Write(wire)
	var res gm.MCResponse
	gm.NewReader(conn).ReadResponse(&res)
	fmt.Printf("%s %s\n", res.Status, res.Body)
	// Output: SUCCESS hello
}
