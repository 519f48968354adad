package cache

import (
	"strconv"
	"time"
)

// Item is an item as the store returns it. Value is shared with the store
// and must not be modified.
type Item struct {
	Value []byte
	Flags uint32
	CAS   uint64
	// Datatype is the protocol's datatype byte stored with the value; the
	// store only keeps it (Append and Prepend keep the present item's).
	Datatype uint8
	// Expires is when the item expires; the zero Time means never.
	Expires time.Time
}

func (it *item) export() Item {
	out := Item{Value: it.value(), Flags: it.flags, CAS: it.cas, Datatype: it.datatype}
	if it.exp != 0 {
		out.Expires = time.Unix(0, it.exp)
	}
	return out
}

// Mode selects what Store does.
type Mode uint8

// Store modes.
const (
	Set     Mode = iota // store unconditionally (or only if CAS matches)
	Add                 // store only if the key is absent
	Replace             // store only if the key is present
	Append              // add to the end of the present value
	Prepend             // add to the start of the present value
)

// Get returns the item stored under key and whether there is one. A hit
// makes the item the most recently used.
func (c *Cache) Get(key []byte) (Item, bool) {
	now := c.now()
	s, h := c.shardFor(key)
	s.mu.Lock()
	it, freed := s.lookup(key, h, now)
	if it == nil {
		if freed != 0 {
			s.stats.getExpired++
		}
		s.stats.getMisses++
		s.mu.Unlock()
		c.bytes.Add(-freed)
		return Item{}, false
	}
	s.stats.getHits++
	it.fetched = true
	s.bump(it)
	out := it.export()
	s.mu.Unlock()
	return out, true
}

// Touch sets the expiry of the item under key (see Deadline) and returns it.
// A non-zero cas must match the item's. An expiry in the past removes the
// item, which Touch still returns, as memcached does. Errors: ErrNotFound,
// ErrExists.
func (c *Cache) Touch(key []byte, exp uint32, cas uint64) (Item, error) {
	now := c.now()
	s, h := c.shardFor(key)
	s.mu.Lock()
	it, freed := s.lookup(key, h, now)
	switch {
	case it == nil:
		s.stats.touchMisses++
	case cas != 0 && cas != it.cas:
		s.stats.casBadval++
		s.mu.Unlock()
		c.bytes.Add(-freed)
		return Item{}, ErrExists
	default:
		s.stats.touchHits++
		it.exp = deadline(exp, now)
		it.fetched = true
		out := it.export()
		if it.expired(now) {
			// As memcached: the touch succeeds, and the item is gone.
			freed += s.remove(it)
		} else {
			s.bump(it)
		}
		s.mu.Unlock()
		c.bytes.Add(-freed)
		return out, nil
	}
	s.mu.Unlock()
	c.bytes.Add(-freed)
	return Item{}, ErrNotFound
}

// Write is what Store stores.
type Write struct {
	Value    []byte
	Flags    uint32
	Expiry   uint32 // as memcached reads it: see Deadline
	CAS      uint64 // if not 0, must match the present item's
	Datatype uint8
	// KeepExpiry keeps the present item's expiry instead of Expiry.
	KeepExpiry bool
}

// Store stores w.Value under key as mode says, with w's flags, expiry and
// datatype; a non-zero w.CAS must match the present item's. Append and
// Prepend keep the present item's flags, expiry and datatype. It returns
// the new item's CAS.
//
// As memcached's binary protocol, a CAS makes Set, Add and Replace alike:
// each then stores only over a present item with that CAS. Append and
// Prepend check a CAS only when the key is present.
//
// Errors: ErrExists (Add of a present key without a CAS, CAS mismatch),
// ErrNotFound (Replace, or a store with a CAS, of a missing key),
// ErrNotStored (Append or Prepend to a missing key, or making a value
// over the item size limit), ErrTooLarge (w.Value alone over the limit),
// ErrNoMemory. As in memcached, a Set that fails for size or memory
// removes the key's old value.
func (c *Cache) Store(mode Mode, key []byte, w Write) (uint64, error) {
	value, cas := w.Value, w.CAS
	now := c.now()
	s, h := c.shardFor(key)
	if !c.fits(len(key), len(value)) {
		s.mu.Lock()
		s.stats.storeTooLarge++
		freed := c.dropForSet(s, mode, key, h)
		s.mu.Unlock()
		c.bytes.Add(-freed)
		return 0, ErrTooLarge
	}
	s.mu.Lock()
	s.stats.cmdSet++
	old, freed := s.lookup(key, h, now)
	var it *item
	concat := mode == Append || mode == Prepend
	switch {
	case concat && old == nil:
		return c.fail(s, freed, ErrNotStored)
	case cas != 0 && old == nil:
		s.stats.casMisses++
		return c.fail(s, freed, ErrNotFound)
	case cas != 0 && old.cas != cas:
		if !concat {
			s.stats.casBadval++
		}
		return c.fail(s, freed, ErrExists)
	case mode == Add && old != nil && cas == 0:
		return c.fail(s, freed, ErrExists)
	case mode == Replace && old == nil:
		return c.fail(s, freed, ErrNotFound)
	case concat:
		ov := old.value()
		if !c.fits(len(key), len(ov)+len(value)) {
			s.stats.storeTooLarge++
			return c.fail(s, freed, ErrNotStored)
		}
		var data []byte
		it, data = allocItem(len(key) + len(ov) + len(value))
		n := copy(data, key)
		if mode == Append {
			n += copy(data[n:], ov)
			copy(data[n:], value)
		} else {
			n += copy(data[n:], value)
			copy(data[n:], ov)
		}
		it.keyLen = uint16(len(key))
		it.flags, it.exp, it.datatype = old.flags, old.exp, old.datatype
	default:
		it = newItem(key, value)
		it.flags, it.datatype = w.Flags, w.Datatype
		if w.KeepExpiry && old != nil {
			it.exp = old.exp
		} else {
			it.exp = deadline(w.Expiry, now)
		}
	}
	it.hash = h
	if cas != 0 {
		s.stats.casHits++
	}
	if it.expired(now) {
		// Stored already expired: the old value is gone and nothing new is
		// visible.
		if old != nil {
			freed += s.remove(old)
		}
		s.mu.Unlock()
		c.bytes.Add(-freed)
		return c.nextCAS(), nil
	}
	if err := c.insert(s, it, old, now, freed); err != nil {
		if mode == Set {
			c.bytes.Add(-c.dropForSet(s, mode, key, h))
		}
		s.mu.Unlock()
		return 0, err
	}
	s.mu.Unlock()
	c.evictElsewhere()
	return it.cas, nil
}

// fail unlocks s, accounts for bytes freed by lookup and returns err.
func (c *Cache) fail(s *shard, freed int64, err error) (uint64, error) {
	s.mu.Unlock()
	c.bytes.Add(-freed)
	return 0, err
}

// dropForSet removes key's item after a failed Set, as memcached does so
// that no stale value survives; s must be locked. It returns the bytes
// freed.
func (c *Cache) dropForSet(s *shard, mode Mode, key []byte, hash uint32) int64 {
	if mode != Set {
		return 0
	}
	if it := s.find(key, hash); it != nil {
		return s.remove(it)
	}
	return 0
}

// insert stores it in place of old in the locked shard s, giving it a new
// CAS, and keeps memory within the limit: by evicting from s, or, with
// NoEvict, by refusing with ErrNoMemory (expired items are reclaimed
// first). freed is what lookup already released.
func (c *Cache) insert(s *shard, it, old *item, now int64, freed int64) error {
	grow := it.footprint()
	if old != nil {
		grow -= old.footprint()
	}
	if c.noEvict && c.bytes.Load()-freed+grow > c.maxBytes {
		freed += s.reclaimExpired(old, now, reclaimSearch)
		if c.bytes.Load()-freed+grow > c.maxBytes {
			s.stats.storeNoMemory++
			c.bytes.Add(-freed)
			return ErrNoMemory
		}
	}
	it.cas = c.nextCAS()
	total := c.bytes.Add(s.put(it, old) - freed)
	for total > c.maxBytes && !c.noEvict {
		n := s.evictOne(it, now)
		if n == 0 {
			break
		}
		total = c.bytes.Add(-n)
	}
	return nil
}

// evictElsewhere evicts from other shards, one item at a time, while memory
// is over the limit. It runs with no lock held, so shards are never locked
// two at a time.
func (c *Cache) evictElsewhere() {
	if c.noEvict || c.bytes.Load() <= c.maxBytes {
		return
	}
	idle := 0
	for c.bytes.Load() > c.maxBytes && idle < len(c.shards) {
		i := c.evictAt.Add(1) & c.mask
		s := &c.shards[i]
		s.mu.Lock()
		n := s.evictOne(nil, c.now())
		s.mu.Unlock()
		if n == 0 {
			idle++
			continue
		}
		idle = 0
		c.bytes.Add(-n)
	}
}

// Delete removes the item under key; a non-zero cas must match it. Errors:
// ErrNotFound, ErrExists.
func (c *Cache) Delete(key []byte, cas uint64) error {
	now := c.now()
	s, h := c.shardFor(key)
	s.mu.Lock()
	it, freed := s.lookup(key, h, now)
	var err error
	switch {
	case it == nil:
		s.stats.deleteMisses++
		err = ErrNotFound
	case cas != 0 && cas != it.cas:
		s.stats.casBadval++
		err = ErrExists
	default:
		s.stats.deleteHits++
		freed += s.remove(it)
	}
	s.mu.Unlock()
	c.bytes.Add(-freed)
	return err
}

// NoCreate as the expiry of Incr and Decr means "do not create a missing
// key": they fail with ErrNotFound instead.
const NoCreate = 0xffffffff

// Incr adds delta to the decimal value under key, wrapping at 2^64, and
// returns the new value and CAS. A missing key is created with initial
// (flags 0, expiry exp) unless exp is NoCreate. A non-zero cas must match.
// Errors: ErrNotFound, ErrExists, ErrNonNumeric, ErrNoMemory.
func (c *Cache) Incr(key []byte, delta, initial uint64, exp uint32, cas uint64) (uint64, uint64, error) {
	return c.delta(key, true, delta, initial, exp, cas)
}

// Decr subtracts delta from the decimal value under key, stopping at 0;
// otherwise as Incr.
func (c *Cache) Decr(key []byte, delta, initial uint64, exp uint32, cas uint64) (uint64, uint64, error) {
	return c.delta(key, false, delta, initial, exp, cas)
}

func (c *Cache) delta(key []byte, incr bool, delta, initial uint64, exp uint32, cas uint64) (uint64, uint64, error) {
	now := c.now()
	s, h := c.shardFor(key)
	s.mu.Lock()
	old, freed := s.lookup(key, h, now)
	var it *item
	var value uint64
	switch {
	case old == nil:
		if exp == NoCreate {
			// memcached counts a miss only when it does not create.
			if incr {
				s.stats.incrMisses++
			} else {
				s.stats.decrMisses++
			}
			c.fail(s, freed, nil)
			return 0, 0, ErrNotFound
		}
		var buf [20]byte
		value = initial
		it = newItem(key, strconv.AppendUint(buf[:0], initial, 10))
		it.exp = deadline(exp, now)
	case cas != 0 && cas != old.cas:
		s.stats.casBadval++
		c.fail(s, freed, nil)
		return 0, 0, ErrExists
	default:
		cur, ok := parseCounter(old.value())
		if !ok {
			c.fail(s, freed, nil)
			return 0, 0, ErrNonNumeric
		}
		if incr {
			s.stats.incrHits++
			value = cur + delta
		} else {
			s.stats.decrHits++
			value = cur - min(delta, cur)
		}
		var buf [20]byte
		digits := strconv.AppendUint(buf[:0], value, 10)
		// memcached rewrites a shorter number in place, padded with
		// spaces to the old length; clients see the padding.
		n := max(len(digits), len(old.value()))
		var data []byte
		it, data = allocItem(len(key) + n)
		copy(data, key)
		copy(data[len(key):], digits)
		for i := len(key) + len(digits); i < len(data); i++ {
			data[i] = ' '
		}
		it.keyLen = uint16(len(key))
		it.flags, it.exp, it.datatype = old.flags, old.exp, old.datatype
	}
	it.hash = h
	if it.expired(now) {
		if old != nil {
			freed += s.remove(old)
		}
		s.mu.Unlock()
		c.bytes.Add(-freed)
		return value, c.nextCAS(), nil
	}
	if err := c.insert(s, it, old, now, freed); err != nil {
		s.mu.Unlock()
		return 0, 0, err
	}
	s.mu.Unlock()
	c.evictElsewhere()
	return value, it.cas, nil
}

// parseCounter reads a counter as memcached's safe_strtoull does: optional
// leading white space and sign, decimal digits that fit 64 bits, then white
// space, a NUL (C's end of string) or the end. A minus sign is accepted
// only when the negated result is still below 2^63 (so "-0" is 0).
func parseCounter(b []byte) (uint64, bool) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	var v uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if i == start || (i < len(b) && !isSpace(b[i]) && b[i] != 0) {
		return 0, false
	}
	if neg {
		v = -v
		if int64(v) < 0 {
			return 0, false
		}
	}
	return v, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}
