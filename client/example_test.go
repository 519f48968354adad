package memcached_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/client"
)

// A client shared by many goroutines, with the reference's methods.
func Example() {
	c, err := memcached.Dial(context.Background(), "tcp", "127.0.0.1:11211",
		memcached.ClientOptions{ReadTimeout: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			key := fmt.Sprint("key", i)
			if _, err := c.Set(0, key, 0, 0, []byte("value")); err != nil {
				fmt.Println(err)
			}
		})
	}
	wg.Wait()

	res, err := c.Get(0, "key3")
	switch {
	case errors.Is(err, gomemcached.ErrKeyNotFound):
		fmt.Println("not found")
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Printf("%s\n", res.Body)
	}
}

// Do sends any request with a context; a failed status comes back as a
// *gomemcached.ServerError.
func ExampleClient_Do() {
	c, err := memcached.Connect("tcp", "127.0.0.1:11211")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.VERSION})
	var se *gomemcached.ServerError
	switch {
	case errors.As(err, &se):
		fmt.Println("server said", se.Status)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Println("too slow")
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Printf("memcached %s\n", res.Body)
	}
}

// GetBulk reads any number of keys with quiet gets behind one NOOP.
func ExampleClient_GetBulk() {
	c, err := memcached.Connect("tcp", "127.0.0.1:11211")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	found := map[string]*gomemcached.MCResponse{}
	if err := c.GetBulk(0, []string{"a", "b", "c"}, found, nil); err != nil {
		fmt.Println(err)
		return
	}
	for k, res := range found {
		fmt.Printf("%s=%s\n", k, res.Body)
	}
}

// CAS applies a function to a value until it is written without conflict.
func ExampleClient_CAS() {
	c, err := memcached.Connect("tcp", "127.0.0.1:11211")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	res, err := c.CAS(0, "list", func(cur []byte) ([]byte, memcached.CasOp) {
		return append(cur, "item;"...), memcached.CASStore
	}, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("new CAS", res.Cas)
}

// A pool spreads calls over shared connections and lends connections for
// exclusive use.
func ExamplePool() {
	p := memcached.NewPool("tcp", "127.0.0.1:11211", memcached.PoolOptions{MaxOpen: 8})
	defer p.Close()
	ctx := context.Background()

	shared, err := p.Shared(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	shared.Set(0, "k", 0, 0, []byte("v"))

	lent, err := p.Get(ctx) // for Transmit and Receive, say
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Put(lent)
	lent.Transmit(&gomemcached.MCRequest{Opcode: gomemcached.NOOP, Opaque: 1})
	res, err := lent.ReceiveWithDeadline(time.Now().Add(time.Second))
	fmt.Println(res, err)
}

// Timeouts match both the net and the context sentinels; a dead
// connection matches ErrClosed and unwraps to its cause.
func ExampleTimeoutError() {
	var err error = &memcached.TimeoutError{Op: gomemcached.GET}
	fmt.Println(errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded))

	err = &memcached.ConnError{Err: gomemcached.ErrTruncated}
	fmt.Println(errors.Is(err, memcached.ErrClosed), errors.Is(err, gomemcached.ErrTruncated))
	// Output:
	// true true
	// true true
}
