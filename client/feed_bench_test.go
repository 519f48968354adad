//go:build linux

package memcached_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	refmc "github.com/couchbase/gomemcached"
	ref "github.com/couchbase/gomemcached/client"
	"github.com/f8e615c8/gomemcached"
	memcached "github.com/f8e615c8/gomemcached/client"
)

// The backfill the feed benchmarks consume: benchItems values of
// benchValue bytes over benchVBs vbuckets, each key stored once, so that
// vbucket vb's seqnos are 1..benchItems/benchVBs.
const (
	benchItems = 200_000
	benchVBs   = 64
	benchValue = 100
	benchPerVB = benchItems / benchVBs
)

var (
	benchOnce sync.Once
	benchAddr string
	benchErr  error

	replayOnce sync.Once
	replayAddr string
	replayErr  error
)

// benchGocache starts cmd/gocache in its own process (so that the
// benchmarks count the client's allocations and CPU time only) and loads
// the backfill; it is shared by every benchmark of the test binary and
// killed when the binary exits (Linux's parent-death signal: hence the
// build constraint).
func benchGocache(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() { benchAddr, benchErr = startBenchGocache() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchAddr
}

func startBenchGocache() (string, error) {
	dir, err := os.MkdirTemp("", "feedbench")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gocache")
	build := exec.Command("go", "build", "-o", bin, "github.com/f8e615c8/gomemcached/cmd/gocache")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building gocache: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-p", strconv.Itoa(port), "-l", "127.0.0.1", "-m", "1024", "-t", "1")
	// The server ends with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	os.RemoveAll(dir)
	if err != nil {
		return "", err
	}
	go cmd.Wait()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var c *memcached.Client
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err = memcached.Dial(ctx, "tcp", addr, memcached.ClientOptions{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return "", fmt.Errorf("gocache did not start: %v", err)
		}
	}
	defer c.Close()
	val := make([]byte, benchValue)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	var wg sync.WaitGroup
	errs := make(chan error, benchVBs)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for vb := w; vb < benchVBs; vb += 8 {
				for i := range benchPerVB {
					if _, err := c.Set(uint16(vb), fmt.Sprintf("key-%02d-%06d", vb, i), 0, 0, val); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		cmd.Process.Kill()
		return "", fmt.Errorf("loading: %v", err)
	}
	return addr, nil
}

// reportPerEvent reports events/s, allocations and bytes per event,
// and the test process's CPU time per event (the client's: the producer
// runs in another process) over the benchmark's run, from n events and
// what was counted since m0 and cpu0.
func reportPerEvent(b *testing.B, events int, m0 *runtime.MemStats, cpu0 time.Duration) {
	b.StopTimer()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(events), "allocs/event")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(events), "B/event")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(events), "cpu-ns/event")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchProducers are the producers the feed benchmarks consume: gocache
// itself (whose producer is the bottleneck), and a replay of the stream
// gocache sent, written as fast as the consumer reads (whose consumer is).
var benchProducers = []struct {
	name string
	addr func(b *testing.B) string
}{
	{"gocache", benchGocache},
	{"replay", benchReplay},
}

// BenchmarkFeed consumes the backfill with Feed: one connection, every
// vbucket at once, each op the whole backfill.
func BenchmarkFeed(b *testing.B) {
	for _, p := range benchProducers {
		b.Run(p.name, func(b *testing.B) { benchFeed(b, p.addr(b)) })
	}
}

func benchFeed(b *testing.B, addr string) {
	b.ReportAllocs()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.ResetTimer()
	events := 0
	for i := range b.N {
		c, err := memcached.Dial(context.Background(), "tcp", addr, memcached.ClientOptions{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := memcached.NewFeed(context.Background(), c, memcached.FeedOptions{Name: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		for vb := range benchVBs {
			if err := f.Add(memcached.StreamSpec{VBucket: uint16(vb), End: benchPerVB}); err != nil {
				b.Fatal(err)
			}
		}
		n, bytes := 0, 0
		err = f.Run(context.Background(), memcached.FeedHandlerFunc(func(ctx context.Context, ev *memcached.Event) error {
			if ev.Kind == memcached.EventMutation {
				n++
				bytes += len(ev.Value)
			}
			return nil
		}))
		if err != nil || n != benchItems || bytes != benchItems*benchValue {
			b.Fatalf("Run: %v after %d mutations", err, n)
		}
		f.Close()
		events += n
	}
	reportPerEvent(b, events, &m0, cpu0)
}

// BenchmarkFeedReference consumes the same backfills with the
// reference's UprFeed.
func BenchmarkFeedReference(b *testing.B) {
	for _, p := range benchProducers {
		b.Run(p.name, func(b *testing.B) { benchFeedReference(b, p.addr(b)) })
	}
}

func benchFeedReference(b *testing.B, addr string) {
	b.ReportAllocs()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.ResetTimer()
	events := 0
	for i := range b.N {
		c, err := ref.Connect("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		feed, err := c.NewUprFeed()
		if err != nil {
			b.Fatal(err)
		}
		if err := feed.UprOpen(fmt.Sprintf("refbench-%d", i), 0, memcached.DefaultFeedBufferSize); err != nil {
			b.Fatal(err)
		}
		if err := feed.StartFeed(); err != nil {
			b.Fatal(err)
		}
		for vb := range benchVBs {
			if err := feed.UprRequestStream(uint16(vb), 0, 0, 0, 0, benchPerVB, 0, 0); err != nil {
				b.Fatal(err)
			}
		}
		n, bytes, ends := 0, 0, 0
		timeout := time.After(time.Minute)
		for ends < benchVBs {
			select {
			case ev, ok := <-feed.C:
				if !ok {
					b.Fatalf("feed ended after %d mutations", n)
				}
				switch ev.Opcode {
				case refmc.UPR_MUTATION:
					n++
					bytes += len(ev.Value)
				case refmc.UPR_STREAMEND:
					ends++
				}
			case <-timeout:
				b.Fatalf("timed out after %d mutations", n)
			}
		}
		if n != benchItems || bytes != benchItems*benchValue {
			b.Fatalf("%d mutations, %d bytes", n, bytes)
		}
		feed.Close()
		c.Close()
		events += n
	}
	reportPerEvent(b, events, &m0, cpu0)
}

// benchReplay records the stream gocache sends for the backfill and
// serves it again to each connection that asks for benchVBs streams,
// each message with the opaque of its vbucket's stream request: a
// producer that costs nothing, so that the consumer is what is measured.
func benchReplay(b *testing.B) string {
	b.Helper()
	addr := benchGocache(b)
	replayOnce.Do(func() { replayAddr, replayErr = startReplay(addr) })
	if replayErr != nil {
		b.Fatal(replayErr)
	}
	return replayAddr
}

func startReplay(gocacheAddr string) (string, error) {
	stream, err := recordBackfill(gocacheAddr)
	if err != nil {
		return "", fmt.Errorf("recording the backfill: %w", err)
	}
	// The opaques both consumers use, so that no benchmark pays for a
	// copy: Feed's count from 1, in the order of Add; UprFeed's are the
	// vbuckets.
	var feedOps, refOps [benchVBs]uint32
	for vb := range benchVBs {
		feedOps[vb], refOps[vb] = uint32(vb)+1, uint32(vb)
	}
	replayWithOpaques(stream, feedOps)
	replayWithOpaques(stream, refOps)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go replay(c, stream)
		}
	}()
	return ln.Addr().String(), nil
}

// recordBackfill returns the producer's messages of a backfill of every
// vbucket, as gocache sent them.
func recordBackfill(addr string) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := gomemcached.NewReader(c)
	ex := make([]byte, 8)
	binary.BigEndian.PutUint32(ex[4:], gomemcached.DCP_PRODUCER)
	open := gomemcached.MCRequest{Opcode: gomemcached.UPR_OPEN, Key: []byte("record"), Extras: ex}
	if _, err := open.Transmit(c); err != nil {
		return nil, err
	}
	var res gomemcached.MCResponse
	if err := r.ReadResponse(&res); err != nil || res.Status != gomemcached.SUCCESS {
		return nil, fmt.Errorf("DCP_OPEN: %v %v", err, res.Status)
	}
	for vb := range benchVBs {
		sx := make([]byte, 48)
		binary.BigEndian.PutUint64(sx[16:], benchPerVB)
		req := gomemcached.MCRequest{Opcode: gomemcached.UPR_STREAMREQ, VBucket: uint16(vb), Opaque: uint32(vb), Extras: sx}
		if _, err := req.Transmit(c); err != nil {
			return nil, err
		}
	}
	var out []byte
	for ends := 0; ends < benchVBs; {
		var pkt gomemcached.MCRequest
		if err := r.ReadRequest(&pkt); err != nil {
			return nil, err
		}
		if r.Magic() != 0x80 {
			continue // a stream request's answer
		}
		if out, err = pkt.AppendTo(out); err != nil {
			return nil, err
		}
		if pkt.Opcode == gomemcached.UPR_STREAMEND {
			ends++
		}
	}
	return out, nil
}

// replayCopies are the recorded stream with the opaques of stream
// requests, by the requests' opaques.
var replayCopies struct {
	sync.Mutex
	m map[[benchVBs]uint32][]byte
}

// replayWithOpaques returns the recorded stream with each message's
// opaque that of its vbucket's stream request, opaques[vb].
func replayWithOpaques(stream []byte, opaques [benchVBs]uint32) []byte {
	replayCopies.Lock()
	defer replayCopies.Unlock()
	if b, ok := replayCopies.m[opaques]; ok {
		return b
	}
	b := append([]byte(nil), stream...)
	for p := b; len(p) >= gomemcached.HDR_LEN; p = p[gomemcached.HDR_LEN+int(binary.BigEndian.Uint32(p[8:])):] {
		if vb := binary.BigEndian.Uint16(p[6:]); int(vb) < benchVBs {
			binary.BigEndian.PutUint32(p[12:], opaques[vb])
		}
	}
	if replayCopies.m == nil {
		replayCopies.m = map[[benchVBs]uint32][]byte{}
	}
	replayCopies.m[opaques] = b
	return b
}

// replay serves one consumer: every request answered with success (a
// stream request with a failover log), and once benchVBs streams are
// requested, the recorded stream with their opaques.
func replay(c net.Conn, stream []byte) {
	defer c.Close()
	r := gomemcached.NewReader(c)
	var wmu sync.Mutex
	var opaques [benchVBs]uint32
	streams := 0
	for {
		var req gomemcached.MCRequest
		if err := r.ReadRequest(&req); err != nil {
			return // the consumer is gone
		}
		if r.Magic() != 0x80 && r.Magic() != 0x08 {
			continue // a NOOP's answer
		}
		if req.Opcode == gomemcached.UPR_BUFFERACK {
			continue
		}
		res := gomemcached.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		if req.Opcode == gomemcached.UPR_STREAMREQ {
			res.Body = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 0x5eed), 0)
			if int(req.VBucket) < benchVBs {
				opaques[req.VBucket] = req.Opaque
			}
			streams++
		}
		wmu.Lock()
		_, err := res.Transmit(c)
		wmu.Unlock()
		if err != nil {
			return
		}
		if streams == benchVBs && req.Opcode == gomemcached.UPR_STREAMREQ {
			out := replayWithOpaques(stream, opaques)
			go func() {
				wmu.Lock()
				defer wmu.Unlock()
				c.Write(out)
			}()
		}
	}
}
