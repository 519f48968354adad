package cache

// Items whose key and value are small are allocated in one piece with
// them: the record and its data share cache lines, so a lookup touches one
// object instead of two, and the collector tracks one object per item. The
// sizes are chosen so that record and data fill one of Go's size classes
// (64-byte record + N bytes); larger items keep their data apart.

type (
	item64 struct {
		item
		buf [64]byte
	}
	item80 struct {
		item
		buf [80]byte
	}
	item96 struct {
		item
		buf [96]byte
	}
	item112 struct {
		item
		buf [112]byte
	}
	item128 struct {
		item
		buf [128]byte
	}
	item144 struct {
		item
		buf [144]byte
	}
	item160 struct {
		item
		buf [160]byte
	}
	item176 struct {
		item
		buf [176]byte
	}
	item192 struct {
		item
		buf [192]byte
	}
	item224 struct {
		item
		buf [224]byte
	}
	item256 struct {
		item
		buf [256]byte
	}
	item288 struct {
		item
		buf [288]byte
	}
	item320 struct {
		item
		buf [320]byte
	}
	item352 struct {
		item
		buf [352]byte
	}
	item384 struct {
		item
		buf [384]byte
	}
	item416 struct {
		item
		buf [416]byte
	}
	item448 struct {
		item
		buf [448]byte
	}
	item512 struct {
		item
		buf [512]byte
	}
	item576 struct {
		item
		buf [576]byte
	}
	item640 struct {
		item
		buf [640]byte
	}
	item704 struct {
		item
		buf [704]byte
	}
	item832 struct {
		item
		buf [832]byte
	}
	item960 struct {
		item
		buf [960]byte
	}
)

// maxInline is the largest key plus value stored with its record.
const maxInline = 960

// allocItem returns an item with room for n bytes of key and value, and
// that room.
func allocItem(n int) (*item, []byte) {
	var it *item
	var buf []byte
	switch {
	case n <= 64:
		x := new(item64)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 80:
		x := new(item80)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 96:
		x := new(item96)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 112:
		x := new(item112)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 128:
		x := new(item128)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 144:
		x := new(item144)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 160:
		x := new(item160)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 176:
		x := new(item176)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 192:
		x := new(item192)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 224:
		x := new(item224)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 256:
		x := new(item256)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 288:
		x := new(item288)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 320:
		x := new(item320)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 352:
		x := new(item352)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 384:
		x := new(item384)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 416:
		x := new(item416)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 448:
		x := new(item448)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 512:
		x := new(item512)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 576:
		x := new(item576)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 640:
		x := new(item640)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 704:
		x := new(item704)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 832:
		x := new(item832)
		it, buf = &x.item, x.buf[:n:n]
	case n <= 960:
		x := new(item960)
		it, buf = &x.item, x.buf[:n:n]
	default:
		it, buf = new(item), make([]byte, n)
	}
	if n > 0 {
		it.data = &buf[0]
	}
	it.size = uint32(n)
	return it, buf
}
