package cache

import "unsafe"

// Items whose key and value are small are allocated in one piece with
// them, right after the record: the record and its data share cache lines,
// so a lookup touches one object instead of two, the collector tracks one
// object per item, and the record needs no pointer to its data. The buffer
// sizes are chosen so that record and buffer fill one of Go's size classes
// exactly (the record plus N bytes: 96, 112, ... 1024); larger
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
	{96 - recordSize, newInline[[96 - recordSize]byte]}, {112 - recordSize, newInline[[112 - recordSize]byte]},
	{128 - recordSize, newInline[[128 - recordSize]byte]}, {144 - recordSize, newInline[[144 - recordSize]byte]},
	{160 - recordSize, newInline[[160 - recordSize]byte]}, {176 - recordSize, newInline[[176 - recordSize]byte]},
	{192 - recordSize, newInline[[192 - recordSize]byte]}, {208 - recordSize, newInline[[208 - recordSize]byte]},
	{224 - recordSize, newInline[[224 - recordSize]byte]}, {240 - recordSize, newInline[[240 - recordSize]byte]},
	{256 - recordSize, newInline[[256 - recordSize]byte]}, {288 - recordSize, newInline[[288 - recordSize]byte]},
	{320 - recordSize, newInline[[320 - recordSize]byte]}, {352 - recordSize, newInline[[352 - recordSize]byte]},
	{384 - recordSize, newInline[[384 - recordSize]byte]}, {416 - recordSize, newInline[[416 - recordSize]byte]},
	{448 - recordSize, newInline[[448 - recordSize]byte]}, {480 - recordSize, newInline[[480 - recordSize]byte]},
	{512 - recordSize, newInline[[512 - recordSize]byte]}, {576 - recordSize, newInline[[576 - recordSize]byte]},
	{640 - recordSize, newInline[[640 - recordSize]byte]}, {704 - recordSize, newInline[[704 - recordSize]byte]},
	{768 - recordSize, newInline[[768 - recordSize]byte]}, {896 - recordSize, newInline[[896 - recordSize]byte]},
	{1024 - recordSize, newInline[[1024 - recordSize]byte]},
}

// maxInline is the largest key plus value stored with its record.
const maxInline = 1024 - recordSize

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
		o := &outlined{size: uint32(n)}
		buf = make([]byte, n)
		o.data = &buf[0]
		it = &o.item
		it.small = outlinedSize
		return it, buf
	}
	it.small = uint16(n)
	return it, buf
}
