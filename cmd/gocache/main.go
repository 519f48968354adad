// Command gocache is a memcached-compatible cache server speaking the binary
// protocol. It takes memcached's flags where they apply:
//
//	gocache                     # 127.0.0.1:11211, 64 MiB, memcached's defaults
//	gocache -p 11311 -m 1024 -t 4 -c 4096 -I 2m -vv
//	gocache -s /tmp/gocache.sock
//
// Run gocache -h for the list.
package main

import (
	"context"
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
	sasl                  bool
	authFile, user        string
	idle                  time.Duration
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
	strVar(&o.listen, "l", "listen", "127.0.0.1", "interface to listen on")
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
	boolVar(&o.sasl, "S", "enable-sasl", "require SASL authentication")
	strVar(&o.authFile, "Y", "auth-file", "", "file of user:password lines for authentication")
	strVar(&o.user, "u", "user", "", "accepted for compatibility; gocache does not change user")
	fs.DurationVar(&o.idle, "idle-timeout", 0, "close connections idle this long (0: never)")
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
	cfg, addr, err := configure(o)
	if err != nil {
		fmt.Fprintln(stderr, "gocache:", err)
		return 1
	}
	runtime.GOMAXPROCS(o.threads)
	if os.Getenv("GOMEMLIMIT") == "" {
		// Collect garbage harder as the heap nears the item memory, so
		// that the process stays near -m rather than twice it.
		debug.SetMemoryLimit(memoryLimit(cfg.Cache.MaxBytes))
	}
	log := cfg.Logger

	l, err := memcached.Listen(addr)
	if err != nil {
		fmt.Fprintln(stderr, "gocache:", err)
		return 1
	}
	if o.socket != "" {
		mask, _ := strconv.ParseUint(o.umask, 8, 32)
		os.Chmod(o.socket, os.FileMode(0o777&^mask))
		defer os.Remove(o.socket)
	}
	srv := gocache.New(cfg)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	log.Info("gocache serving", "addr", l.Addr().String(), "memory_mib", cfg.Cache.MaxBytes>>20,
		"threads", o.threads, "max_conns", cfg.MaxConns)
	if ready != nil {
		ready <- l.Addr()
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

// configure checks the options and turns them into a server configuration
// and a listen address.
func configure(o *options) (gocache.Config, string, error) {
	var cfg gocache.Config
	if o.udpPort != 0 {
		return cfg, "", errors.New("-U: UDP is not supported; only -U 0")
	}
	if o.sasl {
		return cfg, "", errors.New("-S: SASL authentication is not available in this build yet")
	}
	if o.authFile != "" {
		return cfg, "", errors.New("-Y: authentication is not available in this build yet")
	}
	mem, err := parseSize(o.memoryMiB, 1<<20)
	if err != nil || mem <= 0 {
		return cfg, "", fmt.Errorf("-m %q: want a size in megabytes", o.memoryMiB)
	}
	item, err := parseSize(o.itemSize, 1)
	if err != nil {
		return cfg, "", fmt.Errorf("-I %q: want a size such as 1m or 512k", o.itemSize)
	}
	switch {
	case item < 1024:
		return cfg, "", errors.New("-I: item size must be at least 1k")
	case item > 1<<30:
		return cfg, "", errors.New("-I: item size must be at most 1g")
	case item > mem/2:
		return cfg, "", errors.New("-I: item size must be at most half of -m")
	}
	if o.threads < 1 || o.maxConns < 1 {
		return cfg, "", errors.New("-t and -c must be at least 1")
	}
	if _, err := strconv.ParseUint(o.umask, 8, 32); err != nil {
		return cfg, "", fmt.Errorf("-a %q: want an octal mask", o.umask)
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
	addr := net.JoinHostPort(o.listen, strconv.Itoa(o.port))
	settings := map[string]string{"tcpport": strconv.Itoa(o.port), "udpport": "0", "interface": o.listen,
		"domain_socket": "NULL", "umask": o.umask}
	if o.socket != "" {
		addr = "unix:" + o.socket
		settings["domain_socket"] = o.socket
		settings["tcpport"] = "0"
	}
	cfg = gocache.Config{
		Cache:       cache.Config{MaxBytes: mem, MaxItemSize: int(item), NoEvict: o.noEvict},
		MaxConns:    o.maxConns,
		Threads:     o.threads,
		IdleTimeout: o.idle,
		Verbosity:   verbosity,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Settings:    settings,
	}
	return cfg, addr, nil
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
