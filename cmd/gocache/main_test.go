package main

import (
	"bytes"
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
	"github.com/f8e615c8/gomemcached/internal/peer"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string // expected in stdout or stderr
	}{
		{[]string{"-h"}, 0, "-max-item-size"},
		{[]string{"-V"}, 0, "gocache 1.6.18"},
		{[]string{"-U", "11211"}, 1, "only -U 0"},
		{[]string{"-S"}, 1, "-S needs -Y"},
		{[]string{"-Y", "/nonexistent/users"}, 1, "-Y"},
		{[]string{"-Z"}, 1, "ssl_chain_cert"},
		{[]string{"-o", "ssl_key=/x"}, 1, "needs -Z"},
		{[]string{"-o", "bogus=1"}, 1, "unknown option"},
		{[]string{"-o", "ssl_verify_mode=9"}, 1, "0 to 3"},
		{[]string{"-I", "100"}, 1, "at least 1k"},
		{[]string{"-I", "64m"}, 1, "half of -m"},
		{[]string{"-m", "lots"}, 1, "megabytes"},
		{[]string{"-t", "0"}, 1, "at least 1"},
		{[]string{"-nosuchflag"}, 2, "not defined"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr, nil)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("%v: exit %d, want %d; output %q", tc.args, code, tc.code, stdout.String()+stderr.String())
		}
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
