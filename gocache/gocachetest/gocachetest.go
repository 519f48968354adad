// Package gocachetest runs a gocache server in-process for tests, on a free
// loopback port, and stops it when the test ends.
package gocachetest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/gocache"
)

// Start starts a gocache server configured by cfg and returns it with its
// address. A nil cfg.Logger discards the server's logs.
func Start(t testing.TB, cfg gocache.Config) (*gocache.Server, string) {
	t.Helper()
	return start(t, cfg, (*gocache.Server).Serve)
}

// StartTLS is Start for a server that serves TLS with cfg.TLS.
func StartTLS(t testing.TB, cfg gocache.Config) (*gocache.Server, string) {
	t.Helper()
	if cfg.TLS == nil {
		t.Fatal("gocachetest: StartTLS without Config.TLS")
	}
	return start(t, cfg, (*gocache.Server).ServeTLS)
}

// StartOn is Start on the loopback address addr, for a server that must
// be at an address chosen before it starts (a cluster's config names
// them all).
func StartOn(t testing.TB, addr string, cfg gocache.Config) *gocache.Server {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("gocachetest: %v", err)
	}
	return serveOn(t, l, cfg, (*gocache.Server).Serve)
}

// StartCluster starts n servers, each configured by cfg(i, addrs) where
// addrs are the n servers' loopback addresses, all taken before the first
// starts, and returns them with their addresses.
func StartCluster(t testing.TB, n int, cfg func(i int, addrs []string) gocache.Config) ([]*gocache.Server, []string) {
	t.Helper()
	ls := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("gocachetest: %v", err)
		}
		ls[i], addrs[i] = l, l.Addr().String()
	}
	srvs := make([]*gocache.Server, n)
	for i, l := range ls {
		srvs[i] = serveOn(t, l, cfg(i, addrs), (*gocache.Server).Serve)
	}
	return srvs, addrs
}

func start(t testing.TB, cfg gocache.Config, serve func(*gocache.Server, net.Listener) error) (*gocache.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gocachetest: %v", err)
	}
	return serveOn(t, l, cfg, serve), l.Addr().String()
}

// serveOn serves l with a server configured by cfg until the test ends.
func serveOn(t testing.TB, l net.Listener, cfg gocache.Config, serve func(*gocache.Server, net.Listener) error) *gocache.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	srv, err := gocache.New(cfg)
	if err != nil {
		l.Close()
		t.Fatalf("gocachetest: %v", err)
	}
	done := make(chan struct{})
	go func() {
		serve(srv, l)
		close(done)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return srv
}
