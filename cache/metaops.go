package cache

import "time"

// Operations for memcached's meta protocol (mg, md, ma, me): a fetch that
// reports what it found before changing it (hit before, last access) and
// hands out a recache "win" token to exactly one client, an invalidation
// that marks an item stale instead of removing it, arithmetic with an
// expiry, and a read of an item's debugging details. The token and
// staleness are the item's (tokenBit, staleBit), changed under its shard's
// lock, so that two clients racing on one key see one winner.

// unixSeconds converts unix nanoseconds to the seconds an item's access
// time keeps.
func unixSeconds(now int64) uint32 { return uint32(now / int64(time.Second)) }

// FetchOptions say what Fetch does besides reading, as mg's flags do.
type FetchOptions struct {
	// NoBump leaves the item as it was: not marked fetched, its access
	// time and LRU place unchanged (mg's u).
	NoBump bool
	// Touch sets the item's expiry to Expiry (see Deadline), as Touch
	// does (mg's T).
	Touch  bool
	Expiry uint32
	// Vivify creates, on a miss, an empty item (flags 0, expiry
	// VivifyExpiry) whose win token goes to this caller (mg's N): the
	// first client to miss is told to fill it, the others see it exists.
	Vivify       bool
	VivifyExpiry uint32
	// Recache hands the win token to this caller if no one has it yet
	// and the item expires before RecacheExpiry would (mg's R).
	// RecacheAfterTouch compares the expiry Touch sets rather than the
	// item's (R after T on memcached's command line).
	Recache           bool
	RecacheExpiry     uint32
	RecacheAfterTouch bool
	// NewCAS, if not 0, is a vivified item's CAS (see Write.NewCAS).
	NewCAS uint64
	// NoToken hands out no win token, not even for a vivified or stale
	// item (a fetch memcached abandons halfway, on a bad opaque).
	NoToken bool
}

// Fetched is an item as Fetch and Inspect see it.
type Fetched struct {
	Item
	// ExpiresBefore is the expiry before Fetch's Touch or Vivify set one
	// (the zero Time: never).
	ExpiresBefore time.Time
	// Hit reports that the item had been fetched before (mg's h), and
	// LastAccess when it was last stored or fetched (l), both as they
	// were before this fetch.
	Hit        bool
	LastAccess time.Time
	// Stale: the item was invalidated (Invalidate, or Write.Invalidate).
	Stale bool
	// TokenSent: its win token had been handed out before this fetch.
	TokenSent bool
	// Won: this fetch was handed the win token.
	Won bool
	// Vivified: this fetch created the item (FetchOptions.Vivify).
	Vivified bool
	// BinaryKey: the item was stored with a base64 key (Write.BinaryKey).
	BinaryKey bool
	// Bytes is what the item counts against the memory limit and Class
	// the allocation class of its record and data (1 up, the largest for
	// data kept apart): Inspect's only.
	Bytes int64
	Class int
	// At is the time of the fetch by the cache's clock, what Expires and
	// LastAccess are to be read against.
	At time.Time
}

func (it *item) fetchedView() Fetched {
	f := Fetched{Item: it.export(), Hit: it.fetched(), LastAccess: time.Unix(int64(it.atime), 0),
		Stale: it.bits&staleBit != 0, TokenSent: it.bits&tokenBit != 0, BinaryKey: it.bits&binKeyBit != 0}
	f.ExpiresBefore = f.Expires
	return f
}

// Fetch reads the item under key in vbucket vb, with what o asks: see
// FetchOptions. It reports whether there is an item (there is one after a
// vivifying miss). A stale item's token goes to the first fetch after it
// was invalidated. Errors: ErrNoVBucket, and for a vivifying miss
// ErrNoMemory or ErrTooLarge (found is then false).
func (c *Cache) Fetch(vb uint16, key []byte, o *FetchOptions) (f Fetched, found bool, err error) {
	var at int64
	m, err := c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		at = now
		if old == nil {
			if !o.Vivify {
				if o.Touch {
					s.stats.touchMisses++
				} else {
					s.stats.getMisses++
				}
				return outcome{}, nil
			}
			if !c.fits(key, 0) {
				return outcome{}, ErrTooLarge
			}
			it := newItem(key, nil)
			it.setExpires(deadline(o.VivifyExpiry, now)) // Touch is not applied: the caller orders T and N
			if !o.NoToken {
				it.bits |= tokenBit
			}
			if !o.NoBump {
				it.markFetched()
			}
			it.cas = o.NewCAS
			f = it.fetchedView()
			f.Hit, f.TokenSent, f.LastAccess, f.ExpiresBefore = false, false, time.Unix(int64(unixSeconds(now)), 0), time.Time{}
			f.Won, f.Vivified, found = !o.NoToken, true, true
			c.countFetch(s, it, o)
			return outcome{store: it, keepCAS: o.NewCAS != 0}, nil
		}
		found = true
		f = old.fetchedView()
		c.countFetch(s, old, o)
		s.class(old).stats.hitsTo[seg(old)]++
		exp := old.expires()
		if o.Touch {
			exp = deadline(o.Expiry, now)
		}
		if o.Recache && !f.TokenSent {
			e := old.expires()
			if o.RecacheAfterTouch {
				e = exp
			}
			if e != 0 && e < deadline(o.RecacheExpiry, now) {
				f.Won = true
			}
		}
		if f.Stale && !f.TokenSent {
			f.Won = true
		}
		if o.NoToken {
			f.Won = false
		}
		if f.Won {
			old.bits |= tokenBit
		}
		if !o.NoBump {
			if !old.expired(now) {
				s.hit(old, now)
			} else {
				old.markFetched()
				old.setAtime(unixSeconds(now))
			}
		}
		if !o.Touch {
			return outcome{}, nil
		}
		old.setExpires(exp)
		f.Expires = time.Time{}
		if old.expSec != 0 {
			f.Expires = time.Unix(0, old.expires())
		}
		return outcome{touched: true}, nil
	})
	f.At = time.Unix(0, at)
	switch {
	case err != nil:
		return Fetched{}, false, err
	case f.Vivified:
		f.CAS, f.Seqno, f.Rev = m.CAS, m.Seqno, 1
	case o.Touch && found:
		f.Seqno = m.Seqno
		f.Rev++
	}
	return f, found, nil
}

// countFetch counts a fetch that found (or made) an item.
func (c *Cache) countFetch(s *shard, it *item, o *FetchOptions) {
	k := &s.class(it).stats
	if o.Touch {
		k.touchHits++
	} else {
		k.getHits++
	}
}

// Inspect returns the item under key in vbucket vb with its details, and
// whether there is one, changing nothing (memcached's "me").
func (c *Cache) Inspect(vb uint16, key []byte) (Fetched, bool) {
	k, ok := c.locate(vb, key)
	if !ok {
		return Fetched{}, false
	}
	var f Fetched
	it := k.live
	if it != nil {
		f = it.fetchedView()
		f.Bytes, f.At = it.footprint(), time.Unix(0, k.now)
		f.Class = len(inlineSizes) + 1
		if it.size() <= uint32(maxInline) {
			f.Class = int(inlineClass[(it.size()+7)/8]) + 1
		}
	}
	c.unlock(k.s, k.freed)
	return f, it != nil
}

// Invalidate marks the item under key in vbucket vb stale instead of
// deleting it (md's I): it stays readable, Fetch reports it stale and
// hands its win token to the next fetch, and a store replaces it. It gets
// a new CAS (a change, numbered), or newCAS if that is not 0 (see
// Write.NewCAS), and with touch the expiry exp. A non-zero cas must match
// the item's. Errors: ErrNotFound, ErrExists, ErrNoMemory, ErrNoVBucket.
func (c *Cache) Invalidate(vb uint16, key []byte, cas, newCAS uint64, touch bool, exp uint32) (Mutation, error) {
	return c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		switch {
		case old == nil:
			s.stats.deleteMisses++
			return outcome{}, ErrNotFound
		case cas != 0 && cas != old.cas:
			s.stats.deleteMisses++ // as memcached's md
			return outcome{}, ErrExists
		}
		it := newItem(key, old.value())
		it.flags, it.datatype, it.expSec, it.atime = old.flags, old.datatype, old.expSec, old.atime
		if touch {
			it.setExpires(deadline(exp, now))
		}
		it.bits |= staleBit | old.bits&(fetchedBit|binKeyBit)
		it.cas = newCAS
		return outcome{store: it, keepCAS: newCAS != 0}, nil
	})
}

// ArithOptions say what Arith does (ma's flags).
type ArithOptions struct {
	Decr           bool   // subtract (stopping at 0) rather than add
	Delta, Initial uint64 // the change; a created item's value
	// Vivify creates a missing key with Initial and expiry VivifyExpiry.
	Vivify       bool
	VivifyExpiry uint32
	// Touch gives a present item the expiry Expiry.
	Touch  bool
	Expiry uint32
	// CAS, if not 0, must match a present item's.
	CAS uint64
	// BinaryKey, for a created item: see Write.BinaryKey.
	BinaryKey bool
	// NewCAS, if not 0, is the changed item's CAS (see Write.NewCAS).
	NewCAS uint64
}

// ArithResult is what Arith did.
type ArithResult struct {
	Mutation
	Value   uint64
	Created bool
	// Expires is the item's expiry now, ExpiresBefore before Touch (a
	// created item's: never), both to be read against At, the time of the
	// change by the cache's clock.
	Expires, ExpiresBefore, At time.Time
}

// Arith adds to (or subtracts from) the decimal value under key in
// vbucket vb as Incr and Decr do, with what o adds: creating a missing key
// only with Vivify, and setting a present item's expiry with Touch.
// Errors: ErrNotFound, ErrExists, ErrNonNumeric, ErrNoMemory, ErrNoVBucket.
func (c *Cache) Arith(vb uint16, key []byte, o *ArithOptions) (ArithResult, error) {
	var r ArithResult
	m, err := c.update(vb, key, func(s *shard, old, _ *item, now int64) (outcome, error) {
		exp := uint32(NoCreate)
		if o.Vivify {
			exp = o.VivifyExpiry
		}
		v, out, err := counter(s, old, now, key, !o.Decr, o.Delta, o.Initial, exp, o.CAS)
		if err != nil {
			return out, err
		}
		it := out.store
		r.Value, r.Created, r.At = v, old == nil, time.Unix(0, now)
		if old != nil {
			if old.expires() != 0 {
				r.ExpiresBefore = time.Unix(0, old.expires())
			}
			if o.Touch {
				it.setExpires(deadline(o.Expiry, now))
			}
			it.bits |= old.bits & binKeyBit
		} else if o.BinaryKey {
			it.bits |= binKeyBit
		}
		if it.expires() != 0 {
			r.Expires = time.Unix(0, it.expires())
		}
		it.cas, out.keepCAS = o.NewCAS, o.NewCAS != 0
		return out, nil
	})
	if err != nil {
		return ArithResult{}, err
	}
	r.Mutation = m
	return r, nil
}
