# Sourced by the compare scripts: moves to the repository root, makes a temp
# dir ($tmp) removed on exit with every server started, and starts servers
# on loopback with -m 1024. Needs memcached on PATH.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
user=()
[ "$(id -u)" -eq 0 ] && user=(-u root)

# build builds the named commands of cmd/ into $tmp.
build() {
	local cmd
	for cmd; do go build -o "$tmp/$cmd" "./cmd/$cmd"; done
}

# start_memcached PORT THREADS starts memcached in the background ($! is its pid).
start_memcached() {
	memcached "${user[@]}" -l 127.0.0.1 -p "$1" -U 0 -t "$2" -m 1024 &
}

# start_gocache PORT THREADS [FLAG...] starts the built gocache with
# GOMAXPROCS=THREADS in the background ($! is its pid).
start_gocache() {
	local port=$1 threads=$2
	shift 2
	GOMAXPROCS=$threads "$tmp/gocache" -l 127.0.0.1 -p "$port" -t "$threads" -m 1024 "$@" 2>/dev/null &
}

# start_baseline PORT THREADS [FLAG...] starts $BASELINE, an earlier gocache
# build, as start_gocache starts this one.
start_baseline() {
	local port=$1 threads=$2
	shift 2
	GOMAXPROCS=$threads "$BASELINE" -l 127.0.0.1 -p "$port" -t "$threads" -m 1024 "$@" 2>/dev/null &
}
