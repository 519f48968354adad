package memcached_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	memcached "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/ring"
)

// startNode starts an in-process gocache on a free loopback port, for the
// example; in production the addresses are those of running servers.
func startNode() (addr string, stop func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv, err := gocache.New(gocache.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Close() }
}

// Keys spread over three servers as libmemcached's ketama places them,
// with failing servers ejected for two seconds after three failures in a
// row. Code written against memcached.KV works with one Client or many
// servers alike.
func ExampleServers() {
	var servers []ring.Server
	for range 3 {
		addr, stop := startNode()
		defer stop()
		servers = append(servers, ring.Server{Addr: addr})
	}
	s, err := memcached.NewServers(servers, ring.Config{Distribution: ring.KetamaWeighted}, memcached.ServersOptions{
		Pool:         memcached.PoolOptions{Client: memcached.ClientOptions{ReadTimeout: time.Second}},
		FailureLimit: 3,
		RetryTimeout: 2 * time.Second,
		OnEvent: func(ev memcached.ServerEvent) {
			fmt.Println("server", ev.Addr, ev.Kind, ev.Err)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	var kv memcached.KV = s
	if _, err := kv.Set(0, "greeting", 0, 0, []byte("hello")); err != nil {
		fmt.Println(err)
		return
	}
	res, err := kv.Get(0, "greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", res.Body)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	items := []memcached.Item{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "c", Value: []byte("3")}}
	if err := s.SetMulti(ctx, items); err != nil {
		fmt.Println(err)
		return
	}
	got, err := s.GetMulti(ctx, []string{"a", "b", "c", "missing"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s %s, %d found\n", got["a"].Body, got["b"].Body, got["c"].Body, len(got))
	// Output:
	// hello
	// 1 2 3, 3 found
}
