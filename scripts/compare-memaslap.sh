#!/usr/bin/env bash
# Cross-checks gocache against memcached with libmemcached's memaslap
# (memcaslap --binary: depth 1, its default 64-byte keys and 1 KiB values,
# 9:1 get/set), alternating runs on fresh servers. Prints TPS and server CPU
# µs per op for each run, then the medians and the ratio. Usage:
#   scripts/compare-memaslap.sh [rounds] [seconds] [threads] [conns]
set -euo pipefail
rounds=${1:-5}
secs=${2:-4}
threads=${3:-2}
conns=${4:-8}
. "$(dirname "$0")/lib.sh"
build gocache
start_memcached 21231 "$threads"
mc=$!
start_gocache 21232 "$threads"
gc=$!
sleep 0.5
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() { # name port pid
	local a b out ops tps
	a=$(cpu "$3")
	out=$(memcaslap --binary -s "127.0.0.1:$2" -T "$threads" -c "$conns" -t "${secs}s" 2>&1 | grep -E '^Run time')
	b=$(cpu "$3")
	ops=$(sed -E 's/.*Ops: ([0-9]+).*/\1/' <<<"$out")
	tps=$(sed -E 's/.*TPS: ([0-9]+).*/\1/' <<<"$out")
	echo "$1 $tps $(python3 -c "print(round(($b-$a)*10000/$ops, 2))")"
}
for round in $(seq "$rounds"); do
	run memcached 21231 $mc
	run gocache 21232 $gc
done | tee "$tmp/runs"
python3 - "$tmp/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, tps, cpu = line.split()
    runs.setdefault(name, []).append((float(tps), float(cpu)))
med = {n: (statistics.median(t for t, _ in r), statistics.median(c for _, c in r)) for n, r in runs.items()}
for n, (t, c) in med.items():
    print(f"median {n}: {t:.0f} TPS, {c:.2f} µs CPU/op")
print(f"gocache/memcached: {med['gocache'][0] / med['memcached'][0]:.2f}x TPS, "
      f"{med['gocache'][1] / med['memcached'][1]:.2f}x CPU/op")
PY
