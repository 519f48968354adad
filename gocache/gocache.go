// Package gocache is a memcached-compatible cache server: memcached's
// binary protocol, served by the server package from a cache.Cache, with
// memcached's statistics and limits. cmd/gocache runs it from the command
// line; programs and tests can run it in-process:
//
//	srv := gocache.New(gocache.Config{})
//	l, _ := net.Listen("tcp", "127.0.0.1:0")
//	go srv.Serve(l)
//	defer srv.Close()
package gocache

import (
	"context"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// Version is the version gocache reports.
const Version = "1.6.18-gocache"

// Config configures a Server. The zero value is memcached's defaults.
type Config struct {
	// Cache configures the store: memory limit (-m), eviction (-M), item
	// size (-I).
	Cache cache.Config
	// MaxConns is the connection limit (-c); 0 means 1024.
	MaxConns int
	// Threads is reported in the statistics (-t); 0 means GOMAXPROCS.
	Threads int
	// IdleTimeout closes idle connections; 0 means never (memcached's
	// default).
	IdleTimeout time.Duration
	// Verbosity is the initial verbosity level (-v).
	Verbosity int
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Settings are extra values for "stats settings" (tcpport,
	// domain_socket, ...), as cmd/gocache knows them.
	Settings map[string]string
}

// Server is a gocache server. Create it with New.
type Server struct {
	srv      *memcached.Server
	cache    *cache.Cache
	cfg      Config
	started  time.Time
	version  []byte
	threads  int
	maxConns int

	verbosity atomic.Uint32
	cmdFlush  atomic.Uint64
	cmdTouch  atomic.Uint64
	authCmds  atomic.Uint64
	authErrs  atomic.Uint64
}

// New returns a Server configured by cfg, with a new cache.
func New(cfg Config) *Server {
	s := &Server{
		cache:    cache.New(cfg.Cache),
		cfg:      cfg,
		started:  time.Now(),
		version:  []byte(Version),
		threads:  cfg.Threads,
		maxConns: cfg.MaxConns,
	}
	if s.threads <= 0 {
		s.threads = runtime.GOMAXPROCS(0)
	}
	if s.maxConns <= 0 {
		s.maxConns = 1024
	}
	s.verbosity.Store(uint32(cfg.Verbosity))
	s.srv = &memcached.Server{
		Handler:     newHandler(s),
		MaxConns:    s.maxConns,
		IdleTimeout: cfg.IdleTimeout,
		Logger:      cfg.Logger,
	}
	return s
}

// Cache returns the server's store.
func (s *Server) Cache() *cache.Cache { return s.cache }

// Serve serves connections from l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error { return s.srv.Serve(l) }

// ListenAndServe listens on addr ("host:port", or a unix socket path) and
// serves.
func (s *Server) ListenAndServe(addr string) error {
	l, err := memcached.Listen(addr)
	if err != nil {
		return err
	}
	return s.srv.Serve(l)
}

// Shutdown stops accepting, lets connections finish the requests they have
// sent and closes them (see server.Server.Shutdown), then stops the cache's
// sweeper.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.cache.Close()
	return err
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.cache.Close()
	return err
}

var pid = os.Getpid()
