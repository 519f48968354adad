package ring_test

import (
	"fmt"

	"github.com/f8e615c8/gomemcached/ring"
)

// A Go service and a PHP or C service using libmemcached with
// MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (PHP's OPT_LIBKETAMA_COMPATIBLE) agree
// on every key's server for the same list.
func Example() {
	servers := []ring.Server{
		{Addr: "10.0.0.1:11211"},
		{Addr: "10.0.0.2:11211", Weight: 2},
		{Addr: "10.0.0.3:11212"},
	}
	r, err := ring.New(servers, ring.Config{Distribution: ring.KetamaWeighted})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, key := range []string{"user:1", "user:2", "session:abc"} {
		fmt.Println(key, "->", servers[r.Pick(key)].Addr)
	}
	// Output:
	// user:1 -> 10.0.0.2:11211
	// user:2 -> 10.0.0.2:11211
	// session:abc -> 10.0.0.3:11212
}

// A ring that places keys as a twemproxy pool does, from the entries of
// its "servers:" list.
func ExampleParseTwemproxyServer() {
	var servers []ring.Server
	for _, entry := range []string{"127.0.0.1:11211:1 a", "127.0.0.1:11212:1 b", "127.0.0.1:11213:1 c"} {
		s, err := ring.ParseTwemproxyServer(entry)
		if err != nil {
			fmt.Println(err)
			return
		}
		servers = append(servers, s)
	}
	// distribution: ketama, hash: fnv1a_64 (the default)
	r, err := ring.New(servers, ring.Config{Distribution: ring.Twemproxy})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("foo ->", servers[r.Pick("foo")].Name)
	// Output:
	// foo -> b
}
