package cache

import "unsafe"

// Items whose key and value are small are allocated in one piece with
// them, right after the record: the record and its data share cache lines,
// so a lookup touches one object instead of two, the collector tracks one
// object per item, and the record needs no pointer to its data. The buffer
// sizes are chosen so that record and buffer fill one of Go's size classes
// exactly (the 72-byte record plus N bytes: 96, 112, ... 1024); larger
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
	{24, newInline[[24]byte]}, {40, newInline[[40]byte]}, {56, newInline[[56]byte]},
	{72, newInline[[72]byte]}, {88, newInline[[88]byte]}, {104, newInline[[104]byte]},
	{120, newInline[[120]byte]}, {136, newInline[[136]byte]}, {152, newInline[[152]byte]},
	{168, newInline[[168]byte]}, {184, newInline[[184]byte]}, {216, newInline[[216]byte]},
	{248, newInline[[248]byte]}, {280, newInline[[280]byte]}, {312, newInline[[312]byte]},
	{344, newInline[[344]byte]}, {376, newInline[[376]byte]}, {408, newInline[[408]byte]},
	{440, newInline[[440]byte]}, {504, newInline[[504]byte]}, {568, newInline[[568]byte]},
	{632, newInline[[632]byte]}, {696, newInline[[696]byte]}, {824, newInline[[824]byte]},
	{952, newInline[[952]byte]},
}

// maxInline is the largest key plus value stored with its record.
const maxInline = 952

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
