#!/usr/bin/env bash
# Counts, for memcached and gocache under the same mcbench load, what each
# operation costs the server besides its work: system calls by kind,
# context switches, wake-ups, and CPU, per operation, from perf's
# tracepoints on the server's process (issue 14). One line per server and
# depth, alternating the servers for each round. Needs perf (linux-perf)
# run as root, and memcached on PATH. Usage:
#   scripts/profile-load.sh [rounds] [seconds] [threads] [depths]
set -euo pipefail
rounds=${1:-2}
secs=${2:-5}
threads=${3:-2}
depths=${4:-"1 16"}
. "$(dirname "$0")/lib.sh"
build gocache mcbench
start_memcached 21231 "$threads"
mc=$!
start_gocache 21232 "$threads"
gc=$!
sleep 0.5
events=task-clock,context-switches,cpu-migrations
for s in read recvfrom write writev sendmsg epoll_wait epoll_pwait futex nanosleep sched_yield; do
	events+=",syscalls:sys_enter_$s"
done
events+=",sched:sched_wakeup"
printf "%-9s %5s %9s %6s %6s %6s %6s %6s %6s %6s %6s\n" server depth ops/s cpuµs read write epoll futex cs wakeup ops/wait
for round in $(seq "$rounds"); do
	for depth in $depths; do
		for s in "memcached 21231 $mc" "gocache 21232 $gc"; do
			set -- $s
			out=$(mktemp)
			perf stat -x, -e "$events" -p "$3" -o "$out" -- sleep "$((secs + 1))" &
			perf=$!
			sleep 0.5
			json=$("$tmp/mcbench" -addr "127.0.0.1:$2" -conns 8 -depth "$depth" -duration "${secs}s" \
				-warmup -progress off -json)
			wait "$perf"
			python3 - "$1" "$depth" "$out" "$json" <<'EOF'
import json, sys
name, depth, path, rep = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
c = {}
for line in open(path):
    f = line.strip().split(",")
    if len(f) < 3 or not f[0].replace(".", "").isdigit():
        continue
    c[f[2].split(":")[-1].replace("sys_enter_", "")] = float(f[0])
ops = rep["ops"]
# perf counts over secs+1 s around the load; the idle second adds nothing
# to a server that makes no calls when idle.
g = lambda *k: sum(c.get(x, 0) for x in k) / ops
waits = c.get("epoll_wait", 0) + c.get("epoll_pwait", 0)
print("%-9s %5s %9.0f %6.2f %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f %6.1f" % (
    name, depth, rep["ops_per_s"], c.get("task-clock", 0) * 1e3 / ops,  # task-clock is in ms
    g("read", "recvfrom"), g("write", "writev", "sendmsg"), g("epoll_wait", "epoll_pwait"),
    g("futex"), g("context-switches"), g("sched_wakeup"), ops / waits if waits else 0))
EOF
			rm -f "$out"
		done
	done
done
