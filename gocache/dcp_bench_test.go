package gocache_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
	"github.com/f8e615c8/gomemcached/internal/mcbench"
)

// Benchmarks of the DCP producer, run by hand (they assert no timing):
//
//	go test ./gocache -run '^$' -bench 'DCPBackfill' -benchtime 1x
//	go test ./gocache -run '^$' -bench 'DCPLiveFeeds' -benchtime 1x
//
// The server is cmd/gocache in a process of its own, so that its CPU time
// (/proc/PID/stat) and peak RSS (VmHWM) are its own, not the consumers'
// or the writer's. DCP_BENCH_ITEMS (default 1000000) sizes the backfill,
// DCP_BENCH_BACKFILL_VBS (default 1024) how many vbuckets hold it,
// DCP_BENCH_SECONDS (default 10) each live run, DCP_BENCH_FEED_VBS
// (default 1024) how many vbuckets each live feed streams.

// benchServer is a gocache process.
type benchServer struct {
	addr string
	pid  int
}

// startGocache builds cmd/gocache and runs it with args on a free
// loopback port until the benchmark ends.
func startGocache(b *testing.B, args ...string) benchServer {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "gocache")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/gocache").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, append([]string{"-l", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("gocache did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return benchServer{addr: addr, pid: cmd.Process.Pid}
}

// cpu returns the process's user and system CPU time (/proc/PID/stat, in
// clock ticks of 10 ms).
func (s benchServer) cpu(b *testing.B) time.Duration {
	buf, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := bytes.Fields(buf[bytes.LastIndexByte(buf, ')')+1:])
	ut, _ := strconv.ParseUint(string(f[11]), 10, 64)
	st, _ := strconv.ParseUint(string(f[12]), 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// mem returns the process's resident and peak resident bytes
// (/proc/PID/status VmRSS, VmHWM).
func (s benchServer) mem(b *testing.B) (rss, peak uint64) {
	buf, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range bytes.Split(buf, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(string(f[1]), 10, 64)
		switch string(f[0]) {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchConsumer is a DCP consumer that reads headers only and skips
// bodies, so that it costs as little as it can.
type benchConsumer struct {
	c      net.Conn
	r      *bufio.Reader
	hdr    [24]byte
	opaque uint32
}

func dialConsumer(b *testing.B, addr, name string) *benchConsumer {
	b.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	bc := &benchConsumer{c: c, r: bufio.NewReaderSize(c, 1<<20)}
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gm.DCP_PRODUCER)
	bc.call(b, gm.MCRequest{Opcode: gm.UPR_OPEN, Key: []byte(name), Extras: ex})
	return bc
}

// next reads the next packet's header and skips its body: magic, opcode,
// status (responses) or vbucket, opaque, and the first 8 bytes of extras.
func (bc *benchConsumer) next() (magic byte, op gm.CommandCode, status uint16, opaque uint32, err error) {
	if _, err = io.ReadFull(bc.r, bc.hdr[:]); err != nil {
		return
	}
	h := bc.hdr[:]
	body := int(binary.BigEndian.Uint32(h[8:]))
	_, err = bc.r.Discard(body)
	return h[0], gm.CommandCode(h[1]), binary.BigEndian.Uint16(h[6:]), binary.BigEndian.Uint32(h[12:]), err
}

// call sends req and waits for its response, which must succeed.
func (bc *benchConsumer) call(b *testing.B, req gm.MCRequest) {
	b.Helper()
	bc.opaque++
	req.Opaque = bc.opaque | 1<<31
	if _, err := req.Transmit(bc.c); err != nil {
		b.Fatal(err)
	}
	for {
		magic, op, status, opaque, err := bc.next()
		if err != nil {
			b.Fatal(err)
		}
		if magic == gm.RES_MAGIC && opaque == req.Opaque {
			if status != 0 {
				b.Fatalf("%s: status 0x%x", op, status)
			}
			return
		}
	}
}

// streamAll requests a stream of every vbucket (opaque vb+1).
func (bc *benchConsumer) streamAll(b *testing.B, vbs int, flags uint32, end uint64) {
	b.Helper()
	var buf []byte
	for vb := range vbs {
		req := streamReq(uint16(vb), flags, 0, end, 0, 0, 0)
		req.Opaque = uint32(vb + 1)
		buf, _ = req.AppendTo(buf)
	}
	if _, err := bc.c.Write(buf); err != nil {
		b.Fatal(err)
	}
}

// load stores n items of 100 bytes over vbs vbuckets, with two pipelined
// connections of SETQs.
func load(b *testing.B, addr string, n, vbs int) {
	b.Helper()
	value := bytes.Repeat([]byte("v"), 100)
	var wg sync.WaitGroup
	const conns = 2
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			go io.Copy(io.Discard, c)
			bw := bufio.NewWriterSize(c, 1<<20)
			var buf []byte
			extras := make([]byte, 8)
			for i := w; i < n; i += conns {
				req := gm.MCRequest{Opcode: gm.SETQ, VBucket: uint16(i % vbs), Key: fmt.Appendf(nil, "item-%08d", i), Extras: extras, Body: value}
				buf, _ = req.AppendTo(buf[:0])
				bw.Write(buf)
			}
			bw.Flush()
		}()
	}
	wg.Wait()
	// A NOOP on each vbucket's last connection is answered after its
	// SETQs; waiting for the items to be counted is simpler.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := gm.NewReader(c)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		req := gm.MCRequest{Opcode: gm.STAT}
		req.Transmit(c)
		items := -1
		for {
			var res gm.MCRequest
			if err := r.ReadRequest(&res); err != nil {
				b.Fatal(err)
			}
			if len(res.Key) == 0 {
				break
			}
			if string(res.Key) == "curr_items" {
				items, _ = strconv.Atoi(string(res.Body))
			}
		}
		if items >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d items of %d stored", items, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkDCPBackfill streams a backfill of DCP_BENCH_ITEMS items of 100
// bytes in DCP_BENCH_BACKFILL_VBS vbuckets to one consumer that requests
// every vbucket up to its high seqno: items/s, the server's CPU per
// item, its peak RSS and what the backfill added to it.
func BenchmarkDCPBackfill(b *testing.B) {
	n := envInt("DCP_BENCH_ITEMS", 1000000)
	vbs := envInt("DCP_BENCH_BACKFILL_VBS", 1024)
	srv := startGocache(b, "-m", "4096", "-t", "2")
	load(b, srv.addr, n, vbs)
	b.ResetTimer()
	var items, elapsed, cpu float64
	var growth, peak uint64
	for i := range b.N {
		rss0, _ := srv.mem(b)
		bc := dialConsumer(b, srv.addr, fmt.Sprintf("backfill-%d", i))
		cpu0 := srv.cpu(b)
		start := time.Now()
		bc.streamAll(b, vbs, 0x04, math.MaxUint64) // to latest: each stream ends
		var mutations, ends int
		for ends < vbs {
			magic, op, status, _, err := bc.next()
			if err != nil {
				b.Fatal(err)
			}
			switch {
			case magic == gm.RES_MAGIC && status != 0:
				b.Fatalf("stream request: status 0x%x", status)
			case op == gm.UPR_MUTATION:
				mutations++
			case op == gm.UPR_STREAMEND:
				ends++
			}
		}
		el := time.Since(start)
		c := srv.cpu(b) - cpu0
		_, hwm := srv.mem(b)
		bc.c.Close()
		if mutations != n {
			b.Fatalf("%d mutations, want %d", mutations, n)
		}
		items += float64(mutations)
		elapsed += el.Seconds()
		cpu += c.Seconds()
		peak = max(peak, hwm)
		growth = max(growth, hwm-min(hwm, rss0))
	}
	b.ReportMetric(items/elapsed, "items/s")
	b.ReportMetric(cpu/items*1e9, "server-ns/item")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(growth)/(1<<20), "backfill-RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDCPLiveFeeds runs an mcbench writer (4 connections of 16
// pipelined SETs of 100 bytes over 10000 keys, all in vbucket 0 as a
// memcached client writes) at full speed for DCP_BENCH_SECONDS, with no
// feed and with 4 feeds that each stream all 1024 vbuckets live,
// alternately, twice: the writer's ops/s in each and their ratio, the
// server's CPU per operation, and the mutations each feed got per second.
func BenchmarkDCPLiveFeeds(b *testing.B) {
	secs := envInt("DCP_BENCH_SECONDS", 10)
	vbs := envInt("DCP_BENCH_FEED_VBS", 1024)
	srv := startGocache(b, "-m", "1024", "-t", "2")
	run := func(round, feeds int) (ops, cpuPerOp, fed float64) {
		b.Logf("round %d, %d feeds: starts %s", round, feeds, time.Now().Format("15:04:05.000"))
		var received atomic.Uint64
		var wg sync.WaitGroup
		var consumers []*benchConsumer
		for f := range feeds {
			bc := dialConsumer(b, srv.addr, fmt.Sprintf("live-%d-%d", round, f))
			consumers = append(consumers, bc)
			// A feed that falls behind the change log backfills again
			// rather than ending its stream.
			bc.call(b, gm.MCRequest{Opcode: gm.UPR_CONTROL, Key: []byte("supports_cursor_dropping_vulcan"), Body: []byte("true")})
			bc.streamAll(b, vbs, 0x40, math.MaxUint64) // from latest
			for answered := 0; answered < vbs; {
				magic, _, status, _, err := bc.next()
				if err != nil {
					b.Fatal(err)
				}
				if magic == gm.RES_MAGIC {
					if status != 0 {
						b.Fatalf("stream request: 0x%x", status)
					}
					answered++
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, op, _, _, err := bc.next()
					if err != nil {
						return
					}
					if op == gm.UPR_MUTATION {
						received.Add(1)
					}
				}
			}()
		}
		cfg := mcbench.DefaultConfig()
		cfg.Addr = srv.addr
		cfg.Conns, cfg.Depth, cfg.GetFraction = 4, 16, 0
		cfg.Duration = time.Duration(secs) * time.Second
		cfg.Progress = 0
		cfg.CPUPid = srv.pid
		rep, err := mcbench.Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		got := received.Load()
		for _, bc := range consumers {
			bc.c.Close()
		}
		wg.Wait()
		if rep.ErrorCount != 0 {
			b.Fatalf("writer errors: %v", rep.Errors)
		}
		if rep.ServerCPU != nil {
			cpuPerOp = rep.ServerCPU.MicrosPerOp
		}
		// The benchmark's own CPU: the writer's, and the feeds' consumers'.
		clientPerOp := 0.0
		if rep.ClientCPU != nil {
			clientPerOp = rep.ClientCPU.MicrosPerOp
		}
		b.Logf("round %d, %d feeds: %.0f ops/s, server %.2f µs/op, writer+consumers %.2f µs/op, %.0f mutations/s per feed",
			round, feeds, rep.OpsPerSec, cpuPerOp, clientPerOp, float64(got)/rep.Seconds/float64(max(feeds, 1)))
		return rep.OpsPerSec, cpuPerOp, float64(got) / rep.Seconds / float64(max(feeds, 1))
	}
	b.ResetTimer()
	var ops0, ops4, cpu0, cpu4, fed []float64
	for i := range 2 * b.N {
		o, c, _ := run(i, 0)
		ops0, cpu0 = append(ops0, o), append(cpu0, c)
		o, c, f := run(i, 4)
		ops4, cpu4, fed = append(ops4, o), append(cpu4, c), append(fed, f)
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	b.ReportMetric(mean(ops0), "ops/s-0feeds")
	b.ReportMetric(mean(ops4), "ops/s-4feeds")
	b.ReportMetric(mean(ops4)/mean(ops0), "ratio")
	b.ReportMetric(mean(cpu0), "server-µs/op-0feeds")
	b.ReportMetric(mean(cpu4), "server-µs/op-4feeds")
	b.ReportMetric(mean(fed), "mutations/s/feed")
	b.ReportMetric(0, "ns/op")
}
