#!/usr/bin/env bash
# Loads the same items into gocache and memcached (-m 1024) with mcbench's
# warmup and prints each server's resident memory. Usage:
#   scripts/compare-memory.sh [items] [value-size]
set -euo pipefail
items=${1:-1000000}
size=${2:-100}
. "$(dirname "$0")/lib.sh"
build gocache mcbench
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
start_memcached 21221 2
mc=$!
start_gocache 21222 2
gc=$!
sleep 0.5
echo "server     rss_before_kib  rss_after_kib  items"
for s in "memcached 21221 $mc" "gocache 21222 $gc"; do
	set -- $s
	before=$(rss "$3")
	"$tmp/mcbench" -addr "127.0.0.1:$2" -keys "$items" -value-size "$size" -warmup -requests 1 \
		-duration 0 -progress off -json >/dev/null
	sleep 1
	n=$(printf '\x80\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' |
		timeout 2 nc -q1 127.0.0.1 "$2" | strings | grep -A0 -o 'curr_items[0-9]*' | head -1 || true)
	echo "$1 $before $(rss "$3") $n"
done
