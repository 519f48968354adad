#!/usr/bin/env bash
# Loads the same items into gocache and memcached (-m 1024) with mcbench's
# warmup and prints each server's resident memory. Usage:
#   scripts/compare-memory.sh [items] [value-size]
set -euo pipefail
items=${1:-1000000}
size=${2:-100}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/gocache" ./cmd/gocache
go build -o "$tmp/mcbench" ./cmd/mcbench
user=()
[ "$(id -u)" -eq 0 ] && user=(-u root)
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
memcached "${user[@]}" -l 127.0.0.1 -p 21221 -U 0 -t 2 -m 1024 &
mc=$!
GOMAXPROCS=2 "$tmp/gocache" -l 127.0.0.1 -p 21222 -t 2 -m 1024 &
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
