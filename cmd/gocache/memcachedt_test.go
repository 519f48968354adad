package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/f8e615c8/gomemcached/internal/peer"
)

// The files of memcached's own suite that are about the command line:
// each starts the built gocache with memcached's flags and checks what they
// did (item_size_max.t: -I refusals and "stats settings"; unixsocket.t: -s;
// issue_50.t: -B binary; 64bit.t: -m 4098 -M), in both connection models.
// .ci/run runs the whole suite (scripts/memcached-t.sh); this is the part
// that belongs to cmd/gocache.
func TestMemcachedSuiteFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs memcached's suite")
	}
	peer.Require(t, "perl")
	// In CI the script fetches t/ when it is not here; elsewhere the
	// test does not reach for the network.
	if !peer.InCI() && !suiteAvailable() {
		t.Skip("memcached's t/ not here (scripts/memcached-t.sh fetches it; run it once)")
	}
	bin := filepath.Join(t.TempDir(), "gocache")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	script, _ := filepath.Abs("../../scripts/memcached-t.sh")
	wrapper, _ := filepath.Abs("../../scripts/gocache-goroutines")
	allow, _ := filepath.Abs("../../scripts/memcached-t.allow")
	for _, model := range []struct{ name, server string }{{"loops", bin}, {"goroutines", wrapper}} {
		t.Run(model.name, func(t *testing.T) {
			cmd := exec.Command(script, "-j", "2", "-a", allow, "item_size_max.t", "unixsocket.t", "issue_50.t", "64bit.t")
			cmd.Env = append(os.Environ(), "SERVER_BIN="+model.server, "GOCACHE_BIN="+bin, "FILE_TIMEOUT=120")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(string(out), "0 of 4 files with unexpected failures") {
				t.Fatalf("unexpected output:\n%s", out)
			}
		})
	}
}

// suiteAvailable reports whether scripts/memcached-t.sh finds t/ without
// the network: in MEMCACHED_T, ../shared/memcached-t or its cache.
func suiteAvailable() bool {
	if d := os.Getenv("MEMCACHED_T"); d != "" {
		return exists(filepath.Join(d, "t"))
	}
	if exists("../../../shared/memcached-t/t") {
		return true
	}
	cache := os.Getenv("MEMCACHED_T_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "gomemcached")
	}
	return exists(filepath.Join(cache, "memcached-1.6.18/t/lib/MemcachedTest.pm"))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
