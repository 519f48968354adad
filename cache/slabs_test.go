package cache

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/internal/peer"
)

// memcachedClasses runs memcached -vv with args and returns the chunk size
// and chunks per page of each slab class it prints.
func memcachedClasses(t *testing.T, args ...string) [][2]int64 {
	t.Helper()
	bin := peer.Require(t, "memcached")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-vv", "-u", "nobody", "-l", "127.0.0.1", "-p", strconv.Itoa(peer.FreePort(t)), "-U", "0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	re := regexp.MustCompile(`^slab class\s+(\d+): chunk size\s+(\d+) perslab\s+(\d+)`)
	var out [][2]int64
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			if len(out) > 0 {
				break
			}
			continue
		}
		size, _ := strconv.ParseInt(m[2], 10, 64)
		per, _ := strconv.ParseInt(m[3], 10, 64)
		out = append(out, [2]int64{size, per})
	}
	if len(out) == 0 {
		t.Fatalf("memcached %v printed no slab classes", args)
	}
	return out
}

// The slab classes are memcached's, for its defaults and for other -n, -f
// and -I.
func TestSlabClassesAsMemcached(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		cfg     SlabConfig
		maxItem int
	}{
		{nil, SlabConfig{}, 1 << 20},
		{[]string{"-n", "10", "-f", "1.1"}, SlabConfig{ChunkSize: 10, Factor: 1.1}, 1 << 20},
		{[]string{"-f", "2"}, SlabConfig{Factor: 2}, 1 << 20},
		{[]string{"-f", "1.01"}, SlabConfig{Factor: 1.01}, 1 << 20},
		{[]string{"-I", "256k", "-o", "slab_chunk_max=131072"}, SlabConfig{ChunkMax: 131072}, 256 << 10},
		{[]string{"-o", "slab_chunk_max=16384"}, SlabConfig{ChunkMax: 16384}, 1 << 20},
		{[]string{"-I", "4m"}, SlabConfig{}, 4 << 20},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			want := memcachedClasses(t, tc.args...)
			sl := newSlabs(&tc.cfg, 64<<20, tc.maxItem)
			if len(sl.classes) != len(want) {
				t.Errorf("%d classes, memcached has %d", len(sl.classes), len(want))
			}
			for i := range min(len(want), len(sl.classes)) {
				if got := [2]int64{sl.classes[i].size, sl.classes[i].perPage}; got != want[i] {
					t.Errorf("class %d: chunk %d per page %d, memcached %d %d", i+1, got[0], got[1], want[i][0], want[i][1])
				}
			}
		})
	}
}

// An item goes to the class memcached stores it in, whatever its key,
// value and flags: asked of a real memcached with "stats items" for values
// on each side of every class boundary.
func TestSlabClassOfAsMemcached(t *testing.T) {
	addr := peer.Memcached(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(s, "\r\n")
	}
	classOf := func(key string, n int, flags uint32) int {
		fmt.Fprintf(conn, "set %s %d 0 %d\r\n%s\r\nstats items\r\n", key, flags, n, strings.Repeat("v", n))
		if l := line(); l != "STORED" {
			t.Fatalf("set of %d bytes: %s", n, l)
		}
		id := 0
		for l := line(); l != "END"; l = line() {
			var k int
			var v int
			if _, err := fmt.Sscanf(l, "STAT items:%d:number %d", &k, &v); err == nil && v > 0 {
				id = k
			}
		}
		fmt.Fprintf(conn, "delete %s\r\n", key)
		if l := line(); l != "DELETED" {
			t.Fatalf("delete: %s", l)
		}
		return id
	}
	c := New(Config{Slabs: &SlabConfig{}, SweepInterval: -1})
	defer c.Close()
	checked := 0
	for i := range c.slabs.classes {
		k := &c.slabs.classes[i]
		for _, key := range []string{"k", "key-of-forty-bytes-0123456789abcdefghijk"} {
			for _, flags := range []uint32{0, 7} {
				// The value that makes memcached's item exactly the
				// chunk, and one byte more.
				n := int(k.size) - itemSizeOverhead - len(key)
				if flags != 0 {
					n -= 4
				}
				for _, v := range []int{n, n + 1} {
					if v < 0 || v+len(key)+itemSizeOverhead > 1<<20 || (i == len(c.slabs.classes)-1 && v > n) {
						continue
					}
					want := classOf(key, v, flags)
					if got := c.SlabClassOf(len(key), v, flags); got != want {
						t.Errorf("key %d bytes, value %d, flags %d: class %d, memcached %d", len(key), v, flags, got, want)
					}
					checked++
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d sizes checked", checked)
	}
}

// issue_22.t's case: under 3 MiB, 66560-byte values take 82792-byte chunks
// of class 31, 12 to a page, 3 pages: 36 fit, and every later store evicts
// one item of the class.
func TestSlabsChunkAccounting(t *testing.T) {
	c := New(Config{MaxBytes: 3 << 20, Slabs: &SlabConfig{}, SweepInterval: -1})
	defer c.Close()
	v := make([]byte, 66560)
	for i := range 40 {
		if _, err := c.Store(0, Set, fmt.Appendf(nil, "key%d", i), Write{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	classes, tot := c.Slabs()
	if len(classes) != 1 || classes[0].ID != 31 || classes[0].ChunkSize != 82792 || classes[0].Pages != 3 {
		t.Fatalf("classes %+v", classes)
	}
	if k := classes[0]; k.Items != 36 || k.Counters.Evictions != 4 || k.UsedChunks != 36 || tot.Malloced != 3<<20 {
		t.Fatalf("class 31: %d items, %d evictions, %d chunks used; malloced %d", k.Items, k.Counters.Evictions, k.UsedChunks, tot.Malloced)
	}
	// The oldest went: key0..key3.
	for i := range 40 {
		_, ok := c.Get(0, fmt.Appendf(nil, "key%d", i))
		if ok != (i >= 4) {
			t.Errorf("key%d present: %v", i, ok)
		}
	}
	// A small item's class gets its first page although the limit is
	// reached, and evicts nothing of class 31.
	if _, err := c.Store(0, Set, []byte("small"), Write{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	classes, tot = c.Slabs()
	if len(classes) != 2 || classes[0].ID != 1 || classes[1].Items != 36 || tot.Malloced != 4<<20 {
		t.Fatalf("after a small item: %+v, malloced %d", classes, tot.Malloced)
	}
	// Further small items fill that page, then evict their own class
	// only.
	per := int(classes[0].ChunksPerPage)
	for i := range per + 10 {
		c.Store(0, Set, fmt.Appendf(nil, "s%d", i), Write{Value: []byte("x")})
	}
	classes, _ = c.Slabs()
	if classes[0].Items != uint64(per) || classes[0].Counters.Evictions != 11 || classes[1].Items != 36 {
		t.Fatalf("small class %d items (page %d) %d evictions; class 31 %d items", classes[0].Items, per, classes[0].Counters.Evictions, classes[1].Items)
	}
}

// With NoEvict, a store whose class is full and can get no page is
// refused (64bit.t's case, with memory counted as already allocated).
func TestSlabsNoEvict(t *testing.T) {
	limit := int64(4098 << 20)
	c := New(Config{MaxBytes: limit, NoEvict: true, Slabs: &SlabConfig{Malloced: 1<<32 + 32}, SweepInterval: -1})
	defer c.Close()
	if _, tot := c.Slabs(); tot.Malloced != 1<<32+32 {
		t.Fatalf("malloced %d", tot.Malloced)
	}
	v := make([]byte, 400<<10)
	var refused int
	for i := range 5 {
		_, err := c.Store(0, Set, fmt.Appendf(nil, "big%d", i), Write{Value: v})
		if err == ErrNoMemory {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// One page of two 512 KiB chunks fits under the limit; a second does
	// not.
	classes, _ := c.Slabs()
	if refused != 3 || len(classes) != 1 || classes[0].Pages != 1 || classes[0].Counters.StoreNoMemory != 3 {
		t.Fatalf("%d refused; classes %+v", refused, classes)
	}
	// A deletion frees a chunk for the next store.
	if _, err := c.Delete(0, []byte("big0"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store(0, Set, []byte("big9"), Write{Value: v}); err != nil {
		t.Fatalf("store after a delete: %v", err)
	}
}

// A class whose free chunks exceed 2.5 pages gives a page back, and
// another class takes it before it allocates.
func TestSlabsRebalance(t *testing.T) {
	c := New(Config{MaxBytes: 8 << 20, Slabs: &SlabConfig{}, SweepInterval: -1})
	defer c.Close()
	v := make([]byte, 66560)
	for i := range 96 { // 8 pages of class 31
		c.Store(0, Set, fmt.Appendf(nil, "a%d", i), Write{Value: v})
	}
	for i := range 96 {
		c.Delete(0, fmt.Appendf(nil, "a%d", i), 0)
	}
	for range 10 {
		c.slabs.rebalance()
	}
	classes, tot := c.Slabs()
	if len(classes) != 1 || classes[0].Pages != 2 || tot.Pool != 6 || tot.Malloced != 8<<20 {
		t.Fatalf("after rebalancing: %+v, totals %+v", classes, tot)
	}
	w := make([]byte, 30000) // class 27: 33904-byte chunks, 30 to a page
	for i := range 6 * 30 {
		c.Store(0, Set, fmt.Appendf(nil, "b%d", i), Write{Value: w})
	}
	classes, tot = c.Slabs()
	if len(classes) != 2 || classes[0].ID != 27 || classes[0].Pages != 6 || classes[0].Counters.Evictions != 0 ||
		tot.Pool != 0 || tot.Malloced != 8<<20 {
		t.Fatalf("after a new class: %+v, totals %+v", classes, tot)
	}
}

// The hot paths with slabs and the segmented LRU (gocache's default),
// beside BenchmarkGetParallelSegmented and BenchmarkSetParallelSegmented.
func BenchmarkGetParallelSlabs(b *testing.B) {
	benchGetParallel(b, Config{LRU: Segmented, Slabs: &SlabConfig{}})
}

func BenchmarkSetParallelSlabs(b *testing.B) {
	benchSetParallel(b, Config{LRU: Segmented, Slabs: &SlabConfig{}})
}

// Stores into a full cache with slabs: every store evicts within its
// class.
func BenchmarkSetEvictingSlabs(b *testing.B) {
	benchSetEvicting(b, Config{LRU: Segmented, Slabs: &SlabConfig{}})
}

// With slabs, tombstones take no chunk but keep within their share of the
// limit.
func TestSlabsTombstonesBounded(t *testing.T) {
	c := New(Config{MaxBytes: 2 << 20, Slabs: &SlabConfig{}, TombstoneTTL: time.Hour, SweepInterval: -1})
	defer c.Close()
	v := make([]byte, 200)
	for i := range 20000 {
		k := fmt.Appendf(nil, "k%d", i)
		c.Store(0, Set, k, Write{Value: v})
		c.Delete(0, k, 0)
	}
	st := c.Stats()
	if st.Tombstones == 0 || st.TombstoneBytes > (2<<20)/tombShare {
		t.Fatalf("%d tombstones of %d bytes, share %d", st.Tombstones, st.TombstoneBytes, (2<<20)/tombShare)
	}
	if classes, _ := c.Slabs(); len(classes) != 1 || classes[0].UsedChunks != 0 {
		t.Fatalf("tombstones took chunks: %+v", classes)
	}
}

// MaxTombstones purges the oldest tombstone whatever its class.
func TestSlabsOldestTombstoneFirst(t *testing.T) {
	c := New(Config{Shards: 1, Slabs: &SlabConfig{}, TombstoneTTL: time.Hour, MaxTombstones: 1, SweepInterval: -1})
	defer c.Close()
	c.Store(0, Set, []byte("big"), Write{Value: make([]byte, 500)})
	c.Delete(0, []byte("big"), 0)
	c.Store(0, Set, []byte("small"), Write{Value: []byte("x")})
	c.Delete(0, []byte("small"), 0)
	if _, ok := c.Lookup(0, []byte("small"), true); !ok {
		t.Fatal("the newest tombstone went")
	}
	if _, ok := c.Lookup(0, []byte("big"), true); ok {
		t.Fatal("the oldest tombstone stayed")
	}
}

// A store that evicts reclaims dead items of its own class only.
func TestSlabsDeadReclaimedInClass(t *testing.T) {
	c := New(Config{MaxBytes: 3 << 20, Shards: 1, Slabs: &SlabConfig{}, SweepInterval: -1})
	defer c.Close()
	big := make([]byte, 66560)
	for i := range 36 {
		c.Store(0, Set, fmt.Appendf(nil, "b%d", i), Write{Value: big})
	}
	for i := range 1000 {
		c.Store(0, Set, fmt.Appendf(nil, "s%d", i), Write{Value: []byte("x")})
	}
	c.Flush(0)
	for i := range 37 {
		c.Store(0, Set, fmt.Appendf(nil, "n%d", i), Write{Value: big})
	}
	st := c.Stats()
	// The 36 dead large items make room for 36 stores, the 37th evicts
	// the first; the small dead items stay, for a sweep.
	if st.DeadItems != 1000 || st.Reclaimed != 36 || st.Evictions != 1 {
		t.Fatalf("dead %d, reclaimed %d, evictions %d", st.DeadItems, st.Reclaimed, st.Evictions)
	}
}

// A store with slabs reads what it evicts for while its shard is locked:
// a sweep expiring the item just stored, as soon as the store unlocks,
// races with nothing (run with -race; found by a gocache test).
func TestSlabsStoreRacesSweep(t *testing.T) {
	c, clk := newTest(t, Config{MaxBytes: 4 << 20, Shards: 2, Slabs: &SlabConfig{}, TombstoneTTL: time.Hour})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			clk.Advance(time.Second)
			c.SweepNow()
		}
	}()
	v := make([]byte, 100)
	for i := 0; ; i++ {
		select {
		case <-done:
			if st := c.Stats(); st.ExpiredUnfetched == 0 {
				t.Fatalf("no item expired in %d stores: %+v", i, st)
			}
			return
		default:
		}
		c.Store(0, Set, fmt.Appendf(nil, "k%d", i%64), Write{Value: v, Expiry: 1})
	}
}
