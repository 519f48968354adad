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
	c.Store(cache.Set, []byte("n"), cache.Write{Value: []byte("10")})
	v, _, _ := c.Decr([]byte("n"), 1, 0, 0, 0)
	it, _ := c.Get([]byte("n"))
	fmt.Printf("%d %q\n", v, it.Value)
	_, err := c.Store(cache.Add, []byte("n"), cache.Write{Value: []byte("x")})
	fmt.Println(err)
	// Output:
	// 9 "9 "
	// cache: key exists
}
