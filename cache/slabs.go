package cache

import (
	"math"
	"sync"
	"sync/atomic"
)

// memcached's memory model (Config.Slabs). memcached keeps items in slab
// classes: chunk sizes from a smallest one up by a factor to a largest,
// each class cutting 1 MiB pages, which it takes from the memory limit as
// it needs them, into chunks. An item takes one chunk of the smallest class
// that holds it (one larger than the largest class takes several of the
// largest), however much less it needs, and a store whose class has no free
// chunk and can get no page evicts from its own class's LRU lists, however
// old the other classes' items are. With Slabs, the cache counts memory the
// same way, so that the same items fit under the same -m as in memcached
// and evict in the same order, and each class has its own LRU lists
// (lists) in every shard. Pages are a count, not memory: a class's chunks
// are interchangeable, and one whose free chunks exceed 2.5 pages gives a
// page back to a global pool that every class takes from first (what
// memcached's slab_automove=1 does by moving items out of a page).
//
// Without Slabs, the limit counts each item's real size (footprint), and
// there is one class.

// SlabConfig sets memcached's slab classes (Config.Slabs). Zero fields take
// memcached's defaults.
type SlabConfig struct {
	// ChunkSize is the room the smallest chunk has for key, value and
	// flags beyond memcached's 48-byte item header (memcached's -n); 0
	// means 48.
	ChunkSize int
	// Factor is the growth factor between classes (memcached's -f); 0
	// means 1.25.
	Factor float64
	// PageSize is a slab page's size; 0 means 1 MiB.
	PageSize int
	// ChunkMax is the largest chunk (memcached's slab_chunk_max); 0 means
	// half a page, within MaxItemSize.
	ChunkMax int
	// Malloced is memory counted as allocated before any page is
	// (memcached's test hook T_MEMD_INITIAL_MALLOC).
	Malloced int64
}

// MaxSlabClasses is the most slab classes there are (memcached's 63 usable
// ids).
const MaxSlabClasses = 63

// Memcached's item header, as its chunk sizes count it.
const (
	slabHeader = 48 // sizeof(item) on a 64-bit build
	slabCAS    = 8
	slabAlign  = 8
)

// slabClass is one class's pages and chunks, shared by the shards.
type slabClass struct {
	size    int64        // chunk size
	perPage int64        // chunks per page
	pages   atomic.Int64 // pages held
	used    atomic.Int64 // chunks taken, by items of every shard
}

// capacity is how many chunks the class's pages hold.
func (k *slabClass) capacity() int64 { return k.pages.Load() * k.perPage }

// slabs is the cache's slab classes and the pages they hold.
type slabs struct {
	classes     []slabClass // id 1 at index 0
	small       []uint8     // class index by (ntotal+7)/8, for small items
	page        int64
	chunkMax    int64
	limit       int64
	collections bool         // keys carry their collection id, which memcached's have not
	mu          sync.Mutex   // serializes taking and giving back pages
	malloced    atomic.Int64 // pages allocated, with the starting count
	pool        atomic.Int64 // pages given back, free for any class
}

// smallTable is the largest ntotal the table answers; larger ones are
// searched.
const smallTable = 16 << 10

// newSlabs computes memcached's classes (slabs.c slabs_init) for the limit
// and the largest item.
func newSlabs(cfg *SlabConfig, limit int64, maxItem int) *slabs {
	sl := &slabs{page: 1 << 20, limit: limit}
	if cfg.PageSize > 0 {
		sl.page = int64(cfg.PageSize)
	}
	sl.chunkMax = sl.page / 2
	if cfg.ChunkMax > 0 {
		sl.chunkMax = min(int64(cfg.ChunkMax), sl.page)
	}
	sl.chunkMax = max(min(sl.chunkMax, int64(maxItem)), slabHeader+slabAlign)
	factor := cfg.Factor
	if factor <= 1 || math.IsNaN(factor) {
		factor = 1.25
	}
	size := float64(slabHeader + 48)
	if cfg.ChunkSize > 0 {
		size = float64(slabHeader + cfg.ChunkSize)
	}
	for len(sl.classes) < MaxSlabClasses-1 && size < float64(sl.chunkMax)/factor {
		n := int64(size)
		if n%slabAlign != 0 {
			n += slabAlign - n%slabAlign
		}
		sl.classes = append(sl.classes, slabClass{size: n, perPage: sl.page / n})
		// memcached multiplies the aligned size, in an unsigned int.
		size = math.Trunc(float64(n) * factor)
	}
	sl.classes = append(sl.classes, slabClass{size: sl.chunkMax, perPage: sl.page / sl.chunkMax})
	sl.malloced.Store(cfg.Malloced)
	n := min(smallTable, sl.chunkMax)
	sl.small = make([]uint8, n/8+1)
	k := 0
	for i := range sl.small {
		for k < len(sl.classes)-1 && sl.classes[k].size < int64(8*i) {
			k++
		}
		sl.small[i] = uint8(k)
	}
	return sl
}

// ntotal is the bytes memcached's item of it takes: its 48-byte header,
// key (without the collection id it carries with Config.Collections) and
// NUL, flags if any, value and "\r\n", CAS.
func (sl *slabs) ntotal(it *item) int64 {
	n := int64(it.size())
	if sl.collections && it.keyLen > 0 {
		_, c := collectionOf(it.key())
		n -= int64(c)
	}
	return ntotal(n, it.flags)
}

// ntotal is the bytes memcached's item takes for n bytes of key (without
// a collection id) and value, and these flags.
func ntotal(n int64, flags uint32) int64 {
	n += itemSizeOverhead
	if flags != 0 {
		n += 4
	}
	return n
}

// classOf returns the index of it's class and the chunks it takes there.
func (sl *slabs) classOf(it *item) (int, int64) { return sl.classFor(sl.ntotal(it)) }

// classFor returns the index of the class of an item of memcached's size n
// (ntotal) and the chunks it takes there.
func (sl *slabs) classFor(n int64) (int, int64) {
	if n <= int64(len(sl.small)-1)*8 {
		return int(sl.small[(n+7)/8]), 1
	}
	last := len(sl.classes) - 1
	if n > sl.chunkMax {
		return last, (n + sl.chunkMax - 1) / sl.chunkMax
	}
	lo, hi := int(sl.small[len(sl.small)-1]), last
	for lo < hi {
		m := (lo + hi) / 2
		if sl.classes[m].size >= n {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo, 1
}

// over reports whether class k has more chunks taken than its pages hold,
// taking pages while it can.
func (sl *slabs) over(k int) bool { return !sl.fits(k, 0) }

// fits reports whether class k can take n more chunks, taking pages while
// it needs them and can.
func (sl *slabs) fits(k int, n int64) bool {
	c := &sl.classes[k]
	for c.used.Load()+n > c.capacity() {
		if !sl.grow(k, n) {
			return false
		}
	}
	return true
}

// grow gives class k a page, from the pool or from the limit, unless it
// has room for n more chunks by now, and reports whether it has room or a
// new page: as memcached's do_slabs_newslab, a class always gets its first
// page, whatever the limit.
func (sl *slabs) grow(k int, n int64) bool {
	c := &sl.classes[k]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	switch {
	case c.used.Load()+n <= c.capacity():
		return true // another store took a page
	case sl.pool.Load() > 0:
		sl.pool.Add(-1)
	case c.pages.Load() > 0 && sl.malloced.Load()+sl.page > sl.limit:
		return false
	default:
		sl.malloced.Add(sl.page)
	}
	c.pages.Add(1)
	return true
}

// reclaimRatio is how many pages' worth of free chunks a class keeps
// before it gives a page back (memcached's slab_automove=1: 2.5).
const reclaimRatio = 2.5

// rebalance gives back to the pool a page of each class whose free chunks
// exceed reclaimRatio pages (the sweeper calls it).
func (sl *slabs) rebalance() {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for i := range sl.classes {
		c := &sl.classes[i]
		if free := c.capacity() - c.used.Load(); c.pages.Load() > 1 && float64(free) > reclaimRatio*float64(c.perPage) {
			c.pages.Add(-1)
			sl.pool.Add(1)
		}
	}
}

// SlabStats is one slab class's state (memcached's "stats slabs" and
// "stats items" for it).
type SlabStats struct {
	ID            int   // memcached's class id, from 1
	ChunkSize     int64 // bytes
	ChunksPerPage int64
	Pages         int64
	UsedChunks    int64
	// Items counts the class's live items, not dead or tombstones; the
	// counters are its items' (their sum over classes is in Stats).
	Items     uint64
	Requested int64 // memcached's mem_requested: the items' ntotal
	Counters  Stats // the class's counters and LRU lists (CurrItems, LRU, Evictions, ...)
}

// SlabTotals is the slab allocator's state (memcached's active_slabs,
// total_malloced, slab_global_page_pool).
type SlabTotals struct {
	Malloced int64
	Pool     int64
}

// Slabs returns the state of every slab class that has pages, and the
// totals; nil without Config.Slabs.
func (c *Cache) Slabs() ([]SlabStats, SlabTotals) {
	sl := c.slabs
	if sl == nil {
		return nil, SlabTotals{}
	}
	var out []SlabStats
	for i := range sl.classes {
		k := &sl.classes[i]
		if k.pages.Load() == 0 {
			continue
		}
		st := c.classStats(i)
		out = append(out, SlabStats{ID: i + 1, ChunkSize: k.size, ChunksPerPage: k.perPage, Pages: k.pages.Load(),
			UsedChunks: k.used.Load(), Items: st.CurrItems, Requested: st.Bytes, Counters: st})
	}
	return out, SlabTotals{Malloced: sl.malloced.Load(), Pool: sl.pool.Load()}
}

// SlabClassOfKey is SlabClassOf for a key as the cache stores it (with its
// collection id first under Config.Collections).
func (c *Cache) SlabClassOfKey(key []byte, valueLen int, flags uint32) int {
	n := len(key)
	if c.collections {
		_, p := collectionOf(key)
		n -= p
	}
	return c.SlabClassOf(n, valueLen, flags)
}

// SlabClassOf returns memcached's class id for an item of this key, value
// length and flags, 0 without Config.Slabs.
func (c *Cache) SlabClassOf(keyLen, valueLen int, flags uint32) int {
	if c.slabs == nil {
		return 0
	}
	k, _ := c.slabs.classFor(ntotal(int64(keyLen+valueLen), flags)) // keyLen without the collection
	return k + 1
}
