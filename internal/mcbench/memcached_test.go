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

// Delete mixes against a real memcached, with warmup and checks, are clean
// in both modes: deletes of keys already deleted are misses (answered
// KEY_ENOENT in plain mode and, being failures, in quiet mode too), gets
// of deleted keys miss, and every hit holds its key's value.
func TestMemcachedDeletes(t *testing.T) {
	addr := peer.Memcached(t, "-t", "2")
	for _, mode := range []Mode{Plain, Quiet} {
		for _, ratio := range []string{"8:1:1", "0:0:1", "0:1:1"} {
			t.Run(fmt.Sprintf("%s-%s", mode, ratio), func(t *testing.T) {
				cfg := testConfig("tcp", addr, mode)
				var err error
				if cfg.GetFraction, cfg.DeleteFraction, err = ParseRatio(ratio); err != nil {
					t.Fatal(err)
				}
				cfg.Depth, cfg.Keys, cfg.Requests = 16, 500, 5000
				cfg.KeyPrefix = "deletes-" + mode.String() + "-" + ratio + ":"
				rep, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatalf("%v: %q", err, rep.Samples)
				}
				if rep.Ops != 5000 || rep.Gets+rep.Sets+rep.Deletes != rep.Ops || rep.Hits+rep.Misses != rep.Gets {
					t.Fatalf("ops %d gets %d sets %d deletes %d hits %d misses %d",
						rep.Ops, rep.Gets, rep.Sets, rep.Deletes, rep.Hits, rep.Misses)
				}
				found := rep.Deletes - rep.DeleteMisses
				if rep.Deletes < 400 || rep.DeleteMisses == 0 || found == 0 {
					t.Fatalf("deletes %d, delete misses %d", rep.Deletes, rep.DeleteMisses)
				}
				switch ratio {
				case "8:1:1":
					if rep.Hits == 0 || rep.Misses == 0 {
						t.Fatalf("gets %d: hits %d misses %d, want both", rep.Gets, rep.Hits, rep.Misses)
					}
				case "0:0:1":
					// Each key is found at most once: the warmup stored it.
					if rep.Deletes != rep.Ops || found > uint64(cfg.Keys) {
						t.Fatalf("deletes %d of %d ops, %d found of %d keys", rep.Deletes, rep.Ops, found, cfg.Keys)
					}
				}
				t.Logf("%.0f ops/s, deletes %d (%d misses), gets %d (%d misses)",
					rep.OpsPerSec, rep.Deletes, rep.DeleteMisses, rep.Gets, rep.Misses)
			})
		}
	}
}

// The text report of a delete mix shows the deletes and ends with the
// summary line; the JSON one decodes.
func TestMemcachedReport(t *testing.T) {
	addr := peer.Memcached(t)
	cfg := testConfig("tcp", addr, Plain)
	cfg.GetFraction, cfg.DeleteFraction = 0.8, 0.1
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
	for _, want := range []string{"get:set:delete 8:1:1", fmt.Sprintf("delete %d (", rep.Deletes),
		fmt.Sprintf("deletes    found %d, misses %d", rep.Deletes-rep.DeleteMisses, rep.DeleteMisses)} {
		if !strings.Contains(text.String(), want) {
			t.Fatalf("text report without %q:\n%s", want, text.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "mcbench: ") || !strings.Contains(last, "ops/s") {
		t.Fatalf("last line %q", last)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Ops != rep.Ops || back.Latency != rep.Latency ||
		back.Deletes != rep.Deletes || back.DeleteMisses != rep.DeleteMisses || back.DeleteFraction != rep.DeleteFraction {
		t.Fatalf("JSON round trip: %v\n%s", err, js.String())
	}
	for _, field := range []string{`"deletes":`, `"deletes_per_s":`, `"delete_misses":`, `"delete_fraction":`} {
		if !strings.Contains(js.String(), field) {
			t.Fatalf("JSON report without %s:\n%s", field, js.String())
		}
	}
	if n := strings.Count(progress.String(), "\n"); n < 2 || !strings.Contains(progress.String(), "ops/s") {
		t.Fatalf("progress output %q", progress.String())
	}
	t.Logf("\n%s", text.String())
}
