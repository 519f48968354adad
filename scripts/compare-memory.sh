#!/usr/bin/env bash
# Loads the same items into gocache and memcached (-m 1024) with mcbench's
# warmup and prints each server's resident memory and item count. With
# BASELINE=path/to/gocache, an earlier gocache build is measured too.
# Usage:
#   scripts/compare-memory.sh [items] [value-size]
set -euo pipefail
items=${1:-1000000}
size=${2:-100}
. "$(dirname "$0")/lib.sh"
build gocache mcbench
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
servers=()
start_memcached 21221 2
servers+=("memcached 21221 $!")
start_gocache 21222 2
servers+=("gocache 21222 $!")
if [ -n "${BASELINE:-}" ]; then
	start_baseline 21223 2
	servers+=("baseline 21223 $!")
fi
sleep 0.5
echo "server     rss_before_kib  rss_after_kib  items  bytes_per_item"
for s in "${servers[@]}"; do
	set -- $s
	before=$(rss "$3")
	"$tmp/mcbench" -addr "127.0.0.1:$2" -keys "$items" -value-size "$size" -warmup -requests 1 \
		-duration 0 -progress off -json >/dev/null
	sleep 1
	n=$("$tmp/mcbench" -addr "127.0.0.1:$2" -stat curr_items)
	after=$(rss "$3")
	echo "$1 $before $after $n $(( (after - before) * 1024 / n ))"
done
