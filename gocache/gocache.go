// Package gocache is a memcached-compatible cache server: memcached's
// binary protocol, served by the server package from a cache.Cache, with
// memcached's statistics and limits. cmd/gocache runs it from the command
// line; programs and tests can run it in-process:
//
//	srv, _ := gocache.New(gocache.Config{})
//	l, _ := net.Listen("tcp", "127.0.0.1:0")
//	go srv.Serve(l)
//	defer srv.Close()
package gocache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/sasl"
	memcached "github.com/f8e615c8/gomemcached/server"
)

// Version is the version gocache reports.
const Version = "1.6.18-gocache"

// Config configures a Server. The zero value is memcached's defaults.
type Config struct {
	// Cache configures the store: memory limit (-m), eviction (-M), item
	// size (-I), vbuckets. Unlike a bare cache, a bucket keeps tombstones
	// by default (DefaultTombstoneTTL, DefaultMaxTombstones), so that
	// deletions can be read back with GET_META and streamed; a negative
	// TombstoneTTL keeps none.
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
	// Buckets names the buckets, each a store configured by Cache; none
	// means one bucket, DefaultBucket. Connections start in DefaultBucket
	// when it exists, else in no bucket (see SELECT_BUCKET).
	Buckets []string
	// Users, if set, enables SASL authentication (SASL_LIST_MECHS,
	// SASL_AUTH, SASL_STEP) against these users; without it the commands
	// are unknown, as in memcached without -S.
	Users *sasl.Store
	// RequireAuth answers AUTH_ERROR to every command but authentication,
	// HELLO, VERSION, NOOP, QUIT and GET_ERROR_MAP until the connection
	// has authenticated (memcached's -S). It needs Users. Without it,
	// authentication is optional: a connection that does not authenticate
	// may use every bucket, and the bucket limits of Users bind only the
	// users who log in. Set it to make those limits hold.
	RequireAuth bool
	// TLS configures the connections served by ServeTLS.
	TLS *tls.Config
	// Manifest is the collections manifest every bucket starts with, as
	// Couchbase writes one (JSON); nil means the default collection only.
	// COLLECTIONS_SET_MANIFEST replaces it at run time.
	Manifest []byte
	// EventLoops serves plain listeners with epoll loops on Linux (see
	// server.Server.EventLoops): -1 one per GOMAXPROCS, 0 a goroutine per
	// connection.
	EventLoops int
	// Protocol fixes the protocol every connection speaks (memcached's
	// -B: ascii, binary or auto); the zero value chooses by each
	// connection's first byte, binary or text and meta (text.go).
	Protocol memcached.Protocol
	// DisableFlush refuses flush_all (memcached's -F: the text protocol
	// answers "CLIENT_ERROR flush_all not allowed"); "stats settings"
	// reports flush_enabled no.
	DisableFlush bool
	// DisableCAS stores every item with CAS 0 (memcached's -C);
	// "stats settings" reports cas_enabled no.
	DisableCAS bool
	// ShutdownCommand enables the text protocol's "shutdown" command
	// (memcached's -A); without it memcached answers
	// "ERROR: shutdown not enabled".
	ShutdownCommand bool
	// ReqsPerEvent is memcached's -R: the most commands one connection
	// has served from one read before the others get their turn; 0 means
	// memcached's default, 20. "stats settings" reports it as
	// reqs_per_event.
	ReqsPerEvent int
	// ReadBufMemLimit is memcached's -o read_buf_mem_limit, in bytes: the
	// memory all connections' read and response buffers may take; over
	// it a get answers "SERVER_ERROR out of memory writing get response"
	// and counts response_obj_oom. 0 means no limit (memcached's default).
	ReadBufMemLimit int64
	// Replicator, if set, feeds this server's buckets from a primary
	// (replica.go): every vbucket starts as an empty replica, read with
	// GET_REPLICA, refusing writes until SET_VBUCKET makes it active, and
	// New starts Replicator.Replicate on each bucket, which Close and
	// Shutdown stop. Package gocache/replication has one that streams
	// over DCP from another gocache, whose buckets, vbucket count and
	// Manifest should be this server's.
	Replicator Replicator
	// In a Cluster, the vbuckets start in the map's states instead, and
	// the Replicator feeds the replica vbuckets, each from the node the
	// map names active (ReplicaBucket.Source).
	//
	// ReplicaReads makes GET, GETQ, GETK and GETKQ read a replica
	// vbucket as GET_REPLICA does, rather than answer NOT_MY_VBUCKET.
	ReplicaReads bool
	// Cluster, if set, is the static cluster this node is part of
	// (cluster.go): GET_CLUSTER_CONFIG answers each bucket's terse
	// config, NOT_MY_VBUCKET answers carry it, SET_VBUCKET updates it and
	// pushes it to the connections that asked (HELLO Duplex and
	// ClustermapChangeNotification); SET_CLUSTER_CONFIG replaces it
	// (clusterset.go), after which SET_VBUCKET leaves it alone. Each bucket's vbuckets start in the map's states
	// for this node: active, replica, or dead where it holds no copy. Its
	// map must have a row per vbucket.
	Cluster *ClusterConfig
}

// Tombstone defaults of a bucket (see Config.Cache).
const (
	DefaultTombstoneTTL  = 10 * time.Minute
	DefaultMaxTombstones = 100000
)

// Server is a gocache server. Create it with New.
type Server struct {
	srv     *memcached.Server
	buckets map[string]*bucket
	cfg     Config // with defaults filled in
	started time.Time
	version []byte

	verbosity atomic.Uint32
	cmdFlush  atomic.Uint64
	cmdTouch  atomic.Uint64
	authCmds  atomic.Uint64
	authErrs  atomic.Uint64
	// text holds the counters only the text protocol moves (text.go).
	text textCounts
	// crawl is the LRU crawler's state (crawler.go), made on first use.
	crawlOnce sync.Once
	crawl     *crawlerState
	// cluster is the cluster map (cluster.go), nil without Config.Cluster.
	cluster *clusterState
}

// New returns a Server configured by cfg, with new, empty buckets. It
// fails when RequireAuth is set without Users, a bucket is named twice, or
// a bucket's memory would not take the system events of Manifest's
// collections.
func New(cfg Config) (*Server, error) {
	if cfg.RequireAuth && cfg.Users == nil {
		return nil, errors.New("gocache: RequireAuth needs Users")
	}
	if len(cfg.Buckets) == 0 {
		cfg.Buckets = []string{DefaultBucket}
	}
	if cfg.Threads <= 0 {
		cfg.Threads = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	switch {
	case cfg.Cache.TombstoneTTL == 0:
		cfg.Cache.TombstoneTTL = DefaultTombstoneTTL
	case cfg.Cache.TombstoneTTL < 0:
		cfg.Cache.TombstoneTTL = 0
	}
	if cfg.Cache.MaxTombstones == 0 {
		cfg.Cache.MaxTombstones = DefaultMaxTombstones
	}
	var manifest *manifest
	if cfg.Manifest != nil {
		var err error
		if manifest, err = parseManifest(cfg.Manifest); err != nil {
			return nil, err
		}
	}
	s := &Server{
		buckets: make(map[string]*bucket, len(cfg.Buckets)),
		cfg:     cfg,
		started: time.Now(),
		version: []byte(Version),
	}
	for _, name := range cfg.Buckets {
		if name == "" || len(name) > maxKeyLen || name == noBucket {
			return nil, fmt.Errorf("gocache: bad bucket name %q", name)
		}
		if _, dup := s.buckets[name]; dup {
			return nil, fmt.Errorf("gocache: bucket %q named twice", name)
		}
		b, err := newBucket(name, cfg.Cache, manifest, s.logger())
		if err != nil {
			for _, b := range s.buckets {
				b.cache.Close()
			}
			return nil, err
		}
		s.buckets[name] = b
	}
	cluster, err := newClusterState(cfg.Cluster, s.buckets, cfg.Replicator == nil || cfg.Cluster != nil)
	if err != nil {
		for _, b := range s.buckets {
			b.cache.Close()
		}
		return nil, err
	}
	s.cluster = cluster
	s.verbosity.Store(uint32(cfg.Verbosity))
	if cfg.Replicator != nil {
		s.startReplication()
	}
	start := s.buckets[DefaultBucket]
	s.srv = &memcached.Server{
		Handler:     newHandler(s),
		MaxConns:    cfg.MaxConns,
		IdleTimeout: cfg.IdleTimeout,
		Logger:      cfg.Logger,
		TLSConfig:   cfg.TLS,
		EventLoops:  cfg.EventLoops,
		Protocol:    cfg.Protocol,
		ConnContext: func(c *memcached.Conn) { c.Data = &connState{bucket: start} },
		// memcached's -R and its answer to a connection over -c.
		ReqsPerEvent:     orDefault(cfg.ReqsPerEvent, 20),
		ConnLimitMessage: []byte("ERROR Too many open connections\r\n"),
	}
	s.srv.ResponseLimit, s.srv.ReadBufferLimit = connMemLimits(cfg.ReadBufMemLimit, cfg.Threads)
	// A text data block longer than an item can be is skipped unread.
	s.srv.TextMaxValueSize = s.itemSizeMax()
	return s, nil
}

// Cache returns the store of the named bucket, nil if there is none. Its
// keys carry their collection ids (cache.Config.Collections): the key a
// memcached client stores as "k" is cache.CollectionKey(nil, 0, "k").
func (s *Server) Cache(bucket string) *cache.Cache {
	if b, ok := s.buckets[bucket]; ok {
		return b.cache
	}
	return nil
}

func (s *Server) logger() *slog.Logger {
	if s.cfg.Logger != nil {
		return s.cfg.Logger
	}
	return slog.Default()
}

// Serve serves connections from l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error { return s.srv.Serve(l) }

// ServeTLS serves TLS connections from l with Config.TLS.
func (s *Server) ServeTLS(l net.Listener) error { return s.srv.ServeTLS(l) }

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
	s.closeBuckets()
	return err
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.closeBuckets()
	return err
}

func (s *Server) closeBuckets() {
	s.stopReplication()
	for _, b := range s.buckets {
		b.cache.Close()
	}
}

var pid = os.Getpid()
