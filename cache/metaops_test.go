package cache

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func mustFetch(t *testing.T, c *Cache, key string, o FetchOptions) Fetched {
	t.Helper()
	f, ok, err := c.Fetch(0, k(key), &o)
	if err != nil || !ok {
		t.Fatalf("Fetch(%q) = %v, %v", key, ok, err)
	}
	return f
}

// A vivifying miss creates an empty item and hands its token to that
// fetch alone; the others see the token was sent; a store clears it.
func TestFetchVivify(t *testing.T) {
	c, clk := newTest(t, Config{})
	f := mustFetch(t, c, "a", FetchOptions{Vivify: true, VivifyExpiry: 30})
	if !f.Vivified || !f.Won || f.TokenSent || len(f.Value) != 0 || f.CAS == 0 || !f.ExpiresBefore.IsZero() {
		t.Fatalf("first fetch: %+v", f)
	}
	if got := f.Expires.Sub(clk.Now()); got != 30*time.Second {
		t.Fatalf("vivified item expires in %v", got)
	}
	f2 := mustFetch(t, c, "a", FetchOptions{Vivify: true, VivifyExpiry: 30})
	if f2.Vivified || f2.Won || !f2.TokenSent || f2.CAS != f.CAS {
		t.Fatalf("second fetch: %+v", f2)
	}
	if _, err := c.Store(0, Set, k("a"), Write{Value: k("v"), CAS: f.CAS}); err != nil {
		t.Fatal(err)
	}
	f3 := mustFetch(t, c, "a", FetchOptions{})
	if f3.Won || f3.TokenSent || f3.Stale || string(f3.Value) != "v" {
		t.Fatalf("after the store: %+v", f3)
	}
	// Without Vivify a miss is a miss.
	if _, ok, err := c.Fetch(0, k("b"), &FetchOptions{}); ok || err != nil {
		t.Fatalf("miss: %v %v", ok, err)
	}
}

// Of many clients vivifying one key at once, exactly one wins.
func TestFetchVivifyOneWinner(t *testing.T) {
	c, _ := newTest(t, Config{})
	var wins, created int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, _, _ := c.Fetch(0, k("hot"), &FetchOptions{Vivify: true, VivifyExpiry: 30})
			mu.Lock()
			if f.Won {
				wins++
			}
			if f.Vivified {
				created++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if wins != 1 || created != 1 {
		t.Fatalf("%d wins, %d created", wins, created)
	}
}

// Recache hands the token out once when the item expires sooner than
// asked; RecacheAfterTouch compares the expiry Touch sets.
func TestFetchRecache(t *testing.T) {
	c, _ := newTest(t, Config{})
	c.Store(0, Set, k("a"), Write{Value: k("v"), Expiry: 120})
	if f := mustFetch(t, c, "a", FetchOptions{Recache: true, RecacheExpiry: 100}); f.Won {
		t.Fatal("won with the TTL above the threshold")
	}
	if f := mustFetch(t, c, "a", FetchOptions{Recache: true, RecacheExpiry: 130}); !f.Won || f.TokenSent {
		t.Fatalf("first below the threshold: %+v", f)
	}
	if f := mustFetch(t, c, "a", FetchOptions{Recache: true, RecacheExpiry: 130}); f.Won || !f.TokenSent {
		t.Fatalf("second: %+v", f)
	}
	c.Store(0, Set, k("b"), Write{Value: k("v")}) // never expires: never wins
	if f := mustFetch(t, c, "b", FetchOptions{Recache: true, RecacheExpiry: 130}); f.Won {
		t.Fatal("won on an item that never expires")
	}
	if f := mustFetch(t, c, "b", FetchOptions{Touch: true, Expiry: 10, Recache: true, RecacheExpiry: 130, RecacheAfterTouch: true}); !f.Won || !f.ExpiresBefore.IsZero() || f.Expires.IsZero() {
		t.Fatalf("recache after touch: %+v", f)
	}
}

// Hit and LastAccess are as they were before the fetch; NoBump changes
// neither.
func TestFetchHitAndLastAccess(t *testing.T) {
	c, clk := newTest(t, Config{})
	c.Store(0, Set, k("a"), Write{Value: k("v")})
	stored := clk.Now()
	clk.Advance(5 * time.Second)
	f := mustFetch(t, c, "a", FetchOptions{NoBump: true})
	if f.Hit || !f.LastAccess.Equal(stored) || f.At.Sub(f.LastAccess) != 5*time.Second {
		t.Fatalf("no-bump fetch: %+v", f)
	}
	f = mustFetch(t, c, "a", FetchOptions{})
	if f.Hit || !f.LastAccess.Equal(stored) {
		t.Fatalf("first fetch: %+v", f)
	}
	clk.Advance(2 * time.Second)
	f = mustFetch(t, c, "a", FetchOptions{})
	if !f.Hit || f.At.Sub(f.LastAccess) != 2*time.Second {
		t.Fatalf("second fetch: %+v", f)
	}
	// A Get is an access too.
	clk.Advance(3 * time.Second)
	c.Get(0, k("a"))
	if f = mustFetch(t, c, "a", FetchOptions{}); f.At.Sub(f.LastAccess) != 0 {
		t.Fatalf("after a Get: %+v", f)
	}
}

// Touch changes the expiry, as Touch does: a numbered change that keeps
// the CAS.
func TestFetchTouch(t *testing.T) {
	c, clk := newTest(t, Config{})
	m, _ := c.Store(0, Set, k("a"), Write{Value: k("v"), Expiry: 100})
	f := mustFetch(t, c, "a", FetchOptions{Touch: true, Expiry: 10})
	if f.CAS != m.CAS || f.Seqno <= m.Seqno || f.ExpiresBefore.Sub(clk.Now()) != 100*time.Second || f.Expires.Sub(clk.Now()) != 10*time.Second {
		t.Fatalf("touch: %+v (stored %+v)", f, m)
	}
	clk.Advance(11 * time.Second)
	mustMiss(t, c, "a")
}

// Invalidate marks an item stale: the next fetch wins, later ones see the
// token sent; a store with a lower CAS and Write.Invalidate keeps it
// stale, its expiry and token; a store with its CAS makes it fresh.
func TestInvalidate(t *testing.T) {
	c, clk := newTest(t, Config{})
	m, _ := c.Store(0, Set, k("a"), Write{Value: k("moo")})
	if _, err := c.Invalidate(0, k("a"), m.CAS+1, 0, false, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("wrong CAS: %v", err)
	}
	if _, err := c.Invalidate(0, k("nope"), 0, 0, false, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	inv, err := c.Invalidate(0, k("a"), m.CAS, 0, true, 30)
	if err != nil || inv.CAS == m.CAS {
		t.Fatalf("Invalidate = %+v, %v", inv, err)
	}
	f := mustFetch(t, c, "a", FetchOptions{})
	if !f.Stale || !f.Won || f.TokenSent || string(f.Value) != "moo" || f.CAS != inv.CAS || f.Expires.Sub(clk.Now()) != 30*time.Second {
		t.Fatalf("first fetch: %+v", f)
	}
	if _, err := c.Store(0, Set, k("a"), Write{Value: k("f"), CAS: 1, Expiry: 90}); !errors.Is(err, ErrExists) {
		t.Fatalf("low CAS without Invalidate: %v", err)
	}
	if _, err := c.Store(0, Set, k("a"), Write{Value: k("f"), CAS: 1, Expiry: 90, Invalidate: true}); err != nil {
		t.Fatalf("low CAS with Invalidate: %v", err)
	}
	f = mustFetch(t, c, "a", FetchOptions{})
	if !f.Stale || f.Won || !f.TokenSent || string(f.Value) != "f" || f.Expires.Sub(clk.Now()) != 30*time.Second {
		t.Fatalf("after the stale store: %+v", f)
	}
	if _, err := c.Store(0, Set, k("a"), Write{Value: k("g"), CAS: f.CAS, Expiry: 90, Invalidate: true}); err != nil {
		t.Fatal(err)
	}
	f = mustFetch(t, c, "a", FetchOptions{})
	if f.Stale || f.Won || f.TokenSent || string(f.Value) != "g" || f.Expires.Sub(clk.Now()) != 90*time.Second {
		t.Fatalf("after the good store: %+v", f)
	}
}

// Arith creates only with Vivify, and Touch sets a present item's expiry.
func TestArith(t *testing.T) {
	c, clk := newTest(t, Config{})
	if _, err := c.Arith(0, k("n"), &ArithOptions{Delta: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	r, err := c.Arith(0, k("n"), &ArithOptions{Delta: 1, Initial: 5, Vivify: true, VivifyExpiry: 60})
	if err != nil || !r.Created || r.Value != 5 || r.Expires.Sub(clk.Now()) != 60*time.Second || !r.ExpiresBefore.IsZero() {
		t.Fatalf("vivify: %+v, %v", r, err)
	}
	r, err = c.Arith(0, k("n"), &ArithOptions{Delta: 7, Decr: true, Touch: true, Expiry: 10})
	if err != nil || r.Created || r.Value != 0 || r.Expires.Sub(clk.Now()) != 10*time.Second || r.ExpiresBefore.Sub(clk.Now()) != 60*time.Second {
		t.Fatalf("decr: %+v, %v", r, err)
	}
	if _, err := c.Arith(0, k("n"), &ArithOptions{Delta: 1, CAS: r.CAS + 1}); !errors.Is(err, ErrExists) {
		t.Fatalf("wrong CAS: %v", err)
	}
	mustGet(t, c, "n", "0")
}

// Inspect changes nothing and reports the item's details.
func TestInspect(t *testing.T) {
	c, _ := newTest(t, Config{})
	c.Store(0, Set, k("a"), Write{Value: k("v"), BinaryKey: true})
	f, ok := c.Inspect(0, k("a"))
	if !ok || f.Hit || !f.BinaryKey || f.Bytes != int64(len("av"))+ItemOverhead || f.Class != 1 {
		t.Fatalf("Inspect = %+v, %v", f, ok)
	}
	if f, _ = c.Inspect(0, k("a")); f.Hit {
		t.Fatal("Inspect marked the item fetched")
	}
	if st := c.Stats(); st.GetHits != 0 || st.GetMisses != 0 {
		t.Fatalf("Inspect counted: %+v", st)
	}
}

// NewCAS gives a change the caller's CAS; the cache's own stay above it.
func TestNewCAS(t *testing.T) {
	c, _ := newTest(t, Config{})
	m, err := c.Store(0, Set, k("a"), Write{Value: k("v"), NewCAS: 1000})
	if err != nil || m.CAS != 1000 || mustGet(t, c, "a", "v").CAS != 1000 {
		t.Fatalf("Store = %+v, %v", m, err)
	}
	if m, _ = c.Store(0, Append, k("a"), Write{Value: k("w"), NewCAS: 1001}); m.CAS != 1001 {
		t.Fatalf("Append: %+v", m)
	}
	if m, _ = c.Invalidate(0, k("a"), 0, 2000, false, 0); m.CAS != 2000 {
		t.Fatalf("Invalidate: %+v", m)
	}
	f := mustFetch(t, c, "b", FetchOptions{Vivify: true, NewCAS: 3000})
	if f.CAS != 3000 || mustGet(t, c, "b", "").CAS != 3000 {
		t.Fatalf("vivified: %+v", f)
	}
	r, err := c.Arith(0, k("n"), &ArithOptions{Vivify: true, Initial: 1, NewCAS: 4000})
	if err != nil || r.CAS != 4000 || mustGet(t, c, "n", "1").CAS != 4000 {
		t.Fatalf("Arith: %+v %v", r, err)
	}
	if m, _ = c.Store(0, Set, k("z"), Write{Value: k("v")}); m.CAS <= 4000 {
		t.Fatalf("a new CAS %d is not above those kept", m.CAS)
	}
}
