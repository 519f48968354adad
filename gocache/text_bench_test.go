package gocache_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/gocache"
	"github.com/f8e615c8/gomemcached/gocache/gocachetest"
	"github.com/f8e615c8/gomemcached/internal/peer"
)

// Benchmarks of the text protocol over loopback, gocache beside memcached
// 1.6.18 (-t 2) in one run, run by hand:
//
//	go test ./gocache -run '^$' -bench 'Text' -benchmem -v
//
// One connection sends depth commands in one write and reads all their
// answers before the next batch: text get hits, sets and "get k1 ... k100"
// of 100-byte values, at depth 1 and 16. Each reports ops/s (commands; the
// multi-get also keys/s) and the server's CPU per command (server-ns/op,
// from /proc, in 10 ms ticks). "memcached" and "gocache" are processes
// (cmd/gocache with its defaults, epoll loops, -t 2); "gocache-inproc"
// is an in-process gocache with a goroutine per connection, whose
// allocs/op include the server's. After each group the parent logs (-v)
// gocache's ops/s as a multiple of memcached's. BenchmarkTextVsBinary runs
// the same loads in both protocols on gocache.
//
// Every batch reads with a 5 s deadline: a server that stops answering
// fails the benchmark rather than hanging it.

const benchValueSize = 100

// benchTarget is a server under load.
type benchTarget struct {
	name string
	addr string
	pid  int // 0 for the in-process server
}

// cpu returns the target process's CPU time, 0 in-process.
func (bt benchTarget) cpu(b *testing.B) time.Duration {
	if bt.pid == 0 {
		return 0
	}
	return benchServer{addr: bt.addr, pid: bt.pid}.cpu(b)
}

// startMemcachedBench runs memcached 1.6.18 with -t 2 as a process of the
// benchmark's, for its CPU time.
func startMemcachedBench(b *testing.B) benchTarget {
	b.Helper()
	bin := peer.Require(b, "memcached")
	port := peer.FreePort(b)
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "2", "-m", "1024"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("memcached did not listen")
		}
	}
	return benchTarget{name: "memcached", addr: addr, pid: cmd.Process.Pid}
}

// textBenchTargets starts memcached, a gocache process and an in-process
// gocache for a top-level benchmark.
func textBenchTargets(b *testing.B) []benchTarget {
	b.Helper()
	mc := startMemcachedBench(b)
	gc := startGocache(b, "-t", "2", "-m", "1024")
	_, inproc := gocachetest.Start(b, gocache.Config{Threads: 2})
	return []benchTarget{mc, {name: "gocache", addr: gc.addr, pid: gc.pid}, {name: "gocache-inproc", addr: inproc}}
}

// benchConn is a loopback connection that sends prepared batches and
// counts answers in a reused buffer.
type benchConn struct {
	c   net.Conn
	buf []byte
}

func dialBench(b *testing.B, addr string) *benchConn {
	b.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &benchConn{c: c, buf: make([]byte, 0, 1<<20)}
}

// roundTrip writes batch and reads until complete(buf) reports the answer
// whole (returning the bytes it used), failing on an error or after 5 s.
func (bc *benchConn) roundTrip(b *testing.B, batch []byte, complete func([]byte) int) {
	bc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bc.c.Write(batch); err != nil {
		b.Fatal(err)
	}
	bc.buf = bc.buf[:0]
	for {
		if n := complete(bc.buf); n > 0 {
			if n != len(bc.buf) {
				b.Fatalf("%d bytes after the answer: %q", len(bc.buf)-n, bc.buf[n:min(len(bc.buf), n+100)])
			}
			return
		}
		if len(bc.buf) == cap(bc.buf) {
			bc.buf = append(bc.buf, 0)[:len(bc.buf)]
		}
		n, err := bc.c.Read(bc.buf[len(bc.buf):cap(bc.buf)])
		bc.buf = bc.buf[:len(bc.buf)+n]
		if err != nil {
			b.Fatalf("after %d bytes %q: %v", len(bc.buf), bc.buf[:min(len(bc.buf), 200)], err)
		}
	}
}

// textCount returns a completion test for count answers that each end
// with term (and contain it nowhere else), failing on an error answer.
func textCount(b *testing.B, term string, count int) func([]byte) int {
	t := []byte(term)
	return func(p []byte) int {
		if !bytes.HasSuffix(p, t) {
			return 0
		}
		if bytes.Count(p, t) < count {
			return 0
		}
		if bytes.HasPrefix(p, []byte("ERROR")) || bytes.HasPrefix(p, []byte("CLIENT_ERROR")) || bytes.HasPrefix(p, []byte("SERVER_ERROR")) {
			b.Fatalf("error answer: %q", p[:min(len(p), 100)])
		}
		return len(p)
	}
}

// binaryCount returns a completion test for count binary responses, all
// successes.
func binaryCount(b *testing.B, count int) func([]byte) int {
	return func(p []byte) int {
		n, used := 0, 0
		for n < count && len(p)-used >= 24 {
			body := int(binary.BigEndian.Uint32(p[used+8:]))
			if len(p)-used < 24+body {
				return 0
			}
			if st := binary.BigEndian.Uint16(p[used+6:]); st != 0 {
				b.Fatalf("binary status 0x%x", st)
			}
			used += 24 + body
			n++
		}
		if n < count {
			return 0
		}
		return used
	}
}

// benchKeys are the keys the loads use, loaded with 100-byte values.
func benchKeys() []string {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench:key:%05d", i)
	}
	return keys
}

// loadText stores every key with one noreply batch and a fence.
func loadText(b *testing.B, bc *benchConn, keys []string) {
	value := strings.Repeat("v", benchValueSize)
	var batch []byte
	for _, k := range keys {
		batch = fmt.Appendf(batch, "set %s 0 0 %d noreply\r\n%s\r\n", k, len(value), value)
	}
	batch = append(batch, "version\r\n"...)
	bc.roundTrip(b, batch, textCount(b, "\r\n", 1))
}

// textLoad is a load: the batch for a depth and its completion test.
type textLoad struct {
	name  string
	keys  int // keys per command (for keys/s)
	batch func(depth, i int) []byte
	done  func(b *testing.B, depth int) func([]byte) int
}

func textLoads(keys []string) []textLoad {
	value := strings.Repeat("s", benchValueSize)
	get := func(depth, i int) []byte {
		var p []byte
		for j := range depth {
			p = append(append(append(p, "get "...), keys[(i*depth+j)%len(keys)]...), "\r\n"...)
		}
		return p
	}
	set := func(depth, i int) []byte {
		var p []byte
		for j := range depth {
			p = fmt.Appendf(p, "set %s 0 0 %d\r\n%s\r\n", keys[(i*depth+j)%len(keys)], len(value), value)
		}
		return p
	}
	multi := func(depth, i int) []byte {
		var p []byte
		for j := range depth {
			p = append(p, "get"...)
			for k := range 100 {
				p = append(append(p, ' '), keys[((i*depth+j)*100+k)%len(keys)]...)
			}
			p = append(p, "\r\n"...)
		}
		return p
	}
	return []textLoad{
		{"get", 1, get, func(b *testing.B, d int) func([]byte) int { return textCount(b, "END\r\n", d) }},
		{"set", 1, set, func(b *testing.B, d int) func([]byte) int { return textCount(b, "STORED\r\n", d) }},
		{"get100", 100, multi, func(b *testing.B, d int) func([]byte) int { return textCount(b, "END\r\n", d) }},
	}
}

// prepared returns a few distinct batches for a load at a depth, so that
// the loop itself builds nothing.
func prepared(depth int, build func(depth, i int) []byte) [][]byte {
	out := make([][]byte, 16)
	for i := range out {
		out[i] = build(depth, i)
	}
	return out
}

// runLoad runs b.N commands of a load in batches of depth and reports
// ops/s, keys/s and the server's CPU per command; it returns the ops/s.
func runLoad(b *testing.B, bt benchTarget, depth, keysPer int, batches [][]byte, done func([]byte) int) float64 {
	bc := dialBench(b, bt.addr)
	b.ReportAllocs()
	cpu0 := bt.cpu(b)
	b.ResetTimer()
	ops := 0
	for i := 0; ops < b.N; i++ {
		bc.roundTrip(b, batches[i%len(batches)], done)
		ops += depth
	}
	b.StopTimer()
	cpu := bt.cpu(b) - cpu0
	secs := b.Elapsed().Seconds()
	opsPerSec := float64(ops) / secs
	b.ReportMetric(opsPerSec, "ops/s")
	if keysPer > 1 {
		b.ReportMetric(opsPerSec*float64(keysPer), "keys/s")
	}
	if bt.pid != 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(ops), "server-ns/op")
	}
	return opsPerSec
}

// BenchmarkText runs the text loads against memcached and gocache.
func BenchmarkText(b *testing.B) {
	targets := textBenchTargets(b)
	keys := benchKeys()
	for _, bt := range targets {
		loadText(b, dialBench(b, bt.addr), keys)
	}
	for _, load := range textLoads(keys) {
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/depth%d", load.name, depth), func(b *testing.B) {
				batches := prepared(depth, load.batch)
				rate := map[string]float64{}
				for _, bt := range targets {
					b.Run(bt.name, func(b *testing.B) {
						rate[bt.name] = runLoad(b, bt, depth, load.keys, batches, load.done(b, depth))
					})
				}
				if rate["memcached"] > 0 {
					b.Logf("%s depth %d: gocache %.0f ops/s, memcached %.0f ops/s: %.2fx (in-process gocache %.2fx)",
						load.name, depth, rate["gocache"], rate["memcached"], rate["gocache"]/rate["memcached"],
						rate["gocache-inproc"]/rate["memcached"])
				}
			})
		}
	}
}

// BenchmarkTextVsBinary runs get, set and a 100-key multi-get in the text
// and the binary protocol on the same gocache process (binary: GET, SET,
// and 100 GETKQ fenced by a NOOP).
func BenchmarkTextVsBinary(b *testing.B) {
	gc := startGocache(b, "-t", "2", "-m", "1024")
	bt := benchTarget{name: "gocache", addr: gc.addr, pid: gc.pid}
	keys := benchKeys()
	loadText(b, dialBench(b, bt.addr), keys)
	value := []byte(strings.Repeat("b", benchValueSize))
	binBuild := map[string]func(depth, i int) []byte{
		"get": func(depth, i int) []byte {
			var p []byte
			for j := range depth {
				p, _ = (&gm.MCRequest{Opcode: gm.GET, Key: []byte(keys[(i*depth+j)%len(keys)])}).AppendTo(p)
			}
			return p
		},
		"set": func(depth, i int) []byte {
			var p []byte
			for j := range depth {
				p, _ = (&gm.MCRequest{Opcode: gm.SET, Key: []byte(keys[(i*depth+j)%len(keys)]), Extras: make([]byte, 8), Body: value}).AppendTo(p)
			}
			return p
		},
		"get100": func(depth, i int) []byte {
			var p []byte
			for j := range depth {
				for k := range 100 {
					p, _ = (&gm.MCRequest{Opcode: gm.GETKQ, Key: []byte(keys[((i*depth+j)*100+k)%len(keys)])}).AppendTo(p)
				}
				p, _ = (&gm.MCRequest{Opcode: gm.NOOP}).AppendTo(p)
			}
			return p
		},
	}
	for _, load := range textLoads(keys) {
		for _, depth := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/depth%d", load.name, depth), func(b *testing.B) {
				rate := map[string]float64{}
				b.Run("text", func(b *testing.B) {
					rate["text"] = runLoad(b, bt, depth, load.keys, prepared(depth, load.batch), load.done(b, depth))
				})
				b.Run("binary", func(b *testing.B) {
					per := 1
					if load.keys > 1 {
						per = 101
					}
					rate["binary"] = runLoad(b, bt, depth, load.keys, prepared(depth, binBuild[load.name]), binaryCount(b, depth*per))
				})
				if rate["binary"] > 0 {
					b.Logf("%s depth %d on gocache: text %.0f ops/s, binary %.0f ops/s: text/binary %.2fx",
						load.name, depth, rate["text"], rate["binary"], rate["text"]/rate["binary"])
				}
			})
		}
	}
}
