package memcached

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/internal/peer"
)

// lmClient is a C program over Debian's libmemcached, configured as an
// application sets it up for ketama (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED,
// then the servers), that stores or reads the keys on its input:
//
//	lmclient set|get HOST PORT [HOST PORT]...
//
// set stores "lm:KEY" under each KEY; get prints each KEY whose value is
// not "go:KEY". Both exit non-zero on a transport error.
const lmClient = `
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
	static char line[512], val[600];
	memcached_st *m = memcached_create(NULL);
	int set, i;
	if (argc < 4 || argc % 2) {
		fprintf(stderr, "usage: lmclient set|get HOST PORT...\n");
		return 2;
	}
	set = strcmp(argv[1], "set") == 0;
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
	for (i = 2; i < argc; i += 2)
		if (memcached_server_add(m, argv[i], (in_port_t) atoi(argv[i + 1])) != MEMCACHED_SUCCESS) {
			fprintf(stderr, "server_add %s failed\n", argv[i]);
			return 1;
		}
	while (fgets(line, sizeof line, stdin)) {
		size_t n = strcspn(line, "\n");
		memcached_return_t rc;
		line[n] = 0;
		if (set) {
			snprintf(val, sizeof val, "lm:%s", line);
			rc = memcached_set(m, line, n, val, strlen(val), 0, 0);
			if (rc != MEMCACHED_SUCCESS) {
				fprintf(stderr, "set %s: %s\n", line, memcached_strerror(m, rc));
				return 1;
			}
		} else {
			size_t vlen;
			uint32_t flags;
			char *v = memcached_get(m, line, n, &vlen, &flags, &rc);
			snprintf(val, sizeof val, "go:%s", line);
			if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) {
				fprintf(stderr, "get %s: %s\n", line, memcached_strerror(m, rc));
				return 1;
			}
			if (v == NULL || vlen != strlen(val) || memcmp(v, val, vlen) != 0)
				printf("%s\n", line);
			free(v);
		}
	}
	memcached_free(m);
	return 0;
}
`

// buildLMClient compiles lmClient, skipping the test (failing it in CI)
// without a compiler or libmemcached's headers.
func buildLMClient(t *testing.T) string {
	t.Helper()
	cc := peer.Require(t, "cc")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "lmclient.c"), filepath.Join(dir, "lmclient")
	if err := os.WriteFile(src, []byte(lmClient), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cc, "-O1", "-o", bin, src, "-lmemcached").CombinedOutput()
	if err != nil {
		msg := "PEER MISSING: cannot build a libmemcached client (apt-get install -y libmemcached-dev): " +
			err.Error() + ": " + string(out)
		if peer.InCI() {
			t.Fatal(msg)
		}
		t.Skip("!!! " + msg)
	}
	return bin
}

// runLMClient runs the libmemcached client in mode over keys and returns
// the lines it printed.
func runLMClient(t *testing.T, bin, mode string, addrs, keys []string) []string {
	t.Helper()
	args := []string{mode}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, host, port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(strings.Join(keys, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lmclient %s: %v: %s", mode, err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// A C program over libmemcached (ketama weighted) and Servers share the
// same four nodes: what either writes, the other reads, for every key.
func TestServersLibmemcachedInterop(t *testing.T) {
	bin := buildLMClient(t)
	cl := startCluster(t)
	s := newServers(t, cl.addrs, ServersOptions{})
	keys := testKeys(t, serversKeys)

	runLMClient(t, bin, "set", cl.addrs, keys)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := s.GetMulti(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, k := range keys {
		if r := got[k]; r == nil || string(r.Body) != "lm:"+k {
			if bad++; bad <= 3 {
				t.Errorf("key %s written by libmemcached: read %v through Servers", k, r)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d keys written by libmemcached not found through Servers", bad, len(keys))
	}

	items := make([]Item, len(keys))
	for i, k := range keys {
		items[i] = Item{Key: k, Value: []byte("go:" + k)}
	}
	if err := s.SetMulti(ctx, items); err != nil {
		t.Fatal(err)
	}
	if missing := runLMClient(t, bin, "get", cl.addrs, keys); len(missing) > 0 {
		t.Fatalf("%d of %d keys written through Servers not read by libmemcached, first %s", len(missing), len(keys), missing[0])
	}
}
