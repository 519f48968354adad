package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newTest(t *testing.T, cfg Config) (*Cache, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	if cfg.Clock == nil {
		cfg.Clock = clk
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = -1
	}
	c := New(cfg)
	t.Cleanup(c.Close)
	return c, clk
}

func k(s string) []byte { return []byte(s) }

func mustGet(t *testing.T, c *Cache, key, want string) Item {
	t.Helper()
	it, ok := c.Get(0, k(key))
	if !ok || string(it.Value) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, it.Value, ok, want)
	}
	return it
}

func mustMiss(t *testing.T, c *Cache, key string) {
	t.Helper()
	if it, ok := c.Get(0, k(key)); ok {
		t.Fatalf("Get(%q) = %q, want a miss", key, it.Value)
	}
}

func TestStoreModes(t *testing.T) {
	c, _ := newTest(t, Config{})
	steps := []struct {
		mode  Mode
		key   string
		value string
		want  error
		after string // value expected afterwards; "-" for a miss
	}{
		{Replace, "a", "x", ErrNotFound, "-"},
		{Append, "a", "x", ErrNotStored, "-"},
		{Prepend, "a", "x", ErrNotStored, "-"},
		{Add, "a", "1", nil, "1"},
		{Add, "a", "2", ErrExists, "1"},
		{Set, "a", "3", nil, "3"},
		{Replace, "a", "4", nil, "4"},
		{Append, "a", "5", nil, "45"},
		{Prepend, "a", "6", nil, "645"},
		{Set, "", "empty key", nil, "empty key"},
	}
	for i, s := range steps {
		_, err := c.Store(0, s.mode, k(s.key), Write{Value: k(s.value), Flags: 7})
		if err != s.want {
			t.Fatalf("step %d: Store = %v, want %v", i, err, s.want)
		}
		if s.after == "-" {
			mustMiss(t, c, s.key)
		} else {
			mustGet(t, c, s.key, s.after)
		}
	}
	if it := mustGet(t, c, "a", "645"); it.Flags != 7 {
		t.Fatalf("flags %d", it.Flags)
	}
	// Append keeps the flags and expiry of the present item.
	c.Store(0, Set, k("f"), Write{Value: k("v"), Flags: 42, Expiry: 100})
	before := mustGet(t, c, "f", "v")
	c.Store(0, Append, k("f"), Write{Value: k("w"), Flags: 9, Expiry: 5})
	after := mustGet(t, c, "f", "vw")
	if after.Flags != 42 || !after.Expires.Equal(before.Expires) {
		t.Fatalf("append changed flags or expiry: %+v", after)
	}
	if _, err := c.Delete(0, k("a"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(0, k("a"), 0); err != ErrNotFound {
		t.Fatalf("second Delete = %v", err)
	}
}

func TestCAS(t *testing.T) {
	c, _ := newTest(t, Config{})
	m1, _ := c.Store(0, Set, k("a"), Write{Value: k("1")})
	m2, _ := c.Store(0, Set, k("b"), Write{Value: k("1")})
	cas1, cas2 := m1.CAS, m2.CAS
	if cas1 == 0 || cas2 <= cas1 {
		t.Fatalf("CAS values %d, %d", cas1, cas2)
	}
	if it := mustGet(t, c, "a", "1"); it.CAS != cas1 {
		t.Fatalf("Get CAS %d, want %d", it.CAS, cas1)
	}
	bad := cas1 + 1000
	checks := []struct {
		name string
		op   func(cas uint64) error
	}{
		{"set", func(cas uint64) error { _, err := c.Store(0, Set, k("a"), Write{Value: k("s"), CAS: cas}); return err }},
		{"replace", func(cas uint64) error {
			_, err := c.Store(0, Replace, k("a"), Write{Value: k("r"), CAS: cas})
			return err
		}},
		{"append", func(cas uint64) error {
			_, err := c.Store(0, Append, k("a"), Write{Value: k("+"), CAS: cas})
			return err
		}},
		{"prepend", func(cas uint64) error {
			_, err := c.Store(0, Prepend, k("a"), Write{Value: k("-"), CAS: cas})
			return err
		}},
		{"touch", func(cas uint64) error { _, err := c.Touch(0, k("a"), 10, cas); return err }},
		{"incr", func(cas uint64) error { _, _, err := c.Incr(0, k("a"), 1, 0, 0, cas); return err }},
		{"decr", func(cas uint64) error { _, _, err := c.Decr(0, k("a"), 1, 0, 0, cas); return err }},
		{"delete", func(cas uint64) error { _, err := c.Delete(0, k("a"), cas); return err }},
	}
	for _, ch := range checks {
		c.Store(0, Set, k("a"), Write{Value: k("10")})
		cur := mustGet(t, c, "a", "10").CAS
		if err := ch.op(bad); err != ErrExists {
			t.Errorf("%s with a wrong CAS = %v, want ErrExists", ch.name, err)
		}
		if err := ch.op(cur); err != nil {
			t.Errorf("%s with the right CAS = %v", ch.name, err)
		}
	}
	// Every mutation gets a new CAS.
	c.Store(0, Set, k("n"), Write{Value: k("1")})
	seen := map[uint64]bool{mustGet(t, c, "n", "1").CAS: true}
	for i := range 5 {
		_, m, err := c.Incr(0, k("n"), 1, 0, 0, 0)
		if err != nil || seen[m.CAS] {
			t.Fatalf("incr %d: CAS %d repeated or %v", i, m.CAS, err)
		}
		seen[m.CAS] = true
	}
	// A CAS on a missing key is not found.
	if _, err := c.Store(0, Set, k("missing"), Write{Value: k("x"), CAS: 5}); err != ErrNotFound {
		t.Fatalf("Set with CAS on a missing key = %v", err)
	}
	st := c.Stats()
	if st.CasBadval == 0 || st.CasHits == 0 || st.CasMisses != 1 {
		t.Fatalf("cas stats %+v", st)
	}

	// memcached's binary protocol stores with a CAS alike for Set, Add and
	// Replace: Add with the present item's CAS replaces it.
	c.Store(0, Set, k("a"), Write{Value: k("10")})
	cur := mustGet(t, c, "a", "10").CAS
	if _, err := c.Store(0, Add, k("a"), Write{Value: k("added"), Flags: 7, CAS: cur}); err != nil {
		t.Fatalf("Add with the right CAS = %v", err)
	}
	if it := mustGet(t, c, "a", "added"); it.Flags != 7 {
		t.Fatalf("Add with CAS kept flags %d", it.Flags)
	}
	if _, err := c.Store(0, Add, k("a"), Write{Value: k("x"), CAS: bad}); err != ErrExists {
		t.Fatalf("Add with a wrong CAS = %v", err)
	}
	if _, err := c.Store(0, Add, k("missing"), Write{Value: k("x"), CAS: 5}); err != ErrNotFound {
		t.Fatalf("Add with a CAS on a missing key = %v", err)
	}
	// Append and Prepend to a missing key are not stored, CAS or not.
	for _, mode := range []Mode{Append, Prepend} {
		if _, err := c.Store(0, mode, k("missing"), Write{Value: k("x"), CAS: 5}); err != ErrNotStored {
			t.Fatalf("mode %d with a CAS on a missing key = %v", mode, err)
		}
	}
}

// The counter cases are memcached 1.6's answers, observed.
func TestIncrDecr(t *testing.T) {
	c, _ := newTest(t, Config{})
	for _, tc := range []struct {
		stored string
		incr   bool
		delta  uint64
		want   uint64
		after  string
		err    error
	}{
		{"10", false, 1, 9, "9 ", nil},
		{" 5", true, 1, 6, "6 ", nil},
		{"5abc", true, 1, 0, "5abc", ErrNonNumeric},
		{"-1", true, 1, 0, "-1", ErrNonNumeric},
		{"-0", true, 1, 1, "1 ", nil},
		{"", true, 1, 0, "", ErrNonNumeric},
		{"18446744073709551615", true, 2, 1, "1" + strings.Repeat(" ", 19), nil},
		{"18446744073709551616", true, 1, 0, "18446744073709551616", ErrNonNumeric},
		{"+7", true, 1, 8, "8 ", nil},
		{"3\r\n", true, 1, 4, "4  ", nil},
		{"12 34", true, 1, 13, "13   ", nil},
		{"00012", true, 1, 13, "13   ", nil},
		{"99", true, 1, 100, "100", nil},
		{"7", false, 100, 0, "0", nil},
		{"abc", false, 1, 0, "abc", ErrNonNumeric},
	} {
		c.Store(0, Set, k("n"), Write{Value: k(tc.stored), Flags: 3})
		var got uint64
		var err error
		if tc.incr {
			got, _, err = c.Incr(0, k("n"), tc.delta, 0, 0, 0)
		} else {
			got, _, err = c.Decr(0, k("n"), tc.delta, 0, 0, 0)
		}
		if err != tc.err || got != tc.want {
			t.Errorf("%q incr=%v %d: %d, %v; want %d, %v", tc.stored, tc.incr, tc.delta, got, err, tc.want, tc.err)
		}
		if it := mustGet(t, c, "n", tc.after); it.Flags != 3 {
			t.Errorf("%q: flags %d after delta", tc.stored, it.Flags)
		}
	}
	// Missing keys: created with the initial value unless NoCreate.
	if _, _, err := c.Incr(0, k("new"), 1, 5, NoCreate, 0); err != ErrNotFound {
		t.Fatalf("NoCreate: %v", err)
	}
	mustMiss(t, c, "new")
	if v, m, err := c.Decr(0, k("new"), 1, 5, 0, 0); v != 5 || m.CAS == 0 || err != nil {
		t.Fatalf("create: %d %+v %v", v, m, err)
	}
	if it := mustGet(t, c, "new", "5"); it.Flags != 0 {
		t.Fatalf("created with flags %d", it.Flags)
	}
}

// A relative expiry counts from the second the store was made in, as
// memcached's clock does: stored half a second into a second with an
// expiry of 1, an item expires at the start of the next one; the expiry
// is kept to the second.
func TestExpirySeconds(t *testing.T) {
	c, clk := newTest(t, Config{})
	clk.Advance(500 * time.Millisecond)
	c.Store(0, Set, k("a"), Write{Value: k("v"), Expiry: 1})
	it := mustGet(t, c, "a", "v")
	if want := time.Unix(1_700_000_001, 0); !it.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", it.Expires, want)
	}
	clk.Advance(499 * time.Millisecond)
	mustGet(t, c, "a", "v")
	clk.Advance(time.Millisecond)
	mustMiss(t, c, "a")
}

func TestExpiry(t *testing.T) {
	c, clk := newTest(t, Config{})
	c.Store(0, Set, k("never"), Write{Value: k("v")})
	c.Store(0, Set, k("rel"), Write{Value: k("v"), Expiry: 10})
	c.Store(0, Set, k("30d"), Write{Value: k("v"), Expiry: relativeLimit})
	c.Store(0, Set, k("abs-past"), Write{Value: k("v"), Expiry: relativeLimit + 1}) // 1970: expired at once
	future := uint32(clk.Now().Add(time.Hour).Unix())
	c.Store(0, Set, k("abs"), Write{Value: k("v"), Expiry: future})
	mustMiss(t, c, "abs-past")
	mustGet(t, c, "rel", "v")

	clk.Advance(9 * time.Second)
	mustGet(t, c, "rel", "v")
	clk.Advance(time.Second)
	mustMiss(t, c, "rel")
	mustGet(t, c, "abs", "v")
	clk.Advance(time.Hour)
	mustMiss(t, c, "abs")
	mustGet(t, c, "30d", "v")
	clk.Advance(30 * 24 * time.Hour)
	mustMiss(t, c, "30d")
	mustGet(t, c, "never", "v")

	// Touch moves the expiry; an expiry in the past removes at once.
	c.Store(0, Set, k("t"), Write{Value: k("v"), Expiry: 5})
	if _, err := c.Touch(0, k("t"), 100, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * time.Second)
	mustGet(t, c, "t", "v")
	// As memcached, the touch into the past succeeds and returns the item.
	if it, err := c.Touch(0, k("t"), relativeLimit+1, 0); err != nil || string(it.Value) != "v" {
		t.Fatalf("touch into the past: %q, %v", it.Value, err)
	}
	mustMiss(t, c, "t")
	if _, err := c.Touch(0, k("t"), 1, 0); err != ErrNotFound {
		t.Fatalf("touch of a missing key: %v", err)
	}

	// Counters created with an expiry expire.
	c.Incr(0, k("ctr"), 1, 1, 2, 0)
	clk.Advance(2 * time.Second)
	mustMiss(t, c, "ctr")

	// As memcached: a get that finds an item expired counts get_expired
	// (abs-past, stored already expired, rel, abs, 30d, ctr); a store
	// over one reclaims its memory.
	st := c.Stats()
	if st.GetExpired != 5 || st.Reclaimed != 0 || st.CurrItems != 1 {
		t.Fatalf("stats after expiry: %+v", st)
	}
	c.Store(0, Set, k("e"), Write{Value: k("v"), Expiry: 1})
	clk.Advance(time.Second)
	c.Store(0, Set, k("e"), Write{Value: k("w")})
	if st := c.Stats(); st.GetExpired != 5 || st.Reclaimed != 1 || st.ExpiredUnfetched != 1 {
		t.Fatalf("stats after a store over an expired item: %+v", st)
	}
}

func TestSweeperAndExpiredUnfetched(t *testing.T) {
	clk := newFakeClock()
	c := New(Config{Clock: clk, SweepInterval: 10 * time.Millisecond, Shards: 4})
	defer c.Close()
	for i := range 100 {
		c.Store(0, Set, fmt.Appendf(nil, "k%d", i), Write{Value: k("v"), Expiry: 1})
	}
	c.Get(0, k("k1"))
	clk.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for c.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := c.Len(); n != 0 {
		t.Fatalf("%d items left after the sweeper ran", n)
	}
	st := c.Stats()
	if st.ExpiredUnfetched != 99 || st.Reclaimed != 100 || st.Bytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFlush(t *testing.T) {
	c, clk := newTest(t, Config{})
	c.Store(0, Set, k("a"), Write{Value: k("1")})
	c.Flush(0)
	mustMiss(t, c, "a")
	if st := c.Stats(); st.Bytes != 0 || st.CurrItems != 0 {
		t.Fatalf("after flush: %+v", st)
	}

	// Delayed: everything present at the deadline goes, including items
	// stored after the flush command.
	// As memcached, the flush comes one second before the delay is up.
	c.Store(0, Set, k("old"), Write{Value: k("1")})
	c.Flush(10)
	clk.Advance(5 * time.Second)
	c.Store(0, Set, k("mid"), Write{Value: k("2")})
	clk.Advance(4*time.Second - time.Millisecond)
	mustGet(t, c, "old", "1")
	clk.Advance(time.Millisecond)
	mustMiss(t, c, "old")
	mustMiss(t, c, "mid")
	c.Store(0, Set, k("new"), Write{Value: k("3")})
	clk.Advance(time.Hour)
	mustGet(t, c, "new", "3")
	// A delay of one second flushes at once.
	c.Flush(1)
	mustMiss(t, c, "new")
}

func TestEvictionLRU(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 1000)
	per := int64(len(value)) + 4 + ItemOverhead
	c, _ := newTest(t, Config{MaxBytes: 10 * per, Shards: 1})
	for i := range 10 {
		if _, err := c.Store(0, Set, fmt.Appendf(nil, "k%03d", i), Write{Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	c.Get(0, k("k000")) // k000 becomes the most recently used; k001 the least
	c.Store(0, Set, k("k010"), Write{Value: value})
	mustMiss(t, c, "k001")
	if _, ok := c.Get(0, k("k000")); !ok {
		t.Fatal("recently used item evicted")
	}
	st := c.Stats()
	if st.Evictions != 1 || st.EvictedUnfetched != 1 || st.Bytes > 10*per || st.CurrItems != 10 {
		t.Fatalf("stats %+v", st)
	}
	// Memory stays within the limit over many stores, across shards.
	c2, _ := newTest(t, Config{MaxBytes: 50 * per, Shards: 8})
	for i := range 1000 {
		c2.Store(0, Set, fmt.Appendf(nil, "key:%d", i), Write{Value: value})
		if b := c2.Stats().Bytes; b > 50*per {
			t.Fatalf("store %d: %d bytes over a limit of %d", i, b, 50*per)
		}
	}
}

func TestNoEvict(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 1000)
	per := int64(len(value)) + 2 + ItemOverhead
	c, clk := newTest(t, Config{MaxBytes: 3 * per, NoEvict: true, Shards: 1})
	for _, key := range []string{"a", "b", "c"} {
		if _, err := c.Store(0, Set, k(key), Write{Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Store(0, Set, k("d"), Write{Value: value}); err != ErrNoMemory {
		t.Fatalf("store when full = %v, want ErrNoMemory", err)
	}
	mustGet(t, c, "a", string(value))
	// A failed Set removes the old value, as memcached does.
	if _, err := c.Store(0, Set, k("a"), Write{Value: append(value, "more"...)}); err != ErrNoMemory {
		t.Fatalf("growing store = %v", err)
	}
	mustMiss(t, c, "a")
	// Expired items are reclaimed even without eviction.
	c.Store(0, Set, k("a"), Write{Value: value, Expiry: 1})
	clk.Advance(2 * time.Second)
	if _, err := c.Store(0, Set, k("e"), Write{Value: value}); err != nil {
		t.Fatalf("store after expiry = %v", err)
	}
	if st := c.Stats(); st.StoreNoMemory != 2 || st.Evictions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestItemSizeLimit(t *testing.T) {
	c, _ := newTest(t, Config{MaxItemSize: 1000})
	ok := bytes.Repeat([]byte("v"), 1000-itemSizeOverhead-1)
	if _, err := c.Store(0, Set, k("k"), Write{Value: ok}); err != nil {
		t.Fatalf("item at the limit: %v", err)
	}
	// memcached fails to allocate the longer item and answers NOT_STORED.
	if _, err := c.Store(0, Append, k("k"), Write{Value: k("x")}); err != ErrNotStored {
		t.Fatalf("append past the limit = %v", err)
	}
	// A value over the limit by itself is too large, and the present one
	// stays.
	if _, err := c.Store(0, Prepend, k("k"), Write{Value: bytes.Repeat([]byte("p"), 1000)}); err != ErrTooLarge {
		t.Fatalf("prepend of a value over the limit = %v", err)
	}
	mustGet(t, c, "k", string(ok))
	if _, err := c.Store(0, Set, k("k"), Write{Value: append(ok, 'x')}); err != ErrTooLarge {
		t.Fatalf("item over the limit = %v", err)
	}
	mustMiss(t, c, "k") // a failed Set removes the old value
	if _, err := c.Store(0, Add, k("k2"), Write{Value: append(ok, 'x')}); err != ErrTooLarge {
		t.Fatal(err)
	}
	// As memcached's binary protocol, a value over the limit by itself is
	// refused before it counts as a store; an append that would grow the
	// item past the limit is not counted as too large.
	if st := c.Stats(); st.StoreTooLarge != 3 || st.CmdSet != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGetValueIsStable(t *testing.T) {
	c, _ := newTest(t, Config{})
	c.Store(0, Set, k("a"), Write{Value: k("first")})
	it := mustGet(t, c, "a", "first")
	c.Store(0, Append, k("a"), Write{Value: k("!")})
	c.Store(0, Set, k("a"), Write{Value: k("other")})
	if string(it.Value) != "first" || cap(it.Value) != len(it.Value) {
		t.Fatalf("value changed under the caller: %q", it.Value)
	}
}

// Many goroutines on few keys: under -race, and the memory counter must
// match the items present afterwards.
func TestConcurrent(t *testing.T) {
	c, _ := newTest(t, Config{MaxBytes: 200 * (ItemOverhead + 64), Shards: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 5000 {
				key := fmt.Appendf(nil, "k%d", rng.IntN(300))
				switch rng.IntN(7) {
				case 0:
					c.Store(0, Set, key, Write{Value: bytes.Repeat([]byte("x"), rng.IntN(50))})
				case 1:
					c.Store(0, Append, key, Write{Value: k("y")})
				case 2:
					c.Delete(0, key, 0)
				case 3:
					c.Incr(0, key, 1, 0, 0, 0)
				case 4:
					c.Touch(0, key, 100, 0)
				default:
					if it, ok := c.Get(0, key); ok {
						_ = bytes.Count(it.Value, k("x"))
					}
				}
			}
		}()
	}
	wg.Wait()
	var sum int64
	for i := range c.shards {
		s := &c.shards[i]
		s.each(func(it *item) { sum += it.footprint() })
		if s.bytes < 0 {
			t.Fatalf("shard %d bytes %d", i, s.bytes)
		}
	}
	if st := c.Stats(); st.Bytes != sum || sum > c.maxBytes {
		t.Fatalf("bytes counter %d, items hold %d, limit %d", st.Bytes, sum, c.maxBytes)
	}
}

func TestParseCounter(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "42": 42, " \t7": 7, "7 ": 7, "+1": 1, "-0": 0, "18446744073709551615": -1,
		"5\x00": 5, "5\x00x": 5, // C's string ends at the NUL
		"-18446744073709551615": 1, // strtoull negates; memcached accepts it
		"":                      -2, "\x005": -2, " ": -2, "-": -2, "1x": -2, "x1": -2, "-5": -2, "18446744073709551616": -2, "99999999999999999999": -2,
	} {
		v, ok := parseCounter([]byte(in))
		switch {
		case want == -2 && ok:
			t.Errorf("%q parsed as %d", in, v)
		case want != -2 && (!ok || v != uint64(want)):
			t.Errorf("%q = %d, %v; want %d", in, v, ok, uint64(want))
		}
	}
}

func TestDeadline(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	if Deadline(0, now) != 0 {
		t.Fatal("0 must never expire")
	}
	if got := Deadline(60, now); got != now.Add(time.Minute).UnixNano() {
		t.Fatalf("relative: %d", got)
	}
	if got := Deadline(1_800_000_000, now); got != time.Unix(1_800_000_000, 0).UnixNano() {
		t.Fatalf("absolute: %d", got)
	}
	if !errors.Is(ErrNoMemory, ErrNoMemory) {
		t.Fatal()
	}
}

func BenchmarkGetParallel(b *testing.B) { benchGetParallel(b, Config{}) }

// benchGetParallel reads 10000 items of 100 bytes from a cache of cfg.
func benchGetParallel(b *testing.B, cfg Config) {
	c := New(cfg)
	defer c.Close()
	for i := range 10000 {
		c.Store(0, Set, fmt.Appendf(nil, "key:%d", i), Write{Value: make([]byte, 100)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 0, 16)
		i := 0
		for pb.Next() {
			key = fmt.Appendf(key[:0], "key:%d", i%10000)
			c.Get(0, key)
			i++
		}
	})
}

func BenchmarkSetParallel(b *testing.B) { benchSetParallel(b, Config{}) }

// benchSetParallel stores 100-byte values under 10000 keys in a cache of
// cfg.
func benchSetParallel(b *testing.B, cfg Config) {
	c := New(cfg)
	defer c.Close()
	value := make([]byte, 100)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 0, 16)
		i := 0
		for pb.Next() {
			key = fmt.Appendf(key[:0], "key:%d", i%10000)
			c.Store(0, Set, key, Write{Value: value})
			i++
		}
	})
}

// The item record is 72 bytes: it is most of the per-item memory beyond
// the data, and with a 16-byte key and a 100-byte value an item fills
// Go's 192-byte size class.
func TestItemRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(item{}); n != 72 {
		t.Fatalf("item is %d bytes", n)
	}
}

// With the system clock, expiry works whether the coarse clock is ticking
// (the cache is in use) or parked (it was idle).
func TestSystemClockExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps")
	}
	c := New(Config{SweepInterval: time.Hour})
	defer c.Close()
	// Idle for over idleTicks ticks: the clock parks.
	time.Sleep(idleTicks*clockTick + 200*time.Millisecond)
	if c.ticking.Load() {
		t.Fatal("the clock ticks on an idle cache")
	}
	// An expiry is kept to the second, as memcached keeps it: an item
	// stored late in a second with an expiry of 1 lives less than one.
	// Store early in a second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	c.Store(0, Set, k("a"), Write{Value: k("v"), Expiry: 1}) // wakes the clock
	time.Sleep(50 * time.Millisecond)
	if !c.ticking.Load() {
		t.Fatal("the clock did not wake")
	}
	mustGet(t, c, "a", "v")
	time.Sleep(1100 * time.Millisecond)
	mustMiss(t, c, "a")
}

func TestDatatypeAndKeepExpiry(t *testing.T) {
	c, _ := newTest(t, Config{})
	c.Store(0, Set, k("j"), Write{Value: k(`{"a":1}`), Datatype: 1, Expiry: 100})
	before := mustGet(t, c, "j", `{"a":1}`)
	c.Store(0, Append, k("j"), Write{Value: k(" "), Datatype: 0})
	if it := mustGet(t, c, "j", `{"a":1} `); it.Datatype != 1 {
		t.Fatalf("append changed the datatype: %d", it.Datatype)
	}
	c.Store(0, Set, k("j"), Write{Value: k("v"), KeepExpiry: true})
	if it := mustGet(t, c, "j", "v"); !it.Expires.Equal(before.Expires) || it.Datatype != 0 {
		t.Fatalf("KeepExpiry: %v, want %v", it.Expires, before.Expires)
	}
	c.Store(0, Set, k("new"), Write{Value: k("v"), Expiry: 5, KeepExpiry: true})
	if it := mustGet(t, c, "new", "v"); it.Expires.IsZero() {
		t.Fatal("KeepExpiry on a new key dropped its expiry")
	}
}

// Each inline item type is the record plus its buffer exactly, fills a
// size class of Go's allocator, and allocItem gives every size a buffer of
// that size, from the smallest inline type that holds it.
func TestAllocItem(t *testing.T) {
	for n := range maxInline + 100 {
		it, buf := allocItem(n)
		if len(buf) != n || cap(buf) != n || int(it.size()) != n || (n > 0 && &it.bytes()[0] != &buf[0]) {
			t.Fatalf("allocItem(%d): len %d cap %d size %d", n, len(buf), cap(buf), it.size())
		}
		if n <= maxInline {
			i := inlineClass[(n+7)/8]
			if inlineSizes[i].size < n || i > 0 && inlineSizes[i-1].size >= n {
				t.Fatalf("allocItem(%d): buffer of %d", n, inlineSizes[i].size)
			}
		}
	}
	if unsafe.Sizeof(inline[[128]byte]{}) != unsafe.Sizeof(item{})+128 {
		t.Fatalf("record and buffer are not packed: %d", unsafe.Sizeof(inline[[128]byte]{}))
	}
	// Go's size classes from 96 to 1024 bytes (runtime/sizeclasses.go).
	classes := []int{96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480,
		512, 576, 640, 704, 768, 896, 1024}
	for i, in := range inlineSizes {
		if total := int(unsafe.Sizeof(item{})) + in.size; total != classes[i] {
			t.Errorf("inline buffer of %d: %d bytes, not size class %d", in.size, total, classes[i])
		}
	}
}

// memcached counts an incr or decr miss only when the counter is not
// created.
func TestCounterMissStats(t *testing.T) {
	c, _ := newTest(t, Config{})
	c.Incr(0, k("i"), 1, 5, 0, 0)
	c.Decr(0, k("d"), 1, 5, 0, 0)
	if st := c.Stats(); st.IncrMisses != 0 || st.DecrMisses != 0 {
		t.Fatalf("created counters counted as misses: %+v", st)
	}
	c.Incr(0, k("i2"), 1, 5, NoCreate, 0)
	c.Decr(0, k("d2"), 1, 5, NoCreate, 0)
	if st := c.Stats(); st.IncrMisses != 1 || st.DecrMisses != 1 {
		t.Fatalf("misses %d, %d; want 1, 1", st.IncrMisses, st.DecrMisses)
	}
}

// BenchmarkGetLarge reads 1M items at random, more than the caches hold:
// the cost of a lookup that misses the CPU caches.
func BenchmarkGetLarge(b *testing.B) {
	c := New(Config{MaxBytes: 1 << 30})
	defer c.Close()
	const n = 1 << 20
	for i := range n {
		c.Store(0, Set, fmt.Appendf(nil, "key:%010d", i), Write{Value: make([]byte, 100)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		key := make([]byte, 0, 16)
		for pb.Next() {
			key = fmt.Appendf(key[:0], "key:%010d", rng.IntN(n))
			c.Get(0, key)
		}
	})
}
