package cache

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"unsafe"
)

// Range scans read one vbucket's keys in byte order. The store keeps no
// ordered index, so that a store costs nothing for scans: a Scan collects
// the keys it is to return when it is made, walking every shard under its
// lock (the cost is one pass over every item in the cache, whatever the
// vbucket or range), copies them and sorts them; Next then reads each
// key's item as it is now. A key that is gone when Next reaches it is
// skipped, and a key stored after the scan was made is not returned, so a
// key present throughout the scan is returned exactly once, in order.

// KeyRange is a range of keys in byte order (as bytes.Compare orders
// them): from Start to End, each one included unless its Exclude flag is
// set. A range whose Start is after its End holds no key.
type KeyRange struct {
	Start, End               []byte
	ExcludeStart, ExcludeEnd bool
}

// Contains reports whether key is in r.
func (r *KeyRange) Contains(key []byte) bool {
	lo, hi := bytes.Compare(key, r.Start), bytes.Compare(key, r.End)
	return (lo > 0 || lo == 0 && !r.ExcludeStart) && (hi < 0 || hi == 0 && !r.ExcludeEnd)
}

// Scan is the keys of one vbucket as they were when the scan was made (see
// ScanRange and ScanSample), in byte order, to be read with Next. A Scan is
// not safe for concurrent use; its keys are its own and stay valid, never
// modified, for as long as the Scan is referenced.
type Scan struct {
	c     *Cache
	vb    uint16
	arena []byte // the keys, one after the other
	keys  []span // into arena, in key order
	lcp   int    // the length of the prefix that every key shares
	next  int
}

// span is one key of a Scan, arena[off:end], with the 8 bytes that follow
// the keys' common prefix, big-endian and padded with zeros, to sort by.
type span struct {
	off, end int
	head     uint64
}

// ScanRange returns a Scan of the live keys of vbucket vb (neither deleted
// nor expired) that are in r. It fails with ErrNoVBucket if the vbucket is
// not active.
func (c *Cache) ScanRange(vb uint16, r KeyRange) (*Scan, error) {
	if c.State(vb) != Active {
		return nil, ErrNoVBucket
	}
	sc := &Scan{c: c, vb: vb}
	if bytes.Compare(r.Start, r.End) > 0 {
		return sc, nil
	}
	c.eachLive(vb, func(key []byte) {
		if r.Contains(key) {
			sc.add(key)
		}
	})
	sc.sort()
	return sc, nil
}

// ScanSample returns a Scan of n keys picked at random among the live keys
// of vbucket vb that start with prefix (every such key if there are no more
// than n). The pick is a uniform sample without replacement that depends
// only on seed and on the set of keys: the same seed over the same keys
// picks the same ones, whatever the cache's shards or hash seed. (Each key
// is ranked by a hash of seed and key, FNV-1a finished with SplitMix64's
// mixer, and the n lowest are kept.) It fails with ErrNoVBucket if the
// vbucket is not active.
func (c *Cache) ScanSample(vb uint16, prefix []byte, n int, seed uint64) (*Scan, error) {
	if c.State(vb) != Active {
		return nil, ErrNoVBucket
	}
	sc := &Scan{c: c, vb: vb}
	if n <= 0 {
		return sc, nil
	}
	// A max-heap of the n lowest ranks seen so far.
	var h sampleHeap
	c.eachLive(vb, func(key []byte) {
		if !bytes.HasPrefix(key, prefix) {
			return
		}
		r := rank(seed, key)
		switch {
		case len(h) < n:
			h.push(sampled{r, bytes.Clone(key)})
		case r < h[0].rank || r == h[0].rank && bytes.Compare(key, h[0].key) < 0:
			h[0] = sampled{r, bytes.Clone(key)}
			h.down(0)
		}
	})
	for _, s := range h {
		sc.add(s.key)
	}
	sc.sort()
	return sc, nil
}

// eachLive calls f with the key of every live item of vbucket vb, one
// shard at a time with the shard locked: f must copy what it keeps, and
// must not use the Cache.
func (c *Cache) eachLive(vb uint16, f func(key []byte)) {
	now := c.now() // before any lock: it may carry out a delayed flush
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, it := range s.buckets {
			for ; it != nil; it = it.hnext {
				if it.vbucket() == vb && !it.deleted() && !it.expired(now) {
					f(it.key())
				}
			}
		}
		s.mu.Unlock()
	}
}

// add appends a copy of key to the scan.
func (sc *Scan) add(key []byte) {
	off := len(sc.arena)
	if len(sc.keys) == 0 {
		sc.lcp = len(key)
	} else {
		first := sc.key(0)
		n := min(sc.lcp, len(key))
		i := 0
		for i < n && first[i] == key[i] {
			i++
		}
		sc.lcp = i
	}
	// Doubling, where append grows large slices by a quarter: a scan of
	// many keys allocates twice its size, not five times.
	if len(sc.arena)+len(key) > cap(sc.arena) {
		sc.arena = slices.Grow(sc.arena, max(len(key), cap(sc.arena), 1024))
	}
	if len(sc.keys) == cap(sc.keys) {
		sc.keys = slices.Grow(sc.keys, max(cap(sc.keys), 64))
	}
	sc.arena = append(sc.arena, key...)
	sc.keys = append(sc.keys, span{off: off, end: len(sc.arena)})
}

// sort puts the keys in byte order. A key lives in one shard, which is
// walked once, so there are no duplicates. Keys are first told apart by
// the 8 bytes after their common prefix (a key that ends sooner is padded
// with zeros, which keeps the order: a head that is lower belongs to a
// lower key), and only keys whose heads are equal are compared whole.
func (sc *Scan) sort() {
	a := sc.arena
	for i := range sc.keys {
		k := &sc.keys[i]
		var b [8]byte
		if start := k.off + sc.lcp; start < k.end {
			copy(b[:], a[start:k.end])
		}
		k.head = binary.BigEndian.Uint64(b[:])
	}
	slices.SortFunc(sc.keys, func(x, y span) int {
		if x.head != y.head {
			return cmp.Compare(x.head, y.head)
		}
		return bytes.Compare(a[x.off:x.end], a[y.off:y.end])
	})
}

// key returns the scan's i-th key.
func (sc *Scan) key(i int) []byte {
	k := sc.keys[i]
	return sc.arena[k.off:k.end:k.end]
}

// Size returns the memory the scan holds for its keys, in bytes.
func (sc *Scan) Size() int { return cap(sc.arena) + cap(sc.keys)*int(unsafe.Sizeof(span{})) }

// Len returns how many keys the scan collected when it was made.
func (sc *Scan) Len() int { return len(sc.keys) }

// Remaining returns how many of the collected keys Next has not reached.
func (sc *Scan) Remaining() int { return len(sc.keys) - sc.next }

// Next returns the next key of the scan that is still live, with its item
// as it is now, and false once no key is left. Keys gone since the scan
// was made, or in a vbucket no longer active, are skipped. Reading an item
// counts no hit and leaves its place in the LRU order (see Lookup). The
// key belongs to the scan; the item's value is shared with the store, and
// neither may be modified.
func (sc *Scan) Next() (key []byte, it Item, ok bool) {
	for sc.next < len(sc.keys) {
		key = sc.key(sc.next)
		sc.next++
		if it, ok = sc.c.Lookup(sc.vb, key, false); ok {
			return key, it, true
		}
	}
	return nil, Item{}, false
}

// Peek returns the key Next would try next, without reading its item, and
// false if none is left. The key may be gone by the time Next reads it.
func (sc *Scan) Peek() ([]byte, bool) {
	if sc.next >= len(sc.keys) {
		return nil, false
	}
	return sc.key(sc.next), true
}

// HasSeqno reports whether vbucket vb holds an item, live or a tombstone,
// whose last change has seqno: whether that change is still stored rather
// than replaced by a later change of its key. It walks every shard, as a
// scan does.
func (c *Cache) HasSeqno(vb uint16, seqno uint64) bool {
	if int(vb) >= len(c.vbs) || seqno == 0 {
		return false
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, it := range s.buckets {
			for ; it != nil; it = it.hnext {
				if it.seqno() == seqno && it.vbucket() == vb {
					s.mu.Unlock()
					return true
				}
			}
		}
		s.mu.Unlock()
	}
	return false
}

// sampled is a key in a sample and its rank.
type sampled struct {
	rank uint64
	key  []byte
}

// sampleHeap is a max-heap of sampled keys by rank, then key.
type sampleHeap []sampled

func (h sampleHeap) less(i, j int) bool {
	return h[i].rank > h[j].rank || h[i].rank == h[j].rank && bytes.Compare(h[i].key, h[j].key) > 0
}

func (h *sampleHeap) push(s sampled) {
	*h = append(*h, s)
	x := *h
	for i := len(x) - 1; i > 0; {
		p := (i - 1) / 2
		if !x.less(i, p) {
			break
		}
		x[i], x[p] = x[p], x[i]
		i = p
	}
}

func (h sampleHeap) down(i int) {
	for {
		l, top := 2*i+1, i
		if l < len(h) && h.less(l, top) {
			top = l
		}
		if r := l + 1; r < len(h) && h.less(r, top) {
			top = r
		}
		if top == i {
			return
		}
		h[i], h[top] = h[top], h[i]
		i = top
	}
}

// rank is a key's place in a sample of seed: FNV-1a of the key, from a
// basis that depends on the seed, through SplitMix64's finalizer.
func rank(seed uint64, key []byte) uint64 {
	h := 14695981039346656037 ^ mix64(seed)
	for _, b := range key {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return mix64(h ^ seed)
}

// mix64 is SplitMix64's finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
