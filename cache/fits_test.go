package cache

import (
	"errors"
	"testing"
)

// TestItemSizeLimitKeyName: the item size limit counts a key as memcached does,
// without the collection id it carries: the largest value memcached
// stores under -I 1m for a 1-byte key (1048516 bytes) fits, one byte
// more does not, with or without collections, and a collection id of
// several bytes costs nothing.
func TestItemSizeLimitKeyName(t *testing.T) {
	const limit = 1 << 20
	largest := limit - 1 - itemSizeOverhead // memcached: 48+8+nkey+1+nbytes+2
	for _, tc := range []struct {
		name        string
		collections bool
		key         []byte
	}{
		{"plain", false, []byte("k")},
		{"default collection", true, CollectionKey(nil, 0, []byte("k"))},
		{"collection 0x4000", true, CollectionKey(nil, 0x4000, []byte("k"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Config{MaxItemSize: limit, MaxBytes: 8 << 20, Collections: tc.collections})
			defer c.Close()
			if _, err := c.Store(0, Set, tc.key, Write{Value: make([]byte, largest)}); err != nil {
				t.Fatalf("%d bytes: %v", largest, err)
			}
			if _, err := c.Store(0, Set, tc.key, Write{Value: make([]byte, largest+1)}); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes: %v, want ErrTooLarge", largest+1, err)
			}
		})
	}
}
