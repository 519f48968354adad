// Command gocache is a memcached-compatible cache server: memcached's
// binary, text and meta protocols on one port. It takes memcached 1.6's
// command line (short and long flags, -o options), refusing what memcached
// refuses with memcached's message and exit status:
//
//	gocache                     # 127.0.0.1:11211, 64 MiB, memcached's defaults
//	gocache -p 11311 -m 1024 -t 4 -c 4096 -I 2m -vv
//	gocache -s /tmp/gocache.sock -a 0770
//	gocache -B ascii -Y users.txt              # text protocol with memcached's ascii auth
//	gocache -S -Y users.txt -o buckets=travel,beer-sample
//	gocache -Z -o ssl_chain_cert=cert.pem,ssl_key=key.pem -l notls:127.0.0.1:11211,127.0.0.1:11212
//
// Run gocache -h for the list.
package main

import (
	"bytes"
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
	"os/user"
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

// Exit statuses, as memcached uses them (sysexits.h).
const (
	exitFailure = 1
	exitUsage   = 64 // EX_USAGE
	exitOSErr   = 71 // EX_OSERR
)

// memcached's -I limits and slab page size.
const (
	itemSizeMin  = 1024
	itemSizeMax  = 1 << 30
	slabPageSize = 1 << 20
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("gocache", flag.ContinueOnError) }

// options are the parsed command line.
type options struct {
	port, udpPort                int
	portSet, udpSet              bool
	listen                       []string
	socket, umask                string
	memoryMiB                    string
	noEvict                      bool
	maxConns, threads            int
	itemSize                     string
	verbose                      int
	help, version, license       bool
	sasl, tls                    bool
	authFile, user               string
	idle                         time.Duration
	loops                        int
	protocol                     string
	shutdown, lockMemory, cores  bool
	daemon, largePages           bool
	noCAS, noFlush, noDump       bool
	noWatch                      bool
	pidFile, memoryFile          string
	factor                       float64
	chunkSize, reqsPerEvent      int
	backlog, napiIDs             int
	delimiter                    string
	delimiterSet                 bool
	extended                     []string // -o, possibly repeated
	factorSet, chunkSet, napiSet bool
}

// counter is -v: each use adds one.
type counter struct{ n *int }

func (c counter) String() string {
	if c.n == nil {
		return "0"
	}
	return strconv.Itoa(*c.n)
}
func (c counter) Set(string) error { *c.n++; return nil }
func (c counter) IsBoolFlag() bool { return true }

// levels is -vv or -vvv: sets the verbosity to at least n.
type levels struct {
	v *int
	n int
}

func (l levels) String() string   { return "" }
func (l levels) Set(string) error { *l.v = max(*l.v, l.n); return nil }
func (l levels) IsBoolFlag() bool { return true }

// flags defines the options on fs, with memcached's short and long names.
func flags(fs *flag.FlagSet) *options {
	o := &options{port: 11211, umask: "0700", memoryMiB: "64", maxConns: 1024, threads: 4,
		itemSize: "1m", loops: -1, factor: 1.25, chunkSize: 48, reqsPerEvent: 20, backlog: 1024}
	both := func(short, long string, fn func(string) error) {
		fs.Func(short, "", fn)
		if long != "" {
			fs.Func(long, "", fn)
		}
	}
	boolean := func(p *bool, short, long string) {
		fs.BoolVar(p, short, false, "")
		if long != "" {
			fs.BoolVar(p, long, false, "")
		}
	}
	// memcached reads its numbers with atoi: a bad number is 0, which the
	// checks below refuse where memcached does.
	atoi := func(p *int, set *bool) func(string) error {
		return func(s string) error {
			*p = atoi(s)
			if set != nil {
				*set = true
			}
			return nil
		}
	}
	str := func(p *string) func(string) error { return func(s string) error { *p = s; return nil } }
	both("p", "port", atoi(&o.port, &o.portSet))
	both("U", "udp-port", atoi(&o.udpPort, &o.udpSet))
	both("l", "listen", func(s string) error {
		for _, have := range o.listen {
			if strings.Contains(have, s) {
				return nil // memcached skips an -l it already has
			}
		}
		o.listen = append(o.listen, s)
		return nil
	})
	both("s", "unix-socket", str(&o.socket))
	both("a", "unix-mask", str(&o.umask))
	both("m", "memory-limit", str(&o.memoryMiB))
	boolean(&o.noEvict, "M", "disable-evictions")
	both("c", "conn-limit", atoi(&o.maxConns, nil))
	both("t", "threads", atoi(&o.threads, nil))
	both("I", "max-item-size", str(&o.itemSize))
	fs.Var(counter{&o.verbose}, "v", "")
	fs.Var(counter{&o.verbose}, "verbose", "")
	fs.Var(levels{&o.verbose, 2}, "vv", "")
	fs.Var(levels{&o.verbose, 3}, "vvv", "")
	boolean(&o.help, "h", "help")
	boolean(&o.license, "i", "license")
	boolean(&o.version, "V", "version")
	boolean(&o.sasl, "S", "enable-sasl")
	both("Y", "auth-file", str(&o.authFile))
	boolean(&o.tls, "Z", "enable-ssl")
	extended := func(v string) error { o.extended = append(o.extended, v); return nil }
	both("o", "extended", extended)
	both("u", "user", str(&o.user))
	both("B", "protocol", str(&o.protocol))
	boolean(&o.shutdown, "A", "enable-shutdown")
	boolean(&o.lockMemory, "k", "lock-memory")
	boolean(&o.cores, "r", "enable-coredumps")
	boolean(&o.daemon, "d", "daemon")
	both("P", "pidfile", str(&o.pidFile))
	both("f", "slab-growth-factor", func(s string) error {
		o.factor, _ = strconv.ParseFloat(strings.TrimSpace(s), 64)
		o.factorSet = true
		return nil
	})
	both("n", "slab-min-size", atoi(&o.chunkSize, &o.chunkSet))
	both("D", "", func(s string) error { o.delimiter, o.delimiterSet = s, true; return nil })
	boolean(&o.largePages, "L", "enable-largepages")
	both("R", "max-reqs-per-event", atoi(&o.reqsPerEvent, nil))
	boolean(&o.noCAS, "C", "disable-cas")
	both("b", "listen-backlog", atoi(&o.backlog, nil))
	boolean(&o.noFlush, "F", "disable-flush-all")
	boolean(&o.noDump, "X", "disable-dumping")
	boolean(&o.noWatch, "W", "disable-watch")
	both("e", "memory-file", str(&o.memoryFile))
	both("N", "napi-ids", atoi(&o.napiIDs, &o.napiSet))
	fs.DurationVar(&o.idle, "idle-timeout", 0, "")
	fs.IntVar(&o.loops, "event-loops", -1, "")
	return o
}

// atoi reads a leading decimal number as C's atoi does: 0 when there is
// none, saturated rather than wrapped.
func atoi(s string) int {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n < 1<<40 {
			n = n*10 + int(s[i]-'0')
		}
	}
	if neg {
		return -n
	}
	return n
}

// usageText is gocache -h. The test suite of memcached reads it to learn
// what the server supports: it names the unix socket, SASL and TLS, which
// gocache has, and neither extstore (ext_path) nor the proxy.
const usageText = `gocache %s: a memcached-compatible cache server (binary, text and meta protocols)
-p, --port=<num>          TCP port to listen on (default: 11211)
-U, --udp-port=<num>      UDP port: accepted, but gocache serves no UDP (default: 0, off)
-s, --unix-socket=<file>  UNIX socket to listen on (disables network support)
-a, --unix-mask=<mask>    access mask for UNIX socket, in octal (default: 700)
-A, --enable-shutdown     enable ascii "shutdown" command
-l, --listen=<addr>       interface to listen on (default: 127.0.0.1), repeatable or
                          comma-separated, each [notls:]host[:port]
-d, --daemon              refused: run gocache under a service manager
-r, --enable-coredumps    maximize core file limit
-u, --user=<user>         assume identity of <username> (only when run as root)
-m, --memory-limit=<num>  item memory in megabytes, or with a k, m or g suffix (default: 64)
-M, --disable-evictions   return error on memory exhausted instead of evicting
-c, --conn-limit=<num>    max simultaneous connections (default: 1024)
-k, --lock-memory         lock down all paged memory
-v, --verbose             verbose (log errors and warnings)
-vv                       very verbose (also log connection events)
-vvv                      extremely verbose
-h, --help                print this help and exit
-i, --license             print the licence and exit
-V, --version             print version and exit
-P, --pidfile=<file>      save PID in <file>, removed on exit
-f, --slab-growth-factor=<num> accepted for compatibility (gocache has no slabs; > 1)
-n, --slab-min-size=<bytes> accepted for compatibility (gocache has no slabs; > 0)
-L, --enable-largepages   try to use large memory pages (Linux's transparent huge pages)
-D <char>                 accepted for compatibility (prefix delimiter)
-t, --threads=<num>       number of threads to use (GOMAXPROCS, default: 4)
-R, --max-reqs-per-event  maximum number of requests per event (default: 20)
-C, --disable-cas         disable use of CAS
-b, --listen-backlog=<num> accepted for compatibility (Go uses the system's backlog)
-B, --protocol=<name>     protocol - one of ascii, binary, or auto (default: auto)
-I, --max-item-size=<num> adjusts max item size
                          (default: 1m, min: 1k, max: 1024m)
-S, --enable-sasl         turn on SASL authentication (binary protocol; users from -Y)
-F, --disable-flush-all   disable flush_all command
-X, --disable-dumping     disable stats cachedump and lru_crawler metadump
-W, --disable-watch       disable watch commands (live logging)
-Y, --auth-file=<file>    enable ASCII protocol authentication, file of user:pass lines;
                          with -S, the users of binary SASL ("!buckets user a,b" lines
                          limit users to buckets)
-e, --memory-file=<file>  refused: gocache has no restartable memory file
-Z, --enable-ssl          enable TLS/SSL on every -l listener not prefixed notls:
-N, --napi-ids=<num>      accepted for compatibility
-idle-timeout=<duration>  close connections idle this long (0: never; see idle_timeout)
-event-loops=<num>        epoll loops serving plain listeners on Linux
                          (-1: one per thread, 0: a goroutine per connection)
-o, --extended            comma separated list of extended options
   - idle_timeout:        timeout in seconds for idle connections (default: 0, none)
   - read_buf_mem_limit:  limit in megabytes for connection read/response buffers
                          (default: 0, unlimited)
   - slab_chunk_max:      maximum slab chunk size in bytes, checked against -I as
                          memcached checks it (default: 524288)
   - modern, no_modern, maxconns_fast, no_maxconns_fast, hashpower, no_hashexpand,
     slab_reassign, no_slab_reassign, slab_automove, slab_automove_ratio,
     slab_automove_window, no_chunked_items, tail_repair_time, hash_algorithm,
     lru_crawler, no_lru_crawler, lru_crawler_sleep, lru_crawler_tocrawl,
     lru_maintainer, no_lru_maintainer, hot_lru_pct, warm_lru_pct, hot_max_factor,
     warm_max_factor, temporary_ttl, watcher_logbuf_size, worker_logbuf_size,
     slab_sizes, track_sizes, inline_ascii_resp, no_inline_ascii_resp,
     drop_privileges, resp_obj_mem_limit:
                          memcached's tuning of its slabs, LRUs and threads: checked
                          as memcached checks them, without effect on gocache
   - ssl_chain_cert:      certificate chain file in PEM format
   - ssl_key:             private key, if not part of the -ssl_chain_cert
   - ssl_ca_cert:         PEM format file of acceptable client CA's
   - ssl_verify_mode:     peer certificate verification mode, default is 0(None).
                          valid values are 0(None), 1(Request), 2(Require)
                          or 3(Once)
   - ssl_min_version:     minimum protocol version to accept (default: tlsv1.2)
                          valid values are 0(tlsv1.0), 1(tlsv1.1), 2(tlsv1.2), or 3(tlsv1.3).
   - ssl_keyformat, ssl_ciphers, ssl_wbuf_size, ssl_session_cache, ssl_kernel_tls:
                          accepted; Go's TLS chooses its ciphers and buffers and
                          resumes sessions with tickets
   - buckets=a,b:         named buckets (gocache)
   - vbuckets=N:          vbuckets per bucket (default: 1024)
   - tombstone_ttl=N:     seconds a deletion is kept for GET_META and DCP (default: 600; 0: none)
   - tombstones=N:        most deletions kept (default: 100000)
   - collections=FILE:    a collections manifest, JSON
   - replica_of=HOST:PORT: every vbucket a replica of that gocache's, fed over DCP,
                          read with GET_REPLICA, taking writes once SET_VBUCKET makes it active
   - replica_reads=true:  plain GETs read replica vbuckets too
   - cluster=FILE:        this node's part in a static vbucket cluster, served to
                          GET_CLUSTER_CONFIG and NOT_MY_VBUCKET as Couchbase's terse
                          config, JSON: {"nodes":["127.0.0.1:11211","127.0.0.1:11212"],
                          "self":0,"replicas":1,"map":[[0,1],[1,0],...],"epoch":1}
                          (nodes "host:port", "$HOST" left for clients to replace;
                          self this node's index; map a row per vbucket, active
                          first, -1 for none; without "map", vbucket i is active
                          on node i%%N, its replicas on the next ones); the
                          node's replica vbuckets stream over DCP from the node
                          the map names active, and SET_CLUSTER_CONFIG (opcode
                          0xb4, sent by gocache-admin) replaces the map
`

// exitError is a refused command line: the message memcached prints (or
// gocache's own, prefixed "gocache: "), where it prints it, and the exit
// status.
type exitError struct {
	code   int
	msg    string
	stdout bool
}

func (e *exitError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

func failErr(format string, args ...any) error {
	return &exitError{code: exitFailure, msg: fmt.Sprintf(format, args...)}
}

// run is main without the process: it returns the exit status. ready, if
// not nil, receives the listener's address once serving.
func run(args []string, stdout, stderr io.Writer, ready chan<- net.Addr) int {
	fs := newFlagSet()
	fs.SetOutput(io.Discard)
	o := flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, usageText, gocache.Version)
			return 0
		}
		fmt.Fprintln(stderr, "gocache:", err, "(gocache -h lists the flags)")
		return exitFailure
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gocache: unexpected argument %q\n", fs.Arg(0))
		return exitFailure
	}
	switch {
	case o.help:
		fmt.Fprintf(stdout, usageText, gocache.Version)
		return 0
	case o.license:
		fmt.Fprintln(stdout, "gocache "+gocache.Version+" is free software under the MIT licence\n"+
			"(Copyright (c) 2026 The gomemcached authors); see LICENSE in its source.")
		return 0
	case o.version:
		fmt.Fprintln(stdout, "gocache "+gocache.Version)
		return 0
	}
	cfg, listens, err := configure(o)
	if err != nil {
		out, code := stderr, exitFailure
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			if ee.stdout {
				out = stdout
			}
			fmt.Fprintln(out, ee.msg)
		} else {
			fmt.Fprintln(out, "gocache:", err)
		}
		return code
	}
	log := cfg.Logger
	runtime.GOMAXPROCS(o.threads)
	if os.Getenv("GOMEMLIMIT") == "" {
		// Collect garbage harder as the heap nears the item memory, so
		// that the process stays near -m rather than twice it.
		debug.SetMemoryLimit(memoryLimit(cfg.Cache.MaxBytes * int64(max(1, len(cfg.Buckets)))))
	}
	if o.cores {
		if err := raiseCoreLimit(); err != nil {
			fmt.Fprintln(stderr, "failed to ensure corefile creation")
			return exitOSErr
		}
	}
	raiseFileLimit(cfg.MaxConns)

	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	if o.socket != "" {
		// As memcached does: remove a socket left behind by an earlier
		// run, and create the new one with the mode of -a.
		if fi, err := os.Lstat(o.socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(o.socket)
		}
	}
	for _, spec := range listens {
		l, err := memcached.Listen(spec.addr)
		if err != nil {
			closeAll()
			fmt.Fprintln(stderr, "gocache:", err)
			return exitFailure
		}
		ls = append(ls, l)
	}
	if o.socket != "" {
		mask, _ := strconv.ParseUint(o.umask, 8, 32)
		os.Chmod(o.socket, os.FileMode(mask&0o777))
		defer os.Remove(o.socket)
	}
	if err := dropPrivileges(o.user, log); err != nil {
		closeAll()
		var ee *exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(stderr, ee.msg)
			return ee.code
		}
		fmt.Fprintln(stderr, "gocache:", err)
		return exitOSErr
	}
	if o.lockMemory {
		if err := syscall.Mlockall(syscall.MCL_CURRENT | syscall.MCL_FUTURE); err != nil {
			fmt.Fprintf(stderr, "warning: -k invalid, mlockall() failed: %v\n", err)
		}
	}
	srv, err := gocache.New(cfg)
	if err != nil {
		closeAll()
		fmt.Fprintln(stderr, "gocache:", err)
		return exitFailure
	}
	if o.pidFile != "" {
		if err := os.WriteFile(o.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintf(stderr, "Could not open the pid file %s for writing: %v\n", o.pidFile, err)
		} else {
			defer os.Remove(o.pidFile)
		}
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
			return exitFailure
		}
	case sig := <-stop:
		log.Info("shutting down", "signal", sig.String())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	return 0
}

// hugePages is memcached's -L check on Linux: transparent huge pages
// compiled in and not disabled. Go's heap uses them then without help.
func hugePages() bool {
	for _, path := range []string{"/sys/kernel/mm/transparent_hugepage/enabled",
		"/sys/kernel/mm/redhat_transparent_hugepage/enabled"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("[never]")) {
			fmt.Fprintln(os.Stderr, "Transparent huge pages support disabled.\nWill use default page size.")
			return false
		}
		return len(b) > 0
	}
	fmt.Fprintln(os.Stderr, "Transparent huge pages support not detected.\nWill use default page size.")
	return false
}

// raiseCoreLimit is memcached's -r: the core file limit raised to
// infinity, else to its hard limit; it fails if no core can be written.
func raiseCoreLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err == nil {
		want := syscall.Rlimit{Cur: ^uint64(0), Max: ^uint64(0)}
		if syscall.Setrlimit(syscall.RLIMIT_CORE, &want) != nil {
			want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
			syscall.Setrlimit(syscall.RLIMIT_CORE, &want)
		}
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		return err
	}
	if lim.Cur == 0 {
		return errors.New("core limit 0")
	}
	return nil
}

// raiseFileLimit makes room for maxConns descriptors where the hard limit
// allows (Go raises the soft limit to the hard one at start-up already).
func raiseFileLimit(maxConns int) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	want := uint64(maxConns) + 64
	if lim.Cur < want {
		lim.Cur = min(want, lim.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// dropPrivileges is memcached's -u: run as root, gocache assumes the
// identity of the named user. Unlike memcached, gocache run as root
// without -u keeps running as root (with a warning) rather than refuse.
func dropPrivileges(name string, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if name == "" {
		log.Warn("running as root: memcached would refuse without -u USER")
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return &exitError{code: 67, msg: fmt.Sprintf("can't find the user %s to switch to", name)} // EX_NOUSER
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil && !errors.Is(err, syscall.EPERM) {
		return &exitError{code: exitOSErr, msg: fmt.Sprintf("failed to drop supplementary groups: %v", err)}
	}
	if syscall.Setgid(gid) != nil || syscall.Setuid(uid) != nil {
		return &exitError{code: exitOSErr, msg: fmt.Sprintf("failed to assume identity of user %s", name)}
	}
	return nil
}

// listenSpec is one listener: its address and whether it serves TLS.
type listenSpec struct {
	addr string
	tls  bool
}

// configure checks the options, in memcached's order and with its
// messages, and turns them into a server configuration and the listeners.
func configure(o *options) (gocache.Config, []listenSpec, error) {
	var cfg gocache.Config
	// The checks memcached makes while it reads its flags.
	switch {
	case o.maxConns <= 0:
		return cfg, nil, failErr("Maximum connections must be greater than 0")
	case o.reqsPerEvent == 0:
		return cfg, nil, failErr("Number of requests per event must be greater than 0")
	case o.factorSet && o.factor <= 1.0:
		return cfg, nil, failErr("Factor must be greater than 1")
	case o.chunkSet && o.chunkSize == 0:
		return cfg, nil, failErr("Chunk size must be greater than 0")
	case o.threads <= 0:
		return cfg, nil, failErr("Number of threads must be greater than 0")
	case o.delimiterSet && o.delimiter == "":
		return cfg, nil, failErr("No delimiter specified")
	case o.largePages && !hugePages():
		return cfg, nil, failErr("Cannot enable large pages on this system\n(There is no support as of this version)")
	case o.napiSet && o.napiIDs <= 0:
		return cfg, nil, failErr("Maximum number of NAPI IDs must be greater than 0")
	}
	var proto memcached.Protocol
	protoSet := o.protocol != ""
	switch o.protocol {
	case "", "auto":
	case "binary":
		proto = memcached.ProtocolBinary
	case "ascii":
		proto = memcached.ProtocolText
	default:
		return cfg, nil, usageErr("Invalid value for binding protocol: %s\n -- should be one of auto, binary, or ascii", o.protocol)
	}
	ext, err := parseExtended(o.extended)
	if err != nil {
		return cfg, nil, err
	}
	if o.napiSet && o.napiIDs > o.threads {
		return cfg, nil, usageErr("Number of napi_ids(%d) cannot be greater than number of threads(%d)", o.napiIDs, o.threads)
	}

	// The checks memcached makes once it has read them all.
	mem, err := parseSize(o.memoryMiB, 1<<20)
	if err != nil {
		return cfg, nil, fmt.Errorf("-m %q: want a size in megabytes", o.memoryMiB)
	}
	item, err := parseSize(o.itemSize, 1)
	if err != nil {
		return cfg, nil, fmt.Errorf("-I %q: want a size such as 1m or 512k", o.itemSize)
	}
	switch {
	case item < itemSizeMin:
		return cfg, nil, usageErr("Item max size cannot be less than 1024 bytes.")
	case item > mem/2:
		return cfg, nil, usageErr("Cannot set item size limit higher than 1/2 of memory max.")
	case item > itemSizeMax:
		return cfg, nil, usageErr("Cannot set item size limit higher than a gigabyte.")
	}
	chunkMax := ext.slabChunkMax
	if item > 1<<20 && !ext.slabChunkSet {
		chunkMax = slabPageSize / 2
	}
	switch {
	case chunkMax <= 0:
		return cfg, nil, usageErr("slab_chunk_max (bytes: %d) must divide evenly into %d (slab_page_size)", chunkMax, slabPageSize)
	case int64(chunkMax) > item:
		return cfg, nil, usageErr("slab_chunk_max (bytes: %d) cannot be larger than -I (item_size_max %d)", chunkMax, item)
	case item%int64(chunkMax) != 0:
		return cfg, nil, usageErr("-I (item_size_max: %d) must be evenly divisible by slab_chunk_max (bytes: %d)", item, chunkMax)
	case slabPageSize%chunkMax != 0:
		return cfg, nil, usageErr("slab_chunk_max (bytes: %d) must divide evenly into %d (slab_page_size)", chunkMax, slabPageSize)
	case ext.hotLRUPct+ext.warmLRUPct > 80:
		return cfg, nil, usageErr("hot_lru_pct + warm_lru_pct cannot be more than 80%% combined")
	case ext.tempLRU && !ext.lruMaintainer:
		return cfg, nil, usageErr("temporary_ttl requires lru_maintainer to be enabled")
	}
	if o.sasl {
		if !protoSet {
			proto = memcached.ProtocolBinary
		} else if proto != memcached.ProtocolBinary {
			return cfg, nil, usageErr("ERROR: You cannot allow the ASCII protocol while using SASL.")
		}
		if o.udpPort != 0 {
			return cfg, nil, usageErr("ERROR: Cannot enable UDP while using binary SASL authentication.")
		}
	}
	// -Y without -S is memcached's ascii authentication; with -S it names
	// the users of binary SASL (gocache reads no sasldb).
	asciiAuth := o.authFile != "" && !o.sasl
	if asciiAuth {
		if !protoSet {
			proto = memcached.ProtocolText
		} else if proto != memcached.ProtocolText {
			return cfg, nil, usageErr("ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.")
		}
	}
	port := o.port
	if o.udpSet && o.udpPort != 0 && !o.portSet {
		port = o.udpPort
	}
	if port > 65535 {
		return cfg, nil, usageErr("ERROR: Invalid port number %d.", port)
	}
	if o.tls && port == 0 {
		return cfg, nil, usageErr("ERROR: You cannot enable SSL without a TCP port.")
	}
	switch {
	case o.daemon:
		return cfg, nil, usageErr("gocache: -d: gocache does not daemonize; run it under a service manager")
	case o.memoryFile != "":
		return cfg, nil, usageErr("gocache: -e: gocache has no restartable memory file")
	}
	if asciiAuth && o.udpPort != 0 {
		return cfg, nil, usageErr("Cannot use UDP with ascii authentication enabled (-U 0 to disable)")
	}
	if _, err := strconv.ParseUint(o.umask, 8, 32); err != nil {
		return cfg, nil, fmt.Errorf("-a %q: want an octal mask", o.umask)
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
	case o.verbose >= 2:
		level = slog.LevelDebug
	case o.verbose == 1:
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.udpPort != 0 {
		logger.Warn("gocache serves no UDP: -U ignored", "udp_port", o.udpPort)
	}
	interfaces := "127.0.0.1"
	if len(o.listen) > 0 {
		interfaces = strings.Join(o.listen, ",")
	}
	var listens []listenSpec
	for _, entry := range strings.Split(interfaces, ",") {
		spec := listenSpec{tls: o.tls}
		if rest, ok := strings.CutPrefix(entry, "notls:"); ok {
			entry, spec.tls = rest, false
		}
		host, p := entry, strconv.Itoa(port)
		if h, hp, err := net.SplitHostPort(entry); err == nil {
			host, p = h, hp
		}
		spec.addr = net.JoinHostPort(host, p)
		listens = append(listens, spec)
	}
	settings := map[string]string{"tcpport": strconv.Itoa(port), "udpport": "0", "interface": interfaces,
		"domain_socket": "NULL", "umask": o.umask}
	for name, value := range ext.settings {
		settings[name] = value
	}
	if settings["lru_crawler"] == "" {
		settings["lru_crawler"] = "yes"
	}
	settings["growth_factor"] = strconv.FormatFloat(o.factor, 'f', 2, 64)
	settings["chunk_size"] = strconv.Itoa(o.chunkSize)
	settings["tcp_backlog"] = strconv.Itoa(o.backlog)
	settings["slab_chunk_max"] = strconv.Itoa(chunkMax)
	if o.delimiterSet {
		settings["stat_key_prefix"] = o.delimiter[:1]
	}
	if o.noDump {
		settings["dump_enabled"] = "no"
	}
	if o.napiSet {
		settings["num_napi_ids"] = strconv.Itoa(o.napiIDs)
	}
	if o.socket != "" {
		listens = []listenSpec{{addr: "unix:" + o.socket}}
		settings["domain_socket"] = o.socket
		settings["tcpport"] = "0"
	}
	idle := o.idle
	if ext.idleSet {
		idle = time.Duration(ext.idleTimeout) * time.Second
	}
	cfg = gocache.Config{
		Cache: cache.Config{MaxBytes: mem, MaxItemSize: int(item), NoEvict: o.noEvict,
			VBuckets: ext.vbuckets, TombstoneTTL: ext.tombstoneTTL, MaxTombstones: ext.tombstones,
			Slabs: &cache.SlabConfig{ChunkSize: o.chunkSize, Factor: o.factor, PageSize: slabPageSize,
				ChunkMax: chunkMax, Malloced: initialMalloc()}},
		Manifest:        ext.manifest,
		MaxConns:        o.maxConns,
		Threads:         o.threads,
		IdleTimeout:     idle,
		Verbosity:       o.verbose,
		Logger:          logger,
		Settings:        settings,
		Buckets:         ext.buckets,
		Users:           users,
		RequireAuth:     o.sasl || asciiAuth,
		TLS:             tlsConfig,
		EventLoops:      o.loops,
		Protocol:        proto,
		DisableFlush:    o.noFlush,
		DisableCAS:      o.noCAS,
		ShutdownCommand: o.shutdown,
		ReqsPerEvent:    o.reqsPerEvent,
		ReadBufMemLimit: ext.readBufMemLimit,
	}
	// memcached's LRU maintainer and segmented LRU go together: on but
	// with -o no_lru_maintainer or no_modern.
	settings["lru_maintainer_thread"], settings["lru_segmented"] = "no", "no"
	if ext.lruMaintainer {
		settings["lru_maintainer_thread"], settings["lru_segmented"] = "yes", "yes"
		cfg.Cache.LRU = cache.Segmented
		cfg.Cache.HotLRUPct, cfg.Cache.WarmLRUPct = ext.hotLRUPct, ext.warmLRUPct
		cfg.Cache.HotMaxFactor, cfg.Cache.WarmMaxFactor = ext.hotMaxFactor, ext.warmMaxFactor
		if ext.tempLRU {
			cfg.Cache.TempTTL = time.Duration(max(0, ext.tempTTL)) * time.Second
		}
	}
	if settings["lru_crawler"] == "no" {
		// Started without its LRU crawler, memcached reclaims expired
		// items only as it meets them: gocache's sweeper stays idle too
		// (it still keeps the coarse clock), so that what expires
		// waits for a lookup, a store's need of memory or an
		// "lru_crawler crawl".
		cfg.Cache.SweepInterval = idleSweep
	}
	cfg.ReplicaReads = ext.replicaReads
	cfg.Cluster = ext.cluster
	switch {
	case ext.replicaOf != "":
		cfg.Replicator = &replication.Replicator{Primary: ext.replicaOf}
	case ext.cluster != nil && ext.cluster.Replicas > 0:
		// Each replica vbucket streams from the node the map names active.
		cfg.Replicator = &replication.Replicator{}
	}
	if o.loops < 0 {
		cfg.EventLoops = o.threads
	}
	return cfg, listens, nil
}

// idleSweep is the sweep interval of a cache whose sweeper must not
// sweep: a century.
const idleSweep = 100 * 365 * 24 * time.Hour

// extendedOptions are the -o settings.
type extendedOptions struct {
	chain, key, ca  string
	verifyMode      int
	minVersion      uint16
	buckets         []string
	vbuckets        int
	tombstoneTTL    time.Duration // 0: gocache's default; negative: none
	tombstones      int
	manifest        []byte
	replicaOf       string
	replicaReads    bool
	cluster         *gocache.ClusterConfig
	idleTimeout     int
	idleSet         bool
	readBufMemLimit int64
	slabChunkMax    int
	slabChunkSet    bool
	hotLRUPct       int
	warmLRUPct      int
	tempLRU         bool
	tempTTL         int
	hotMaxFactor    float64
	warmMaxFactor   float64
	lruMaintainer   bool
	// settings are what "stats settings" shows for the options memcached
	// reports there, in its format (gocache/stats.go reads them).
	settings map[string]string
}

// parseExtended reads -o values as memcached's getsubopt does: comma-
// separated items, each name or name=value. The bucket list of buckets=
// continues over the items without '=' that follow it, so that -o
// buckets=a,b works.
func parseExtended(values []string) (extendedOptions, error) {
	e := extendedOptions{minVersion: tls.VersionTLS12, slabChunkMax: slabPageSize / 2,
		hotLRUPct: 20, warmLRUPct: 40, lruMaintainer: true, settings: map[string]string{}}
	set := func(name, value string) { e.settings[name] = value }
	float := func(v string) string { f, _ := strconv.ParseFloat(v, 64); return strconv.FormatFloat(f, 'f', 2, 64) }
	inBuckets := false
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			key, val, hasValue := strings.Cut(item, "=")
			if !hasValue && inBuckets && item != "" {
				e.buckets = append(e.buckets, item)
				continue
			}
			inBuckets = false
			if item == "" {
				continue
			}
			missing := func(what string) error {
				return failErr("Missing %s", what)
			}
			// number reads a value with memcached's safe_strtol (whole
			// string, no overflow), failing with msg.
			number := func(msg string) (int, error) {
				n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 32)
				if !hasValue || val == "" || err != nil {
					return 0, failErr("%s", msg)
				}
				return int(n), nil
			}
			switch key {
			// memcached's tuning of slabs, LRUs, threads and logs: checked
			// as memcached checks them; gocache has none of these parts.
			case "maxconns_fast", "no_maxconns_fast", "no_hashexpand", "slab_reassign", "no_slab_reassign",
				"no_slab_automove", "track_sizes", "inline_ascii_resp",
				"no_inline_ascii_resp", "modern", "no_chunked_items", "drop_privileges", "no_drop_privileges",
				"relaxed_privileges":
				// no_drop_privileges is named only in builds that have
				// drop_privileges; relaxed_privileges only in debug builds.
				if key == "no_chunked_items" && !e.slabChunkSet {
					e.slabChunkMax = slabPageSize
				}
			case "lru_crawler", "no_lru_crawler":
				// memcached starts its LRU crawler unless told not to
				// (the last of these and no_modern wins).
				if key == "lru_crawler" {
					set("lru_crawler", "yes")
				} else {
					set("lru_crawler", "no")
				}
			case "no_lru_maintainer":
				e.lruMaintainer = false
			case "lru_maintainer":
				e.lruMaintainer = true
			case "no_modern":
				if !e.slabChunkSet {
					e.slabChunkMax = slabPageSize
				}
				e.lruMaintainer = false
				set("lru_crawler", "no")
			case "resp_obj_mem_limit":
				fmt.Fprintln(os.Stderr, "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,")
			case "hashpower":
				if !hasValue {
					return e, missing("numeric argument for hashpower")
				}
				n := atoi(val)
				if n < 12 {
					return e, failErr("Initial hashtable multiplier of %d is too low", n)
				} else if n > 32 {
					return e, failErr("Initial hashtable multiplier of %d is too high\n"+
						"Choose a value based on \"STAT hash_power_level\" from a running instance", n)
				}
				set("hashpower_init", strconv.Itoa(n))
			case "slab_automove":
				if hasValue {
					n := atoi(val)
					if n < 0 || n > 2 {
						return e, failErr("slab_automove must be between 0 and 2")
					}
					set("slab_automove", strconv.Itoa(n))
				} else {
					set("slab_automove", "1")
				}
			case "slab_automove_ratio":
				if !hasValue {
					return e, missing("slab_automove_ratio argument")
				}
				if r, _ := strconv.ParseFloat(val, 64); r <= 0 || r > 1 {
					return e, failErr("slab_automove_ratio must be > 0 and < 1")
				}
				set("slab_automove_ratio", float(val))
			case "slab_automove_window":
				if !hasValue {
					return e, missing("slab_automove_window argument")
				}
				if atoi(val) < 3 {
					return e, failErr("slab_automove_window must be > 2")
				}
				set("slab_automove_window", strconv.Itoa(atoi(val)))
			case "tail_repair_time":
				if !hasValue {
					return e, missing("numeric argument for tail_repair_time")
				}
				if atoi(val) < 10 {
					return e, failErr("Cannot set tail_repair_time to less than 10 seconds")
				}
			case "hash_algorithm":
				if !hasValue {
					return e, missing("hash_algorithm argument")
				}
				if val != "jenkins" && val != "murmur3" && val != "xxh3" {
					return e, failErr("Unknown hash_algorithm option (jenkins, murmur3, xxh3)")
				}
				set("hash_algorithm", val)
			case "lru_crawler_sleep":
				if !hasValue {
					return e, missing("lru_crawler_sleep value")
				}
				n := atoi(val)
				if n > 1000000 || n < 0 {
					return e, failErr("LRU crawler sleep must be between 0 and 1 second")
				}
				set("lru_crawler_sleep", strconv.Itoa(n))
			case "lru_crawler_tocrawl":
				if !hasValue {
					return e, missing("lru_crawler_tocrawl value")
				}
				n, err := strconv.ParseUint(val, 10, 32)
				if err != nil {
					return e, failErr("lru_crawler_tocrawl takes a numeric 32bit value")
				}
				set("lru_crawler_tocrawl", strconv.FormatUint(n, 10))
			case "hot_lru_pct", "warm_lru_pct":
				if !hasValue {
					return e, missing(key + " argument")
				}
				n := atoi(val)
				if n < 1 || n >= 80 {
					return e, failErr("%s must be > 1 and < 80", key)
				}
				if key == "hot_lru_pct" {
					e.hotLRUPct = n
				} else {
					e.warmLRUPct = n
				}
				set(key, strconv.Itoa(n))
			case "hot_max_factor", "warm_max_factor":
				if !hasValue {
					return e, missing(key + " argument")
				}
				f, _ := strconv.ParseFloat(val, 64)
				if f <= 0 {
					return e, failErr("%s must be > 0", key)
				}
				if key == "hot_max_factor" {
					e.hotMaxFactor = f
				} else {
					e.warmMaxFactor = f
				}
				set(key, float(val))
			case "temporary_ttl":
				if !hasValue {
					return e, missing("temporary_ttl argument")
				}
				e.tempLRU, e.tempTTL = true, atoi(val)
				set("temp_lru", "yes")
				set("temporary_ttl", strconv.Itoa(atoi(val)))
			case "idle_timeout":
				if !hasValue {
					return e, missing("numeric argument for idle_timeout")
				}
				e.idleTimeout, e.idleSet = max(0, atoi(val)), true
			case "watcher_logbuf_size", "worker_logbuf_size":
				if !hasValue {
					return e, missing(key + " argument")
				}
				n, err := strconv.ParseUint(val, 10, 32)
				if err != nil {
					return e, failErr("could not parse argument to %s", key)
				}
				set(key, strconv.FormatUint(n*1024, 10)) // kilobytes
			case "slab_sizes":
				if !hasValue {
					return e, missing("slab_sizes argument")
				}
			case "slab_chunk_max":
				n, err := number("could not parse argument to slab_chunk_max")
				if err != nil {
					return e, err
				}
				e.slabChunkMax, e.slabChunkSet = n, true
			case "read_buf_mem_limit":
				if !hasValue {
					return e, missing("read_buf_mem_limit argument")
				}
				n, err := strconv.ParseUint(val, 10, 32)
				if err != nil {
					return e, failErr("could not parse argument to read_buf_mem_limit")
				}
				e.readBufMemLimit = int64(n) << 20
			case "ssl_chain_cert", "ssl_key", "ssl_ca_cert", "ssl_ciphers":
				if !hasValue {
					return e, missing(key + " argument")
				}
				switch key {
				case "ssl_chain_cert":
					e.chain = val
				case "ssl_key":
					e.key = val
				case "ssl_ca_cert":
					e.ca = val
				}
			case "ssl_keyformat", "ssl_wbuf_size":
				if _, err := number("could not parse argument to " + key); err != nil {
					return e, err
				}
			case "ssl_session_cache", "ssl_kernel_tls":
			case "ssl_verify_mode":
				n, err := number("could not parse argument to ssl_verify_mode")
				if err != nil {
					return e, err
				}
				if n < 0 || n > 3 {
					return e, failErr("Invalid ssl_verify_mode. Use help to see valid options.")
				}
				e.verifyMode = n
			case "ssl_min_version":
				switch val {
				case "0", "tlsv1.0":
					e.minVersion = tls.VersionTLS10
				case "1", "tlsv1.1":
					e.minVersion = tls.VersionTLS11
				case "2", "tlsv1.2":
					e.minVersion = tls.VersionTLS12
				case "3", "tlsv1.3":
					e.minVersion = tls.VersionTLS13
				default:
					return e, failErr("Invalid ssl_min_version. Use help to see valid options.")
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
			case "cluster":
				data, err := os.ReadFile(val)
				if err != nil {
					return e, fmt.Errorf("-o cluster: %w", err)
				}
				if e.cluster, err = gocache.ParseClusterConfig(data); err != nil {
					return e, fmt.Errorf("-o cluster=%s: %s", val, strings.TrimPrefix(err.Error(), "gocache: "))
				}
			case "buckets":
				inBuckets = true
				if val != "" {
					e.buckets = append(e.buckets, val)
				}
			default:
				// As memcached built without extstore and the proxy
				// (ext_*, proxy_* included): the option and the rest of
				// the list, on stdout.
				return e, &exitError{code: exitFailure, stdout: true, msg: fmt.Sprintf("Illegal suboption %q", item)}
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
// initialMalloc is the memory memcached's test hook T_MEMD_INITIAL_MALLOC
// says is already allocated (memcached's slabs.c reads it in every build;
// its test suite's 64bit.t sets it), 0 if unset.
func initialMalloc() int64 {
	n, err := strconv.ParseInt(os.Getenv("T_MEMD_INITIAL_MALLOC"), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

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
	if err != nil || v < 0 || v > 1<<50/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}
