package ring

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// placeC is a C program over Debian's libmemcached that prints, for each
// hex-encoded key on its input, either the server memcached_generate_hash
// picks or memcached_generate_hash_value's hash.
//
//	placec values HASH                       hash values, no servers
//	placec DIST HASH [HOST PORT WEIGHT]...   server indexes
//
// DIST is ketama (MEMCACHED_BEHAVIOR_KETAMA), weighted
// (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED) or modula (the default); HASH is a
// memcached_hash_t set with MEMCACHED_BEHAVIOR_HASH, or -1 to leave the
// behaviour's. Behaviours are set before the servers are added, as an
// application configures a client; a HOST starting with '/' is a unix
// socket.
const placeC = `
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t unhex(const char *s, char *out) {
	size_t n = 0;
	unsigned int b;
	while (s[0] && s[1] && sscanf(s, "%2x", &b) == 1) {
		out[n++] = (char) b;
		s += 2;
	}
	return n;
}

int main(int argc, char **argv) {
	static char line[4096], key[2048];
	memcached_st *m = NULL;
	int hash;
	if (argc < 3) {
		fprintf(stderr, "usage: placec values|ketama|weighted|modula HASH [HOST PORT WEIGHT]...\n");
		return 2;
	}
	hash = atoi(argv[2]);
	if (strcmp(argv[1], "values") != 0) {
		memcached_return_t rc = MEMCACHED_SUCCESS;
		m = memcached_create(NULL);
		if (strcmp(argv[1], "ketama") == 0)
			rc = memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA, 1);
		else if (strcmp(argv[1], "weighted") == 0)
			rc = memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
		if (rc == MEMCACHED_SUCCESS && hash >= 0)
			rc = memcached_behavior_set(m, MEMCACHED_BEHAVIOR_HASH, (uint64_t) hash);
		if (rc != MEMCACHED_SUCCESS) {
			fprintf(stderr, "behaviour: %s\n", memcached_strerror(m, rc));
			return 2;
		}
		for (int i = 3; i + 2 < argc; i += 3) {
			const char *host = argv[i];
			uint32_t weight = (uint32_t) strtoul(argv[i + 2], NULL, 10);
			if (host[0] == '/')
				rc = memcached_server_add_unix_socket_with_weight(m, host, weight);
			else
				rc = memcached_server_add_with_weight(m, host, (in_port_t) atoi(argv[i + 1]), weight);
			if (rc != MEMCACHED_SUCCESS) {
				fprintf(stderr, "add %s: %s\n", host, memcached_strerror(m, rc));
				return 2;
			}
		}
	}
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		size_t n = unhex(line, key);
		if (m == NULL)
			printf("%u\n", memcached_generate_hash_value(key, n, (memcached_hash_t) hash));
		else
			printf("%u\n", memcached_generate_hash(m, key, n));
	}
	return 0;
}
`

// buildPlaceC compiles placeC into a temporary directory. Without a C
// compiler or libmemcached's headers it fails the test in CI (CI=true),
// where .ci/run installs them, and skips it elsewhere.
func buildPlaceC(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "placec.c"), filepath.Join(dir, "placec")
	if err := os.WriteFile(src, []byte(placeC), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI needs cc and libmemcached-dev: apt-get install -y gcc libmemcached-dev)", msg)
		}
		t.Skipf("SKIPPING the comparison with libmemcached: %s (apt-get install -y gcc libmemcached-dev)", msg)
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		missing("no C compiler: %v", err)
	}
	out, err := exec.Command(cc, "-std=c99", "-O1", "-o", bin, src, "-lmemcached").CombinedOutput()
	if err != nil {
		missing("cannot build against libmemcached: %v\n%s", err, out)
	}
	return bin
}

// testKeys returns n keys, the same on every run: short and long, ASCII
// and not (bytes past 0x7f are where the C hashes' signed char shows),
// and the empty key.
func testKeys(n int) []string {
	rng := rand.New(rand.NewPCG(13, 4))
	keys := make([]string, 0, n)
	keys = append(keys, "", "a", "foo", "key:0", strings.Repeat("k", 250), "\x80", "\xff\xfe")
	for len(keys) < n {
		switch len(keys) % 4 {
		case 0:
			keys = append(keys, "key:"+strconv.Itoa(len(keys)))
		case 1:
			keys = append(keys, fmt.Sprintf("user/%08x/profile", rng.Uint32()))
		case 2:
			b := make([]byte, 1+rng.IntN(250))
			for i := range b {
				b[i] = byte(0x21 + rng.IntN(0x7f-0x21))
			}
			keys = append(keys, string(b))
		default:
			b := make([]byte, 1+rng.IntN(64))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			keys = append(keys, string(b))
		}
	}
	return keys
}

// runPlaceC runs the C program over keys and returns its numbers.
func runPlaceC(t *testing.T, bin string, keys []string, args ...string) []uint32 {
	t.Helper()
	var in bytes.Buffer
	for _, k := range keys {
		in.WriteString(hex.EncodeToString([]byte(k)))
		in.WriteByte('\n')
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("placec %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	vals := make([]uint32, 0, len(keys))
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		v, err := strconv.ParseUint(sc.Text(), 10, 32)
		if err != nil {
			t.Fatalf("placec output %q: %v", sc.Text(), err)
		}
		vals = append(vals, uint32(v))
	}
	if len(vals) != len(keys) {
		t.Fatalf("placec %s: %d answers for %d keys", strings.Join(args, " "), len(vals), len(keys))
	}
	return vals
}

// libmemcachedHash is the memcached_hash_t of each Hash libmemcached has.
var libmemcachedHash = map[Hash]int{
	OneAtATime: 0, MD5: 1, CRC: 2, FNV1_64: 3, FNV1a64: 4, FNV1_32: 5, FNV1a32: 6,
}

// TestHashMatchesLibmemcached compares every hash with
// memcached_generate_hash_value for 10k keys.
func TestHashMatchesLibmemcached(t *testing.T) {
	bin := buildPlaceC(t)
	keys := testKeys(10000)
	for h, id := range libmemcachedHash {
		t.Run(h.String(), func(t *testing.T) {
			want := runPlaceC(t, bin, keys, "values", strconv.Itoa(id))
			bad := 0
			for i, k := range keys {
				if got := h.SumString(k); got != want[i] {
					if bad++; bad <= 5 {
						t.Errorf("%s(%q) = %#x, libmemcached %#x", h, k, got, want[i])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d keys differ", bad, len(keys))
			}
		})
	}
}

// cServer is a server as the test gives it to both: libmemcached's host,
// port and weight, and the Addr the Go side is given (a bare host for the
// default port, sometimes, to test that form too).
type cServer struct {
	host   string
	port   int
	weight int
	addr   string
}

func srv(host string, port, weight int) cServer {
	addr := host
	switch {
	case strings.HasPrefix(host, "/"):
	case port != defaultPort || len(host)%2 == 0:
		addr = "[" + host + "]:" + strconv.Itoa(port)
		if !strings.Contains(host, ":") {
			addr = host + ":" + strconv.Itoa(port)
		}
	}
	return cServer{host, port, weight, addr}
}

var placementLists = map[string][]cServer{
	"one":          {srv("127.0.0.1", 11211, 0)},
	"two-default":  {srv("10.0.0.1", 11211, 0), srv("10.0.0.2", 11211, 0)},
	"three-ports":  {srv("cache-a.example.com", 11212, 0), srv("cache-b.example.com", 11213, 0), srv("cache-c.example.com", 11214, 0)},
	"four-mixed":   {srv("127.0.0.1", 11211, 0), srv("127.0.0.1", 11311, 0), srv("mc1", 11211, 0), srv("192.168.10.20", 22122, 0)},
	"five-ips":     {srv("10.1.0.1", 11211, 0), srv("10.1.0.2", 11211, 0), srv("10.1.0.3", 11211, 0), srv("10.1.0.4", 11211, 0), srv("10.1.0.5", 11211, 0)},
	"ipv6-unix":    {srv("::1", 11212, 0), srv("fe80::1", 11211, 0), srv("/tmp/memcached.sock", 0, 0)},
	"weights-123":  {srv("10.0.0.1", 11211, 1), srv("10.0.0.2", 11211, 2), srv("10.0.0.3", 11211, 3)},
	"weights-5111": {srv("a.example", 11211, 5), srv("b.example", 11211, 1), srv("c.example", 11212, 1), srv("d.example", 11211, 1)},
	"weights-0-1":  {srv("10.0.0.1", 11211, 0), srv("10.0.0.2", 11211, 1), srv("10.0.0.3", 11211, 0)},
	"weights-big":  {srv("big", 11211, 1000), srv("small", 11211, 1), srv("tiny", 11300, 1)},
}

// TestPlacementMatchesLibmemcached places 10k keys with libmemcached and
// with a Ring over the same server list: every key must land on the same
// server, for each distribution and several key hashes.
func TestPlacementMatchesLibmemcached(t *testing.T) {
	bin := buildPlaceC(t)
	keys := testKeys(10000)
	modes := []struct {
		cdist string
		chash int
		cfg   Config
	}{
		{"weighted", -1, Config{Distribution: KetamaWeighted}},
		{"ketama", -1, Config{Distribution: Ketama}},
		{"ketama", 1, Config{Distribution: Ketama, Hash: MD5}},
		{"ketama", 2, Config{Distribution: Ketama, Hash: CRC}},
		{"ketama", 4, Config{Distribution: Ketama, Hash: FNV1a64}},
		{"ketama", 6, Config{Distribution: Ketama, Hash: FNV1a32}},
		{"weighted", 0, Config{Distribution: KetamaWeighted, Hash: OneAtATime}},
		{"modula", -1, Config{Distribution: Modula}},
		{"modula", 1, Config{Distribution: Modula, Hash: MD5}},
	}
	for name, list := range placementLists {
		for _, m := range modes {
			t.Run(fmt.Sprintf("%s/%s-%d", name, m.cdist, m.chash), func(t *testing.T) {
				args := []string{m.cdist, strconv.Itoa(m.chash)}
				servers := make([]Server, len(list))
				for i, s := range list {
					args = append(args, s.host, strconv.Itoa(s.port), strconv.Itoa(s.weight))
					servers[i] = Server{Addr: s.addr, Weight: s.weight}
				}
				want := runPlaceC(t, bin, keys, args...)
				r, err := New(servers, m.cfg)
				if err != nil {
					t.Fatal(err)
				}
				bad := 0
				for i, k := range keys {
					if got := r.Pick(k); got != int(want[i]) {
						if bad++; bad <= 5 {
							t.Errorf("Pick(%q) = %d, libmemcached %d", k, got, want[i])
						}
					}
				}
				if bad > 0 {
					t.Errorf("%d of %d keys on another server than libmemcached's", bad, len(keys))
				}
			})
		}
	}
}
