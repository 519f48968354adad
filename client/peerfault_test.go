package memcached

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// Faults of a real memcached, where a fake server would only be our guess
// of them: a server that stops answering (SIGSTOP) and one that dies with
// calls in flight (SIGKILL).

// TestMemcachedStopsAnswering: while memcached is stopped, calls end at
// their deadline or with their context, and once it resumes the client
// is in step: the answers to the abandoned calls are discarded, and every
// later call gets its own.
func TestMemcachedStopsAnswering(t *testing.T) {
	mc := peer.MemcachedProcess(t, nil, "-t", "2")
	c := dialT(t, mc.Addr, ClientOptions{ReadTimeout: 300 * time.Millisecond})
	k := keyPrefix(t)
	for i := range 3 {
		ok(t)(c.Set(0, fmt.Sprint(k, i), 0, 0, []byte(fmt.Sprint("value ", i))))
	}
	if err := mc.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			mc.Continue()
		}
	}()

	start := time.Now()
	if _, err := c.Get(0, k+"0"); !isTimeoutErr(err) {
		t.Fatalf("Get from a stopped server: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("Get timed out after %v, want about 300ms", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, &gomemcached.MCRequest{Opcode: gomemcached.GET, Key: []byte(k + "1")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do from a stopped server: %v", err)
	}
	if !c.IsHealthy() {
		t.Fatal("timeouts made the client unhealthy")
	}

	if err := mc.Continue(); err != nil {
		t.Fatal(err)
	}
	stopped = false
	waitFor(t, "the abandoned answers", func() bool { return c.Pending() == 0 })
	for i := range 3 {
		res, err := c.Get(0, fmt.Sprint(k, i))
		if err != nil || string(res.Body) != fmt.Sprint("value ", i) {
			t.Fatalf("Get %d after the server resumed: %q, %v", i, res.Body, err)
		}
	}
}

// TestMemcachedDies: calls in flight when memcached dies all fail at once
// with a *ConnError, and later calls fail the same way without waiting.
func TestMemcachedDies(t *testing.T) {
	mc := peer.MemcachedProcess(t, nil, "-t", "2")
	c := dialT(t, mc.Addr)
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("v")))
	if err := mc.Stop(); err != nil {
		t.Fatal(err)
	}
	const calls = 16
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			_, err := c.Get(0, k) // no deadline: only the connection's end can answer
			errs <- err
		})
	}
	waitFor(t, "the calls in flight", func() bool { return c.Pending() == calls })
	start := time.Now()
	mc.Kill()
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waiters answered %v after the server died", d)
	}
	close(errs)
	for err := range errs {
		var ce *ConnError
		if !errors.As(err, &ce) {
			t.Errorf("a call in flight ended with %v, want a *ConnError", err)
		}
	}
	if c.IsHealthy() {
		t.Error("client healthy after its server died")
	}
	if _, err := c.Get(0, k); !errors.As(err, new(*ConnError)) {
		t.Errorf("Get after the server died: %v", err)
	}
}

// TestMemcachedDefaults: the package-level settings apply to clients made
// afterwards by the reference's entry points, Connect and Wrap, against a
// real memcached: the default read timeout ends a call to a stopped server,
// and the connection name carries the default prefix.
func TestMemcachedDefaults(t *testing.T) {
	mc := peer.MemcachedProcess(t, nil, "-t", "2")
	dial, write, name := DefaultDialTimeout, DefaultWriteTimeout, ConnName
	defer func() {
		SetDefaultTimeouts(dial, 0, write)
		SetConnectionName(name)
	}()
	SetDefaultTimeouts(2*time.Second, 300*time.Millisecond, 2*time.Second)
	SetDefaultDialTimeout(3 * time.Second)
	SetConnectionName("peer-test")

	c, err := Connect("tcp", mc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nc, err := net.DialTimeout("tcp", mc.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := Wrap(nc)
	defer w.Close()
	k := keyPrefix(t) + "k"
	ok(t)(c.Set(0, k, 0, 0, []byte("v")))
	if res := ok(t)(w.Get(0, k)); string(res.Body) != "v" {
		t.Fatalf("Get through Wrap: %q", res.Body)
	}
	if !strings.HasPrefix(c.GetConnName(), "peer-test:") {
		t.Errorf("connection name %q", c.GetConnName())
	}

	if err := mc.Stop(); err != nil {
		t.Fatal(err)
	}
	defer mc.Continue()
	for _, cl := range []*Client{c, w} {
		start := time.Now()
		if _, err := cl.Get(0, k); !isTimeoutErr(err) {
			t.Errorf("Get from a stopped server: %v", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
			t.Errorf("Get timed out after %v, want about 300ms", d)
		}
	}
}
