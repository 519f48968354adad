package mcbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/f8e615c8/gomemcached"
)

// fakeServer is a tiny memcached for faults that a real one cannot show:
// it stores values in a map and answers GET, GETKQ, SET, SETQ, DELETE,
// DELETEQ and NOOP, letting a test alter responses or stop answering.
type fakeServer struct {
	// fault, if set, may alter the n-th hit (GET or GETKQ, counted from 1
	// over all connections) before it is sent.
	fault func(n int64, res *gm.MCResponse)
	// silent servers read requests and never answer.
	silent bool
	// closeAfter, if not 0, closes each connection after that many
	// responses.
	closeAfter int
	// deleteFault, if set, may alter the answer to the n-th delete (DELETE
	// or DELETEQ, counted from 1 over all connections); answer says whether
	// it is sent.
	deleteFault func(n int64, res *gm.MCResponse) (answer bool)

	hits    atomic.Int64
	deletes atomic.Int64
	mu      sync.Mutex
	data    map[string][]byte
	conns   []net.Conn
}

// start serves on a new listener and returns the network and address.
func (s *fakeServer) start(t *testing.T, network string) (string, string) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "mc.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s.data = map[string][]byte{}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			wg.Go(func() { s.serve(c) })
		}
	})
	return network, ln.Addr().String()
}

func (s *fakeServer) serve(c net.Conn) {
	defer c.Close()
	if s.silent {
		io.Copy(io.Discard, c)
		return
	}
	rd := gm.NewReader(c)
	bw := bufio.NewWriter(c)
	var req gm.MCRequest
	sent := 0
	for {
		if err := rd.ReadRequest(&req); err != nil {
			return
		}
		res := gm.MCResponse{Opcode: req.Opcode, Opaque: req.Opaque}
		answer := true
		switch req.Opcode {
		case gm.SET, gm.SETQ:
			s.mu.Lock()
			s.data[string(req.Key)] = append(append([]byte(nil), req.Extras[:4]...), req.Body...)
			s.mu.Unlock()
			answer = req.Opcode == gm.SET
		case gm.GET, gm.GETKQ:
			s.mu.Lock()
			v, ok := s.data[string(req.Key)]
			s.mu.Unlock()
			switch {
			case ok:
				res.Extras, res.Body = v[:4], v[4:]
				if req.Opcode == gm.GETKQ {
					res.Key = req.Key
				}
				if n := s.hits.Add(1); s.fault != nil {
					s.fault(n, &res)
				}
			case req.Opcode == gm.GET:
				res.Status = gm.KEY_ENOENT
			default:
				answer = false
			}
		case gm.DELETE, gm.DELETEQ:
			s.mu.Lock()
			_, ok := s.data[string(req.Key)]
			delete(s.data, string(req.Key))
			s.mu.Unlock()
			if !ok {
				res.Status = gm.KEY_ENOENT
			}
			answer = req.Opcode == gm.DELETE || !ok
			if n := s.deletes.Add(1); s.deleteFault != nil {
				answer = s.deleteFault(n, &res)
			}
		case gm.NOOP:
		default:
			res.Status = gm.UNKNOWN_COMMAND
		}
		if answer {
			if _, err := res.Transmit(bw); err != nil {
				return
			}
			if sent++; s.closeAfter > 0 && sent >= s.closeAfter {
				bw.Flush()
				return
			}
		}
		if !rd.Ready() && bw.Flush() != nil {
			return
		}
	}
}

// testConfig is a short checked run against network and addr.
func testConfig(network, addr string, mode Mode) Config {
	c := DefaultConfig()
	c.Network, c.Addr, c.Mode = network, addr, mode
	c.Conns, c.Depth, c.Keys = 2, 4, 100
	c.Duration, c.Requests = 3*time.Second, 2000
	c.Warmup, c.Check = true, true
	c.Timeout = time.Second
	return c
}

// A clean fake server gives a clean run, over TCP and a unix socket.
func TestFakeClean(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		for _, mode := range []Mode{Plain, Quiet} {
			t.Run(network+"-"+mode.String(), func(t *testing.T) {
				var s fakeServer
				cfg := testConfig("", "", mode)
				cfg.Network, cfg.Addr = s.start(t, network)
				rep, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatalf("%v: %q", err, rep.Samples)
				}
				if rep.Ops != 2000 || rep.Misses != 0 || rep.Hits == 0 || rep.Hits != rep.Gets {
					t.Fatalf("ops %d gets %d hits %d misses %d", rep.Ops, rep.Gets, rep.Hits, rep.Misses)
				}
			})
		}
	}
}

// Delete mixes are clean, with or without Check: deletes of missing keys
// are misses (answered in plain mode and quiet mode alike), and gets of
// deleted keys miss without mismatches.
func TestFakeDeletes(t *testing.T) {
	for _, mode := range []Mode{Plain, Quiet} {
		for _, tc := range []struct {
			ratio string
			check bool
		}{{"8:1:1", true}, {"8:1:1", false}, {"0:0:1", true}, {"0:1:1", true}} {
			t.Run(fmt.Sprintf("%s-%s-check=%v", mode, tc.ratio, tc.check), func(t *testing.T) {
				var s fakeServer
				cfg := testConfig("", "", mode)
				cfg.Network, cfg.Addr = s.start(t, "tcp")
				cfg.Check = tc.check
				var err error
				if cfg.GetFraction, cfg.DeleteFraction, err = ParseRatio(tc.ratio); err != nil {
					t.Fatal(err)
				}
				rep, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatalf("%v: %q", err, rep.Samples)
				}
				if rep.Ops != 2000 || rep.Gets+rep.Sets+rep.Deletes != rep.Ops || rep.Hits+rep.Misses != rep.Gets {
					t.Fatalf("ops %d gets %d sets %d deletes %d hits %d misses %d",
						rep.Ops, rep.Gets, rep.Sets, rep.Deletes, rep.Hits, rep.Misses)
				}
				// 100 keys, all stored by the warmup: well over 100 deletes
				// must find some keys gone, and some present.
				if rep.Deletes < 150 || rep.DeleteMisses == 0 || rep.DeleteMisses >= rep.Deletes {
					t.Fatalf("deletes %d, delete misses %d", rep.Deletes, rep.DeleteMisses)
				}
				if got := s.deletes.Load(); got != int64(rep.Deletes) {
					t.Fatalf("server saw %d deletes, report %d", got, rep.Deletes)
				}
				if rep.GetFraction > 0 && rep.Misses == 0 {
					t.Fatalf("no get missed a deleted key: hits %d", rep.Hits)
				}
				if tc.ratio == "0:0:1" && (rep.Gets != 0 || rep.Sets != 0 || rep.Deletes-rep.DeleteMisses > 100) {
					t.Fatalf("deletes only: gets %d sets %d, %d deletes found a key of 100",
						rep.Gets, rep.Sets, rep.Deletes-rep.DeleteMisses)
				}
				var text bytes.Buffer
				rep.WriteText(&text)
				if !strings.Contains(text.String(), "get:set:delete "+tc.ratio) ||
					!strings.Contains(text.String(), fmt.Sprintf("misses %d", rep.DeleteMisses)) {
					t.Fatalf("text report:\n%s", text.String())
				}
			})
		}
	}
}

// A delete answered with an unexpected status is an error, a delete
// answered with another opcode or with another's opaque a mismatch; the
// connection stays in step.
func TestFakeDeleteFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  Mode
		fault func(n int64, res *gm.MCResponse) bool
		kind  string // of the error or mismatch
	}{
		{"plain-status", Plain, func(n int64, res *gm.MCResponse) bool {
			if n == 5 {
				res.Status = gm.ENOMEM
			}
			return true
		}, "status ENOMEM"},
		{"quiet-status", Quiet, func(n int64, res *gm.MCResponse) bool {
			if n == 5 {
				res.Status = gm.ENOMEM
				return true
			}
			return res.Status != gm.SUCCESS
		}, "status ENOMEM"},
		{"plain-opcode", Plain, func(n int64, res *gm.MCResponse) bool {
			if n == 5 {
				res.Opcode = gm.GET
			}
			return true
		}, "opcode"},
		{"quiet-opcode", Quiet, func(n int64, res *gm.MCResponse) bool {
			if n == 5 {
				res.Opcode = gm.DELETE
				return true
			}
			return res.Status != gm.SUCCESS
		}, "opcode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeServer{deleteFault: tc.fault}
			cfg := testConfig("", "", tc.mode)
			cfg.Network, cfg.Addr = s.start(t, "tcp")
			cfg.GetFraction, cfg.DeleteFraction = 0.5, 0.25
			rep, err := Run(context.Background(), cfg)
			if !errors.Is(err, ErrFailed) || rep == nil {
				t.Fatalf("err %v, want ErrFailed with a report", err)
			}
			if rep.Errors[tc.kind]+rep.Mismatches[tc.kind] != 1 || rep.ErrorCount+rep.MismatchCount != 1 {
				t.Fatalf("errors %v mismatches %v, want one %s", rep.Errors, rep.Mismatches, tc.kind)
			}
			if rep.Ops != 2000 {
				t.Fatalf("ops %d, want 2000: the connection should stay in step", rep.Ops)
			}
			if rep.MismatchCount == 1 && !strings.Contains(rep.Samples[0], ": delete mcbench:") {
				t.Fatalf("samples %q", rep.Samples)
			}
		})
	}
}

// Check reports a corrupted value, a wrong opaque and a wrong key as
// mismatches, and the run fails.
func TestFakeMismatch(t *testing.T) {
	corrupt := func(n int64, res *gm.MCResponse) {
		if n == 10 {
			res.Body = append([]byte(nil), res.Body...)
			res.Body[3] ^= 1
		}
	}
	wrongOpaque := func(n int64, res *gm.MCResponse) {
		if n == 10 {
			res.Opaque += 1000
		}
	}
	wrongKey := func(n int64, res *gm.MCResponse) {
		if n == 10 {
			res.Key = []byte("mcbench:x")
		}
	}
	for _, tc := range []struct {
		name  string
		mode  Mode
		fault func(int64, *gm.MCResponse)
		kind  string
	}{
		{"plain-value", Plain, corrupt, "value"},
		{"quiet-value", Quiet, corrupt, "value"},
		{"plain-opaque", Plain, wrongOpaque, "opaque"},
		{"quiet-opaque", Quiet, wrongOpaque, "opaque"},
		{"quiet-key", Quiet, wrongKey, "key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeServer{fault: tc.fault}
			cfg := testConfig("", "", tc.mode)
			cfg.Network, cfg.Addr = s.start(t, "tcp")
			rep, err := Run(context.Background(), cfg)
			if !errors.Is(err, ErrFailed) || rep == nil {
				t.Fatalf("err %v, want ErrFailed with a report", err)
			}
			if rep.MismatchCount != 1 || rep.Mismatches[tc.kind] != 1 || rep.ErrorCount != 0 {
				t.Fatalf("mismatches %v errors %v, want one %s mismatch", rep.Mismatches, rep.Errors, tc.kind)
			}
			if len(rep.Samples) != 1 || !strings.Contains(rep.Samples[0], tc.kind+" mismatch") {
				t.Fatalf("samples %q", rep.Samples)
			}
			if rep.Ops != 2000 {
				t.Fatalf("ops %d, want 2000: the connection should stay in step", rep.Ops)
			}
		})
	}
}

// A server that never answers makes the run stop by its deadline with
// timeouts, whether a duration or only a number of requests bounds it.
func TestFakeSilent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		duration  time.Duration
		requests  int64
		timeout   time.Duration
		stopsWith time.Duration
	}{
		{"duration", 500 * time.Millisecond, 0, 300 * time.Millisecond, 500*time.Millisecond + 300*time.Millisecond},
		// maxFailures timeouts and the backoffs between them.
		{"requests", 0, 1000, 100 * time.Millisecond, 5*100*time.Millisecond + 750*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeServer{silent: true}
			cfg := testConfig("", "", Plain)
			cfg.Network, cfg.Addr = s.start(t, "tcp")
			cfg.Warmup = false
			cfg.Duration, cfg.Requests, cfg.Timeout = tc.duration, tc.requests, tc.timeout
			start := time.Now()
			rep, err := Run(context.Background(), cfg)
			elapsed := time.Since(start)
			if !errors.Is(err, ErrFailed) || rep == nil {
				t.Fatalf("err %v, want ErrFailed with a report", err)
			}
			if elapsed > tc.stopsWith+time.Second {
				t.Fatalf("stopped after %v, want about %v", elapsed, tc.stopsWith)
			}
			if rep.Errors["timeout"] == 0 || rep.Ops != 0 {
				t.Fatalf("errors %v ops %d, want timeouts and no ops", rep.Errors, rep.Ops)
			}
		})
	}
}

// Connections the server closes are counted, reconnected, and the run
// goes on.
func TestFakeServerCloses(t *testing.T) {
	s := fakeServer{closeAfter: 100}
	cfg := testConfig("", "", Plain)
	cfg.Network, cfg.Addr = s.start(t, "tcp")
	cfg.Warmup, cfg.Requests, cfg.Duration = false, 0, 500*time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrFailed) || rep == nil {
		t.Fatalf("err %v, want ErrFailed with a report", err)
	}
	if rep.Errors["io"] < 2 || rep.Ops <= 200 || rep.MismatchCount != 0 {
		t.Fatalf("errors %v ops %d mismatches %v", rep.Errors, rep.Ops, rep.Mismatches)
	}
}

// Unexpected statuses are errors by status; connecting to nothing fails
// at once.
func TestFakeStatusAndConnect(t *testing.T) {
	fail := func(n int64, res *gm.MCResponse) {
		if n <= 3 {
			res.Status, res.Extras, res.Body = gm.ENOMEM, nil, nil
		}
	}
	s := fakeServer{fault: fail}
	cfg := testConfig("", "", Plain)
	cfg.Network, cfg.Addr = s.start(t, "tcp")
	rep, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrFailed) || rep.Errors["status ENOMEM"] != 3 || rep.ErrorCount != 3 || rep.MismatchCount != 0 {
		t.Fatalf("err %v errors %v mismatches %v", err, rep.Errors, rep.Mismatches)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	ln.Close()
	if rep, err := Run(context.Background(), cfg); err == nil || rep != nil || errors.Is(err, ErrFailed) {
		t.Fatalf("connecting to a closed port: %v, %v", rep, err)
	}
}

// Canceling the context ends a long run early, with a clean report.
func TestCancel(t *testing.T) {
	var s fakeServer
	cfg := testConfig("", "", Plain)
	cfg.Network, cfg.Addr = s.start(t, "tcp")
	cfg.Duration, cfg.Requests = time.Minute, 0
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil || rep.Ops == 0 {
		t.Fatalf("err %v, report %+v", err, rep)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("canceled run took %v", el)
	}
}
