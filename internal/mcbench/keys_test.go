package mcbench

import (
	"bytes"
	"fmt"
	"testing"
)

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		keys int
		i    uint32
		want string
	}{
		{1, 0, "p:0"},
		{10, 9, "p:9"},
		{11, 7, "p:07"},
		{10000, 42, "p:0042"},
		{10000, 9999, "p:9999"},
		{1 << 31, 1<<31 - 1, "p:2147483647"},
	} {
		c := DefaultConfig()
		c.KeyPrefix, c.Keys = "p:", tc.keys
		ks := newKeyspace(&c)
		if got := string(ks.appendKey([]byte("x"), tc.i)); got != "x"+tc.want {
			t.Errorf("keys %d: key %d = %q, want %q", tc.keys, tc.i, got, "x"+tc.want)
		}
	}
}

// Values are a function of the key alone, differ between keys, and equal
// recognizes exactly them.
func TestValues(t *testing.T) {
	for _, size := range []int{0, 1, 7, 8, 9, 100, 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			v1, v2 := newValues(size), newValues(size)
			h := hashKey([]byte("mcbench:0042"))
			a := v1.appendValue(nil, h)
			b := v2.appendValue([]byte("prefix"), h)
			if len(a) != size || !bytes.Equal(a, b[6:]) {
				t.Fatalf("value of %d bytes, or not deterministic: %x vs %x", len(a), a, b[6:])
			}
			if !v1.equal(a, h) {
				t.Fatal("equal rejects the key's own value")
			}
			if size == 0 {
				return
			}
			// From 8 bytes a value holds the whole hash of its key.
			other := v1.appendValue(nil, hashKey([]byte("mcbench:0043")))
			if size >= 8 && (bytes.Equal(a, other) || v1.equal(other, h)) {
				t.Fatal("two keys share a value")
			}
			for i := range a {
				c := bytes.Clone(a)
				c[i] ^= 0x20
				if v1.equal(c, h) {
					t.Fatalf("equal accepts a value with byte %d changed", i)
				}
			}
			if v1.equal(a[:size-1], h) || v1.equal(append(bytes.Clone(a), 0), h) {
				t.Fatal("equal accepts a value of another length")
			}
		})
	}
}

func TestHashKey(t *testing.T) {
	// FNV-1a 64 test vectors.
	if h := hashKey(nil); h != 0xcbf29ce484222325 {
		t.Errorf("hash of empty = %#x", h)
	}
	if h := hashKey([]byte("a")); h != 0xaf63dc4c8601ec8c {
		t.Errorf("hash of a = %#x", h)
	}
}
