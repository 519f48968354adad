package cache

// With Config.Collections, every key the cache holds starts with its
// collection id, as Couchbase's protocol encodes it (unsigned LEB128, the
// default collection as the single byte 0). The cache keeps the high seqno
// of each collection in each vbucket, drops a collection's items at once,
// and picks random keys and scans within one collection. It does not know
// which collections exist: that is the manifest's business, its owner's.

// collectionOf decodes the collection id at the start of key: the id and
// the length of its encoding, 0 if key does not start with one in
// canonical form.
func collectionOf(key []byte) (cid uint32, n int) {
	var v uint64
	for i := 0; i < len(key) && i < 5; i++ {
		b := key[i]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 != 0 {
			continue
		}
		if (i > 0 && b == 0) || v > 0xffffffff {
			return 0, 0
		}
		return uint32(v), i + 1
	}
	return 0, 0
}

// CollectionKey appends to dst the key of name in collection cid as a
// cache with Config.Collections holds it, and returns it.
func CollectionKey(dst []byte, cid uint32, name []byte) []byte {
	for cid >= 0x80 {
		dst = append(dst, byte(cid)|0x80)
		cid >>= 7
	}
	return append(append(dst, byte(cid)), name...)
}

// SplitKey returns the collection id and the name of a key that carries
// one (see CollectionKey); ok is false if it does not start with a
// canonical collection id.
func SplitKey(key []byte) (cid uint32, name []byte, ok bool) {
	cid, n := collectionOf(key)
	return cid, key[n:], n > 0
}

// DropCollection removes every item and tombstone of collection cid, in
// every vbucket, with no change numbered for each: a dropped collection's
// items are gone as one event, which its owner records. The collection's
// seqnos are forgotten. It does nothing without Config.Collections.
func (c *Cache) DropCollection(cid uint32) {
	if !c.collections {
		return
	}
	var prefix [5]byte
	p := CollectionKey(prefix[:0], cid, nil)
	c.removeWhere(func(it *item) bool {
		k := it.key()
		return len(k) >= len(p) && string(k[:len(p)]) == string(p)
	})
	for i := range c.vbs {
		v := &c.vbs[i]
		v.mu.Lock()
		if m := v.colls.Load(); m != nil && (*m)[cid] != nil {
			n := make(collSeqnos, len(*m))
			for k, x := range *m {
				if k != cid {
					n[k] = x
				}
			}
			v.colls.Store(&n)
		}
		v.mu.Unlock()
	}
}

// removeWhere removes, one shard at a time, every item and tombstone for
// which drop is true, as no change: cursors are not told.
func (c *Cache) removeWhere(drop func(*item) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		var freed int64
		s.each(func(it *item) {
			if drop(it) {
				freed += s.remove(it)
			}
		})
		c.unlock(s, freed)
	}
}
