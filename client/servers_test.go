package memcached

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
	"github.com/f8e615c8/gomemcached/ring"
)

// serversKeys is the number of keys the placement tests write.
const serversKeys = 10000

// cluster is the test ring: three in-process gocache nodes and a real
// memcached, last.
type cluster struct {
	addrs []string
	gc    []*gocache.Server
	mc    *peer.Process
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	cl := &cluster{}
	for range 3 {
		srv, addr := gocachetest.Start(t, gocache.Config{})
		cl.gc = append(cl.gc, srv)
		cl.addrs = append(cl.addrs, addr)
	}
	cl.mc = peer.MemcachedProcess(t, nil) // fails in CI when memcached is missing
	cl.addrs = append(cl.addrs, cl.mc.Addr)
	return cl
}

func ringServers(addrs []string) []ring.Server {
	s := make([]ring.Server, len(addrs))
	for i, a := range addrs {
		s[i] = ring.Server{Addr: a}
	}
	return s
}

// ketama returns the index of each key's server in addrs by
// libmemcached's ketama (KetamaWeighted).
func ketama(t *testing.T, addrs []string, keys []string) []int {
	t.Helper()
	r, err := ring.New(ringServers(addrs), ring.Config{Distribution: ring.KetamaWeighted})
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, len(keys))
	for i, k := range keys {
		idx[i] = r.Pick(k)
	}
	return idx
}

func newServers(t *testing.T, addrs []string, opts ServersOptions) *Servers {
	t.Helper()
	if opts.Pool.Client.ReadTimeout == 0 {
		opts.Pool.Client.ReadTimeout = 5 * time.Second
	}
	if opts.Pool.Client.DialTimeout == 0 {
		opts.Pool.Client.DialTimeout = 2 * time.Second
	}
	s, err := NewServers(ringServers(addrs), ring.Config{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testKeys(t *testing.T, n int) []string {
	p := keyPrefix(t)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", p, i)
	}
	return keys
}

func value(k string) []byte { return []byte("v:" + k) }

// writeAll stores every key through s with Set, from a few goroutines.
func writeAll(t *testing.T, s *Servers, keys []string) {
	t.Helper()
	const workers = 8
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(keys); i += workers {
				if _, err := s.Set(0, keys[i], 7, 0, value(keys[i])); err != nil {
					errc <- fmt.Errorf("Set %s: %w", keys[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

// onNode returns the keys of keys that the node at addr holds, read
// directly.
func onNode(t *testing.T, addr string, keys []string) map[string]*gomemcached.MCResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr, ClientOptions{ReadTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := map[string]*gomemcached.MCResponse{}
	if err := c.GetBulk(0, keys, m, nil); err != nil {
		t.Fatalf("GetBulk from %s: %v", addr, err)
	}
	return m
}

// checkPlacement checks that each key is on the node at want[i] of addrs
// and on no other.
func checkPlacement(t *testing.T, addrs []string, keys []string, want []int) {
	t.Helper()
	per := make([]int, len(addrs))
	for ni, addr := range addrs {
		got := onNode(t, addr, keys)
		bad := 0
		for i, k := range keys {
			_, has := got[k]
			if has != (want[i] == ni) {
				if bad++; bad <= 3 {
					t.Errorf("key %s on %s: %v, ketama says node %d", k, addr, has, want[i])
				}
			}
			if has {
				per[ni]++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d keys misplaced", addr, bad)
		}
	}
	t.Logf("keys per node: %v", per)
}

// Every key written through Servers is on the node libmemcached's ketama
// names, and GetBulk and GetMulti return all of them.
func TestServersPlacement(t *testing.T) {
	cl := startCluster(t)
	s := newServers(t, cl.addrs, ServersOptions{})
	keys := testKeys(t, serversKeys)
	writeAll(t, s, keys)
	want := ketama(t, cl.addrs, keys)
	checkPlacement(t, cl.addrs, keys, want)
	for i, k := range keys[:100] {
		if got := s.Pick(k); got != cl.addrs[want[i]] {
			t.Fatalf("Pick(%s) = %s, want %s", k, got, cl.addrs[want[i]])
		}
	}

	rv := map[string]*gomemcached.MCResponse{}
	if err := s.GetBulk(0, keys, rv, nil); err != nil {
		t.Fatal(err)
	}
	if len(rv) != len(keys) {
		t.Fatalf("GetBulk: %d of %d keys", len(rv), len(keys))
	}
	for _, k := range keys {
		if string(rv[k].Body) != string(value(k)) {
			t.Fatalf("GetBulk %s = %q", k, rv[k].Body)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	miss := keyPrefix(t) + "missing"
	got, err := s.GetMulti(ctx, append(keys, miss))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) {
		t.Fatalf("GetMulti: %d of %d keys", len(got), len(keys))
	}
	for _, k := range keys {
		r := got[k]
		if r == nil || string(r.Body) != string(value(k)) || r.Opcode != gomemcached.GET ||
			len(r.Extras) < 4 || r.Extras[3] != 7 {
			t.Fatalf("GetMulti %s = %+v", k, r)
		}
	}
}

// SetMulti places each item as Set does; DeleteMulti deletes them, a
// missing key reported by itself.
func TestServersSetDeleteMulti(t *testing.T) {
	cl := startCluster(t)
	s := newServers(t, cl.addrs, ServersOptions{})
	keys := testKeys(t, serversKeys)
	items := make([]Item, len(keys))
	for i, k := range keys {
		items[i] = Item{Key: k, Value: value(k), Flags: 7}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.SetMulti(ctx, items); err != nil {
		t.Fatal(err)
	}
	checkPlacement(t, cl.addrs, keys, ketama(t, cl.addrs, keys))

	long := string(make([]byte, MaxKeyLen+1))
	miss := keyPrefix(t) + "missing"
	err := s.DeleteMulti(ctx, append(keys[:5000:5000], miss, long))
	var ke KeyErrors
	if !errors.As(err, &ke) || len(ke) != 2 {
		t.Fatalf("DeleteMulti: %v, want the missing and the long key", err)
	}
	if !errors.Is(ke[miss], gomemcached.ErrKeyNotFound) || !errors.Is(ke[long], ErrKeyTooLong) {
		t.Fatalf("DeleteMulti's errors: %v", ke)
	}
	got, err := s.GetMulti(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5000 {
		t.Fatalf("after DeleteMulti of 5000: %d keys left", len(got))
	}
	for _, k := range keys[:5000] {
		if got[k] != nil {
			t.Fatalf("%s not deleted", k)
		}
	}
}

// The reference-style calls behave as Client's, on the key's node.
func TestServersKV(t *testing.T) {
	cl := startCluster(t)
	var kv KV = newServers(t, cl.addrs, ServersOptions{})
	p := keyPrefix(t)
	for i := range 20 {
		k := fmt.Sprintf("%sc%d", p, i)
		if v, err := kv.Incr(0, k, 5, 10, 0); err != nil || v != 10 {
			t.Fatalf("Incr new: %d, %v", v, err)
		}
		if v, err := kv.Incr(0, k, 5, 10, 0); err != nil || v != 15 {
			t.Fatalf("Incr: %d, %v", v, err)
		}
		if _, err := kv.Add(0, k, 0, 0, []byte("x")); !errors.Is(err, gomemcached.ErrKeyExists) {
			t.Fatalf("Add over a key: %v", err)
		}
		if _, err := kv.Append(0, k, []byte("1")); err != nil {
			t.Fatal(err)
		}
		res, err := kv.GetAndTouch(0, k, 100)
		if err != nil || string(res.Body) != "151" {
			t.Fatalf("GetAndTouch: %v, %v", res, err)
		}
		if v, err := kv.Decr(0, k, 200, 0, 0); err != nil || v != 0 {
			t.Fatalf("Decr: %d, %v", v, err)
		}
		if _, err := kv.SetCas(0, k, 0, 0, res.Cas+1000, []byte("y")); !errors.Is(err, gomemcached.ErrKeyExists) {
			t.Fatalf("SetCas with a wrong CAS: %v", err)
		}
		if _, err := kv.Del(0, k); err != nil {
			t.Fatal(err)
		}
		res, err = kv.Get(0, k)
		if !gomemcached.IsNotFound(err) || res == nil {
			t.Fatalf("Get after Del: %v, %v", res, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err = kv.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(k)})
		cancel()
		if !errors.Is(err, gomemcached.ErrKeyNotFound) {
			t.Fatalf("Do GET after Del: %v, %v", res, err)
		}
	}
	if st := kv.(*Servers).Stats(); st[0].Failures+st[1].Failures+st[2].Failures+st[3].Failures != 0 {
		t.Fatalf("misses counted as failures: %+v", st)
	}
}

// events records a Servers' events.
type events struct {
	mu  sync.Mutex
	evs []ServerEvent
	ch  chan ServerEvent
}

func newEvents() *events { return &events{ch: make(chan ServerEvent, 64)} }

func (e *events) on(ev ServerEvent) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
	select {
	case e.ch <- ev:
	default:
	}
}

// wait waits for an event of kind for addr.
func (e *events) wait(t *testing.T, kind ServerEventKind, addr string, d time.Duration) ServerEvent {
	t.Helper()
	tm := time.NewTimer(d)
	defer tm.Stop()
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == kind && ev.Addr == addr {
				return ev
			}
		case <-tm.C:
			t.Fatalf("no %v event for %s within %v", kind, addr, d)
		}
	}
}

// With ejection on, a node killed with SIGKILL is ejected after
// FailureLimit failures: its keys move where ketama of the other three
// puts them, every other key stays where it was and readable.
func TestServersEjectKilled(t *testing.T) {
	cl := startCluster(t)
	ev := newEvents()
	s := newServers(t, cl.addrs, ServersOptions{FailureLimit: 2, RetryTimeout: time.Minute, OnEvent: ev.on})
	keys := testKeys(t, serversKeys)
	writeAll(t, s, keys)
	before := ketama(t, cl.addrs, keys)
	dead := len(cl.addrs) - 1 // memcached
	cl.mc.Kill()

	// Reads of the dead node's keys fail until it is ejected.
	fails := 0
	for i, k := range keys {
		if before[i] != dead {
			continue
		}
		_, err := s.Get(0, k)
		if err == nil {
			break
		}
		var ne *NodeError
		if !errors.As(err, &ne) || ne.Addr != cl.mc.Addr {
			if gomemcached.IsNotFound(err) {
				break // moved
			}
			t.Fatalf("Get of a killed node's key: %v", err)
		}
		if fails++; fails > 2 {
			t.Fatalf("still failing after %d failures", fails)
		}
	}
	e := ev.wait(t, ServerEjected, cl.mc.Addr, 5*time.Second)
	if e.Err == nil {
		t.Errorf("ejected without a reason")
	}
	t.Logf("ejected after %d failures: %v", fails, e.Err)

	live := cl.addrs[:dead]
	after := ketama(t, live, keys)
	moved := 0
	for i, k := range keys {
		if before[i] == dead {
			moved++
			if got := s.Pick(k); got != live[after[i]] {
				t.Fatalf("key %s of the dead node goes to %s, ketama of the others says %s", k, got, live[after[i]])
			}
		} else if got := s.Pick(k); got != cl.addrs[before[i]] {
			t.Fatalf("key %s moved from %s to %s", k, cl.addrs[before[i]], got)
		}
	}
	// Every other key is still readable where it was.
	rv := map[string]*gomemcached.MCResponse{}
	if err := s.GetBulk(0, keys, rv, nil); err != nil {
		t.Fatal(err)
	}
	if len(rv) != len(keys)-moved {
		t.Fatalf("after the kill: %d keys readable, want %d", len(rv), len(keys)-moved)
	}
	for i, k := range keys {
		if _, ok := rv[k]; ok == (before[i] == dead) {
			t.Fatalf("key %s readable %v, on the dead node %v", k, ok, before[i] == dead)
		}
	}
	// The moved keys can be written again, and land where ketama of the
	// three says.
	writeAll(t, s, keys)
	checkPlacement(t, live, keys, after)
	st := s.Stats()[dead]
	if !st.Ejected || st.Ejections != 1 || st.Failures < 2 {
		t.Fatalf("stats of the dead node: %+v", st)
	}
	t.Logf("moved %d of %d keys", moved, len(keys))
}

// startGocacheAt starts a gocache on addr (a port just freed), stopped when
// the test ends.
func startGocacheAt(t *testing.T, addr string) {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gocache.New(gocache.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// An ejected node that answers again after RetryTimeout is restored: its
// keys come back to it. While it is down, the retry fails and says so.
func TestServersRestore(t *testing.T) {
	cl := startCluster(t)
	ev := newEvents()
	var s *Servers
	s = newServers(t, cl.addrs, ServersOptions{FailureLimit: 1, RetryTimeout: 200 * time.Millisecond,
		OnEvent: func(e ServerEvent) {
			st := s.Stats()[0] // OnEvent may call the Servers' methods
			if st.Ejected != (e.Kind != ServerRestored) {
				t.Errorf("event %v with stats %+v", e.Kind, st)
			}
			ev.on(e)
		}})
	keys := testKeys(t, 2000)
	want := ketama(t, cl.addrs, keys)
	victim := cl.addrs[0]
	cl.gc[0].Close()
	var k0 string
	for i, k := range keys {
		if want[i] == 0 {
			k0 = k
			break
		}
	}
	if _, err := s.Set(0, k0, 0, 0, []byte("x")); err == nil {
		t.Fatal("Set on a closed node succeeded")
	}
	ev.wait(t, ServerEjected, victim, 5*time.Second)
	if got := s.Pick(k0); got == victim {
		t.Fatalf("ejected node still picked")
	}
	ev.wait(t, ServerRetryFailed, victim, 5*time.Second)

	startGocacheAt(t, victim)
	ev.wait(t, ServerRestored, victim, 5*time.Second)
	writeAll(t, s, keys)
	checkPlacement(t, cl.addrs, keys, want)
	if st := s.Stats()[0]; st.Ejected || st.Restores != 1 || st.Consecutive != 0 {
		t.Fatalf("stats after restore: %+v", st)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var kinds []ServerEventKind
	for _, e := range ev.evs {
		kinds = append(kinds, e.Kind)
	}
	if len(kinds) < 3 || kinds[0] != ServerEjected || kinds[len(kinds)-1] != ServerRestored {
		t.Fatalf("events %v, want ejected, retry failed..., restored", kinds)
	}
	for _, k := range kinds[1 : len(kinds)-1] {
		if k != ServerRetryFailed {
			t.Fatalf("events %v, want ejected, retry failed..., restored", kinds)
		}
	}
	t.Logf("events: %v", kinds)
}

// With ejection off (the default), a dead node's keys fail with a
// *NodeError naming it, and the other keys work.
func TestServersNoEject(t *testing.T) {
	cl := startCluster(t)
	ev := newEvents()
	s := newServers(t, cl.addrs, ServersOptions{OnEvent: ev.on})
	keys := testKeys(t, 2000)
	writeAll(t, s, keys)
	want := ketama(t, cl.addrs, keys)
	dead := len(cl.addrs) - 1
	cl.mc.Kill()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deadKeys := 0
	for i, k := range keys {
		res, err := s.Get(0, k)
		if want[i] != dead {
			if err != nil || string(res.Body) != string(value(k)) {
				t.Fatalf("Get %s on a live node: %v", k, err)
			}
			continue
		}
		deadKeys++
		var ne *NodeError
		if !errors.As(err, &ne) || ne.Addr != cl.mc.Addr {
			t.Fatalf("Get %s on the dead node: %v, want a *NodeError for %s", k, err, cl.mc.Addr)
		}
		if deadKeys == 1 {
			t.Logf("the dead node's error: %v", err)
		}
	}
	got, err := s.GetMulti(ctx, keys)
	var ke KeyErrors
	if !errors.As(err, &ke) || len(ke) != deadKeys || len(got) != len(keys)-deadKeys {
		t.Fatalf("GetMulti: %d found, %d failed (%v), want %d and %d", len(got), len(ke), err, len(keys)-deadKeys, deadKeys)
	}
	for k, err := range ke {
		var ne *NodeError
		if !errors.As(err, &ne) || ne.Addr != cl.mc.Addr {
			t.Fatalf("GetMulti's error for %s: %v", k, err)
		}
	}
	if err := s.GetBulk(0, keys, map[string]*gomemcached.MCResponse{}, nil); err == nil {
		t.Fatal("GetBulk with a dead node: no error")
	}
	st := s.Stats()
	if st[dead].Ejected || st[dead].Failures < uint64(deadKeys) {
		t.Fatalf("stats of the dead node: %+v", st[dead])
	}
	select {
	case e := <-ev.ch:
		t.Fatalf("event with ejection off: %+v", e)
	default:
	}
}

// With every node ejected, calls fail with ErrNoServers.
func TestServersAllEjected(t *testing.T) {
	_, addr := gocachetest.Start(t, gocache.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	s := newServers(t, []string{addr, gone}, ServersOptions{FailureLimit: 1, RetryTimeout: time.Minute})
	keys := testKeys(t, 200)
	for _, k := range keys {
		s.Set(0, k, 0, 0, []byte("x"))
	}
	if st := s.Stats(); !st[1].Ejected || st[0].Ejected {
		t.Fatalf("stats: %+v", st)
	}
	for _, k := range keys {
		if _, err := s.Set(0, k, 0, 0, []byte("x")); err != nil {
			t.Fatalf("Set with one node left: %v", err)
		}
	}
	s.eject(s.nodes[0], errors.New("test"))
	if _, err := s.Get(0, keys[0]); !errors.Is(err, ErrNoServers) {
		t.Fatalf("Get with every node ejected: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.GetMulti(ctx, keys); err == nil {
		t.Fatal("GetMulti with every node ejected: no error")
	}
}

// A node that stops answering (SIGSTOP) is ejected on timeouts, and
// restored once it answers again (SIGCONT).
func TestServersEjectStopped(t *testing.T) {
	cl := startCluster(t)
	ev := newEvents()
	s := newServers(t, cl.addrs, ServersOptions{
		Pool:         PoolOptions{Client: ClientOptions{ReadTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond}},
		FailureLimit: 1, RetryTimeout: 300 * time.Millisecond, OnEvent: ev.on,
	})
	keys := testKeys(t, 200)
	want := ketama(t, cl.addrs, keys)
	var k string
	for i := range keys {
		if want[i] == len(cl.addrs)-1 {
			k = keys[i]
			break
		}
	}
	if _, err := s.Set(0, k, 0, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := cl.mc.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			cl.mc.Continue()
		}
	}()
	_, err := s.Get(0, k)
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Get from a stopped node: %v, want a timeout", err)
	}
	ev.wait(t, ServerEjected, cl.mc.Addr, 5*time.Second)
	if _, err := s.Get(0, k); !gomemcached.IsNotFound(err) {
		t.Fatalf("Get after ejection: %v, want a miss on another node", err)
	}
	cl.mc.Continue()
	stopped = false
	ev.wait(t, ServerRestored, cl.mc.Addr, 5*time.Second)
	res, err := s.Get(0, k)
	if err != nil || string(res.Body) != "x" {
		t.Fatalf("Get after restore: %v, %v", res, err)
	}
}
