package mcdebug_test

import (
	"context"
	"fmt"

	memcached "github.com/f8e615c8/gomemcached/client"
	mcdebug "github.com/f8e615c8/gomemcached/debug"
)

// A client whose packets are counted in the expvar "mc", served at
// /debug/vars by net/http's default mux.
func ExampleDefault() {
	c, err := memcached.Dial(context.Background(), "tcp", "127.0.0.1:11211",
		memcached.ClientOptions{Observer: mcdebug.Default()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.Get(0, "key")
	fmt.Println(mcdebug.Default().Sent.String())
}
