package mcbench

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Usage is the text cmd/mcbench prints before its flags.
const Usage = `Usage: mcbench [flags]

mcbench drives a memcached binary-protocol server with a closed-loop load:
-conns connections, each keeping -depth requests in flight, until -duration
has passed or -requests are done, whichever comes first. It reports ops/s,
hits and misses, latency percentiles, bytes, errors and mismatches (a
response whose opaque or opcode is not its request's; with -check also a
wrong flag, key or value), and exits 1 if there was any.

  plain mode: GET, SET and DELETE requests pipelined -depth deep, each
              answered; latency is per request.
  quiet mode: batches of -depth GETKQ/SETQ/DELETEQ fenced by a NOOP (misses,
              stored sets and done deletes are not answered); latency is
              per batch.

-ratio mixes the operations: get:set (9:1), get:set:delete (8:1:1; 0:0:1
deletes only) or a get fraction (0.9). A get or delete of a missing key is
a miss, not an error.

Values are derived from their keys, so -check can verify any get on any
connection; use -warmup so that keys hold this tool's values and gets hit.
-cpu-pid reads the server's CPU time from /proc/PID/stat around the run
and reports CPU µs per operation (and mcbench's own, for comparison).

Examples:
  mcbench -addr 127.0.0.1:11211 -conns 8 -depth 1 -duration 10s
  mcbench -conns 8 -depth 16 -mode quiet -ratio 9:1 -warmup -check
  mcbench -conns 8 -ratio 8:1:1 -warmup -check
  mcbench -cpu-pid "$(pidof memcached)" -json > run.json

Flags:
`

// RegisterFlags defines the flags of cmd/mcbench on fs, bound to c; c's
// values are the defaults shown.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	target := ""
	setTarget := func(name, network string) func(string) error {
		return func(s string) error {
			if target != "" && target != name {
				return errors.New("use one of -addr and -unix")
			}
			if s == "" {
				return errors.New("empty address")
			}
			target, c.Network, c.Addr = name, network, s
			return nil
		}
	}
	fs.Func("addr", "server `host:port` (default "+c.Addr+")", setTarget("addr", "tcp"))
	fs.Func("unix", "server unix socket `path`, instead of -addr", setTarget("unix", "unix"))
	fs.IntVar(&c.Conns, "conns", c.Conns, "`number` of connections, one goroutine each")
	fs.IntVar(&c.Depth, "depth", c.Depth, "requests in flight per connection (quiet: the batch size); capped at 256 KiB in flight")
	fs.Var(modeValue{&c.Mode}, "mode", "`mode`: plain (GET/SET/DELETE, each answered) or quiet (GETKQ/SETQ/DELETEQ batches fenced by NOOP)")
	fs.Var(ratioValue{&c.GetFraction, &c.DeleteFraction}, "ratio", "`get:set[:delete]` ratio (9:1, 8:1:1) or get fraction (0.9)")
	fs.IntVar(&c.Keys, "keys", c.Keys, "key space: `number` of distinct keys, chosen uniformly")
	fs.StringVar(&c.KeyPrefix, "key-prefix", c.KeyPrefix, "`prefix` of every key (keys are prefix + zero-padded index)")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "value length in `bytes`")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured run time; 0: bounded by -requests only")
	fs.Int64Var(&c.Requests, "requests", c.Requests, "total operations over all connections; 0: bounded by -duration only")
	fs.BoolVar(&c.Warmup, "warmup", c.Warmup, "store every key (SETQ batches) before the measured run, so gets hit")
	fs.BoolVar(&c.Check, "check", c.Check, "verify the flags, key and value of every hit (opaques, opcodes and statuses are always checked)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "fail a connection that makes no progress for this long; also the drain grace at the end")
	fs.Var(progressValue{&c.Progress}, "progress", "progress line `interval` on stderr: a duration, off, or auto (1s when the run is over 3s)")
	fs.IntVar(&c.CPUPid, "cpu-pid", c.CPUPid, "server `pid`: report its CPU time (/proc/PID/stat) over the run and per op")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the key and operation choices")
}

// modeValue is a flag.Value for a Mode.
type modeValue struct{ m *Mode }

func (v modeValue) String() string {
	if v.m == nil {
		return ""
	}
	return v.m.String()
}

func (v modeValue) Set(s string) error {
	m, err := ParseMode(s)
	if err == nil {
		*v.m = m
	}
	return err
}

// ratioValue is a flag.Value for the get and delete fractions written as a
// ratio.
type ratioValue struct{ get, del *float64 }

func (v ratioValue) String() string {
	if v.get == nil || v.del == nil {
		return ""
	}
	return FormatRatio(*v.get, *v.del)
}

func (v ratioValue) Set(s string) error {
	get, del, err := ParseRatio(s)
	if err == nil {
		*v.get, *v.del = get, del
	}
	return err
}

// progressValue is a flag.Value for Config.Progress.
type progressValue struct{ d *time.Duration }

func (v progressValue) String() string {
	switch {
	case v.d == nil:
		return ""
	case *v.d == ProgressAuto:
		return "auto"
	case *v.d == 0:
		return "off"
	}
	return v.d.String()
}

func (v progressValue) Set(s string) error {
	switch strings.ToLower(s) {
	case "auto":
		*v.d = ProgressAuto
		return nil
	case "off", "0", "false":
		*v.d = 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration, off or auto")
	}
	*v.d = d
	return nil
}
