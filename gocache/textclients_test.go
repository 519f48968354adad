package gocache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	gm "github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/client"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// Real text-protocol clients from the ecosystem, run against memcached
// 1.6.18 and against gocache in both connection models (a goroutine per
// connection, and epoll loops): bradfitz/gomemcache, libmemcached's
// command-line tools in their default (ASCII) mode, memcaslap without
// --binary and memccapable -a. Each test runs the same client session on
// a fresh server of each kind and requires gocache to do what memcached
// does: the same results, exit codes and outputs (statistics' values
// excepted).

// textServer is a kind of server a text client test runs against.
type textServer struct {
	name  string
	start func(t *testing.T) string // a fresh server's address
}

// textServers returns memcached first (its session is the reference),
// then gocache with a goroutine per connection and with epoll loops.
func textServers() []textServer {
	gc := func(loops int) func(t *testing.T) string {
		return func(t *testing.T) string {
			_, addr := gocachetest.Start(t, gocache.Config{EventLoops: loops})
			return addr
		}
	}
	return []textServer{
		{"memcached", func(t *testing.T) string { return peer.Memcached(t, "-t", "2") }},
		{"gocache goroutines", gc(0)},
		{"gocache event loops", gc(-1)},
	}
}

// compareSessions requires each gocache session to be memcached's (the
// first), result by result.
func compareSessions(t *testing.T, names []string, sessions [][]string) {
	t.Helper()
	for i := 1; i < len(sessions); i++ {
		diffs := 0
		for j := range max(len(sessions[0]), len(sessions[i])) {
			var want, got string
			if j < len(sessions[0]) {
				want = sessions[0][j]
			}
			if j < len(sessions[i]) {
				got = sessions[i][j]
			}
			if want != got {
				if diffs++; diffs > 20 {
					t.Errorf("%s: more differences left out", names[i])
					break
				}
				t.Errorf("%s, step %d:\n memcached: %s\n %s: %s", names[i], j, want, names[i], got)
			}
		}
		if diffs == 0 {
			t.Logf("%s: %d results, all as memcached's", names[i], len(sessions[i]))
		}
	}
}

// itemString describes a gomemcache item, with its CAS only as present
// or not (the values differ between servers).
func itemString(it *memcache.Item, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("key=%q value=%q flags=%d cas=%v", it.Key, it.Value, it.Flags, it.CasID != 0)
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}

// gomemcacheSession runs a bradfitz/gomemcache session against addr and
// returns one line per operation.
func gomemcacheSession(t *testing.T, addr string) []string {
	mc := memcache.New(addr)
	mc.Timeout = 3 * time.Second
	mc.MaxIdleConns = 4
	t.Cleanup(func() { mc.Close() })
	var out []string
	log := func(name, res string) { out = append(out, name+": "+res) }
	item := func(key, value string, flags uint32) *memcache.Item {
		return &memcache.Item{Key: key, Value: []byte(value), Flags: flags}
	}

	log("ping", errString(mc.Ping()))
	log("flush all", errString(mc.FlushAll()))
	log("get miss", itemString(mc.Get("k1")))
	log("set", errString(mc.Set(item("k1", "v1", 42))))
	log("get", itemString(mc.Get("k1")))
	log("set with flags 2^32-1", errString(mc.Set(item("fl", "x", 0xffffffff))))
	log("get flags 2^32-1", itemString(mc.Get("fl")))
	log("set empty", errString(mc.Set(item("empty", "", 0))))
	log("get empty", itemString(mc.Get("empty")))
	log("add existing", errString(mc.Add(item("k1", "dup", 0))))
	log("add new", errString(mc.Add(item("k2", "v2", 2))))
	log("get added", itemString(mc.Get("k2")))
	log("replace missing", errString(mc.Replace(item("k3", "v3", 0))))
	log("replace", errString(mc.Replace(item("k2", "v2b", 3))))
	log("get replaced", itemString(mc.Get("k2")))
	log("append missing", errString(mc.Append(item("k3", "x", 0))))
	log("prepend missing", errString(mc.Prepend(item("k3", "x", 0))))
	log("append", errString(mc.Append(item("k1", "-post", 9))))
	log("prepend", errString(mc.Prepend(item("k1", "pre-", 9))))
	log("get appended (flags kept)", itemString(mc.Get("k1")))

	// Compare and swap: a fresh CAS wins once; the loser conflicts; a
	// deleted key is a miss.
	cur, err := mc.Get("k1")
	log("cas get", itemString(cur, err))
	if err != nil {
		cur = &memcache.Item{Key: "k1", Value: []byte("v"), CasID: 1}
	}
	{
		stale := *cur
		cur.Value = []byte("swapped")
		log("cas", errString(mc.CompareAndSwap(cur)))
		stale.Value = []byte("loser")
		log("cas conflict", errString(mc.CompareAndSwap(&stale)))
		log("get after cas", itemString(mc.Get("k1")))
		log("delete for cas", errString(mc.Delete("k1")))
		log("cas on a deleted key", errString(mc.CompareAndSwap(cur)))
	}
	log("delete missing", errString(mc.Delete("k1")))

	// Counters.
	log("set counter", errString(mc.Set(item("n", "5", 0))))
	v, err := mc.Increment("n", 10)
	log("incr", fmt.Sprint(v, " ", errString(err)))
	v, err = mc.Decrement("n", 100)
	log("decr below 0", fmt.Sprint(v, " ", errString(err)))
	v, err = mc.Increment("missing", 1)
	log("incr missing", fmt.Sprint(v, " ", errString(err)))
	log("set non-numeric", errString(mc.Set(item("nn", "abc", 0))))
	v, err = mc.Increment("nn", 1)
	log("incr non-numeric", fmt.Sprint(v, " ", errString(err)))
	log("set max", errString(mc.Set(item("max", "18446744073709551615", 0))))
	v, err = mc.Increment("max", 2)
	log("incr wraps", fmt.Sprint(v, " ", errString(err)))
	// memcached pads a shortened counter with spaces or not, as its
	// threads happen to hold the item (see fetched in diff_test.go).
	it, err := mc.Get("max")
	if err == nil {
		it.Value = bytes.TrimRight(it.Value, " ")
	}
	log("get wrapped", itemString(it, err))
	log("set long counter", errString(mc.Set(item("long", "1000", 0))))
	v, err = mc.Decrement("long", 1)
	log("decr shortens", fmt.Sprint(v, " ", errString(err)))

	// Touch and get-and-touch.
	log("touch", errString(mc.Touch("k2", 100)))
	log("touch missing", errString(mc.Touch("nope", 100)))
	log("get and touch", itemString(mc.GetAndTouch("k2", 1)))
	log("get and touch missing", itemString(mc.GetAndTouch("nope", 1)))

	// GetMulti of 100 keys (and 10 misses), in one get.
	keys := make([]string, 0, 110)
	failed := 0
	for i := range 100 {
		k := fmt.Sprintf("multi:%03d", i)
		keys = append(keys, k)
		if err := mc.Set(item(k, strings.Repeat(strconv.Itoa(i%10), i+1), uint32(i))); err != nil {
			failed++
		}
	}
	log("multi sets", fmt.Sprintf("%d failed", failed))
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("multi:miss%d", i))
	}
	got, err := mc.GetMulti(keys)
	log("get multi", fmt.Sprintf("%d items %s", len(got), errString(err)))
	bad := 0
	for i := range 100 {
		it := got[keys[i]]
		if it == nil || string(it.Value) != strings.Repeat(strconv.Itoa(i%10), i+1) || it.Flags != uint32(i) || it.CasID == 0 {
			bad++
		}
	}
	log("get multi values", fmt.Sprintf("%d wrong", bad))

	// Big values: one under the 1 MiB item limit, one over it.
	big := strings.Repeat("b", 512<<10)
	log("set 512 KiB", errString(mc.Set(item("big", big, 1))))
	it, err = mc.Get("big")
	log("get 512 KiB", fmt.Sprint(err == nil && string(it.Value) == big, " ", errString(err)))
	log("set 2 MiB", errString(mc.Set(item("big", strings.Repeat("c", 2<<20), 1))))
	log("get after a refused set", itemString(mc.Get("big")))
	log("ping after a refused set", errString(mc.Ping()))

	// Expiry through touch: k2 was given 1 s by get-and-touch.
	time.Sleep(2100 * time.Millisecond)
	log("get after expiry", itemString(mc.Get("k2")))

	log("delete all", errString(mc.DeleteAll()))
	log("get after delete all", itemString(mc.Get("n")))
	log("set after delete all", errString(mc.Set(item("n", "1", 0))))
	log("flush all", errString(mc.FlushAll()))
	log("get after flush all", itemString(mc.Get("n")))
	log("ping at the end", errString(mc.Ping()))
	return out
}

func TestGomemcache(t *testing.T) {
	var names []string
	var sessions [][]string
	for _, srv := range textServers() {
		t.Run(srv.name, func(t *testing.T) {
			names = append(names, srv.name)
			sessions = append(sessions, gomemcacheSession(t, srv.start(t)))
		})
	}
	if len(sessions) == 3 {
		compareSessions(t, names, sessions)
	}
}

// crossProtocolSession stores with one protocol and reads with the other:
// values, flags and CAS must agree between gomemcache (text) and our
// binary client on the same server.
func crossProtocolSession(t *testing.T, addr string) []string {
	text := memcache.New(addr)
	text.Timeout = 3 * time.Second
	t.Cleanup(func() { text.Close() })
	bin, err := memcached.Connect("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bin.Close() })
	var out []string
	log := func(name, res string) { out = append(out, name+": "+res) }
	binFlags := func(res *gm.MCResponse) uint32 {
		if len(res.Extras) < 4 {
			return 0
		}
		return binary.BigEndian.Uint32(res.Extras)
	}

	// Text set, binary get.
	log("text set", errString(text.Set(&memcache.Item{Key: "t2b", Value: []byte("from text"), Flags: 0xdeadbeef})))
	it, err := text.Get("t2b")
	log("text get", itemString(it, err))
	res, err := bin.Get(0, "t2b")
	if err != nil {
		log("binary get", errString(err))
	} else {
		log("binary get", fmt.Sprintf("value=%q flags=%#x same cas=%v", res.Body, binFlags(res), it != nil && res.Cas == it.CasID))
	}

	// Binary set, text get (gets): the CAS the SET answered is the one
	// gets shows.
	res, err = bin.Set(0, "b2t", 77, 0, []byte("from binary"))
	if err != nil {
		log("binary set", errString(err))
	} else {
		it, err = text.Get("b2t")
		log("text get", itemString(it, err))
		log("text cas is binary's", fmt.Sprint(it != nil && it.CasID == res.Cas))
		// A text CAS with the binary CAS succeeds, and the binary side
		// sees the new value and a new CAS.
		if it != nil {
			it.Value = []byte("swapped by text")
			log("text cas", errString(text.CompareAndSwap(it)))
			res2, err := bin.Get(0, "b2t")
			if err != nil {
				log("binary get after cas", errString(err))
			} else {
				log("binary get after cas", fmt.Sprintf("value=%q flags=%d new cas=%v", res2.Body, binFlags(res2), res2.Cas != res.Cas))
			}
		}
	}

	// Counters across protocols.
	n, err := bin.Incr(0, "ctr", 1, 40, 0)
	log("binary incr creates", fmt.Sprint(n, " ", errString(err)))
	n, err = text.Increment("ctr", 2)
	log("text incr", fmt.Sprint(n, " ", errString(err)))
	n, err = bin.Incr(0, "ctr", 3, 0, 0)
	log("binary incr", fmt.Sprint(n, " ", errString(err)))
	log("text get counter", itemString(text.Get("ctr")))

	// Append by binary to a text value keeps text's flags.
	log("text set for append", errString(text.Set(&memcache.Item{Key: "ap", Value: []byte("a"), Flags: 5})))
	_, err = bin.Append(0, "ap", []byte("b"))
	log("binary append", errString(err))
	log("text get appended", itemString(text.Get("ap")))

	// Deletes are seen across protocols.
	_, err = bin.Del(0, "t2b")
	log("binary delete", errString(err))
	log("text get deleted", itemString(text.Get("t2b")))
	log("text delete", errString(text.Delete("b2t")))
	_, err = bin.Get(0, "b2t")
	log("binary get deleted", fmt.Sprint(errors.Is(err, gm.ErrKeyNotFound)))
	return out
}

func TestTextBinaryCrossProtocol(t *testing.T) {
	var names []string
	var sessions [][]string
	for _, srv := range textServers() {
		t.Run(srv.name, func(t *testing.T) {
			names = append(names, srv.name)
			sessions = append(sessions, crossProtocolSession(t, srv.start(t)))
		})
	}
	if len(sessions) == 3 {
		compareSessions(t, names, sessions)
	}
	// The session is meaningful: on memcached every cross-protocol check
	// holds.
	if len(sessions) > 0 {
		for _, line := range sessions[0] {
			if strings.HasSuffix(line, "false") || strings.Contains(line, "cas=false") {
				t.Errorf("memcached: %s", line)
			}
		}
	}
}

// toolRun runs one libmemcached tool with a timeout and describes its exit
// code and output, the server's port replaced by PORT.
func toolRun(t *testing.T, addr string, name string, args ...string) (string, string) {
	t.Helper()
	bin := peer.Require(t, name)
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--servers=" + addr}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	rc := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		rc = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if ctx.Err() != nil {
		rc = -1 // timed out
	}
	norm := func(s string) string {
		s = strings.ReplaceAll(s, port, "PORT")
		if len(s) > 200 {
			return fmt.Sprintf("%d bytes, sha256 %x", len(s), sha256.Sum256([]byte(s)))
		}
		return strconv.Quote(s)
	}
	return fmt.Sprintf("rc=%d stdout=%s stderr=%s", rc, norm(stdout.String()), norm(stderr.String())),
		strings.ReplaceAll(stdout.String(), port, "PORT")
}

// memcstat lines every server must report, and the ones whose values are
// the same on a fresh server after the session's commands.
var memcstatNames = []string{"pid", "uptime", "time", "version", "pointer_size", "curr_connections",
	"total_connections", "cmd_get", "cmd_set", "get_hits", "get_misses", "curr_items", "total_items", "bytes", "limit_maxbytes", "threads"}

// libmemcachedSession runs libmemcached's tools in text mode against addr.
func libmemcachedSession(t *testing.T, addr string) []string {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f1 := file("f1.txt", "hello world\n")
	f2 := file("f2.bin", string(bytes.Repeat([]byte{0, 1, 2, 0xff, '\r', '\n'}, 3000)))
	f3 := file("f3.txt", "third")
	var out []string
	run := func(name string, args ...string) string {
		res, stdout := toolRun(t, addr, name, args...)
		shown := make([]string, len(args))
		for i, a := range args {
			shown[i] = strings.TrimPrefix(a, dir+"/")
		}
		out = append(out, name+" "+strings.Join(shown, " ")+": "+res)
		return stdout
	}
	run("memcping")
	run("memcflush")
	run("memccp", f1)
	run("memccp", "--flag=7", "--expire=100", "--set", f2)
	run("memccp", "--add", f1)
	run("memccp", "--add", f3)
	run("memccp", "--replace", f3)
	run("memccp", "--replace", file("absent", "x"))
	run("memccat", "f1.txt")
	run("memccat", "f2.bin", "f3.txt")
	run("memccat", "--flag", "f2.bin")
	run("memccat", "nosuch")
	run("memccat", "f1.txt", "nosuch", "f3.txt")
	run("memcexist", "f1.txt")
	run("memcexist", "nosuch")
	run("memctouch", "--expire=50", "f1.txt")
	run("memctouch", "--expire=50", "nosuch")
	// memcdump lists the keys (stats items, stats cachedump) in an order
	// of memcached's slabs: compare them sorted.
	res, stdout := toolRun(t, addr, "memcdump")
	keys := strings.Fields(stdout)
	sort.Strings(keys)
	out = append(out, fmt.Sprintf("memcdump: %s keys=%q", res[:strings.Index(res, " ")], keys))
	run("memcrm", "f1.txt")
	run("memcrm", "f1.txt")
	run("memccat", "f1.txt")
	run("memctouch", "--expire=1", "f3.txt")
	time.Sleep(2100 * time.Millisecond)
	run("memccat", "f3.txt")
	// memcstat: the names it prints, not their values.
	res, stdout = toolRun(t, addr, "memcstat")
	seen := map[string]bool{}
	for _, line := range strings.Split(stdout, "\n") {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			seen[name] = true
		}
	}
	var missing []string
	for _, n := range memcstatNames {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	out = append(out, fmt.Sprintf("memcstat: %s missing=%q server line=%v", res[:strings.Index(res, " ")], missing,
		strings.HasPrefix(stdout, "Server: 127.0.0.1 (PORT)")))
	run("memcflush")
	run("memccat", "f2.bin")
	run("memcping")
	return out
}

func TestLibmemcachedTextTools(t *testing.T) {
	var names []string
	var sessions [][]string
	for _, srv := range textServers() {
		t.Run(srv.name, func(t *testing.T) {
			names = append(names, srv.name)
			sessions = append(sessions, libmemcachedSession(t, srv.start(t)))
		})
	}
	if len(sessions) == 3 {
		compareSessions(t, names, sessions)
	}
}

// memcaslap's counters: a text-mode load with multi-gets and verification
// must see no misses and no failed verifications.
var memcaslapCounter = regexp.MustCompile(`(?m)^(cmd_get|cmd_set|get_misses|verify_misses|verify_failed): (\d+)$`)

func TestMemcaslapText(t *testing.T) {
	bin := peer.Require(t, "memcaslap")
	var names []string
	var sessions [][]string
	for _, srv := range textServers() {
		t.Run(srv.name, func(t *testing.T) {
			addr := srv.start(t)
			var session []string
			for _, args := range [][]string{
				{"-T", "1", "-c", "4", "-x", "20000", "--verify=0.1"},
				{"-T", "2", "-c", "8", "-x", "20000", "--verify=0.1", "-d", "10"},
				{"-T", "1", "-c", "4", "-x", "5000", "-X", "100000", "--verify=1"},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				out, err := exec.CommandContext(ctx, bin, append([]string{"-s", addr}, args...)...).CombinedOutput()
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				cancel()
				var counters []string
				for _, m := range memcaslapCounter.FindAllStringSubmatch(string(out), -1) {
					counters = append(counters, m[1]+"="+m[2])
				}
				if !bytes.Contains(out, []byte("Run time")) {
					t.Logf("memcaslap %v: %s", args, out)
				}
				session = append(session, fmt.Sprintf("memcaslap %s: err=%v %s", strings.Join(args, " "), err, strings.Join(counters, " ")))
			}
			names = append(names, srv.name)
			sessions = append(sessions, session)
		})
	}
	if len(sessions) == 3 {
		compareSessions(t, names, sessions)
	}
}

// memccapable -a runs libmemcached's 27 ASCII-protocol tests; every test
// memcached passes must pass on gocache.
func TestMemccapableASCII(t *testing.T) {
	bin := peer.Require(t, "memccapable")
	results := map[string]map[string]string{}
	var order []string
	for _, srv := range textServers() {
		t.Run(srv.name, func(t *testing.T) {
			addr := srv.start(t)
			host, port, _ := net.SplitHostPort(addr)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-a", "-t", "2").CombinedOutput()
			res := map[string]string{}
			for _, line := range strings.Split(string(out), "\n") {
				if i := strings.Index(line, "[pass]"); i > 0 {
					res[strings.TrimSpace(line[:i])] = "pass"
				} else if i := strings.LastIndex(line, "  "); i > 0 && strings.HasPrefix(line, "ascii ") {
					res[strings.TrimSpace(line[:i])] = "FAIL " + strings.TrimSpace(line[i:])
				}
			}
			// A failing test prints its name, then its error on later lines.
			for _, m := range regexp.MustCompile(`(?m)^(ascii [a-z ]+?)\s+(\[ERROR|Errno|\[FAIL)`).FindAllStringSubmatch(string(out), -1) {
				if res[m[1]] != "pass" {
					res[m[1]] = "FAIL"
				}
			}
			results[srv.name] = res
			order = append(order, srv.name)
			if srv.name == "memcached" && (len(res) != 27 || !bytes.Contains(out, []byte("All tests passed"))) {
				t.Fatalf("memccapable -a against memcached: %d results\n%s", len(res), out)
			}
			passed := 0
			for _, r := range res {
				if r == "pass" {
					passed++
				}
			}
			t.Logf("%s: %d of 27 ASCII tests passed", srv.name, passed)
			if srv.name != "memcached" && passed != 27 {
				t.Errorf("memccapable -a against %s:\n%s", srv.name, out)
			}
		})
	}
	if ref := results["memcached"]; ref != nil {
		for _, name := range order[1:] {
			for test, r := range ref {
				if r == "pass" && results[name][test] != "pass" {
					t.Errorf("%s: %q %s, memcached passes it", name, test, results[name][test])
				}
			}
		}
	}
}
