#!/usr/bin/env bash
# Compares gocache with memcached on the text protocol with libmemcached's
# memaslap in its default ASCII mode: 8 connections, 100-byte values, 9:1
# get/set, single gets and (-d 100) multi-gets of 100 keys, alternating
# runs on fresh servers listening on free ports. Prints TPS and server CPU
# µs per op for each run, then the medians and the ratios. Usage:
#   scripts/compare-text-load.sh [rounds] [seconds] [threads] [conns]
set -euo pipefail
rounds=${1:-3}
secs=${2:-4}
threads=${3:-2}
conns=${4:-8}
. "$(dirname "$0")/lib.sh"
build gocache
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mcport=$(freeport)
start_memcached "$mcport" "$threads"
mc=$!
gcport=$(freeport)
start_gocache "$gcport" "$threads"
gc=$!
sleep 0.5
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() { # name port pid division
	local a b out ops tps
	a=$(cpu "$3")
	out=$(memcaslap -s "127.0.0.1:$2" -T "$threads" -c "$conns" -X 100 -d "$4" -t "${secs}s" 2>&1 | grep -E '^Run time')
	b=$(cpu "$3")
	ops=$(sed -E 's/.*Ops: ([0-9]+).*/\1/' <<<"$out")
	tps=$(sed -E 's/.*TPS: ([0-9]+).*/\1/' <<<"$out")
	echo "$1 d$4 $tps $(python3 -c "print(round(($b-$a)*10000/$ops, 2))")"
}
for round in $(seq "$rounds"); do
	for d in 1 100; do
		run memcached "$mcport" $mc $d
		run gocache "$gcport" $gc $d
	done
done | tee "$tmp/runs"
python3 - "$tmp/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, d, tps, cpu = line.split()
    runs.setdefault((name, d), []).append((float(tps), float(cpu)))
med = {k: (statistics.median(t for t, _ in r), statistics.median(c for _, c in r)) for k, r in runs.items()}
for (n, d), (t, c) in sorted(med.items()):
    print(f"median {n} {d}: {t:.0f} TPS, {c:.2f} µs CPU/op")
for d in ("d1", "d100"):
    g, m = med[("gocache", d)], med[("memcached", d)]
    print(f"{d} gocache/memcached: {g[0] / m[0]:.2f}x TPS, {g[1] / m[1]:.2f}x CPU/op")
PY
