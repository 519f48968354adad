package cache_test

import (
	"fmt"

	"github.com/f8e615c8/gomemcached/cache"
)

// The store is usable without any network: memcached's semantics
// in-process.
func Example() {
	c := cache.New(cache.Config{MaxBytes: 1 << 20})
	defer c.Close()
	c.Store(0, cache.Set, []byte("n"), cache.Write{Value: []byte("10")})
	v, _, _ := c.Decr(0, []byte("n"), 1, 0, 0, 0)
	it, _ := c.Get(0, []byte("n"))
	fmt.Printf("%d %q\n", v, it.Value)
	_, err := c.Store(0, cache.Add, []byte("n"), cache.Write{Value: []byte("x")})
	fmt.Println(err)
	// Output:
	// 9 "9 "
	// cache: key exists
}

// A Cursor follows one vbucket's changes in the order they were applied,
// each with its sequence number.
func ExampleCursor() {
	c := cache.New(cache.Config{})
	defer c.Close()
	cur, _ := c.Changes(3)
	defer cur.Close()
	c.Store(3, cache.Set, []byte("a"), cache.Write{Value: []byte("1")})
	c.Store(3, cache.Append, []byte("a"), cache.Write{Value: []byte("2")})
	c.Delete(3, []byte("a"), 0)
	changes, _ := cur.Next(nil, 0)
	for _, ch := range changes {
		fmt.Printf("%d %s %s %q\n", ch.Seqno, ch.Kind, ch.Key, ch.Value)
	}
	// Output:
	// 1 mutated a "1"
	// 2 mutated a "12"
	// 3 deleted a ""
}
