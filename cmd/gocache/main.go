// Command gocache is a memcached-compatible cache server speaking the binary
// protocol. It takes memcached's flags where they apply:
//
//	gocache                     # 127.0.0.1:11211, 64 MiB, memcached's defaults
//	gocache -p 11311 -m 1024 -t 4 -c 4096 -I 2m -vv
//	gocache -s /tmp/gocache.sock
//	gocache -S -Y users.txt -o buckets=travel,beer-sample
//	gocache -Z -o ssl_chain_cert=cert.pem,ssl_key=key.pem -l notls:127.0.0.1:11211,127.0.0.1:11212
//
// Run gocache -h for the list.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/f8e615c8/gomemcached/cache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/replication"
	"github.com/f8e615c8/gomemcached/sasl"
	memcached "github.com/f8e615c8/gomemcached/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("gocache", flag.ContinueOnError) }

// options are the parsed command line.
type options struct {
	port, udpPort         int
	listen, socket, umask string
	memoryMiB             string
	noEvict               bool
	maxConns, threads     int
	itemSize              string
	verbose, veryVerbose  bool
	help, version         bool
	sasl, tls             bool
	authFile, user        string
	idle                  time.Duration
	loops                 int
	extended              []string // -o, possibly repeated
}

// flags defines the options on fs, with memcached's short and long names.
func flags(fs *flag.FlagSet) *options {
	o := &options{}
	intVar := func(p *int, short, long string, def int, usage string) {
		fs.IntVar(p, short, def, usage)
		fs.IntVar(p, long, def, "same as -"+short)
	}
	strVar := func(p *string, short, long, def, usage string) {
		fs.StringVar(p, short, def, usage)
		fs.StringVar(p, long, def, "same as -"+short)
	}
	boolVar := func(p *bool, short, long string, usage string) {
		fs.BoolVar(p, short, false, usage)
		fs.BoolVar(p, long, false, "same as -"+short)
	}
	intVar(&o.port, "p", "port", 11211, "TCP port to listen on")
	intVar(&o.udpPort, "U", "udp-port", 0, "UDP port: only 0 (off) is supported")
	strVar(&o.listen, "l", "listen", "127.0.0.1", "interfaces to listen on, comma-separated, each [notls:]host[:port]")
	strVar(&o.socket, "s", "unix-socket", "", "unix socket path to listen on (disables TCP)")
	strVar(&o.umask, "a", "unix-mask", "0700", "access mask for the unix socket, in octal")
	strVar(&o.memoryMiB, "m", "memory-limit", "64", "item memory in megabytes (suffixes k, m, g accepted)")
	boolVar(&o.noEvict, "M", "disable-evictions", "return an error when memory is exhausted instead of evicting")
	intVar(&o.maxConns, "c", "conn-limit", 1024, "max simultaneous connections")
	intVar(&o.threads, "t", "threads", 4, "number of threads (GOMAXPROCS)")
	strVar(&o.itemSize, "I", "max-item-size", "1m", "max item size (suffixes k, m)")
	boolVar(&o.verbose, "v", "verbose", "verbose: log connection errors")
	fs.BoolVar(&o.veryVerbose, "vv", false, "very verbose: also log connection events")
	boolVar(&o.help, "h", "help", "print this help and exit")
	boolVar(&o.version, "V", "version", "print the version and exit")
	boolVar(&o.sasl, "S", "enable-sasl", "require SASL authentication (users from -Y)")
	strVar(&o.authFile, "Y", "auth-file", "", "file of user:password lines, enabling SASL; \"!buckets user a,b\" lines limit users to buckets")
	boolVar(&o.tls, "Z", "enable-ssl", "serve TLS on every -l listener not prefixed notls:")
	extended := func(v string) error { o.extended = append(o.extended, v); return nil }
	fs.Func("o", "comma-separated options: ssl_chain_cert=FILE, ssl_key=FILE, ssl_ca_cert=FILE,\n"+
		"ssl_verify_mode=0-3, ssl_min_version=tlsv1.2|tlsv1.3, buckets=a,b (named buckets),\n"+
		"vbuckets=N (1024), tombstone_ttl=SECONDS (600; 0 keeps none), tombstones=N (100000),\n"+
		"collections=FILE (a collections manifest, JSON),\n"+
		"replica_of=HOST:PORT (every vbucket a replica of that gocache's, fed over DCP,\n"+
		"read with GET_REPLICA, taking writes once SET_VBUCKET makes it active),\n"+
		"replica_reads=true (plain GETs read replica vbuckets too)", extended)
	fs.Func("extended", "same as -o", extended)
	strVar(&o.user, "u", "user", "", "accepted for compatibility; gocache does not change user")
	fs.DurationVar(&o.idle, "idle-timeout", 0, "close connections idle this long (0: never)")
	fs.IntVar(&o.loops, "event-loops", -1, "epoll loops serving plain listeners on Linux (-1: one per thread, 0: a goroutine per connection)")
	return o
}

// run is main without the process: it returns the exit status. ready, if
// not nil, receives the listener's address once serving.
func run(args []string, stdout, stderr io.Writer, ready chan<- net.Addr) int {
	fs := newFlagSet()
	fs.SetOutput(stderr)
	o := flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.help {
		fs.SetOutput(stdout)
		fmt.Fprintln(stdout, "gocache "+gocache.Version+": a memcached-compatible cache server (binary protocol).")
		fmt.Fprintln(stdout, "Usage: gocache [flags]")
		fs.PrintDefaults()
		return 0
	}
	if o.version {
		fmt.Fprintln(stdout, "gocache "+gocache.Version)
		return 0
	}
	cfg, listens, err := configure(o)
	if err != nil {
		fmt.Fprintln(stderr, "gocache:", err)
		return 1
	}
	runtime.GOMAXPROCS(o.threads)
	if os.Getenv("GOMEMLIMIT") == "" {
		// Collect garbage harder as the heap nears the item memory, so
		// that the process stays near -m rather than twice it.
		debug.SetMemoryLimit(memoryLimit(cfg.Cache.MaxBytes * int64(max(1, len(cfg.Buckets)))))
	}
	log := cfg.Logger

	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, spec := range listens {
		l, err := memcached.Listen(spec.addr)
		if err != nil {
			closeAll()
			fmt.Fprintln(stderr, "gocache:", err)
			return 1
		}
		ls = append(ls, l)
	}
	if o.socket != "" {
		mask, _ := strconv.ParseUint(o.umask, 8, 32)
		os.Chmod(o.socket, os.FileMode(0o777&^mask))
		defer os.Remove(o.socket)
	}
	srv, err := gocache.New(cfg)
	if err != nil {
		closeAll()
		fmt.Fprintln(stderr, "gocache:", err)
		return 1
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	done := make(chan error, len(ls))
	for i, l := range ls {
		serve := srv.Serve
		if listens[i].tls {
			serve = srv.ServeTLS
		}
		go func() { done <- serve(l) }()
		log.Info("gocache serving", "addr", l.Addr().String(), "tls", listens[i].tls,
			"memory_mib", cfg.Cache.MaxBytes>>20, "threads", o.threads, "max_conns", cfg.MaxConns,
			"buckets", len(cfg.Buckets), "sasl", cfg.Users != nil, "auth_required", cfg.RequireAuth)
	}
	if ready != nil {
		ready <- ls[0].Addr()
	}
	select {
	case err := <-done:
		if !errors.Is(err, memcached.ErrServerClosed) {
			fmt.Fprintln(stderr, "gocache:", err)
			return 1
		}
	case sig := <-stop:
		log.Info("shutting down", "signal", sig.String())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	return 0
}

// listenSpec is one listener: its address and whether it serves TLS.
type listenSpec struct {
	addr string
	tls  bool
}

// configure checks the options and turns them into a server configuration
// and the listeners.
func configure(o *options) (gocache.Config, []listenSpec, error) {
	var cfg gocache.Config
	if o.udpPort != 0 {
		return cfg, nil, errors.New("-U: UDP is not supported; only -U 0")
	}
	mem, err := parseSize(o.memoryMiB, 1<<20)
	if err != nil || mem <= 0 {
		return cfg, nil, fmt.Errorf("-m %q: want a size in megabytes", o.memoryMiB)
	}
	item, err := parseSize(o.itemSize, 1)
	if err != nil {
		return cfg, nil, fmt.Errorf("-I %q: want a size such as 1m or 512k", o.itemSize)
	}
	switch {
	case item < 1024:
		return cfg, nil, errors.New("-I: item size must be at least 1k")
	case item > 1<<30:
		return cfg, nil, errors.New("-I: item size must be at most 1g")
	case item > mem/2:
		return cfg, nil, errors.New("-I: item size must be at most half of -m")
	}
	if o.threads < 1 || o.maxConns < 1 {
		return cfg, nil, errors.New("-t and -c must be at least 1")
	}
	if _, err := strconv.ParseUint(o.umask, 8, 32); err != nil {
		return cfg, nil, fmt.Errorf("-a %q: want an octal mask", o.umask)
	}
	ext, err := parseExtended(o.extended)
	if err != nil {
		return cfg, nil, err
	}
	if o.sasl && o.authFile == "" {
		return cfg, nil, errors.New("-S needs -Y FILE of user:password lines (gocache does not read cyrus sasldb)")
	}
	var users *sasl.Store
	if o.authFile != "" {
		if users, err = sasl.LoadFile(o.authFile); err != nil {
			return cfg, nil, fmt.Errorf("-Y: %w", err)
		}
	}
	var tlsConfig *tls.Config
	if o.tls {
		if tlsConfig, err = tlsSettings(ext); err != nil {
			return cfg, nil, err
		}
	} else if ext.chain != "" || ext.key != "" {
		return cfg, nil, errors.New("-o ssl_*: TLS needs -Z")
	}
	level := slog.LevelWarn
	switch {
	case o.veryVerbose:
		level = slog.LevelDebug
	case o.verbose:
		level = slog.LevelInfo
	}
	verbosity := 0
	if o.verbose {
		verbosity = 1
	}
	if o.veryVerbose {
		verbosity = 2
	}
	var listens []listenSpec
	for _, entry := range strings.Split(o.listen, ",") {
		spec := listenSpec{tls: o.tls}
		if rest, ok := strings.CutPrefix(entry, "notls:"); ok {
			entry, spec.tls = rest, false
		}
		host, port := entry, strconv.Itoa(o.port)
		if h, p, err := net.SplitHostPort(entry); err == nil {
			host, port = h, p
		}
		spec.addr = net.JoinHostPort(host, port)
		listens = append(listens, spec)
	}
	settings := map[string]string{"tcpport": strconv.Itoa(o.port), "udpport": "0", "interface": o.listen,
		"domain_socket": "NULL", "umask": o.umask}
	if o.socket != "" {
		listens = []listenSpec{{addr: "unix:" + o.socket}}
		settings["domain_socket"] = o.socket
		settings["tcpport"] = "0"
	}
	cfg = gocache.Config{
		Cache: cache.Config{MaxBytes: mem, MaxItemSize: int(item), NoEvict: o.noEvict,
			VBuckets: ext.vbuckets, TombstoneTTL: ext.tombstoneTTL, MaxTombstones: ext.tombstones},
		Manifest:    ext.manifest,
		MaxConns:    o.maxConns,
		Threads:     o.threads,
		IdleTimeout: o.idle,
		Verbosity:   verbosity,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Settings:    settings,
		Buckets:     ext.buckets,
		Users:       users,
		RequireAuth: o.sasl,
		TLS:         tlsConfig,
		EventLoops:  o.loops,
	}
	cfg.ReplicaReads = ext.replicaReads
	if ext.replicaOf != "" {
		cfg.Replicator = &replication.Replicator{Primary: ext.replicaOf}
	}
	if o.loops < 0 {
		cfg.EventLoops = o.threads
	}
	return cfg, listens, nil
}

// extendedOptions are the -o settings gocache knows.
type extendedOptions struct {
	chain, key, ca string
	verifyMode     int
	minVersion     uint16
	buckets        []string
	vbuckets       int
	tombstoneTTL   time.Duration // 0: gocache's default; negative: none
	tombstones     int
	manifest       []byte
	replicaOf      string
	replicaReads   bool
}

// parseExtended reads -o values: comma-separated key=value pairs; the
// bucket list of buckets= continues over the items without '=' that
// follow it, so that -o buckets=a,b works.
func parseExtended(values []string) (extendedOptions, error) {
	var e extendedOptions
	e.minVersion = tls.VersionTLS12
	inBuckets := false
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			key, val, hasValue := strings.Cut(item, "=")
			if !hasValue {
				if inBuckets && item != "" {
					e.buckets = append(e.buckets, item)
					continue
				}
				return e, fmt.Errorf("-o %q: want key=value", item)
			}
			inBuckets = false
			switch key {
			case "ssl_chain_cert":
				e.chain = val
			case "ssl_key":
				e.key = val
			case "ssl_ca_cert":
				e.ca = val
			case "ssl_verify_mode":
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 || n > 3 {
					return e, fmt.Errorf("-o ssl_verify_mode=%q: want 0 to 3", val)
				}
				e.verifyMode = n
			case "ssl_min_version":
				switch val {
				case "tlsv1.2":
					e.minVersion = tls.VersionTLS12
				case "tlsv1.3":
					e.minVersion = tls.VersionTLS13
				default:
					return e, fmt.Errorf("-o ssl_min_version=%q: want tlsv1.2 or tlsv1.3", val)
				}
			case "vbuckets":
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 || n > cache.MaxVBuckets {
					return e, fmt.Errorf("-o vbuckets=%q: want 1 to %d", val, cache.MaxVBuckets)
				}
				e.vbuckets = n
			case "tombstone_ttl":
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					return e, fmt.Errorf("-o tombstone_ttl=%q: want seconds, 0 for none", val)
				}
				e.tombstoneTTL = time.Duration(n) * time.Second
				if n == 0 {
					e.tombstoneTTL = -1
				}
			case "tombstones":
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 {
					return e, fmt.Errorf("-o tombstones=%q: want a count of 1 or more", val)
				}
				e.tombstones = n
			case "collections":
				data, err := os.ReadFile(val)
				if err != nil {
					return e, fmt.Errorf("-o collections: %w", err)
				}
				e.manifest = data
			case "replica_of":
				if _, _, err := net.SplitHostPort(val); err != nil {
					return e, fmt.Errorf("-o replica_of=%q: want host:port", val)
				}
				e.replicaOf = val
			case "replica_reads":
				b, err := strconv.ParseBool(val)
				if err != nil {
					return e, fmt.Errorf("-o replica_reads=%q: want true or false", val)
				}
				e.replicaReads = b
			case "buckets":
				inBuckets = true
				if val != "" {
					e.buckets = append(e.buckets, val)
				}
			default:
				return e, fmt.Errorf("-o %s: unknown option", key)
			}
		}
	}
	return e, nil
}

// tlsSettings builds the TLS configuration of -Z from the -o settings.
func tlsSettings(e extendedOptions) (*tls.Config, error) {
	if e.chain == "" || e.key == "" {
		return nil, errors.New("-Z needs -o ssl_chain_cert=FILE,ssl_key=FILE")
	}
	cert, err := tls.LoadX509KeyPair(e.chain, e.key)
	if err != nil {
		return nil, fmt.Errorf("-o ssl_chain_cert/ssl_key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: e.minVersion}
	if e.ca != "" {
		pem, err := os.ReadFile(e.ca)
		if err != nil {
			return nil, fmt.Errorf("-o ssl_ca_cert: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("-o ssl_ca_cert: no certificate in the file")
		}
	}
	switch e.verifyMode {
	case 1:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case 2, 3:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if cfg.ClientAuth != tls.NoClientCert && cfg.ClientCAs == nil {
		return nil, errors.New("-o ssl_verify_mode needs ssl_ca_cert")
	}
	return cfg, nil
}

// memoryLimit is the Go heap limit for an item memory of maxBytes: a
// quarter more, for buffers and garbage, and 64 MiB for the rest.
func memoryLimit(maxBytes int64) int64 { return maxBytes + maxBytes/4 + 64<<20 }

// parseSize reads a number with an optional k, m or g suffix; a bare
// number is in units.
func parseSize(s string, units int64) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := units
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k':
			mult, s = 1<<10, s[:n-1]
		case 'm':
			mult, s = 1<<20, s[:n-1]
		case 'g':
			mult, s = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}
