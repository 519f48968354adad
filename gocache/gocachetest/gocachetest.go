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

func start(t testing.TB, cfg gocache.Config, serve func(*gocache.Server, net.Listener) error) (*gocache.Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gocachetest: %v", err)
	}
	srv, err := gocache.New(cfg)
	if err != nil {
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
	return srv, l.Addr().String()
}
