package ring

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// TestTwemproxyPeer writes keys through a real twemproxy (Debian's
// nutcracker 0.5.0) in front of three memcached, and in front of three
// gocache nodes, with bradfitz/gomemcache's text client and with
// libmemcached's memccp and memccat, and finds each on the backend a
// Twemproxy Ring names: two pools, one with server names,
// weights and md5, one with the default hash and a hash tag. Without
// nutcracker it fails in CI (CI=true) and is skipped loudly elsewhere.
func TestTwemproxyPeer(t *testing.T) {
	bin, err := exec.LookPath("nutcracker")
	if err != nil {
		const msg = "nutcracker is not installed (apt-get install -y nutcracker)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("!!! SKIPPING the comparison with twemproxy: " + msg)
	}
	t.Run("memcached", func(t *testing.T) {
		twemproxyPlacement(t, bin, []string{peer.Memcached(t), peer.Memcached(t), peer.Memcached(t)})
	})
	t.Run("gocache", func(t *testing.T) {
		var backends []string
		for range 3 {
			_, addr := gocachetest.Start(t, gocache.Config{})
			backends = append(backends, addr)
		}
		twemproxyPlacement(t, bin, backends)
	})
}

// twemproxyPlacement runs nutcracker (bin) in front of backends and checks
// every key written through it is on the backend the Ring names.
func twemproxyPlacement(t *testing.T, bin string, backends []string) {
	var err error
	pools := []struct {
		prefix, hash, tag string
		entries           []string
	}{
		{"named/", "md5", "", []string{backends[0] + ":1 alpha", backends[1] + ":2 beta", backends[2] + ":1 gamma"}},
		{"plain/", "", "{}", []string{backends[0] + ":1", backends[1] + ":1", backends[2] + ":3"}},
	}
	var conf strings.Builder
	listen := make([]string, len(pools))
	for i, p := range pools {
		listen[i] = "127.0.0.1:" + strconv.Itoa(peer.FreePort(t))
		fmt.Fprintf(&conf, "pool%d:\n  listen: %s\n  distribution: ketama\n", i, listen[i])
		if p.hash != "" {
			fmt.Fprintf(&conf, "  hash: %s\n", p.hash)
		}
		if p.tag != "" {
			fmt.Fprintf(&conf, "  hash_tag: %q\n", p.tag)
		}
		conf.WriteString("  servers:\n")
		for _, e := range p.entries {
			fmt.Fprintf(&conf, "   - %s\n", e)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "nutcracker.yml")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfg, "-o", filepath.Join(dir, "log"), "-p", filepath.Join(dir, "pid"),
		"-s", strconv.Itoa(peer.FreePort(t)), "-a", "127.0.0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, a := range listen {
		for deadline := time.Now().Add(5 * time.Second); ; {
			c, err := net.Dial("tcp", a)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "log"))
				t.Fatalf("nutcracker does not listen on %s: %v\n%s", a, err, log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	direct := make([]*memcache.Client, len(backends))
	for i, b := range backends {
		direct[i] = memcache.New(b)
	}
	var keys []string
	for _, k := range testKeys(20000) {
		if len(k) > 0 && len(k) < 200 && strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r > '~' }) < 0 {
			keys = append(keys, k)
		}
	}
	keys = append(keys[:3000], "user:{42}:a", "user:{42}:b", "{}x", "a{b}c{d}")
	for i, p := range pools {
		t.Run(p.prefix, func(t *testing.T) {
			servers := make([]Server, len(p.entries))
			for j, e := range p.entries {
				if servers[j], err = ParseTwemproxyServer(e); err != nil {
					t.Fatal(err)
				}
			}
			h := HashDefault
			if p.hash != "" {
				if h, err = ParseHash(p.hash); err != nil {
					t.Fatal(err)
				}
			}
			r, err := New(servers, Config{Distribution: Twemproxy, Hash: h, HashTag: p.tag})
			if err != nil {
				t.Fatal(err)
			}
			proxy := memcache.New(listen[i])
			proxy.Timeout = 2 * time.Second
			bad := 0
			for _, k := range keys {
				k = p.prefix + k
				if err := proxy.Set(&memcache.Item{Key: k, Value: []byte("v")}); err != nil {
					t.Fatalf("set %q through twemproxy: %v", k, err)
				}
				want := r.Pick(k)
				for j, c := range direct {
					_, err := c.Get(k)
					if found := err == nil; found != (j == want) {
						if bad++; bad <= 5 {
							t.Errorf("key %q: on backend %d: %v; Ring says backend %d", k, j, found, want)
						}
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d disagreements over %d keys", bad, len(keys))
			}
			// libmemcached's own tools, through the same twemproxy: memccp
			// stores each file under its name, memccat reads it back, and
			// the key is on the backend the Ring names.
			memccp, memccat := peer.Require(t, "memccp"), peer.Require(t, "memccat")
			files := t.TempDir()
			for n := range 20 {
				k := fmt.Sprintf("memccp-%d-%d", i, n)
				value := fmt.Sprintf("value of %s", k)
				path := filepath.Join(files, k)
				if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(memccp, "--servers="+listen[i], path).CombinedOutput(); err != nil {
					t.Fatalf("memccp %s through twemproxy: %v\n%s", k, err, out)
				}
				out, err := exec.Command(memccat, "--servers="+listen[i], k).Output()
				// memccat ends what it prints with a newline.
				if err != nil || strings.TrimSuffix(string(out), "\n") != value {
					t.Fatalf("memccat %s through twemproxy: %q, %v", k, out, err)
				}
				want := r.Pick(k)
				for j, c := range direct {
					it, err := c.Get(k)
					if found := err == nil && string(it.Value) == value; found != (j == want) {
						t.Errorf("memccp's key %q: on backend %d: %v; Ring says backend %d", k, j, found, want)
					}
				}
			}
		})
	}
}
