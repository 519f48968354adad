package mcbench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run. Its JSON form is cmd/mcbench's -json
// output; latencies are in microseconds.
type Report struct {
	Target         string  `json:"target"` // "tcp 127.0.0.1:11211"
	Mode           string  `json:"mode"`
	Conns          int     `json:"conns"`
	Depth          int     `json:"depth"`           // in effect
	DepthRequested int     `json:"depth_requested"` // Config.Depth
	GetFraction    float64 `json:"get_fraction"`
	DeleteFraction float64 `json:"delete_fraction"`
	Keys           int     `json:"keys"`
	ValueSize      int     `json:"value_size"`
	Check          bool    `json:"check"`
	WarmupSeconds  float64 `json:"warmup_s,omitempty"`

	Seconds       float64 `json:"elapsed_s"`
	Ops           uint64  `json:"ops"`
	OpsPerSec     float64 `json:"ops_per_s"`
	Gets          uint64  `json:"gets"`
	GetsPerSec    float64 `json:"gets_per_s"`
	Sets          uint64  `json:"sets"`
	SetsPerSec    float64 `json:"sets_per_s"`
	Deletes       uint64  `json:"deletes"`
	DeletesPerSec float64 `json:"deletes_per_s"`
	// Hits and Misses count gets; DeleteMisses counts deletes of missing
	// keys (KEY_ENOENT), the others having deleted their key.
	Hits         uint64 `json:"hits"`
	Misses       uint64 `json:"misses"`
	DeleteMisses uint64 `json:"delete_misses"`
	Batches      uint64 `json:"batches,omitempty"`

	// LatencyOf is "request" (plain mode) or "batch" (quiet mode).
	LatencyOf string  `json:"latency_of"`
	Latency   Latency `json:"latency"`

	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`

	// Errors counts connection failures by kind (connect, timeout, io,
	// protocol) and unexpected statuses ("status KEY_EEXISTS").
	Errors     map[string]uint64 `json:"errors"`
	ErrorCount uint64            `json:"error_count"`
	// Mismatches counts responses unlike their request by kind (opaque,
	// opcode, key, flags, value).
	Mismatches    map[string]uint64 `json:"mismatches"`
	MismatchCount uint64            `json:"mismatch_count"`
	// Samples describe the first errors and mismatches.
	Samples []string `json:"samples,omitempty"`

	ServerCPU *CPU     `json:"server_cpu,omitempty"`
	ClientCPU *CPU     `json:"client_cpu,omitempty"`
	Notes     []string `json:"notes,omitempty"`
}

// Latency summarizes a Histogram, in microseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

// CPU is the CPU time a process used over the measured run.
type CPU struct {
	PID         int     `json:"pid,omitempty"` // 0: this process
	Seconds     float64 `json:"s"`
	MicrosPerOp float64 `json:"us_per_op"`
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func newLatency(h *Histogram) Latency {
	return Latency{
		Count: h.Count(),
		Mean:  us(h.Mean()),
		P50:   us(h.Quantile(0.50)),
		P90:   us(h.Quantile(0.90)),
		P99:   us(h.Quantile(0.99)),
		P999:  us(h.Quantile(0.999)),
		Max:   us(h.Max()),
	}
}

func newCPU(pid int, d time.Duration, ops uint64) *CPU {
	c := &CPU{PID: pid, Seconds: d.Seconds()}
	if ops > 0 {
		c.MicrosPerOp = us(d) / float64(ops)
	}
	return c
}

// newReport merges the workers' stats.
func newReport(r *run, ws []*worker, elapsed time.Duration) *Report {
	var st stats
	for _, w := range ws {
		st.merge(&w.st)
	}
	cfg := &r.cfg
	sec := elapsed.Seconds()
	rep := &Report{
		Target:         cfg.Network + " " + cfg.Addr,
		Mode:           cfg.Mode.String(),
		Conns:          cfg.Conns,
		Depth:          r.depth,
		DepthRequested: cfg.Depth,
		GetFraction:    cfg.GetFraction,
		DeleteFraction: cfg.DeleteFraction,
		Keys:           cfg.Keys,
		ValueSize:      cfg.ValueSize,
		Check:          cfg.Check,
		Seconds:        sec,
		Ops:            st.ops(),
		Gets:           st.gets,
		Sets:           st.sets,
		Deletes:        st.deletes,
		Hits:           st.hits,
		Misses:         st.misses,
		DeleteMisses:   st.delMisses,
		Batches:        st.batches,
		LatencyOf:      "request",
		Latency:        newLatency(&st.lat),
		BytesIn:        st.bytesIn,
		BytesOut:       st.bytesOut,
		Errors:         map[string]uint64{},
		ErrorCount:     st.errors(),
		Mismatches:     map[string]uint64{},
		MismatchCount:  st.mismatched(),
		Samples:        st.samples,
	}
	if sec > 0 {
		rep.OpsPerSec = float64(rep.Ops) / sec
		rep.GetsPerSec = float64(rep.Gets) / sec
		rep.SetsPerSec = float64(rep.Sets) / sec
		rep.DeletesPerSec = float64(rep.Deletes) / sec
	}
	if cfg.Mode == Quiet {
		rep.LatencyOf = "batch"
	}
	for i, c := range st.errs {
		if c > 0 {
			rep.Errors[errKindNames[i]] = c
		}
	}
	for s, c := range st.statuses {
		rep.Errors["status "+s.String()] += c
	}
	for i, c := range st.mismatches {
		if c > 0 {
			rep.Mismatches[mismatchNames[i]] = c
		}
	}
	return rep
}

// Err returns nil for a clean run, else ErrFailed wrapped with the counts.
func (rep *Report) Err() error {
	switch {
	case rep.ErrorCount > 0 || rep.MismatchCount > 0:
		return fmt.Errorf("%w: %d errors, %d mismatches", ErrFailed, rep.ErrorCount, rep.MismatchCount)
	case rep.Ops == 0:
		return fmt.Errorf("%w: no operation completed", ErrFailed)
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteText writes the report for people, ending with a one-line summary.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-11s"+format+"\n", append([]any{label}, args...)...)
	}
	check := ""
	if rep.Check {
		check = ", checked"
	}
	depth := fmt.Sprint(rep.Depth)
	if rep.Depth != rep.DepthRequested {
		depth = fmt.Sprintf("%d (of %d: 256 KiB in flight)", rep.Depth, rep.DepthRequested)
	}
	deletes := rep.DeleteFraction > 0 || rep.Deletes > 0
	mix := "get:set"
	if deletes {
		mix = "get:set:delete"
	}
	line("target", "%s, %d conns, depth %s, %s, %s %s, %d keys, %d-byte values%s",
		rep.Target, rep.Conns, depth, rep.Mode, mix, FormatRatio(rep.GetFraction, rep.DeleteFraction),
		rep.Keys, rep.ValueSize, check)
	if rep.WarmupSeconds > 0 {
		line("warmup", "%d keys in %.2fs", rep.Keys, rep.WarmupSeconds)
	}
	line("elapsed", "%.2fs", rep.Seconds)
	ops := fmt.Sprintf("%d (%.0f/s): get %d (%.0f/s), set %d (%.0f/s)",
		rep.Ops, rep.OpsPerSec, rep.Gets, rep.GetsPerSec, rep.Sets, rep.SetsPerSec)
	if deletes {
		ops += fmt.Sprintf(", delete %d (%.0f/s)", rep.Deletes, rep.DeletesPerSec)
	}
	line("ops", "%s", ops)
	if rep.Batches > 0 {
		line("batches", "%d", rep.Batches)
	}
	line("gets", "hits %d, misses %d (%.1f%% hits)", rep.Hits, rep.Misses, percent(rep.Hits, rep.Hits+rep.Misses))
	if deletes {
		found := rep.Deletes - rep.DeleteMisses
		line("deletes", "found %d, misses %d (%.1f%% found)", found, rep.DeleteMisses, percent(found, rep.Deletes))
	}
	line("latency", "per %s: %s", rep.LatencyOf, rep.Latency.text())
	line("bytes", "out %s (%s/s), in %s (%s/s)", size(float64(rep.BytesOut)), size(float64(rep.BytesOut)/rep.Seconds),
		size(float64(rep.BytesIn)), size(float64(rep.BytesIn)/rep.Seconds))
	line("errors", "%d%s", rep.ErrorCount, counts(rep.Errors))
	line("mismatches", "%d%s", rep.MismatchCount, counts(rep.Mismatches))
	for _, s := range rep.Samples {
		line("", "%s", s)
	}
	if c := rep.ServerCPU; c != nil {
		line("server cpu", "%.2fs, %.2fµs/op (pid %d)", c.Seconds, c.MicrosPerOp, c.PID)
	}
	if c := rep.ClientCPU; c != nil {
		line("client cpu", "%.2fs, %.2fµs/op (mcbench itself)", c.Seconds, c.MicrosPerOp)
	}
	for _, n := range rep.Notes {
		line("note", "%s", n)
	}
	fmt.Fprintf(&b, "mcbench: %.0f ops/s  p50 %s  p99 %s  p99.9 %s  errors %d  mismatches %d",
		rep.OpsPerSec, dur(rep.Latency.P50), dur(rep.Latency.P99), dur(rep.Latency.P999), rep.ErrorCount, rep.MismatchCount)
	if c := rep.ServerCPU; c != nil {
		fmt.Fprintf(&b, "  server %.2fµs/op", c.MicrosPerOp)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (l *Latency) text() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s",
		dur(l.P50), dur(l.P90), dur(l.P99), dur(l.P999), dur(l.Max), dur(l.Mean))
}

// percent returns 100·n/of, or 0 if of is 0.
func percent(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// dur formats microseconds.
func dur(v float64) string {
	switch {
	case v < 1000:
		return fmt.Sprintf("%.1fµs", v)
	case v < 1e6:
		return fmt.Sprintf("%.2fms", v/1e3)
	}
	return fmt.Sprintf("%.2fs", v/1e6)
}

// size formats bytes in decimal units.
func size(v float64) string {
	switch {
	case v < 1e3:
		return fmt.Sprintf("%.0f B", v)
	case v < 1e6:
		return fmt.Sprintf("%.1f kB", v/1e3)
	case v < 1e9:
		return fmt.Sprintf("%.1f MB", v/1e6)
	}
	return fmt.Sprintf("%.2f GB", v/1e9)
}

// counts formats a breakdown, sorted by name: ": a 1, b 2", or "".
func counts(m map[string]uint64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return ": " + strings.Join(parts, ", ")
}
