package ring

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// Hash names a key hash, as libmemcached's MEMCACHED_BEHAVIOR_HASH and
// twemproxy's pool "hash:" setting name them. Each hashes the key's bytes
// exactly as those C implementations do on amd64 and 386, where char is
// signed: the one-at-a-time and FNV hashes see a byte of 0x80 or more
// sign-extended (on arm64, where char is unsigned, the C libraries place
// such keys differently; ASCII keys are placed alike everywhere).
type Hash uint8

const (
	// HashDefault is the distribution's own: OneAtATime for Ketama and
	// Modula (libmemcached's default), MD5 for KetamaWeighted, FNV1a64 for
	// Twemproxy (twemproxy's default), CRC32IEEE for ServerList.
	HashDefault Hash = iota
	// OneAtATime is Jenkins' one-at-a-time hash, libmemcached's default
	// (MEMCACHED_HASH_DEFAULT) and twemproxy's "one_at_a_time".
	OneAtATime
	// MD5 is the first four bytes of the key's MD5 digest read as a
	// little-endian number (MEMCACHED_HASH_MD5, twemproxy's "md5").
	MD5
	// CRC is libmemcached's MEMCACHED_HASH_CRC and twemproxy's "crc32":
	// bits 16 to 30 of the IEEE CRC-32, a number below 32768.
	CRC
	// CRC32IEEE is the whole IEEE CRC-32 (hash/crc32.ChecksumIEEE):
	// gomemcache's ServerList and twemproxy's "crc32a".
	CRC32IEEE
	// FNV1_64 is libmemcached's MEMCACHED_HASH_FNV1_64 and twemproxy's
	// "fnv1_64": 64-bit FNV-1, its low 32 bits.
	FNV1_64
	// FNV1a64 is libmemcached's MEMCACHED_HASH_FNV1A_64 and twemproxy's
	// "fnv1a_64", which is not 64-bit FNV-1a: both compute a 32-bit FNV-1a
	// with the 64-bit basis and prime truncated to 32 bits.
	FNV1a64
	// FNV1_32 is 32-bit FNV-1 (MEMCACHED_HASH_FNV1_32, "fnv1_32").
	FNV1_32
	// FNV1a32 is 32-bit FNV-1a (MEMCACHED_HASH_FNV1A_32, "fnv1a_32").
	FNV1a32

	numHashes
)

var hashNames = [numHashes]string{
	HashDefault: "default",
	OneAtATime:  "one_at_a_time",
	MD5:         "md5",
	CRC:         "crc32",
	CRC32IEEE:   "crc32a",
	FNV1_64:     "fnv1_64",
	FNV1a64:     "fnv1a_64",
	FNV1_32:     "fnv1_32",
	FNV1a32:     "fnv1a_32",
}

// String returns twemproxy's name for h ("md5", "fnv1a_64", ...).
func (h Hash) String() string {
	if h < numHashes {
		return hashNames[h]
	}
	return "ring.Hash(" + strconv.Itoa(int(h)) + ")"
}

// ParseHash returns the Hash twemproxy's configuration names name (its
// "hash:" values that this package implements).
func ParseHash(name string) (Hash, error) {
	for h := OneAtATime; h < numHashes; h++ {
		if hashNames[h] == name {
			return h, nil
		}
	}
	return 0, fmt.Errorf("ring: unknown hash %q", name)
}

// Sum returns h of key, exactly as libmemcached's
// memcached_generate_hash_value (HashDefault is OneAtATime there) and
// twemproxy compute it.
func (h Hash) Sum(key []byte) uint32 { return sum(h, key) }

// SumString is Sum of a string key.
func (h Hash) SumString(key string) uint32 { return sum(h, key) }

type bytesOrString interface{ ~string | ~[]byte }

func sum[K bytesOrString](h Hash, k K) uint32 {
	switch h {
	case MD5:
		var d [16]byte
		if len(k) <= 256 {
			// crypto/md5 is faster; a copy on the stack spares the
			// string's conversion an allocation.
			var buf [256]byte
			d = md5.Sum(buf[:copy(buf[:], k)])
		} else {
			d = md5Sum(k)
		}
		return binary.LittleEndian.Uint32(d[:4])
	case CRC:
		return crc32IEEE(k) >> 16 & 0x7fff
	case CRC32IEEE:
		return crc32IEEE(k)
	case FNV1_64:
		v := uint64(0xcbf29ce484222325)
		for i := 0; i < len(k); i++ {
			v *= 0x100000001b3
			v ^= uint64(int64(int8(k[i])))
		}
		return uint32(v)
	case FNV1a64:
		v := uint32(0x84222325)
		for i := 0; i < len(k); i++ {
			v ^= signed(k[i])
			v *= 0x000001b3
		}
		return v
	case FNV1_32:
		v := uint32(2166136261)
		for i := 0; i < len(k); i++ {
			v *= 16777619
			v ^= signed(k[i])
		}
		return v
	case FNV1a32:
		v := uint32(2166136261)
		for i := 0; i < len(k); i++ {
			v ^= signed(k[i])
			v *= 16777619
		}
		return v
	default: // OneAtATime, HashDefault
		var v uint32
		for i := 0; i < len(k); i++ {
			v += signed(k[i])
			v += v << 10
			v ^= v >> 6
		}
		v += v << 3
		v ^= v >> 11
		v += v << 15
		return v
	}
}

// signed is a C char of x86 widened to uint32: sign-extended.
func signed(b byte) uint32 { return uint32(int32(int8(b))) }

// crcTable is the IEEE CRC-32 table, reflected (polynomial 0xedb88320).
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xedb88320
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc32IEEE[K bytesOrString](k K) uint32 {
	c := ^uint32(0)
	for i := 0; i < len(k); i++ {
		c = crcTable[byte(c)^k[i]] ^ c>>8
	}
	return ^c
}

// md5Sum is MD5 (RFC 1321) of k, written here so that a key too long for
// sum's stack buffer, string or bytes, hashes without an allocation.
func md5Sum[K bytesOrString](k K) [16]byte {
	s := md5State{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}
	n := len(k)
	var blk [64]byte
	i := 0
	for ; i+64 <= n; i += 64 {
		for j := range blk {
			blk[j] = k[i+j]
		}
		s.block(&blk)
	}
	// The tail, the 0x80 marker and the bit length: one or two blocks.
	var tail [128]byte
	r := 0
	for ; i < n; i++ {
		tail[r] = k[i]
		r++
	}
	tail[r] = 0x80
	end := 64
	if r >= 56 {
		end = 128
	}
	binary.LittleEndian.PutUint64(tail[end-8:end], uint64(n)<<3)
	s.block((*[64]byte)(tail[:64]))
	if end == 128 {
		s.block((*[64]byte)(tail[64:]))
	}
	var d [16]byte
	for j, v := range s {
		binary.LittleEndian.PutUint32(d[4*j:], v)
	}
	return d
}

type md5State [4]uint32

var md5Shift = [4][4]int{{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}}

// md5K[i] is the integer part of 2^32·|sin(i+1)|, as RFC 1321 defines it.
var md5K = func() (t [64]uint32) {
	for i := range t {
		t[i] = uint32(math.Floor(math.Abs(math.Sin(float64(i+1))) * (1 << 32)))
	}
	return t
}()

func (s *md5State) block(p *[64]byte) {
	var m [16]uint32
	for i := range m {
		m[i] = binary.LittleEndian.Uint32(p[4*i:])
	}
	a, b, c, d := s[0], s[1], s[2], s[3]
	for i := range 64 {
		var f uint32
		var g int
		switch i / 16 {
		case 0:
			f, g = b&c|^b&d, i
		case 1:
			f, g = d&b|^d&c, (5*i+1)%16
		case 2:
			f, g = b^c^d, (3*i+5)%16
		default:
			f, g = c^(b|^d), 7*i%16
		}
		f += a + md5K[i] + m[g]
		a, d, c = d, c, b
		b += bits.RotateLeft32(f, md5Shift[i/16][i%4])
	}
	s[0] += a
	s[1] += b
	s[2] += c
	s[3] += d
}
