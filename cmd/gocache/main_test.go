package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/internal/peer"
	memcached "github.com/f8e615c8/gomemcached/server"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string // expected in stdout or stderr
	}{
		{[]string{"-h"}, 0, "--max-item-size"},
		{[]string{"--help"}, 0, "unix-socket"},
		{[]string{"-V"}, 0, "gocache 1.6.18"},
		{[]string{"-i"}, 0, "MIT"},
		{[]string{"-S"}, 1, "-S needs -Y"},
		{[]string{"-Y", "/nonexistent/users"}, 1, "-Y"},
		{[]string{"-Z"}, 1, "ssl_chain_cert"},
		{[]string{"-o", "ssl_key=/x"}, 1, "needs -Z"},
		{[]string{"-o", "bogus=1"}, 1, `Illegal suboption "bogus=1"`},
		{[]string{"-o", "ext_path=/tmp/x:64m"}, 1, "Illegal suboption"},
		{[]string{"-o", "ssl_verify_mode=9"}, 1, "Invalid ssl_verify_mode"},
		{[]string{"-I", "100"}, 64, "cannot be less than 1024 bytes"},
		{[]string{"-I", "64m"}, 64, "1/2 of memory max"},
		{[]string{"-m", "lots"}, 1, "megabytes"},
		{[]string{"-t", "0"}, 1, "Number of threads must be greater than 0"},
		{[]string{"-d"}, 64, "does not daemonize"},
		{[]string{"-e", "/tmp/mem"}, 64, "memory file"},
		{[]string{"-nosuchflag"}, 1, "not defined"},
		{[]string{"-p", "1", "stray"}, 1, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr, nil)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("%v: exit %d, want %d; output %q", tc.args, code, tc.code, stdout.String()+stderr.String())
		}
	}
}

// The suite of memcached probes features from -h: it must name what
// gocache has and nothing it lacks.
func TestHelpFeatures(t *testing.T) {
	var stdout bytes.Buffer
	if code := run([]string{"-h"}, &stdout, io.Discard, nil); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	help := stdout.String()
	for _, want := range []string{"unix-socket", "sasl", "enable-ssl"} {
		if !strings.Contains(strings.ToLower(help), want) {
			t.Errorf("-h does not name %q", want)
		}
	}
	for _, lack := range []string{"ext_path", "proxy_config", "no_drop_privileges"} {
		if strings.Contains(help, lack) {
			t.Errorf("-h names %q, which gocache does not have", lack)
		}
	}
	if strings.HasPrefix(help, "memcached 1.1.") {
		t.Error("-h starts as memcached 1.1's, which the suite takes for no UDP")
	}
}

// Command lines memcached 1.6.18 refuses, gocache refuses with the same
// message and exit status.
func TestRefusalsAsMemcached(t *testing.T) {
	mc := peer.Require(t, "memcached")
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"-u", "root"}
	}
	for _, args := range [][]string{
		{"-c", "0"}, {"-c", "-1"}, {"-t", "0"}, {"-R", "0"}, {"-f", "1"}, {"-n", "0"}, {"-D", ""},
		{"-N", "0"}, {"-N", "9", "-t", "4"}, {"-B", "http"},
		{"-I", "1000"}, {"-I", "256m"}, {"-I", "1025m", "-m", "4096"}, {"-I", "1024"},
		{"-I", "1000k", "-o", "slab_chunk_max=16384"}, {"-I", "1m", "-o", "slab_chunk_max=3000"},
		{"-I", "64k", "-o", "slab_chunk_max=131072"},
		{"-S", "-B", "ascii"}, {"-S", "-B", "auto"}, {"-S", "-U", "11311"},
		{"-Y", "/x", "-B", "binary"}, {"-Y", "/x", "-U", "11311", "-p", "11311"},
		{"-p", "70000"},
		{"-o", "bogus"}, {"-o", "modern,bogus=1,modern"},
		{"-o", "hashpower=3"}, {"-o", "hashpower=40"}, {"-o", "slab_automove=3"},
		{"-o", "slab_automove_window=2"}, {"-o", "tail_repair_time=5"}, {"-o", "hash_algorithm=md5"},
		{"-o", "lru_crawler_sleep=2000000"}, {"-o", "lru_crawler_tocrawl=x"}, {"-o", "hot_lru_pct=90"},
		{"-o", "hot_lru_pct=50,warm_lru_pct=40"}, {"-o", "warm_max_factor=0"},
		{"-o", "no_modern,temporary_ttl=61"}, {"-o", "idle_timeout"}, {"-o", "watcher_logbuf_size=x"},
		{"-o", "read_buf_mem_limit=x"}, {"-o", "ssl_verify_mode=7"}, {"-o", "ssl_min_version=9"},
	} {
		full := append(append([]string{}, user...), args...)
		if !hasFlag(args, "-p") {
			full = append(full, "-p", "0")
		}
		if !hasFlag(args, "-U") {
			full = append(full, "-U", "0")
		}
		cmd := exec.Command(mc, full...)
		var mcOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &mcOut, &mcOut
		cmd.WaitDelay = time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(3*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		timer.Stop()
		mcCode := cmd.ProcessState.ExitCode()
		if mcCode == -1 {
			t.Errorf("%v: memcached did not refuse it", args)
			continue
		}
		var out bytes.Buffer
		code := run(full, &out, &out, nil)
		if code != mcCode || strings.TrimSpace(out.String()) != strings.TrimSpace(mcOut.String()) {
			t.Errorf("%v: gocache exit %d %q; memcached exit %d %q", args, code, out.String(), mcCode, mcOut.String())
		}
	}
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag {
			return true
		}
	}
	return false
}

// memcached's flags that gocache takes without serving differently, as the
// test suite of memcached passes them.
func TestAcceptsMemcachedFlags(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "authfile")
	os.WriteFile(auth, []byte("user:pass\n"), 0o600)
	for _, args := range [][]string{
		{"-o", "no_modern"}, {"-o", "no_modern,slab_chunk_max=4096"}, {"-m", "48", "-o", "slab_chunk_max=16384"},
		{"-C"}, {"-F"}, {"-A"}, {"-k"}, {"-r"}, {"-X"}, {"-W"}, {"-f", "1.1"}, {"-n", "64"}, {"-D", ":"},
		{"-b", "128"}, {"-R", "1"}, {"-P", filepath.Join(dir, "pid")}, {"-vvv"}, {"-v", "-v"},
		{"-B", "ascii"}, {"-B", "binary"}, {"-B", "auto"}, {"-U", "11311"}, {"-N", "1"},
		{"-o", "read_buf_mem_limit=1", "-t", "32", "-R", "500"}, {"-o", "idle_timeout=3", "-l", "127.0.0.1"},
		{"-m", "2", "-o", "lru_maintainer,lru_crawler,temporary_ttl=61"}, {"-o", "modern,slab_automove_window=3"},
		{"-o", "slab_reassign,slab_automove,lru_crawler,lru_maintainer,slab_chunk_max=4096"},
		{"-I", "1024", "-o", "slab_chunk_max=1024,no_lru_crawler,no_lru_maintainer"},
		{"-I", "2097152"}, {"-I", "512k", "-o", "slab_chunk_max=16384"}, {"-m", "256", "-I", "32m"},
		{"-m", "4098", "-M"}, {"-Y", auth, "-U", "0"}, {"-o", "hash_algorithm=xxh3,maxconns_fast,hashpower=16"},
		{"-o", "watcher_logbuf_size=64,worker_logbuf_size=64,track_sizes,no_hashexpand,tail_repair_time=60"},
		{"-o", "ssl_session_cache,ssl_wbuf_size=64,ssl_min_version=3"}, {"-o", "drop_privileges"},
		{"-o", "relaxed_privileges"}, {"--conn-limit=10", "--threads", "2", "--protocol=ascii"},
	} {
		fs := newFlagSet()
		fs.SetOutput(io.Discard)
		o := flags(fs)
		if err := fs.Parse(args); err != nil {
			t.Errorf("%v: %v", args, err)
			continue
		}
		if _, _, err := configure(o); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// The flags that change what gocache serves reach its configuration.
func TestConfigureMemcachedFlags(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "authfile")
	os.WriteFile(auth, []byte("user:pass\n"), 0o600)
	parse := func(args ...string) gocache.Config {
		t.Helper()
		fs := newFlagSet()
		o := flags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := configure(o)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return cfg
	}
	if c := parse(); c.Protocol != memcached.ProtocolAuto || c.DisableFlush || c.DisableCAS || c.RequireAuth {
		t.Errorf("defaults: %+v", c)
	}
	if c := parse("-B", "ascii"); c.Protocol != memcached.ProtocolText {
		t.Errorf("-B ascii: %v", c.Protocol)
	}
	if c := parse("-B", "binary"); c.Protocol != memcached.ProtocolBinary {
		t.Errorf("-B binary: %v", c.Protocol)
	}
	if c := parse("-F", "-C", "-A", "-R", "7"); !c.DisableFlush || !c.DisableCAS || !c.ShutdownCommand || c.ReqsPerEvent != 7 {
		t.Errorf("-F -C -A -R 7: %+v", c)
	}
	if c := parse("-o", "idle_timeout=3"); c.IdleTimeout != 3*time.Second {
		t.Errorf("idle_timeout=3: %v", c.IdleTimeout)
	}
	if c := parse("-o", "read_buf_mem_limit=2"); c.ReadBufMemLimit != 2<<20 {
		t.Errorf("read_buf_mem_limit=2: %d", c.ReadBufMemLimit)
	}
	// -Y alone is memcached's ascii authentication: text only, required.
	if c := parse("-Y", auth, "-U", "0"); c.Protocol != memcached.ProtocolText || !c.RequireAuth || c.Users == nil {
		t.Errorf("-Y: %+v", c)
	}
	// -S -Y is binary SASL with the users of -Y.
	if c := parse("-S", "-Y", auth); c.Protocol != memcached.ProtocolBinary || !c.RequireAuth || c.Users == nil {
		t.Errorf("-S -Y: %+v", c)
	}
	if c := parse("-v", "-v"); c.Verbosity != 2 {
		t.Errorf("-v -v: verbosity %d", c.Verbosity)
	}
	if c := parse("-vvv"); c.Verbosity != 3 {
		t.Errorf("-vvv: verbosity %d", c.Verbosity)
	}
	// What "stats settings" shows of memcached's tuning, in its format.
	c := parse("-f", "1.1", "-n", "64", "-b", "128", "-D", ":", "-X", "-I", "2m",
		"-o", "hash_algorithm=jenkins,hot_max_factor=0.5,watcher_logbuf_size=64,temporary_ttl=30")
	for name, want := range map[string]string{"growth_factor": "1.10", "chunk_size": "64", "tcp_backlog": "128",
		"stat_key_prefix": ":", "dump_enabled": "no", "slab_chunk_max": "524288", "hash_algorithm": "jenkins",
		"hot_max_factor": "0.50", "watcher_logbuf_size": "65536", "temp_lru": "yes", "temporary_ttl": "30"} {
		if got := c.Settings[name]; got != want {
			t.Errorf("settings %s = %q, want %q", name, got, want)
		}
	}
	if c := parse("-I", "1024", "-o", "slab_chunk_max=1024"); c.Settings["slab_chunk_max"] != "1024" {
		t.Errorf("slab_chunk_max=1024: %q", c.Settings["slab_chunk_max"])
	}
	if c := parse("-l", "127.0.0.1", "-l", "127.0.0.2"); c.Settings["interface"] != "127.0.0.1,127.0.0.2" {
		t.Errorf("-l twice: %q", c.Settings["interface"])
	}
}

func TestConfigure(t *testing.T) {
	fs := newFlagSet()
	o := flags(fs)
	if err := fs.Parse([]string{"-m", "1024", "-M", "-I", "2m", "-c", "10", "-t", "2", "-p", "1234", "-l", "0.0.0.0", "-vv"}); err != nil {
		t.Fatal(err)
	}
	cfg, ls, err := configure(o)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.MaxBytes != 1024<<20 || !cfg.Cache.NoEvict || cfg.Cache.MaxItemSize != 2<<20 ||
		cfg.MaxConns != 10 || cfg.Threads != 2 || len(ls) != 1 || ls[0] != (listenSpec{"0.0.0.0:1234", false}) || cfg.Verbosity != 2 {
		t.Fatalf("config %+v listeners %v", cfg, ls)
	}
	fs = newFlagSet()
	o = flags(fs)
	fs.Parse([]string{"--unix-socket", "/tmp/g.sock", "--memory-limit=2g"})
	cfg, ls, err = configure(o)
	if err != nil || ls[0].addr != "unix:/tmp/g.sock" || cfg.Cache.MaxBytes != 2<<30 {
		t.Fatalf("long flags: %v %v %d", err, ls, cfg.Cache.MaxBytes)
	}
	// No flags: memcached's defaults on 127.0.0.1:11211.
	fs = newFlagSet()
	o = flags(fs)
	fs.Parse(nil)
	cfg, ls, _ = configure(o)
	if len(ls) != 1 || ls[0].addr != "127.0.0.1:11211" || ls[0].tls || cfg.Cache.MaxBytes != 64<<20 ||
		cfg.Cache.MaxItemSize != 1<<20 || cfg.MaxConns != 1024 || cfg.Users != nil || len(cfg.Buckets) != 0 {
		t.Fatalf("defaults: %v %+v", ls, cfg)
	}
}

func TestConfigureAuthTLSBuckets(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("alice:secret\n!buckets alice travel\n"), 0o600)
	cert, key := peer.SelfSignedCert(t, dir)
	fs := newFlagSet()
	o := flags(fs)
	err := fs.Parse([]string{"-S", "-Y", users, "-Z", "-o", "ssl_chain_cert=" + cert + ",ssl_key=" + key,
		"-o", "buckets=travel,beer-sample", "-l", "notls:127.0.0.1:1,127.0.0.1:2,localhost", "-p", "3"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, ls, err := configure(o)
	if err != nil {
		t.Fatal(err)
	}
	want := []listenSpec{{"127.0.0.1:1", false}, {"127.0.0.1:2", true}, {"localhost:3", true}}
	if len(ls) != 3 || ls[0] != want[0] || ls[1] != want[1] || ls[2] != want[2] {
		t.Fatalf("listeners %v", ls)
	}
	if !cfg.RequireAuth || cfg.Users == nil || cfg.Users.Len() != 1 || cfg.TLS == nil ||
		strings.Join(cfg.Buckets, ",") != "travel,beer-sample" {
		t.Fatalf("config %+v", cfg)
	}
}

// The built binary serves, passes memccapable and stops on SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "gocache")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port := peer.FreePort(t)
	cmd := exec.Command(bin, "-p", strconv.Itoa(port), "-m", "16", "-v")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var c net.Conn
	var err error
	for range 200 {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("gocache did not listen: %v\n%s", err, stderr.String())
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	(&gm.MCRequest{Opcode: gm.VERSION}).Transmit(c)
	var res gm.MCResponse
	if _, err := res.Receive(c, nil); err != nil || !strings.HasPrefix(string(res.Body), "1.6.18") {
		t.Fatalf("VERSION: %v %q", err, res.Body)
	}
	c.Close()
	if mc, err := exec.LookPath("memccapable"); err == nil {
		out, err := exec.Command(mc, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-b").CombinedOutput()
		if err != nil || strings.Count(string(out), "[pass]") != 27 {
			t.Fatalf("memccapable: %v\n%s", err, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gocache did not stop on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Fatalf("log: %s", stderr.String())
	}
}
