#!/usr/bin/env bash
# Drives memcached and gocache (with its default event loops, and with a
# goroutine per connection) with the same mcbench load, alternating runs,
# and prints one line per run: server, mode, depth, ops/s, p50, p99, server
# CPU µs per op, then the medians and ratios to memcached. With
# BASELINE=path/to/gocache, an earlier gocache build (event loops) runs in
# the same rotation. MIX is the operation mix, mcbench's -ratio (default
# 9:1): get:set, get:set:delete or a get fraction; every run starts with
# the keys stored (-warmup), so with MIX=0:0:1 most deletes miss once each
# key is gone. Usage:
#   [MIX=8:1:1] scripts/compare-load.sh [rounds] [seconds] [threads]
# Needs memcached on PATH; builds gocache and mcbench into a temp dir.
set -euo pipefail
rounds=${1:-3}
secs=${2:-5}
threads=${3:-2}
mix=${MIX:-9:1}
. "$(dirname "$0")/lib.sh"
build gocache mcbench
start_memcached 21211 "$threads"
mc=$!
start_gocache 21212 "$threads"
gc=$!
start_gocache 21213 "$threads" -event-loops 0
gg=$!
names="memcached gocache gc-gorout"
if [ -n "${BASELINE:-}" ]; then
	start_baseline 21214 "$threads"
	gb=$!
	names="$names baseline"
fi
sleep 0.5
run() { # name port pid mode depth
	"$tmp/mcbench" -addr "127.0.0.1:$2" -cpu-pid "$3" -conns 8 -depth "$5" -mode "$4" \
		-ratio "$mix" -duration "${secs}s" -warmup -check -progress off -json |
		python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-9s %-5s %2s %10.0f %7.1f %7.1f %6.2f" % (sys.argv[1], sys.argv[2], sys.argv[3], r["ops_per_s"], r["latency"]["p50_us"], r["latency"]["p99_us"], r["server_cpu"]["us_per_op"]))' "$1" "$4" "$5"
}
echo "server    mode  depth    ops/s   p50µs   p99µs  cpuµs/op"
for round in $(seq "$rounds"); do
	for depth in 1 16; do
		for mode in plain quiet; do
			run memcached 21211 $mc $mode $depth
			run gocache 21212 $gc $mode $depth
			run gc-gorout 21213 $gg $mode $depth
			if [ -n "${BASELINE:-}" ]; then run baseline 21214 $gb $mode $depth; fi
		done
	done
done | tee "$tmp/runs"
python3 - "$tmp/runs" $names <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    runs.setdefault((f[1], f[2], f[0]), []).append((float(f[3]), float(f[4]), float(f[5]), float(f[6])))
print("medians: mode depth server ops/s p50 p99 cpu/op, and ops/s over memcached's: median of the rounds (range)")
for mode in ("plain", "quiet"):
    for depth in ("1", "16"):
        bases = runs[(mode, depth, "memcached")]
        for server in sys.argv[2:]:
            rs = runs[(mode, depth, server)]
            med = [statistics.median(r[i] for r in rs) for i in range(4)]
            ratios = [r[0] / b[0] for r, b in zip(rs, bases)]
            print(f"{mode:5s} {depth:>2s} {server:9s} {med[0]:9.0f} {med[1]:6.1f} {med[2]:7.1f} {med[3]:5.2f} "
                  f"{statistics.median(ratios):4.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
PY
