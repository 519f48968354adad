package mcbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/f8e615c8/gomemcached/internal/peer"
)

// Short runs against a real memcached: both modes at depth 1 and 16, with
// warmup and checks, are clean and hit every key.
func TestMemcached(t *testing.T) {
	addr := peer.Memcached(t, "-t", "2")
	for _, mode := range []Mode{Plain, Quiet} {
		for _, depth := range []int{1, 16} {
			t.Run(fmt.Sprintf("%s-%d", mode, depth), func(t *testing.T) {
				cfg := testConfig("tcp", addr, mode)
				cfg.Depth, cfg.Keys = depth, 1000
				cfg.Duration, cfg.Requests = 500*time.Millisecond, 0
				rep, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatalf("%v: %q", err, rep.Samples)
				}
				if rep.Ops == 0 || rep.Gets == 0 || rep.Sets == 0 || rep.Hits != rep.Gets || rep.Misses != 0 {
					t.Fatalf("ops %d gets %d sets %d hits %d misses %d", rep.Ops, rep.Gets, rep.Sets, rep.Hits, rep.Misses)
				}
				if rep.Latency.Count == 0 || rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
					t.Fatalf("latency %+v", rep.Latency)
				}
				if mode == Quiet && rep.Batches*uint64(depth) != rep.Ops {
					t.Fatalf("%d batches of %d for %d ops", rep.Batches, depth, rep.Ops)
				}
				t.Logf("%.0f ops/s, p50 %.1fµs p99 %.1fµs", rep.OpsPerSec, rep.Latency.P50, rep.Latency.P99)
			})
		}
	}
}

// Without warmup, gets of fresh keys miss: answered KEY_ENOENT in plain
// mode, unanswered before the NOOP in quiet mode. A request bound is met
// exactly.
func TestMemcachedMisses(t *testing.T) {
	addr := peer.Memcached(t)
	for _, mode := range []Mode{Plain, Quiet} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := testConfig("tcp", addr, mode)
			cfg.Warmup, cfg.Depth, cfg.Requests = false, 7, 1001
			cfg.KeyPrefix, cfg.Keys = "misses-"+mode.String()+":", 100000
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("%v: %q", err, rep.Samples)
			}
			if rep.Ops != 1001 || rep.Misses == 0 || rep.Hits+rep.Misses != rep.Gets {
				t.Fatalf("ops %d gets %d hits %d misses %d", rep.Ops, rep.Gets, rep.Hits, rep.Misses)
			}
		})
	}
}

// The text report ends with the summary line; the JSON one decodes.
func TestMemcachedReport(t *testing.T) {
	addr := peer.Memcached(t)
	cfg := testConfig("tcp", addr, Plain)
	var progress bytes.Buffer
	cfg.ProgressOut, cfg.Progress = &progress, 100*time.Millisecond
	cfg.Duration, cfg.Requests = 350*time.Millisecond, 0
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "mcbench: ") || !strings.Contains(last, "ops/s") {
		t.Fatalf("last line %q", last)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Ops != rep.Ops || back.Latency != rep.Latency {
		t.Fatalf("JSON round trip: %v\n%s", err, js.String())
	}
	if n := strings.Count(progress.String(), "\n"); n < 2 || !strings.Contains(progress.String(), "ops/s") {
		t.Fatalf("progress output %q", progress.String())
	}
	t.Logf("\n%s", text.String())
}
