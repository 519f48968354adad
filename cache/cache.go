// Package cache is an in-memory key-value store with memcached's semantics
// and Couchbase's ordering: a memory limit with LRU eviction (or refusal),
// an item size limit, expiry times as memcached reads them, a CAS value
// unique to every mutation, append/prepend, and incr/decr on decimal
// values; every key lives in a vbucket, whose changes are numbered in the
// order they are applied (sequence numbers) and can be followed with a
// Cursor. It knows nothing of any wire protocol; the gocache package
// serves it over memcached's binary protocol, and other programs can use
// it in-process.
//
// A Cache is safe for concurrent use. Keys are spread over shards, each with
// its own lock, map and LRU list; the memory limit is global. Every change
// goes through one primitive (update) that runs the operation's mutation
// under the key's shard lock, numbers the change in its vbucket under that
// lock, and accounts for memory once.
//
// Values handed out by Get are never modified afterwards (every mutation
// stores a new value), so callers may read them without copying, but must
// not modify them.
package cache

import (
	"cmp"
	"errors"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the store's operations.
var (
	ErrNotFound   = errors.New("cache: key not found")
	ErrExists     = errors.New("cache: key exists") // or the CAS does not match
	ErrNotStored  = errors.New("cache: not stored") // append or prepend to a missing key
	ErrTooLarge   = errors.New("cache: item too large")
	ErrNoMemory   = errors.New("cache: out of memory") // memory full and eviction off
	ErrNonNumeric = errors.New("cache: incr/decr on a non-numeric value")
)

// Defaults, as memcached's.
const (
	DefaultMaxBytes    = 64 << 20
	DefaultMaxItemSize = 1 << 20
)

// ItemOverhead is what an item costs beyond its key and value, in bytes, as
// the memory limit counts it: the 80-byte item record, its hash bucket and
// the allocator's rounding. Measured on amd64 with the 72-byte record: 1M
// items of 15-byte keys and 100-byte values held 214 bytes each
// (scripts/compare-memory.sh). The record's last-access time (8 bytes
// with padding) moves such an item to the next size class: its heap cost
// went from 200 to 216 bytes, so 16 more.
const ItemOverhead = 115

// itemSizeOverhead is the per-item overhead that memcached counts against
// its item size limit (-I): header, CAS and terminators.
const itemSizeOverhead = 59

// Config configures a Cache. The zero value is memcached's defaults.
type Config struct {
	// MaxBytes is the memory limit for items (memcached's -m); 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxItemSize is the largest item, key and value and a small overhead
	// (memcached's -I); 0 means DefaultMaxItemSize.
	MaxItemSize int
	// NoEvict refuses stores with ErrNoMemory when memory is full instead
	// of evicting least recently used items (memcached's -M).
	NoEvict bool
	// Shards is the number of lock stripes, rounded up to a power of two;
	// 0 means a default from GOMAXPROCS.
	Shards int
	// Clock tells the time; nil means the system clock. Tests inject one.
	Clock Clock
	// SweepInterval is how often a background sweeper removes expired
	// items, locking one shard at a time; 0 means every second, negative
	// disables it (expired items are still removed when touched).
	SweepInterval time.Duration
	// VBuckets is the number of vbuckets, each with its own sequence of
	// changes; 0 means DefaultVBuckets, and more than MaxVBuckets means
	// MaxVBuckets.
	VBuckets int
	// ChangeLog is how many recent changes a vbucket keeps while a Cursor
	// follows it; 0 means DefaultChangeLog. A log whose slowest cursor
	// would lose changes doubles, up to 16 times ChangeLog, while the
	// logs of the whole cache have grown by less than 64 times ChangeLog
	// entries (each about 48 bytes, and the value it keeps).
	ChangeLog int
	// TombstoneTTL is how long a deleted or expired key leaves a tombstone
	// (its key, seqno, CAS and revision), which counts against MaxBytes
	// and may be evicted; 0 leaves none, as memcached.
	TombstoneTTL time.Duration
	// MaxTombstones bounds the tombstones kept, the oldest going first
	// past it (the bound is kept per shard, so it holds within a shard's
	// share); 0 means no bound but memory.
	MaxTombstones int
	// TombstoneValue, if set, gives what the tombstone of a deleted or
	// expired item whose datatype has the xattr bit keeps of its value
	// (Couchbase keeps a document's system xattrs): nil keeps nothing.
	// It runs under the key's lock.
	TombstoneValue func(value []byte) []byte
	// Collections makes every key carry its collection id first, as
	// Couchbase's protocol encodes it (see CollectionKey): the cache then
	// keeps each collection's seqnos and can drop a collection.
	Collections bool
	// LRU is how items are ordered for eviction: Flat (the zero value:
	// every fetch moves an item to the head, memcached's no_modern) or
	// Segmented (memcached's HOT, WARM, COLD and TEMP lists: see lru.go).
	LRU LRUMode
	// TempTTL, with a Segmented LRU, puts items whose time to live is at
	// most TempTTL in the TEMP list, never evicted (memcached's
	// temporary_ttl); 0 means no TEMP list.
	TempTTL time.Duration
	// HotLRUPct and WarmLRUPct are the shares of a shard's bytes HOT and
	// WARM keep before their tails go to COLD; 0 means memcached's 20 and
	// 40.
	HotLRUPct, WarmLRUPct int
	// HotMaxFactor and WarmMaxFactor: HOT's and WARM's tails go to COLD
	// once older than these times the age of COLD's; 0 means memcached's
	// 0.2 and 2.0.
	HotMaxFactor, WarmMaxFactor float64
	// Slabs, if not nil, counts memory as memcached's slab allocator
	// does (slabs.go): MaxBytes in pages of slab classes, each item
	// charged its class's chunk, and eviction within the class of the
	// item stored. Tombstones and live system events take no chunk:
	// tombstones keep at most an eighth of MaxBytes, system events
	// SystemRoom. nil counts each item's own size (footprint).
	Slabs *SlabConfig
}

// tombShare: with Config.Slabs, tombstones keep at most 1/tombShare of
// MaxBytes.
const tombShare = 8

// Clock is the source of time for expiry.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Cache is the store. Create it with New and stop its sweeper with Close.
type Cache struct {
	shards   []shard
	mask     uint64
	seed     maphash.Seed
	clock    Clock
	maxBytes int64
	maxItem  int
	slabs    *slabs // nil without Config.Slabs
	noEvict  bool
	// segmented: memcached's segmented LRU (lru.go).
	segmented bool
	// With the system clock, the sweeper keeps coarse to clockTick while
	// operations use it (ticking), and parks it when they stop.
	useCoarse bool
	coarse    atomic.Int64 // unix nanos
	ticking   atomic.Bool
	used      atomic.Bool // an operation read coarse since the last tick
	wake      chan struct{}
	bytes     atomic.Int64    // memory in use, as the limit counts it
	cas       atomic.Uint64   // last CAS handed out
	flushAt   atomic.Int64    // unix nanos of a pending delayed flush, 0 if none
	evictAt   atomic.Uint64   // round-robin cursor for cross-shard reclaiming (NoEvict)
	tails     []atomic.Uint64 // each shard's LRU tail age, side by side for a quick scan (evict.go)
	groups    []atomic.Uint64 // the oldest of each group of tailGroup tails
	deadAge   int64           // how long a sweep leaves dead items (dead.go): a sweep interval

	vbs          []vbucket
	logSize      int
	logBudget    atomic.Int64 // entries change logs may still grow by (changes.go)
	tombstoneTTL time.Duration
	tombLimit    int   // per shard; 0 none
	tombBytes    int64 // with slabs, the tombstones' bytes per shard (tombShare of the limit); 0 none
	tombValue    func([]byte) []byte
	collections  bool
	purges       []atomic.Uint64 // each vbucket's purge seqno (purge.go)

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// New returns a Cache configured by cfg and starts its sweeper.
func New(cfg Config) *Cache {
	n := cfg.Shards
	if n <= 0 {
		n = 16 * runtime.GOMAXPROCS(0)
	}
	n = 1 << bits.Len(uint(n-1))
	c := &Cache{
		shards:   make([]shard, n),
		mask:     uint64(n - 1),
		seed:     maphash.MakeSeed(),
		clock:    cfg.Clock,
		maxBytes: cfg.MaxBytes,
		maxItem:  cfg.MaxItemSize,
		noEvict:  cfg.NoEvict,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),

		vbs:          newVBuckets(min(cmp.Or(max(cfg.VBuckets, 0), DefaultVBuckets), MaxVBuckets)),
		logSize:      cmp.Or(max(cfg.ChangeLog, 0), DefaultChangeLog),
		tombstoneTTL: cfg.TombstoneTTL,
		collections:  cfg.Collections,
		tombValue:    cfg.TombstoneValue,
	}
	c.logBudget.Store(int64(logBudget * c.logSize))
	interval := cfg.SweepInterval
	if interval == 0 {
		interval = time.Second
	}
	if c.clock == nil {
		c.clock = systemClock{}
		// Reading the time costs as much as a lookup; a clock the sweeper
		// keeps to clockTick is precise enough for expiry (memcached
		// keeps one to the second).
		c.useCoarse = interval > 0
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxItem <= 0 {
		c.maxItem = DefaultMaxItemSize
	}
	c.purges = make([]atomic.Uint64, len(c.vbs))
	lru := newLRUConfig(&cfg)
	c.segmented = lru.segmented
	if cfg.MaxTombstones > 0 {
		c.tombLimit = max(1, (cfg.MaxTombstones+n-1)/n)
	}
	c.deadAge = int64(interval)
	if interval <= 0 {
		c.deadAge = int64(time.Second)
	}
	classes := 1
	if cfg.Slabs != nil {
		c.slabs = newSlabs(cfg.Slabs, c.maxBytes, c.maxItem)
		c.slabs.collections = c.collections
		// Tombstones take no slab chunk (memcached has none): their
		// own share of the limit bounds them.
		c.tombBytes = max(1, c.maxBytes/tombShare/int64(n))
		classes = len(c.slabs.classes)
	}
	for i := range c.shards {
		c.shards[i].init(&c.cas, lru, c.slabs, classes)
	}
	c.initTails(classes)
	if interval > 0 {
		go c.sweeper(interval)
	} else {
		close(c.done)
	}
	return c
}

// Close stops the sweeper. The Cache remains usable.
func (c *Cache) Close() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

// MaxBytes returns the memory limit.
func (c *Cache) MaxBytes() int64 { return c.maxBytes }

// MaxItemSize returns the item size limit.
func (c *Cache) MaxItemSize() int { return c.maxItem }

// shardFor returns the shard that holds key in vbucket vb and the key's
// hash within it: the low bits of one 64-bit hash pick the shard, the
// high bits the bucket. The vbucket is part of the hash, so that a key
// kept in every vbucket (a system event's) is as many keys spread over
// the shards, not one hash chain as long as there are vbuckets.
func (c *Cache) shardFor(vb uint16, key []byte) (*shard, uint32) {
	h := maphash.Bytes(c.seed, key) ^ uint64(vb)*0x9e3779b97f4a7c15 // odd: distinct vbuckets, distinct low bits
	return &c.shards[h&c.mask], uint32(h >> 32)
}

// now returns the current time in unix nanoseconds, first carrying out a
// delayed flush whose time has come.
func (c *Cache) now() int64 {
	var now int64
	switch {
	case !c.useCoarse:
		now = c.clock.Now().UnixNano()
	case c.ticking.Load():
		if !c.used.Load() {
			c.used.Store(true)
		}
		now = c.coarse.Load()
	default:
		now = time.Now().UnixNano()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	if at := c.flushAt.Load(); at != 0 && now >= at && c.flushAt.CompareAndSwap(at, 0) {
		c.clear(now)
	}
	return now
}

// nextCAS returns a new CAS value, unique for the life of the Cache.
func (c *Cache) nextCAS() uint64 { return c.cas.Add(1) }

// relativeLimit is memcached's limit for relative expiry times: larger
// values are absolute unix times.
const relativeLimit = 60 * 60 * 24 * 30

// Deadline converts an expiry as memcached reads it into unix nanoseconds:
// 0 never expires (0); up to 30 days is relative to now; larger values are
// an absolute unix time. A deadline at or before now means "already
// expired".
func Deadline(exp uint32, now time.Time) int64 { return deadline(exp, now.UnixNano()) }

// deadline is Deadline with now in unix nanoseconds.
func deadline(exp uint32, now int64) int64 {
	switch {
	case exp == 0:
		return 0
	case exp <= relativeLimit:
		return now + int64(exp)*int64(time.Second)
	default:
		return int64(exp) * int64(time.Second)
	}
}

// fits reports whether an item of this key and value is within the item
// size limit, which counts the key as memcached does: without the
// collection id it carries with Config.Collections.
func (c *Cache) fits(key []byte, valueLen int) bool {
	n := len(key)
	if c.collections {
		_, n = collectionOf(key)
		n = len(key) - n
	}
	return n+valueLen+itemSizeOverhead <= c.maxItem
}

// Flush invalidates every item now (delay 0) or, as memcached's flush_all
// with a delay, one second before delay seconds from now (memcached flushes
// items last used at or before that time less one second, so a delay of 1
// flushes at once): every item present at that time is then removed, but
// in replica and pending vbuckets, which only their producer changes.
// Live system events stay, with their seqnos (sysevent.go). delay follows
// the expiry rules (over 30 days is an absolute time).
func (c *Cache) Flush(delay uint32) {
	if delay == 0 {
		c.flushAt.Store(0)
		c.clear(c.now())
		return
	}
	now := c.now()
	at := deadline(delay, now) - int64(time.Second)
	if at <= now {
		c.flushAt.Store(0)
		c.clear(now)
		return
	}
	c.flushAt.Store(at)
}

// clear removes every item and tombstone at now, but those of replica
// and pending vbuckets, which only their producer changes, and live
// system events, whose collections a flush keeps (sysevent.go). A flush
// is not a numbered change: cursors learn that they lost changes. Without
// replica or pending vbuckets, the items stay in memory, dead, as
// memcached's do, for its statistics (dead.go).
func (c *Cache) clear(now int64) {
	if c.anyFed() {
		c.removeWhere(func(it *item) bool { return !c.vbs[it.vbucket()].fed() && !it.pinned() })
	} else {
		for i := range c.shards {
			s := &c.shards[i]
			s.mu.Lock()
			c.unlock(s, s.flushToDead(now))
		}
	}
	c.purgeAll()
	c.loseChanges()
}

// clockTick is the precision of the coarse clock: far finer than
// memcached's one second, and cheap while the cache is busy.
const clockTick = 10 * time.Millisecond

// idleTicks is how many ticks without an operation park the coarse clock.
const idleTicks = 100

// sweeper removes expired items every interval, one shard at a time so
// that no lock is held for long, and keeps the coarse clock while the cache
// is in use. An idle cache costs one wakeup per interval.
func (c *Cache) sweeper(interval time.Duration) {
	defer close(c.done)
	sweep := time.NewTicker(interval)
	defer sweep.Stop()
	clock := time.NewTicker(clockTick)
	clock.Stop()
	defer clock.Stop()
	var tick <-chan time.Time // nil while parked
	quiet := 0
	for {
		select {
		case <-c.stop:
			return
		case <-sweep.C:
			c.SweepNow()
		case <-c.wake:
			if tick == nil {
				c.coarse.Store(time.Now().UnixNano())
				c.ticking.Store(true)
				clock.Reset(clockTick)
				tick, quiet = clock.C, 0
			}
		case <-tick:
			c.coarse.Store(time.Now().UnixNano())
			if c.used.Load() {
				c.used.Store(false)
				quiet = 0
			} else if quiet++; quiet >= idleTicks {
				c.ticking.Store(false)
				clock.Stop()
				tick = nil
			}
		}
	}
}

// SweepNow removes every expired item, locking one shard at a time; the
// sweeper calls it every SweepInterval.
func (c *Cache) SweepNow() {
	// The time is read directly: a sweep must not wake the coarse clock.
	now := c.clock.Now().UnixNano()
	if at := c.flushAt.Load(); at != 0 && now >= at && c.flushAt.CompareAndSwap(at, 0) {
		c.clear(now)
	}
	for i := range c.shards {
		c.sweepShard(i, now)
	}
	if c.slabs != nil {
		c.slabs.rebalance()
	}
}
