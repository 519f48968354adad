package memcached

// Aggregate throughput of a pool of gocache nodes, run by hand (it asserts
// no timing):
//
//	go test ./client -run '^$' -bench ScaleOut -benchtime 1x -v
//
// Three cmd/gocache processes (-t 1 each) on loopback; SCALE_BENCH_CONNS
// goroutines (default 16) each run a closed loop of 9:1 GET:SET over
// 10000 keys of 100-byte values for SCALE_BENCH_SECONDS (default 5), in
// SCALE_BENCH_ROUNDS alternating rounds (default 2) of:
//
//   - ring-N: our Servers (ketama, binary protocol) over the first N nodes;
//   - text-direct-3: bradfitz/gomemcache over the 3 nodes (text protocol,
//     its own placement);
//   - text-twemproxy-3: the same client through one twemproxy
//     (nutcracker, distribution ketama) in front of the 3 nodes.
//
// Each line gives ops/s, the servers' CPU per operation (the nodes' and
// twemproxy's, from /proc/PID/stat) and this process's (the clients').

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/peer"
	"github.com/f8e615c8/gomemcached/ring"
)

// scaleProc is a server process of the benchmark.
type scaleProc struct {
	addr string
	pid  int
}

// cpu returns the process's CPU time so far.
func (p scaleProc) cpu(b *testing.B) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// startScaleProc runs bin with args and waits until addr answers.
func startScaleProc(b *testing.B, addr, bin string, args ...string) scaleProc {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s does not listen on %s: %v", bin, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return scaleProc{addr: addr, pid: cmd.Process.Pid}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envIntOr(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// scaleOp is one operation of the load: a get or a set of key.
type scaleOp func(get bool, key string, value []byte) error

func BenchmarkScaleOut(b *testing.B) {
	conns := envIntOr("SCALE_BENCH_CONNS", 16)
	secs := envIntOr("SCALE_BENCH_SECONDS", 5)
	rounds := envIntOr("SCALE_BENCH_ROUNDS", 2)
	dir := b.TempDir()
	bin := filepath.Join(dir, "gocache")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/gocache").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	var nodes []scaleProc
	for range 3 {
		addr := "127.0.0.1:" + strconv.Itoa(peer.FreePort(b))
		_, port, _ := net.SplitHostPort(addr)
		nodes = append(nodes, startScaleProc(b, addr, bin, "-l", "127.0.0.1", "-p", port, "-U", "0", "-t", "1", "-m", "256"))
	}
	addrs := []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}

	type variant struct {
		name  string
		procs []scaleProc
		op    scaleOp
	}
	var variants []variant
	for n := 1; n <= 3; n++ {
		s, err := NewServers(ringServers(addrs[:n]), ring.Config{}, ServersOptions{Pool: PoolOptions{MaxIdle: conns}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		variants = append(variants, variant{fmt.Sprintf("ring-%d", n), nodes[:n], func(get bool, key string, value []byte) error {
			if get {
				_, err := s.Get(0, key)
				return err
			}
			_, err := s.Set(0, key, 0, 0, value)
			return err
		}})
	}
	text := func(addrs ...string) scaleOp {
		c := memcache.New(addrs...)
		c.MaxIdleConns, c.Timeout = conns, 2*time.Second
		return func(get bool, key string, value []byte) error {
			if get {
				_, err := c.Get(key)
				return err
			}
			return c.Set(&memcache.Item{Key: key, Value: value})
		}
	}
	variants = append(variants, variant{"text-direct-3", nodes, text(addrs...)})
	if nc, err := exec.LookPath("nutcracker"); err != nil {
		b.Log("!!! nutcracker is not installed (apt-get install -y nutcracker): no twemproxy rows")
	} else {
		listen := "127.0.0.1:" + strconv.Itoa(peer.FreePort(b))
		var conf strings.Builder
		fmt.Fprintf(&conf, "pool:\n  listen: %s\n  distribution: ketama\n  hash: md5\n  servers:\n", listen)
		for _, a := range addrs {
			fmt.Fprintf(&conf, "   - %s:1\n", a)
		}
		cfg := filepath.Join(dir, "nutcracker.yml")
		if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		proxy := startScaleProc(b, listen, nc, "-c", cfg, "-o", filepath.Join(dir, "nutcracker.log"),
			"-p", filepath.Join(dir, "nutcracker.pid"), "-s", strconv.Itoa(peer.FreePort(b)), "-a", "127.0.0.1")
		variants = append(variants, variant{"text-twemproxy-3", append([]scaleProc{proxy}, nodes...), text(listen)})
	}

	const nkeys = 10000
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = "scale:" + strconv.Itoa(i)
	}
	value := make([]byte, 100)
	for _, v := range variants { // each placement finds every key on its node
		for _, k := range keys {
			if err := v.op(false, k, value); err != nil {
				b.Fatal(err)
			}
		}
	}

	run := func(v variant) (ops, serverPerOp, clientPerOp float64) {
		var total, failed atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		cpu0 := make([]time.Duration, len(v.procs))
		for i, p := range v.procs {
			cpu0[i] = p.cpu(b)
		}
		self0 := selfCPU()
		start := time.Now()
		deadline := start.Add(time.Duration(secs) * time.Second)
		for g := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), 1))
				n := 0
				for ; n%64 != 0 || time.Now().Before(deadline); n++ {
					if err := v.op(r.IntN(10) != 0, keys[r.IntN(nkeys)], value); err != nil && err != memcache.ErrCacheMiss && !gomemcached.IsNotFound(err) {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
				total.Add(int64(n))
			}()
		}
		wg.Wait()
		el := time.Since(start).Seconds()
		if f := failed.Load(); f > 0 {
			b.Fatalf("%s: %d operations failed, the first: %v", v.name, f, firstErr.Load())
		}
		var server time.Duration
		for i, p := range v.procs {
			server += p.cpu(b) - cpu0[i]
		}
		n := float64(total.Load())
		return n / el, server.Seconds() * 1e6 / n, (selfCPU() - self0).Seconds() * 1e6 / n
	}
	b.ResetTimer()
	sums := map[string][]float64{}
	for round := range rounds * b.N {
		for _, v := range variants {
			ops, spo, cpo := run(v)
			b.Logf("round %d %-16s %9.0f ops/s  servers %5.2f µs/op  clients %5.2f µs/op", round, v.name, ops, spo, cpo)
			sums[v.name] = append(sums[v.name], ops)
		}
	}
	for _, v := range variants {
		xs := sums[v.name]
		s := 0.0
		for _, x := range xs {
			s += x
		}
		b.ReportMetric(s/float64(len(xs)), "ops/s-"+v.name)
	}
	b.ReportMetric(0, "ns/op")
}
