package gocache_test

import (
	"fmt"
	"net"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
)

// Running gocache in-process, for example in another program's tests.
func Example() {
	srv, err := gocache.New(gocache.Config{Cache: cache.Config{MaxBytes: 16 << 20}})
	if err != nil {
		panic(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Close()

	conn, _ := net.Dial("tcp", l.Addr().String())
	defer conn.Close()
	(&gm.MCRequest{Opcode: gm.INCREMENT, Key: []byte("visits"), Extras: make([]byte, 20)}).Transmit(conn)
	var res gm.MCResponse
	res.Receive(conn, nil)
	fmt.Println(res.Status, res.Body)
	// Output: SUCCESS [0 0 0 0 0 0 0 0]
}
