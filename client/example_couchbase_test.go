package memcached_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/client"
)

// Lookup reads several paths of a document in one request; each spec has
// its own result.
func ExampleClient_Lookup() {
	c, err := memcached.Dial(context.Background(), "tcp", "127.0.0.1:11210", memcached.ClientOptions{
		Features: memcached.Features{memcached.FeatureXattr, memcached.FeatureDataType},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	l := new(memcached.LookupIn).
		Get("name", 0).
		Exists("address.city", 0).
		Count("orders", 0).
		Get("_sync.rev", memcached.SubdocXattr)
	r, err := c.Lookup(ctx, 0, "user:1", l, nil)
	if err != nil {
		fmt.Println(err) // errors.Is(err, gomemcached.ErrKeyNotFound): no such document
		return
	}
	name, err := r.Value(0)
	fmt.Printf("name %s (%v), has a city: %v\n", name, err, r.Exists(1))
	if n, err := r.Results[2].Uint(); err == nil {
		fmt.Println(n, "orders")
	}
}

// Mutate changes several paths atomically; a failed spec is a
// *memcached.SubdocError naming it.
func ExampleClient_Mutate() {
	c, err := memcached.Connect("tcp", "127.0.0.1:11210")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	m := new(memcached.MutateIn).
		DictUpsert("name", []byte(`"ann"`), 0).
		ArrayPushLast("orders", []byte(`{"id":7}`), memcached.SubdocMkdirP).
		Counter("visits", 1, memcached.SubdocMkdirP)
	m.DocFlags = memcached.SubdocMkdoc // create the document if need be
	r, err := c.Mutate(context.Background(), 0, "user:1", m, nil)
	var se *memcached.SubdocError
	switch {
	case errors.As(err, &se):
		fmt.Printf("spec %d (%s) failed: %v\n", se.Index, se.Path, se.Status)
	case err != nil:
		fmt.Println(err)
	default:
		visits, _ := r.Results[2].Int()
		fmt.Println("visit", visits, "CAS", r.Cas)
	}
}

// A range scan: create it, continue until it completes.
func ExampleClient_ContinueScan() {
	c, err := memcached.Dial(context.Background(), "tcp", "127.0.0.1:11210", memcached.ClientOptions{
		Features: memcached.Features{memcached.FeatureCollections, memcached.FeatureDataType},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx := context.Background()
	id, err := c.CreateScan(ctx, 0, &memcached.RangeScan{
		KeysOnly: true, Start: []byte("user:"), End: []byte("user:\xff"),
	}, nil)
	if errors.Is(err, gomemcached.ErrKeyNotFound) {
		fmt.Println("no such keys")
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	for {
		b, err := c.ContinueScan(ctx, 0, id, memcached.ScanLimits{Items: 100}, nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, k := range b.Keys {
			fmt.Printf("%s\n", k)
		}
		if b.Complete {
			return
		}
	}
}
