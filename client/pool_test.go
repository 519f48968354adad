package memcached

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// A shared connection stays shared after a call with a status that
// IsHealthy counts as fatal: other goroutines' calls are in flight on it.
func TestPoolSharedSurvivesFatalStatus(t *testing.T) {
	addr := peer.Memcached(t)
	p := NewPool("tcp", addr, PoolOptions{MaxShared: 1})
	defer p.Close()
	ctx := context.Background()
	c, err := p.Shared(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("text")))
	if _, err := c.Incr(0, k, 1, 0, 0); err == nil || c.IsHealthy() {
		t.Fatalf("Incr of text: %v, healthy %v", err, c.IsHealthy())
	}
	if again, err := p.Shared(ctx); err != nil || again != c {
		t.Errorf("Shared after a fatal status: %p, %v; want %p", again, err, c)
	}
}

// Idle connections are closed after IdleTimeout; shared ones beyond the
// first too.
func TestPoolIdleTimeout(t *testing.T) {
	addr := peer.Memcached(t)
	p := NewPool("tcp", addr, PoolOptions{IdleTimeout: 250 * time.Millisecond, MaxShared: 3, SharedDepth: 1, MaxIdle: 3})
	defer p.Close()
	ctx := context.Background()
	// Load the shared connections so that the pool opens several.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				p.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP})
			}
		})
	}
	wg.Wait()
	// Then lend and take back three, which starts their idle time (the
	// load above may take longer than IdleTimeout under the race
	// detector).
	var lent []*Client
	for range 3 {
		c, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lent = append(lent, c)
	}
	for _, c := range lent {
		p.Put(c)
	}
	if s := p.Stats(); s.Idle != 3 || s.Shared < 1 {
		t.Fatalf("before the timeout: %+v", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := p.Stats()
		if s.Idle == 0 && s.Shared == 1 && s.Open == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the timeout: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := p.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.NOOP}); err != nil {
		t.Errorf("the first shared connection was closed: %v", err)
	}
}

// Get checks an idle connection before lending it: a dead one is
// replaced.
func TestPoolHealthCheck(t *testing.T) {
	addr := peer.Memcached(t)
	p := NewPool("tcp", addr, PoolOptions{PingAfter: time.Millisecond})
	defer p.Close()
	ctx := context.Background()
	c, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Put(c)
	c.Conn().Close() // the connection dies while idle
	time.Sleep(5 * time.Millisecond)
	d, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Put(d)
	if d == c {
		t.Error("a dead connection was lent")
	}
	alive(t, d)
}
