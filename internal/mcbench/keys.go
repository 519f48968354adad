package mcbench

import (
	"bytes"
	"encoding/binary"
)

// valueFlags are the client flags every value is set with.
const valueFlags = 0x6d636200 // "mcb\x00"

// keyspace formats keys: prefix followed by the index zero-padded to width
// digits.
type keyspace struct {
	prefix string
	width  int
	n      int
}

func newKeyspace(c *Config) keyspace {
	return keyspace{prefix: c.KeyPrefix, width: c.keyWidth(), n: c.Keys}
}

// appendKey appends key i to dst.
func (k *keyspace) appendKey(dst []byte, i uint32) []byte {
	dst = append(dst, k.prefix...)
	start := len(dst)
	for range k.width {
		dst = append(dst, '0')
	}
	for p := len(dst) - 1; i > 0 && p >= start; p-- {
		dst[p] = byte('0' + i%10)
		i /= 10
	}
	return dst
}

// hashKey returns the 64-bit FNV-1a hash of key, which seeds its value.
func hashKey(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range key {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

// patternSeed seeds the pattern of values; it is fixed so that runs and
// processes agree on every key's value.
const patternSeed = 0x6d6362656e636821

// values derives the value of every key from its hash: the hash, big-endian
// (truncated for values under 8 bytes), then a window of a fixed
// pseudo-random pattern at an offset the hash picks. It is read-only and
// safe for concurrent use.
type values struct {
	size    int
	pattern []byte
}

func newValues(size int) *values {
	n := max(size-8, 0) + 256
	p := make([]byte, (n+7)/8*8)
	s := uint64(patternSeed)
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], splitmix(&s))
	}
	return &values{size: size, pattern: p[:n]}
}

// tail returns the part after the hash of the value of a key with hash h.
func (v *values) tail(h uint64) []byte {
	off := int(h >> 56)
	return v.pattern[off : off+max(v.size-8, 0)]
}

// appendValue appends the value of a key with hash h to dst.
func (v *values) appendValue(dst []byte, h uint64) []byte {
	var head [8]byte
	binary.BigEndian.PutUint64(head[:], h)
	dst = append(dst, head[:min(v.size, 8)]...)
	return append(dst, v.tail(h)...)
}

// equal reports whether got is the value of a key with hash h.
func (v *values) equal(got []byte, h uint64) bool {
	if len(got) != v.size {
		return false
	}
	var head [8]byte
	binary.BigEndian.PutUint64(head[:], h)
	n := min(v.size, 8)
	return bytes.Equal(got[:n], head[:n]) && bytes.Equal(got[n:], v.tail(h))
}

// splitmix advances a SplitMix64 state and returns the next number.
func splitmix(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
