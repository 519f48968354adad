package cache

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Operations beyond memcached's, for Couchbase's protocol: reading and
// writing a key's item with its metadata, deleted documents included, a
// read-modify-write under the key's lock, and a random key.

// ErrInvalidCAS is the error of a store with metadata whose CAS is 0 or
// all ones, values no mutation can have.
var ErrInvalidCAS = errors.New("cache: invalid CAS")

// ErrNoTombstones is the error of storing a deleted document in a cache
// that keeps no tombstones (Config.TombstoneTTL is 0).
var ErrNoTombstones = errors.New("cache: tombstones are off")

// Lookup returns the live item under key in vbucket vb or, if deleted is
// set and the key has none, its deleted document (Item.Deleted set), and
// whether there was either. Unlike Get it counts no hit or miss and leaves
// the item's place in the LRU order: it reads metadata.
func (c *Cache) Lookup(vb uint16, key []byte, deleted bool) (Item, bool) {
	k, ok := c.locate(vb, key)
	if !ok {
		return Item{}, false
	}
	it := k.live
	if it == nil && deleted {
		it = k.tomb
	}
	var out Item
	if it != nil {
		out = it.export()
	}
	c.unlock(k.s, k.freed)
	return out, it != nil
}

// Modify reads and writes the item under key in vbucket vb in one step:
// f is given the live item (nil if none or, if deleted is set, the key's
// deleted document when it has no live item) and returns what to store in
// its place, or nil and an error to change nothing. f runs with the key's
// lock held: it must be quick and must not use the Cache. The stored item
// gets a new seqno, revision and CAS (w.CAS is not checked: f checks
// cur.CAS); w.KeepExpiry keeps the present item's expiry, and w.Deleted
// stores a deleted document. It returns the change, f's error, or
// ErrTooLarge, ErrNoMemory, ErrNoTombstones, ErrNoVBucket.
func (c *Cache) Modify(vb uint16, key []byte, deleted bool, f func(cur *Item) (*Write, error)) (Mutation, error) {
	return c.update(vb, key, func(s *shard, old, tomb *item, now int64) (outcome, error) {
		cur := old
		if cur == nil && deleted {
			cur = tomb
		}
		var w *Write
		var err error
		if cur == nil {
			w, err = f(nil)
		} else {
			x := cur.export()
			w, err = f(&x)
		}
		if w == nil {
			return outcome{}, err
		}
		switch {
		case w.Deleted && c.tombstoneTTL <= 0:
			return outcome{}, ErrNoTombstones
		case !c.fits(key, len(w.Value)):
			s.stats.storeTooLarge++
			return outcome{}, ErrTooLarge
		}
		it := newItem(key, w.Value)
		it.flags, it.datatype = w.Flags, w.Datatype
		switch {
		case w.Deleted:
			it.bits |= deletedBit
		case w.KeepExpiry && cur != nil && !cur.deleted():
			it.expSec = cur.expSec
		default:
			it.setExpires(deadline(w.Expiry, now))
		}
		return outcome{store: it, patch: w.Patch}, nil
	})
}

// Meta is an item's metadata as a replicator copies it: its CAS,
// revision, flags, expiry and datatype, and whether it is a deletion.
type Meta struct {
	CAS      uint64
	Rev      uint64
	Flags    uint32
	Expires  time.Time // the zero Time: never
	Datatype uint8
	Deleted  bool
}

// MetaOptions change what StoreMeta does.
type MetaOptions struct {
	// Add refuses a key that has a live item (ErrExists).
	Add bool
	// Force skips conflict resolution: the write wins whatever is there.
	Force bool
	// RegenerateCAS gives the item a new CAS instead of Meta.CAS (with
	// Force only, as Couchbase's).
	RegenerateCAS bool
	// CAS, if not 0, must be the live item's (ErrNotFound if there is
	// none, ErrExists if it differs).
	CAS uint64
}

// StoreMeta stores value under key in vbucket vb with the caller's
// metadata, as a replicator does (Couchbase's SET_WITH_META, ADD_WITH_META
// and, with m.Deleted, DEL_WITH_META): the item keeps m's CAS and revision
// instead of new ones, and gets the vbucket's next seqno. Unless
// opt.Force, it first resolves the conflict with the key's present item or
// tombstone by revision, as Couchbase's "revision seqno" buckets do: the
// incoming write wins if its (revision, CAS, expiry, flags) are greater
// (a deletion compares (revision, CAS) only); on a tie the write wins only
// if it brings extended attributes the present item lacks. A write that
// loses fails with ErrExists. A deletion leaves a deleted document holding
// value (extended attributes, or nothing) when tombstones are kept, and
// removes the item otherwise. Errors: ErrExists, ErrNotFound,
// ErrInvalidCAS, ErrTooLarge, ErrNoMemory, ErrNoVBucket.
func (c *Cache) StoreMeta(vb uint16, key []byte, value []byte, m Meta, opt MetaOptions) (Mutation, error) {
	if !opt.RegenerateCAS && (m.CAS == 0 || m.CAS == ^uint64(0)) {
		return Mutation{}, ErrInvalidCAS
	}
	var exp int64
	if !m.Expires.IsZero() {
		exp = m.Expires.UnixNano()
	}
	return c.update(vb, key, func(s *shard, old, tomb *item, now int64) (outcome, error) {
		switch {
		case opt.CAS != 0 && old == nil:
			return outcome{}, ErrNotFound
		case opt.CAS != 0 && old.cas != opt.CAS:
			return outcome{}, ErrExists
		case opt.Add && old != nil:
			return outcome{}, ErrExists
		case !c.fits(key, len(value)):
			s.stats.storeTooLarge++
			return outcome{}, ErrTooLarge
		}
		cur := old
		if cur == nil {
			cur = tomb
		}
		if cur != nil && !opt.Force && !wins(cur, &m, exp) {
			return outcome{}, ErrExists
		}
		if m.Deleted && c.tombstoneTTL <= 0 {
			return outcome{remove: true}, nil
		}
		it := newItem(key, value)
		it.flags, it.datatype = m.Flags, m.Datatype
		it.setExpires(exp)
		it.cas = m.CAS
		if m.Deleted {
			it.bits |= deletedBit
		}
		return outcome{store: it, rev: max(m.Rev, 1), keepCAS: !opt.RegenerateCAS}, nil
	})
}

// datatypeXattr is the protocol's datatype bit for a value that starts
// with extended attributes.
const datatypeXattr = 0x04

// wins resolves a conflict between the present item cur and an incoming
// write with metadata m (expiry exp, unix nanos), by revision first (see
// StoreMeta).
func wins(cur *item, m *Meta, exp int64) bool {
	rev, cas := cur.rev(), cur.cas
	switch {
	case m.Rev != rev:
		return m.Rev > rev
	case m.CAS != cas:
		return m.CAS > cas
	case m.Deleted:
		return false
	case expSeconds(exp) != cur.expSec:
		return expSeconds(exp) > cur.expSec
	case m.Flags != cur.flags:
		return m.Flags > cur.flags
	}
	return m.Datatype&datatypeXattr != 0 && cur.datatype&datatypeXattr == 0
}

// RandomKey returns a key picked at random among the live items of the
// active vbuckets, with its item, and false if there is none. With
// Config.Collections only keys of collection cid are picked (and the key
// returned carries its collection id); without, cid must be 0. Keys are
// not equally likely: a random shard and a random place in its table are
// chosen, and the first item from there is taken, as Couchbase's random
// key is.
func (c *Cache) RandomKey(cid uint32) (key []byte, it Item, ok bool) {
	if !c.collections && cid != 0 {
		return nil, Item{}, false
	}
	var prefix [5]byte
	p := CollectionKey(prefix[:0], cid, nil)
	now := c.now()
	start := rand.IntN(len(c.shards))
	for i := range c.shards {
		s := &c.shards[(start+i)%len(c.shards)]
		s.mu.Lock()
		n := len(s.buckets)
		at := rand.IntN(n)
		for j := range n {
			for x := s.buckets[(at+j)%n]; x != nil; x = x.hnext {
				if x.deleted() || x.expired(now) || c.State(x.vbucket()) != Active {
					continue
				}
				k := x.key()
				if c.collections && (len(k) < len(p) || string(k[:len(p)]) != string(p)) {
					continue
				}
				key, it = append([]byte(nil), k...), x.export()
				s.mu.Unlock()
				return key, it, true
			}
		}
		s.mu.Unlock()
	}
	return nil, Item{}, false
}
