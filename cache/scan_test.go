package cache

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scanAll reads a scan to its end and returns its keys.
func scanAll(t testing.TB, sc *Scan) []string {
	t.Helper()
	var out []string
	for {
		key, _, ok := sc.Next()
		if !ok {
			return out
		}
		out = append(out, string(key))
	}
}

func TestScanRange(t *testing.T) {
	c, _ := newTest(t, Config{Shards: 4})
	for _, key := range []string{"a", "b", "ba", "bb", "c", "d"} {
		c.Store(3, Set, k(key), Write{Value: k("v:" + key)})
	}
	c.Store(4, Set, k("b"), Write{Value: k("other vbucket")})
	for _, tc := range []struct {
		name string
		r    KeyRange
		want []string
	}{
		{"inclusive", KeyRange{Start: k("b"), End: k("c")}, []string{"b", "ba", "bb", "c"}},
		{"exclusive start", KeyRange{Start: k("b"), End: k("c"), ExcludeStart: true}, []string{"ba", "bb", "c"}},
		{"exclusive end", KeyRange{Start: k("b"), End: k("c"), ExcludeEnd: true}, []string{"b", "ba", "bb"}},
		{"both exclusive", KeyRange{Start: k("b"), End: k("c"), ExcludeStart: true, ExcludeEnd: true}, []string{"ba", "bb"}},
		{"one key", KeyRange{Start: k("ba"), End: k("ba")}, []string{"ba"}},
		{"one key excluded", KeyRange{Start: k("ba"), End: k("ba"), ExcludeEnd: true}, nil},
		{"everything", KeyRange{Start: nil, End: k("\xff")}, []string{"a", "b", "ba", "bb", "c", "d"}},
		{"empty", KeyRange{Start: k("bc"), End: k("bz")}, nil},
		{"inverted", KeyRange{Start: k("d"), End: k("a")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := c.ScanRange(3, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Len() != len(tc.want) {
				t.Fatalf("Len %d, want %d", sc.Len(), len(tc.want))
			}
			if got := scanAll(t, sc); !slices.Equal(got, tc.want) {
				t.Fatalf("keys %q, want %q", got, tc.want)
			}
		})
	}
	sc, _ := c.ScanRange(4, KeyRange{End: k("z")})
	key, it, ok := sc.Next()
	if !ok || string(key) != "b" || string(it.Value) != "other vbucket" || it.Seqno != 1 {
		t.Fatalf("vbucket 4: %q %+v %v", key, it, ok)
	}
	if _, _, ok := sc.Next(); ok {
		t.Fatal("vbucket 4 has one key")
	}
	if _, err := c.ScanRange(uint16(c.VBuckets()), KeyRange{End: k("z")}); err != ErrNoVBucket {
		t.Fatalf("vbucket past the last: %v", err)
	}
}

// A scan returns the items as they are when Next reads them: keys deleted,
// expired or evicted since it was made are skipped, keys added since are
// not returned, and values are the latest.
func TestScanReadsCurrentItems(t *testing.T) {
	c, clk := newTest(t, Config{TombstoneTTL: time.Minute})
	for i := range 10 {
		c.Store(0, Set, fmt.Appendf(nil, "k%d", i), Write{Value: k("old"), Expiry: uint32(100 * (i % 2))})
	}
	c.Delete(0, k("k0"), 0)
	sc, _ := c.ScanRange(0, KeyRange{Start: k("k"), End: k("l")})
	if sc.Len() != 9 {
		t.Fatalf("Len %d: the deleted key is collected", sc.Len())
	}
	c.Delete(0, k("k2"), 0)
	c.Store(0, Set, k("k4"), Write{Value: k("new")})
	c.Store(0, Set, k("k45"), Write{Value: k("added")})
	clk.Advance(200 * time.Second) // the odd keys expire
	var got []string
	for {
		key, it, ok := sc.Next()
		if !ok {
			break
		}
		got = append(got, string(key)+"="+string(it.Value))
	}
	if want := []string{"k4=new", "k6=old", "k8=old"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if sc.Remaining() != 0 {
		t.Fatalf("Remaining %d", sc.Remaining())
	}
}

// Keys carry their collection first; a range within one collection's
// prefix and a sample of one prefix see only that collection.
func TestScanCollections(t *testing.T) {
	c, _ := newTest(t, Config{Collections: true})
	for _, cid := range []uint32{0, 8, 0x80} {
		for i := range 20 {
			c.Store(0, Set, CollectionKey(nil, cid, fmt.Appendf(nil, "key%02d", i)), Write{Value: k("v")})
		}
	}
	pre := CollectionKey(nil, 0x80, nil)
	sc, _ := c.ScanRange(0, KeyRange{Start: CollectionKey(nil, 0x80, nil), End: CollectionKey(nil, 0x80, bytes.Repeat(k("\xff"), 250))})
	got := scanAll(t, sc)
	if len(got) != 20 {
		t.Fatalf("%d keys in collection 0x80", len(got))
	}
	for _, key := range got {
		if cid, name, ok := SplitKey(k(key)); !ok || cid != 0x80 || !bytes.HasPrefix(name, k("key")) {
			t.Fatalf("key %q", key)
		}
	}
	sc, _ = c.ScanSample(0, pre, 5, 1)
	for _, key := range scanAll(t, sc) {
		if !bytes.HasPrefix(k(key), pre) {
			t.Fatalf("sampled %q outside collection 0x80", key)
		}
	}
	sc, _ = c.ScanSample(0, CollectionKey(nil, 9, nil), 5, 1)
	if sc.Len() != 0 {
		t.Fatalf("sampled %d keys from an empty collection", sc.Len())
	}
}

func TestScanSample(t *testing.T) {
	c, _ := newTest(t, Config{})
	other, _ := newTest(t, Config{Shards: 1}) // other shards, other hash seed
	for i := range 1000 {
		key := fmt.Appendf(nil, "s%04d", i)
		c.Store(1, Set, key, Write{Value: k("v")})
		other.Store(1, Set, key, Write{Value: k("v")})
		c.Store(2, Set, key, Write{Value: k("v")})
	}
	sample := func(c *Cache, n int, seed uint64) []string {
		sc, err := c.ScanSample(1, k("s"), n, seed)
		if err != nil {
			t.Fatal(err)
		}
		return scanAll(t, sc)
	}
	a := sample(c, 100, 42)
	if len(a) != 100 || !slices.IsSorted(a) || len(slices.Compact(slices.Clone(a))) != 100 {
		t.Fatalf("sample of 100: %d keys, sorted %v", len(a), slices.IsSorted(a))
	}
	if b := sample(other, 100, 42); !slices.Equal(a, b) {
		t.Fatal("the same seed over the same keys picked other keys in another cache")
	}
	if b := sample(c, 100, 43); slices.Equal(a, b) {
		t.Fatal("another seed picked the same keys")
	}
	if all := sample(c, 5000, 1); len(all) != 1000 {
		t.Fatalf("a sample larger than the vbucket has %d keys", len(all))
	}
	if none := sample(c, 0, 1); len(none) != 0 {
		t.Fatalf("a sample of 0 has %d keys", len(none))
	}
	// Uniform: every key is picked about as often over many seeds.
	counts := make(map[string]int)
	const seeds = 400
	for seed := range uint64(seeds) {
		for _, key := range sample(c, 100, seed) {
			counts[key]++
		}
	}
	// Each key is picked with p = 0.1, 40 times on average; 5 and 90
	// are about six standard deviations away.
	for i := range 1000 {
		if n := counts[fmt.Sprintf("s%04d", i)]; n < 5 || n > 90 {
			t.Fatalf("key s%04d picked %d times in %d samples", i, n, seeds)
		}
	}
}

func TestHasSeqno(t *testing.T) {
	c, _ := newTest(t, Config{TombstoneTTL: time.Minute})
	m1, _ := c.Store(0, Set, k("a"), Write{Value: k("1")})
	m2, _ := c.Store(0, Set, k("b"), Write{Value: k("1")})
	m3, _ := c.Store(0, Set, k("a"), Write{Value: k("2")}) // replaces m1
	m4, _ := c.Delete(0, k("b"), 0)                        // a tombstone replaces m2
	for _, tc := range []struct {
		seqno uint64
		want  bool
	}{{m1.Seqno, false}, {m2.Seqno, false}, {m3.Seqno, true}, {m4.Seqno, true}, {99, false}, {0, false}} {
		if got := c.HasSeqno(0, tc.seqno); got != tc.want {
			t.Errorf("HasSeqno(%d) = %v", tc.seqno, got)
		}
	}
	if c.HasSeqno(1, m3.Seqno) {
		t.Error("seqno found in another vbucket")
	}
}

// While a writer overwrites keys and a deleter adds and removes others, a
// scan returns every key present throughout exactly once, in order, and
// nothing but keys of the range.
func TestScanConcurrent(t *testing.T) {
	c, _ := newTest(t, Config{TombstoneTTL: time.Second})
	const stable, churn = 2000, 2000
	for i := range stable {
		c.Store(5, Set, fmt.Appendf(nil, "k%05d:s", i), Write{Value: k("v")})
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // overwrites the stable keys: present throughout
		defer wg.Done()
		for n := 0; !stop.Load(); n++ {
			c.Store(5, Set, fmt.Appendf(nil, "k%05d:s", n%stable), Write{Value: fmt.Appendf(nil, "v%d", n)})
		}
	}()
	go func() { // adds and removes the churning keys
		defer wg.Done()
		for n := 0; !stop.Load(); n++ {
			key := fmt.Appendf(nil, "k%05d:c", n%churn)
			if n/churn%2 == 0 {
				c.Store(5, Set, key, Write{Value: k("c")})
			} else {
				c.Delete(5, key, 0)
			}
			c.Store(6, Set, key, Write{Value: k("elsewhere")})
		}
	}()
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	for round := range 20 {
		sc, err := c.ScanRange(5, KeyRange{Start: k("k"), End: k("l")})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			key, it, ok := sc.Next()
			if !ok {
				break
			}
			if len(it.Value) == 0 {
				t.Fatalf("round %d: %q without its value", round, key)
			}
			got = append(got, string(key))
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("round %d: keys out of order or repeated", round)
		}
		seen := 0
		for _, key := range got {
			if key[len(key)-1] == 's' {
				seen++
			}
		}
		if seen != stable {
			t.Fatalf("round %d: %d of %d keys present throughout", round, seen, stable)
		}
	}
}

// BenchmarkScanCreate makes a scan of one vbucket's 100,000 keys, in a
// cache that holds only those (the cost of collecting and sorting them).
func BenchmarkScanCreate(b *testing.B) {
	c := New(Config{MaxBytes: 1 << 30, SweepInterval: -1})
	defer c.Close()
	for i := range 100_000 {
		c.Store(0, Set, fmt.Appendf(nil, "key:%010d", i), Write{Value: make([]byte, 100)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sc, _ := c.ScanRange(0, KeyRange{End: k("\xff")})
		if sc.Len() != 100_000 {
			b.Fatal(sc.Len())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/key")
}

// BenchmarkScanCreateSparse makes a scan of one vbucket of 1,024 in a
// cache of 1M items: the walk over every item in the cache is the cost.
func BenchmarkScanCreateSparse(b *testing.B) {
	c := New(Config{MaxBytes: 1 << 30, SweepInterval: -1})
	defer c.Close()
	for i := range 1 << 20 {
		c.Store(uint16(i%1024), Set, fmt.Appendf(nil, "key:%010d", i), Write{Value: make([]byte, 100)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sc, _ := c.ScanRange(7, KeyRange{End: k("\xff")})
		if sc.Len() != 1024 {
			b.Fatal(sc.Len())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(1<<20), "ns/item")
}

// BenchmarkScanNext reads a scan of 100,000 keys with their items.
func BenchmarkScanNext(b *testing.B) {
	c := New(Config{MaxBytes: 1 << 30, SweepInterval: -1})
	defer c.Close()
	for i := range 100_000 {
		c.Store(0, Set, fmt.Appendf(nil, "key:%010d", i), Write{Value: make([]byte, 100)})
	}
	sc, _ := c.ScanRange(0, KeyRange{End: k("\xff")})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sc.next = 0
		for {
			if _, _, ok := sc.Next(); !ok {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100_000, "ns/key")
}

// A range scan of one collection of a cache whose keys carry their
// collection: the names from "b" to "c", in order.
func ExampleCache_ScanRange() {
	c := New(Config{Collections: true})
	defer c.Close()
	for _, name := range []string{"c", "a", "bb", "b"} {
		c.Store(0, Set, CollectionKey(nil, 8, []byte(name)), Write{Value: []byte("v")})
	}
	c.Store(0, Set, CollectionKey(nil, 9, []byte("b")), Write{Value: []byte("other collection")})
	sc, _ := c.ScanRange(0, KeyRange{Start: CollectionKey(nil, 8, []byte("b")), End: CollectionKey(nil, 8, []byte("c"))})
	for {
		key, it, ok := sc.Next()
		if !ok {
			break
		}
		_, name, _ := SplitKey(key)
		fmt.Printf("%s=%s seqno %d\n", name, it.Value, it.Seqno)
	}
	// Output:
	// b=v seqno 4
	// bb=v seqno 3
	// c=v seqno 1
}
