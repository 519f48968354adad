package cache

// The dead set. memcached's flush_all removes nothing: items older than
// the flush stay in memory, invisible, until something finds them. A get
// that does counts get_flushed, a store whose memory they become counts
// reclaimed, and its LRU reclaims the rest as it meets them. An item
// stored already expired is kept the same way, and a get of it counts
// get_expired. The counts clients read (stats get_flushed, get_expired,
// reclaimed) come from that, so each shard keeps what a flush takes from
// it, and what is stored already expired, in a dead set: a hash table of
// its own, consulted only when a key misses the live table, so hits pay
// nothing. Dead items are no one's changes (a flush is not numbered, and
// an item stored already expired never was); they count against the
// memory limit, as memcached's do, and go first when memory is needed. A
// sweep reclaims those dead for a whole sweep interval, the next flush
// those left: memory a flush frees is free again within two intervals.

// deadSet is a shard's dead items: chained through hnext in buckets,
// listed through prev and next from the head of their slab class's list
// (heads, one without slabs), newest first.
type deadSet struct {
	buckets []*item
	heads   []*item
	n       int
	at      int64 // when the last item went in (unix nanos)
}

// toDead moves it, which is in no table or list, into the dead set of the
// locked shard s at now, with its bytes (which s.bytes does not yet
// count: the caller accounts them in the cache's).
func (s *shard) toDead(it *item, now int64) {
	d := s.dead
	if d == nil {
		d = &deadSet{buckets: make([]*item, minBuckets), heads: make([]*item, len(s.cls))}
		s.dead = d
	}
	if d.n >= 2*len(d.buckets) {
		d.grow()
	}
	b := &d.buckets[it.hash&uint32(len(d.buckets)-1)]
	it.hnext = *b
	*b = it
	it.stamp &^= stampLow // in no list of the LRU's
	h := &d.heads[s.class(it).id]
	it.prev, it.next = nil, *h
	if *h != nil {
		(*h).prev = it
	}
	*h = it
	d.n++
	d.at = now
	s.deadBytes.Add(s.charge(it, 1))
}

// grow doubles the dead set's table.
func (d *deadSet) grow() {
	old := d.buckets
	d.buckets = make([]*item, 2*len(old))
	for _, it := range old {
		for it != nil {
			next := it.hnext
			b := &d.buckets[it.hash&uint32(len(d.buckets)-1)]
			it.hnext = *b
			*b = it
			it = next
		}
	}
}

// findDead removes key's item in vbucket vb from the dead set of the
// locked shard s, if it is there, and returns it (its bytes already taken
// from s.bytes, to be freed by the caller), or nil.
func (s *shard) findDead(vb uint16, key []byte, hash uint32) *item {
	d := s.dead
	for p := &d.buckets[hash&uint32(len(d.buckets)-1)]; *p != nil; p = &(*p).hnext {
		if it := *p; it.hash == hash && int(it.keyLen) == len(key) && it.vbucket() == vb && string(it.key()) == string(key) {
			*p = it.hnext
			s.unlinkDead(it)
			return it
		}
	}
	return nil
}

// unlinkDead takes it, already out of its chain, out of the dead list and
// the shard's bytes.
func (s *shard) unlinkDead(it *item) {
	d := s.dead
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		d.heads[s.class(it).id] = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	}
	it.prev, it.next, it.hnext = nil, nil, nil
	d.n--
	s.deadBytes.Add(s.charge(it, -1))
	if d.n == 0 {
		s.dead = nil
	}
}

// reclaimDead reclaims one dead item of the locked shard s (memory is
// wanted), counting it reclaimed, and returns the bytes freed (0 if there
// was none).
func (s *shard) reclaimDead() int64 {
	if s.dead == nil {
		return 0
	}
	for _, it := range s.dead.heads {
		if it != nil {
			return s.reclaimDeadItem(it)
		}
	}
	return 0
}

// reclaimDeadOf reclaims the newest dead item of class l of the locked
// shard s, and returns the bytes freed (0 if there was none).
func (s *shard) reclaimDeadOf(l *lists) int64 {
	if s.dead == nil || s.dead.heads[l.id] == nil {
		return 0
	}
	return s.reclaimDeadItem(s.dead.heads[l.id])
}

// reclaimDeadItem reclaims the dead item it of the locked shard s.
func (s *shard) reclaimDeadItem(it *item) int64 {
	d := s.dead
	p := &d.buckets[it.hash&uint32(len(d.buckets)-1)]
	for *p != it {
		p = &(*p).hnext
	}
	*p = it.hnext
	s.unlinkDead(it)
	s.countExpired(it)
	return it.footprint()
}

// dropDead reclaims every dead item of the locked shard s, counting each
// reclaimed, and returns the bytes freed.
func (s *shard) dropDead() int64 {
	d := s.dead
	if d == nil {
		return 0
	}
	var n int64
	for _, h := range d.heads {
		for it := h; it != nil; it = it.next {
			s.countExpired(it)
			n -= s.charge(it, -1)
		}
	}
	s.dead = nil
	s.deadBytes.Add(-n)
	return n
}

// flushToDead empties the locked shard s as a flush does: its live items
// become dead, its tombstones go, its live system events stay (with
// their seqnos, sysevent.go), and the items dead before go too
// (reclaimed). It returns
// the bytes freed.
func (s *shard) flushToDead(now int64) int64 {
	freed := s.dropDead()
	old, sysHead := s.buckets, s.sysHead
	s.reset() // s.bytes is 0: what stays is added back, item by item
	for _, it := range old {
		for it != nil {
			next := it.hnext
			it.hnext = nil
			switch {
			case it.pinned():
				// Relinked below, from their list.
			case it.deleted():
				freed += it.footprint()
			default:
				it.bits &^= lateBit
				s.toDead(it, now)
			}
			it = next
		}
	}
	for it := sysHead; it != nil; {
		next := it.next
		s.link(it)
		s.pushSys(it)
		s.charge(it, 1)
		it = next
	}
	return freed
}

// goneKind says what a lookup found instead of a live item: an item whose
// time had passed, or one a flush had made invisible. It is counted by
// what the operation does (countGone).
type goneKind uint8

const (
	goneExpired goneKind = iota + 1
	goneFlushed
)

// countGone counts, in the locked shard s, an item the lookup of an
// operation found expired or flushed: a store reclaims its memory
// (reclaimed, expired_unfetched), anything else counts get_expired or
// get_flushed, as memcached's item lookup does for every command.
func (k *located) countGone(stores bool) {
	switch {
	case k.gone == 0:
	case stores:
		if k.goneUnfetched {
			k.goneClass.stats.expiredUnfetched++
		}
		k.goneClass.stats.reclaimed++
	case k.gone == goneExpired:
		k.s.stats.getExpired++
	default:
		k.s.stats.getFlushed++
	}
}
