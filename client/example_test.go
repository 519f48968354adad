package memcached_test

import (
	"context"
	"crypto/tls"
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

// Connections prepared before use: over TLS, authenticated with SCRAM,
// with mutation tokens, in a bucket. A pool with these options lends only
// connections so prepared.
func ExampleDial_authenticated() {
	opts := memcached.ClientOptions{
		TLSConfig: &tls.Config{ServerName: "cache.example.com"},
		Username:  "app", Password: os.Getenv("CACHE_PASSWORD"),
		Mechanism: memcached.MechanismScramSHA512,
		Features:  memcached.Features{memcached.FeatureMutationToken, memcached.FeatureXerror},
		Bucket:    "sessions",
	}
	c, err := memcached.Dial(context.Background(), "tcp", "cache.example.com:11207", opts)
	var se *memcached.SetupError
	switch {
	case errors.Is(err, gomemcached.ErrAuthFailed):
		fmt.Println("wrong user name or password")
		return
	case errors.As(err, &se):
		fmt.Println("could not prepare the connection:", se.Step, se.Err)
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	defer c.Close()
	res, err := c.Set(0, "k", 0, 0, []byte("v"))
	if err == nil && c.IsFeatureEnabled(memcached.FeatureMutationToken) {
		fmt.Printf("vbucket uuid and seqno: %x\n", res.Extras)
	}
}

// The reference's way: one step at a time on a connected client.
func ExampleClient_Auth() {
	c, err := memcached.Connect("tcp", "127.0.0.1:11210")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if _, err := c.Auth("app", os.Getenv("CACHE_PASSWORD")); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.SelectBucket("sessions"); errors.Is(err, gomemcached.ErrNoBucket) {
		fmt.Println("no such bucket")
		return
	}
	if _, err := c.EnableFeatures(memcached.Features{memcached.FeatureXerror}); err != nil {
		fmt.Println("HELLO:", err)
	}
	fmt.Println(c.LastBucket(), c.IsFeatureEnabled(memcached.FeatureXerror))
}
