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
	// Seqno is the sequence number of the item's last change in its
	// vbucket.
	Seqno uint64
	// Rev is the item's revision: 1 when the key is first stored, one more
	// with every change (continued across a deletion while the key's
	// tombstone lasts).
	Rev uint64
	// Deleted is set for a deleted document: what Lookup and Modify give
	// of a key's tombstone (its Value is what the deletion kept, as
	// extended attributes; Expires is when it is purged).
	Deleted bool
}

func (it *item) export() Item {
	out := Item{Value: it.value(), Flags: it.flags, CAS: it.cas, Datatype: it.datatype, Seqno: it.seqno(), Rev: it.rev(), Deleted: it.deleted()}
	if it.bits&hollowBit != 0 {
		out.Value = nil
	}
	if it.expires() != 0 {
		out.Expires = time.Unix(0, it.expires())
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

// Get returns the item stored under key in vbucket vb and whether there is
// one. A hit makes the item the most recently used. A vbucket id not below
// VBuckets holds nothing.
func (c *Cache) Get(vb uint16, key []byte) (Item, bool) { return c.getIn(vb, key, Active) }

// getIn is Get in a vbucket whose state is st.
func (c *Cache) getIn(vb uint16, key []byte, st VBState) (Item, bool) {
	k, ok := c.locateIn(vb, key, st)
	if !ok {
		return Item{}, false
	}
	s, it := k.s, k.live
	var out Item
	k.countGone(false)
	if it == nil {
		s.stats.getMisses++
	} else {
		ct := &s.class(it).stats
		ct.getHits++
		ct.hitsTo[seg(it)]++
		s.hit(it, k.now)
		out = it.export()
	}
	c.unlock(s, k.freed)
	return out, it != nil
}

// Touch sets the expiry of the item under key (see Deadline) and returns it.
// A non-zero cas must match the item's. A touch is a change of the item
// (it gets a new seqno and revision) that keeps its CAS, as memcached's.
// An expiry in the past removes the item, which Touch still returns, as
// memcached does. Errors: ErrNotFound, ErrExists, ErrNoVBucket.
func (c *Cache) Touch(vb uint16, key []byte, exp uint32, cas uint64) (Item, error) {
	var out Item
	m, err := c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		if err := present(s, old, cas, &s.stats.touchMisses); err != nil {
			return outcome{}, err
		}
		s.class(old).stats.touchHits++
		old.setExpires(deadline(exp, now))
		if !old.expired(now) {
			s.hit(old, now)
		} else {
			old.markFetched()
			old.setAtime(unixSeconds(now))
		}
		out = old.export()
		out.Rev++ // the touch is the item's next revision, which update gives it
		return outcome{touched: true}, nil
	})
	out.Seqno = m.Seqno
	return out, err
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
	// KeepXattrs keeps the extended attributes of the present item (a
	// value whose Datatype has the xattr bit starts with them), putting
	// them before Value, unless Value brings its own (Datatype has the
	// bit): Couchbase's stores replace a document's body only.
	KeepXattrs bool
	// Deleted stores the value as a deleted document, a tombstone that
	// keeps it (only Modify does; it needs Config.TombstoneTTL).
	Deleted bool
	// Invalidate (the meta protocol's ms I flag): a Set or Replace whose
	// CAS is below the present item's, rather than failing, stores the
	// value marked stale, keeping the present item's expiry and win
	// token (see Fetch).
	Invalidate bool
	// NewCAS, if not 0, is the stored item's CAS instead of a new one
	// (the meta protocol's E flag: a version the client keeps). The
	// cache's own CAS values stay above it.
	NewCAS uint64
	// BinaryKey records that the key came base64-encoded (the meta
	// protocol's b flag), to be shown so (Fetched.BinaryKey).
	BinaryKey bool
	// Patch, if set (Modify only), is called with the stored value once
	// the change has its CAS and seqno, before anyone can read it, to
	// write them into the value in place (Couchbase's mutation macros). It
	// runs under the key's lock and must not change the value's length.
	Patch func(value []byte, m Mutation)
}

// Store stores w.Value under key in vbucket vb as mode says, with w's
// flags, expiry and datatype; a non-zero w.CAS must match the present
// item's. Append and Prepend keep the present item's flags, expiry and
// datatype. It returns the change: the new item's seqno and CAS. (A value
// already expired when stored is never visible: the present item, if any,
// is removed, and the token is the removal's; with none, it is the
// vbucket's current seqno with a new CAS.)
//
// As memcached's binary protocol, a CAS makes Set, Add and Replace alike:
// each then stores only over a present item with that CAS. Append and
// Prepend check a CAS only when the key is present.
//
// Errors: ErrExists (Add of a present key without a CAS, CAS mismatch),
// ErrNotFound (Replace, or a store with a CAS, of a missing key),
// ErrNotStored (Append or Prepend to a missing key, or making a value
// over the item size limit), ErrTooLarge (w.Value alone over the limit),
// ErrNoMemory, ErrNoVBucket. As in memcached, a Set that fails for size or
// memory removes the key's old value (a deletion).
func (c *Cache) Store(vb uint16, mode Mode, key []byte, w Write) (Mutation, error) {
	return c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		return c.store(s, old, now, mode, key, &w)
	})
}

// store is Store's mutation.
func (c *Cache) store(s *shard, old *item, now int64, mode Mode, key []byte, w *Write) (outcome, error) {
	value, cas := w.Value, w.CAS
	if !c.fits(key, len(value)) {
		s.stats.storeTooLarge++
		return outcome{remove: mode == Set}, ErrTooLarge
	}
	nk := &s.classFor(key, len(value), w.Flags).stats // the new item's class, as memcached counts
	nk.cmdSet++
	concat := mode == Append || mode == Prepend
	stale := false
	switch {
	case concat && old == nil:
		return outcome{}, ErrNotStored
	case cas != 0 && old == nil:
		s.stats.casMisses++
		return outcome{}, ErrNotFound
	case cas != 0 && old.cas != cas && w.Invalidate && cas < old.cas && (mode == Set || mode == Replace):
		stale = true // as memcached: the value goes in, stale
	case cas != 0 && old.cas != cas:
		if !concat {
			s.class(old).stats.casBadval++
		}
		return outcome{}, ErrExists
	case mode == Add && old != nil && cas == 0:
		return outcome{}, ErrExists
	case mode == Replace && old == nil:
		return outcome{}, ErrNotFound
	}
	if cas != 0 {
		nk.casHits++
	}
	if !concat {
		var it *item
		if xl := xattrLen(old); xl > 0 && w.KeepXattrs && w.Datatype&datatypeXattr == 0 {
			// As Couchbase: a document's xattrs outlive a store of its body.
			if !c.fits(key, xl+len(value)) {
				s.stats.storeTooLarge++
				return outcome{remove: mode == Set}, ErrTooLarge
			}
			var data []byte
			it, data = allocItem(len(key) + xl + len(value))
			n := copy(data, key)
			n += copy(data[n:], old.value()[:xl])
			copy(data[n:], value)
			it.keyLen = uint16(len(key))
			it.flags, it.datatype = w.Flags, w.Datatype|datatypeXattr
		} else {
			it = newItem(key, value)
			it.flags, it.datatype = w.Flags, w.Datatype
		}
		switch {
		case stale:
			it.expSec = old.expSec
			it.bits |= staleBit | old.bits&tokenBit
		case w.KeepExpiry && old != nil:
			it.expSec = old.expSec
		default:
			it.setExpires(deadline(w.Expiry, now))
		}
		if w.BinaryKey {
			it.bits |= binKeyBit
		}
		it.cas = w.NewCAS
		return outcome{store: it, dropOnFail: mode == Set, keepCAS: w.NewCAS != 0}, nil
	}
	ov := old.value()
	if !c.fits(key, len(ov)+len(value)) {
		// Not counted as too large: memcached counts only data that is
		// too large by itself, not what it would grow an item to.
		return outcome{}, ErrNotStored
	}
	it, data := allocItem(len(key) + len(ov) + len(value))
	n := copy(data, key)
	if mode == Append {
		n += copy(data[n:], ov)
		copy(data[n:], value)
	} else {
		xl := xattrLen(old) // a document's xattrs stay first
		n += copy(data[n:], ov[:xl])
		n += copy(data[n:], value)
		copy(data[n:], ov[xl:])
	}
	it.keyLen = uint16(len(key))
	it.flags, it.expSec, it.datatype = old.flags, old.expSec, old.datatype
	if w.BinaryKey {
		it.bits |= binKeyBit
	}
	it.cas = w.NewCAS
	return outcome{store: it, keepCAS: w.NewCAS != 0}, nil
}

// Delete removes the item under key in vbucket vb; a non-zero cas must
// match it. It returns the deletion's seqno and CAS; with
// Config.TombstoneTTL the key leaves a tombstone. Errors: ErrNotFound,
// ErrExists, ErrNoVBucket.
func (c *Cache) Delete(vb uint16, key []byte, cas uint64) (Mutation, error) {
	return c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		if err := present(s, old, cas, &s.stats.deleteMisses); err != nil {
			return outcome{}, err
		}
		s.class(old).stats.deleteHits++
		return outcome{remove: true}, nil
	})
}

// NoCreate as the expiry of Incr and Decr means "do not create a missing
// key": they fail with ErrNotFound instead.
const NoCreate = 0xffffffff

// Incr adds delta to the decimal value under key in vbucket vb, wrapping
// at 2^64, and returns the new value and the change. A missing key is
// created with initial (flags 0, expiry exp) unless exp is NoCreate. A
// non-zero cas must match. Errors: ErrNotFound, ErrExists, ErrNonNumeric,
// ErrNoMemory, ErrNoVBucket.
func (c *Cache) Incr(vb uint16, key []byte, delta, initial uint64, exp uint32, cas uint64) (uint64, Mutation, error) {
	return c.delta(vb, key, true, delta, initial, exp, cas)
}

// Decr subtracts delta from the decimal value under key, stopping at 0;
// otherwise as Incr.
func (c *Cache) Decr(vb uint16, key []byte, delta, initial uint64, exp uint32, cas uint64) (uint64, Mutation, error) {
	return c.delta(vb, key, false, delta, initial, exp, cas)
}

func (c *Cache) delta(vb uint16, key []byte, incr bool, delta, initial uint64, exp uint32, cas uint64) (uint64, Mutation, error) {
	var value uint64
	m, err := c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		var o outcome
		var err error
		value, o, err = counter(s, old, now, key, incr, delta, initial, exp, cas)
		return o, err
	})
	if err != nil {
		return 0, Mutation{}, err
	}
	return value, m, nil
}

// xattrLen returns the length of the extended attributes that start the
// value of it (0 if its datatype has no xattr bit, or the section is
// malformed): a 4-byte big-endian length, then that many bytes.
func xattrLen(it *item) int {
	if it == nil || it.datatype&datatypeXattr == 0 {
		return 0
	}
	v := it.value()
	if len(v) < 4 {
		return 0
	}
	n := uint64(v[0])<<24 | uint64(v[1])<<16 | uint64(v[2])<<8 | uint64(v[3])
	if n > uint64(len(v)-4) {
		return 0
	}
	return 4 + int(n)
}

// counter is Incr's and Decr's mutation.
func counter(s *shard, old *item, now int64, key []byte, incr bool, delta, initial uint64, exp uint32, cas uint64) (uint64, outcome, error) {
	var buf [20]byte
	switch {
	case old == nil && exp == NoCreate:
		// memcached counts a miss only when it does not create.
		if incr {
			s.stats.incrMisses++
		} else {
			s.stats.decrMisses++
		}
		return 0, outcome{}, ErrNotFound
	case old == nil:
		it := newItem(key, strconv.AppendUint(buf[:0], initial, 10))
		it.setExpires(deadline(exp, now))
		return initial, outcome{store: it}, nil
	case cas != 0 && cas != old.cas:
		s.class(old).stats.casBadval++
		return 0, outcome{}, ErrExists
	}
	xlen := xattrLen(old)
	body := old.value()[xlen:]
	cur, ok := parseCounter(body)
	if !ok {
		return 0, outcome{}, ErrNonNumeric
	}
	var value uint64
	if incr {
		s.class(old).stats.incrHits++
		value = cur + delta
	} else {
		s.class(old).stats.decrHits++
		value = cur - min(delta, cur)
	}
	digits := strconv.AppendUint(buf[:0], value, 10)
	// memcached rewrites a shorter number in place, padded with spaces to
	// the old length; clients see the padding.
	n := max(len(digits), len(body))
	it, data := allocItem(len(key) + xlen + n)
	copy(data, key)
	copy(data[len(key):], old.value()[:xlen]) // a document's xattrs stay
	copy(data[len(key)+xlen:], digits)
	for i := len(key) + xlen + len(digits); i < len(data); i++ {
		data[i] = ' '
	}
	it.keyLen = uint16(len(key))
	it.flags, it.expSec, it.datatype = old.flags, old.expSec, old.datatype
	return value, outcome{store: it}, nil
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
