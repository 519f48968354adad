package cache

import "unsafe"

// Items whose key and value are small are allocated in one piece with
// them, right after the record: the record and its data share cache lines,
// so a lookup touches one object instead of two, the collector tracks one
// object per item, and the record needs no pointer to its data. The buffer
// sizes are chosen so that record and buffer fill one of Go's size classes
// exactly (the 80-byte record plus N bytes: 96, 112, ... 1024); larger
// items keep their data apart, in an outlined.

// inline is an item with its data in the same allocation.
type inline[B any] struct {
	item
	buf B
}

// newInline allocates an item whose buffer is a B, an array of bytes, and
// returns it with the first n bytes of the buffer.
func newInline[B any](n int) (*item, []byte) {
	x := new(inline[B])
	return &x.item, unsafe.Slice((*byte)(unsafe.Pointer(&x.buf)), unsafe.Sizeof(x.buf))[:n:n]
}

// inlineSizes are the buffer sizes, smallest first, and their allocators.
var inlineSizes = [...]struct {
	size  int
	alloc func(n int) (*item, []byte)
}{
	{16, newInline[[16]byte]}, {32, newInline[[32]byte]}, {48, newInline[[48]byte]},
	{64, newInline[[64]byte]}, {80, newInline[[80]byte]}, {96, newInline[[96]byte]},
	{112, newInline[[112]byte]}, {128, newInline[[128]byte]}, {144, newInline[[144]byte]},
	{160, newInline[[160]byte]}, {176, newInline[[176]byte]}, {208, newInline[[208]byte]},
	{240, newInline[[240]byte]}, {272, newInline[[272]byte]}, {304, newInline[[304]byte]},
	{336, newInline[[336]byte]}, {368, newInline[[368]byte]}, {400, newInline[[400]byte]},
	{432, newInline[[432]byte]}, {496, newInline[[496]byte]}, {560, newInline[[560]byte]},
	{624, newInline[[624]byte]}, {688, newInline[[688]byte]}, {816, newInline[[816]byte]},
	{944, newInline[[944]byte]},
}

// maxInline is the largest key plus value stored with its record.
const maxInline = 944

// inlineClass maps (n+7)/8, for n up to maxInline, to the index in
// inlineSizes of the smallest buffer that holds n bytes.
var inlineClass = func() (t [maxInline/8 + 1]uint8) {
	c := 0
	for i := range t {
		for inlineSizes[c].size < 8*i {
			c++
		}
		t[i] = uint8(c)
	}
	return t
}()

// allocItem returns an item with room for n bytes of key and value, and
// that room.
func allocItem(n int) (*item, []byte) {
	var it *item
	var buf []byte
	if n <= maxInline {
		it, buf = inlineSizes[inlineClass[(n+7)/8]].alloc(n)
	} else {
		o := &outlined{}
		buf = make([]byte, n)
		o.data = &buf[0]
		it = &o.item
	}
	it.size = uint32(n)
	return it, buf
}
