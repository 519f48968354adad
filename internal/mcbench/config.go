package mcbench

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Mode is how a connection pipelines its requests.
type Mode int

const (
	// Plain sends ordinary GET, SET and DELETE requests, each answered,
	// keeping Depth of them in flight.
	Plain Mode = iota
	// Quiet sends batches of Depth GETKQ, SETQ and DELETEQ requests fenced
	// by one NOOP; a batch's latency runs to the NOOP's answer.
	Quiet
)

// String returns "plain" or "quiet".
func (m Mode) String() string {
	if m == Quiet {
		return "quiet"
	}
	return "plain"
}

// ParseMode parses "plain" or "quiet".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "plain":
		return Plain, nil
	case "quiet":
		return Quiet, nil
	}
	return 0, fmt.Errorf("mcbench: mode %q: want plain or quiet", s)
}

// ProgressAuto as Config.Progress prints progress every second on runs
// whose Duration exceeds 3 s or that only Requests bound.
const ProgressAuto = time.Duration(-1)

// window bounds the bytes of requests and responses a connection has in
// flight (Depth is capped to fit), so that pipelining cannot deadlock on
// full socket buffers while a connection is writing.
const window = 256 << 10

// maxKeyLen is memcached's key length limit.
const maxKeyLen = 250

// Config describes a load. The zero value is not usable: start from
// DefaultConfig.
type Config struct {
	// Network is "tcp" or "unix"; Addr is host:port or a socket path.
	Network, Addr string
	// Conns is the number of connections, each driven by one goroutine.
	Conns int
	// Depth is the number of requests in flight per connection: pipelined
	// requests in Plain mode, the batch size in Quiet mode. It is capped so
	// that a connection has at most 256 KiB in flight.
	Depth int
	// Mode is Plain or Quiet.
	Mode Mode
	// GetFraction is the share of gets among the operations, 0 to 1.
	GetFraction float64
	// DeleteFraction is the share of deletes, 0 to 1 - GetFraction; the
	// rest are sets. A delete of a missing key is a miss, not an error.
	DeleteFraction float64
	// Keys is the size of the key space; keys are KeyPrefix followed by a
	// zero-padded index, chosen uniformly.
	Keys int
	// KeyPrefix starts every key.
	KeyPrefix string
	// ValueSize is the length of every value set, in bytes.
	ValueSize int
	// Duration bounds the measured run; 0 means only Requests does.
	Duration time.Duration
	// Requests bounds the number of operations over all connections; 0
	// means only Duration does. At least one of the two must be set.
	Requests int64
	// Warmup stores every key with SETQ batches before the measured run,
	// so that gets hit.
	Warmup bool
	// Check verifies every hit: its flags, its key (GETKQ) and its value
	// are those derived from the key. (Opaques, opcodes and statuses are
	// checked on every run.) Values are derived from the key and ValueSize
	// alone, so keys last set by another tool or with another ValueSize
	// read as mismatches: use Warmup. A get of a key deleted since is a
	// miss, which Check does not question.
	Check bool
	// Timeout fails a connection that does not make progress for this
	// long (dial, write or a response), and bounds the drain at the end.
	Timeout time.Duration
	// Seed seeds the per-connection choice of keys and operations.
	Seed uint64
	// CPUPid, when not 0, is a process (the server) whose CPU time over
	// the measured run is read from /proc/PID/stat and reported.
	CPUPid int

	// Progress is the interval of the progress line: 0 disables it,
	// ProgressAuto enables it for long runs.
	Progress time.Duration
	// ProgressOut receives the progress line; nil disables it.
	ProgressOut io.Writer
	// ProgressOverwrite redraws the progress line in place with \r (for a
	// terminal) rather than printing one line per interval.
	ProgressOverwrite bool
}

// DefaultConfig returns the defaults of cmd/mcbench's flags.
func DefaultConfig() Config {
	return Config{
		Network:     "tcp",
		Addr:        "127.0.0.1:11211",
		Conns:       4,
		Depth:       1,
		Mode:        Plain,
		GetFraction: 0.9,
		Keys:        10000,
		KeyPrefix:   "mcbench:",
		ValueSize:   100,
		Duration:    10 * time.Second,
		Timeout:     2 * time.Second,
		Seed:        1,
		Progress:    ProgressAuto,
	}
}

// ParseRatio parses a get:set ratio such as "9:1", a get:set:delete ratio
// such as "8:1:1" or "0:0:1", or a get fraction such as "0.9" (the rest
// sets), into the fractions of gets and of deletes.
func ParseRatio(s string) (get, del float64, err error) {
	bad := fmt.Errorf("mcbench: ratio %q: want get:set (9:1), get:set:delete (8:1:1) or a get fraction (0.9)", s)
	parts := strings.Split(s, ":")
	if len(parts) == 1 {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return 0, 0, bad
		}
		return f, 0, nil
	}
	if len(parts) > 3 {
		return 0, 0, bad
	}
	var w [3]float64 // get, set, delete
	sum := 0.0
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(f >= 0) {
			return 0, 0, bad
		}
		w[i] = f
		sum += f
	}
	if sum == 0 || sum > 1e15 {
		return 0, 0, bad
	}
	return w[0] / sum, w[2] / sum, nil
}

// FormatRatio formats the fractions of gets and deletes for reports, with
// the smallest share present as the unit: get:set ("9:1", "1:3") when there
// are no deletes, else get:set:delete ("8:1:1", "0:0:1").
func FormatRatio(get, del float64) string {
	parts := []float64{get, max(1-get-del, 0), del}
	if del <= 0 {
		parts = parts[:2]
	}
	unit := 0.0
	for _, f := range parts {
		if f > ratioEpsilon && (unit == 0 || f < unit) {
			unit = f
		}
	}
	var b strings.Builder
	for i, f := range parts {
		if i > 0 {
			b.WriteByte(':')
		}
		if f <= ratioEpsilon || unit == 0 {
			b.WriteByte('0')
			continue
		}
		b.WriteString(strconv.FormatFloat(f/unit, 'g', 4, 64))
	}
	return b.String()
}

// ratioEpsilon absorbs the rounding of fractions computed from a ratio,
// whose sum may exceed 1, or whose sets 0, by a few ulps.
const ratioEpsilon = 1e-12

// keyWidth is the number of digits of the largest key index.
func (c *Config) keyWidth() int { return len(strconv.Itoa(max(c.Keys-1, 0))) }

// opBytes bounds the bytes one operation puts in flight: a SET request and
// its response, or a GET request and its response, whichever is larger (a
// DELETE is smaller than both).
func (c *Config) opBytes() int {
	key := len(c.KeyPrefix) + c.keyWidth()
	return 2*24 + 8 + key + c.ValueSize
}

// depth returns Depth capped by the in-flight window.
func (c *Config) depth() int {
	return max(1, min(c.Depth, window/c.opBytes()))
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("mcbench: "+format, args...)) }
	if c.Network != "tcp" && c.Network != "unix" {
		bad("network %q: want tcp or unix", c.Network)
	}
	if c.Addr == "" {
		bad("no address")
	}
	if c.Conns < 1 || c.Conns > 10000 {
		bad("conns %d: want 1 to 10000", c.Conns)
	}
	if c.Depth < 1 || c.Depth > 1<<16 {
		bad("depth %d: want 1 to 65536", c.Depth)
	}
	if c.Mode != Plain && c.Mode != Quiet {
		bad("mode %d: want Plain or Quiet", int(c.Mode))
	}
	if !(c.GetFraction >= 0 && c.GetFraction <= 1) {
		bad("get fraction %v: want 0 to 1", c.GetFraction)
	}
	if !(c.DeleteFraction >= 0 && c.DeleteFraction <= 1) {
		bad("delete fraction %v: want 0 to 1", c.DeleteFraction)
	} else if c.GetFraction+c.DeleteFraction > 1+ratioEpsilon {
		bad("get fraction %v and delete fraction %v: want a sum of at most 1", c.GetFraction, c.DeleteFraction)
	}
	if c.Keys < 1 || c.Keys > 1<<31 {
		bad("keys %d: want 1 to 2^31", c.Keys)
	}
	if n := len(c.KeyPrefix) + c.keyWidth(); n > maxKeyLen {
		bad("keys of %d bytes: want at most %d (shorten -key-prefix)", n, maxKeyLen)
	}
	if c.ValueSize < 0 || c.ValueSize > 20<<20 {
		bad("value size %d: want 0 to 20 MiB", c.ValueSize)
	}
	if c.Duration < 0 || c.Requests < 0 {
		bad("negative duration or requests")
	}
	if c.Duration == 0 && c.Requests == 0 {
		bad("unbounded run: set a duration, a number of requests or both")
	}
	if c.Timeout <= 0 {
		bad("timeout %v: want > 0", c.Timeout)
	}
	if c.Progress < 0 && c.Progress != ProgressAuto {
		bad("progress interval %v: want > 0, 0 (off) or auto", c.Progress)
	}
	if c.CPUPid < 0 {
		bad("cpu pid %d", c.CPUPid)
	}
	return errors.Join(errs...)
}

// progressEvery resolves Progress: the interval, or 0 for none.
func (c *Config) progressEvery() time.Duration {
	if c.ProgressOut == nil {
		return 0
	}
	if c.Progress == ProgressAuto {
		if c.Duration == 0 || c.Duration > 3*time.Second {
			return time.Second
		}
		return 0
	}
	return c.Progress
}
