#!/usr/bin/env bash
# Runs memcached 1.6.18's own test suite (its t/ directory, BSD licence)
# against a memcached-compatible server, and judges the result against an
# allow-list of the points that may fail.
#
#   SERVER_BIN=/path/to/server scripts/memcached-t.sh [-a ALLOW] [-j JOBS] [-s default|second] [FILE.t ...]
#
# Each test file starts the server itself, once or more, with memcached's
# own arguments, by running "memcached-debug" beside a copy of t/: here a
# small program that drops "-o relaxed_privileges" (an option of memcached's
# debug builds only) and runs SERVER_BIN with the rest. The suite learns
# what the server supports from "SERVER_BIN -h" (unix-socket, sasl, ...).
#
# Where t/ comes from: $MEMCACHED_T (a directory holding t/) if set, else
# ../shared/memcached-t beside the checkout when it exists, else memcached
# 1.6.18's release tarball from Debian's archive (bookworm's memcached is
# 1.6.18), checked against its SHA-256 and kept in $MEMCACHED_T_CACHE
# (default ~/.cache/gomemcached).
#
# -s picks a set of files: "default" (the 31 files of issue 12's first set,
# also used when no file is named) or "second" (its second set). -a names
# an allow-list (see scripts/memcached-t.allow): lines "FILE POINT REASON"
# allow point POINT of FILE to fail, lines "FILE plan N" require FILE to
# plan exactly N points, "#" starts a comment. -j runs that many files at
# once (default 1; the files start their servers on unix sockets and random
# ports, so they do not collide, but some are timing-sensitive).
#
# Output: per file "FILE: planned P, passed N, failed F, skipped S" and its
# failing points (marked "allowed" when the allow-list has them), then the
# totals. Exit status 0 only when every file ran to its plan, matched its
# "plan" line, and failed no point outside the allow-list.
set -u
shopt -s nullglob

default_files="binary.t binary-get.t getset.t incrdecr.t flags.t noreply.t cas.t expirations.t
 getandtouch.t touch.t flush-all.t malicious-commands.t bogus-commands.t metaget.t quit.t
 multiversioning.t chunked-items.t issue_104.t issue_108.t issue_14.t issue_140.t issue_152.t
 issue_163.t issue_192.t issue_260.t issue_29.t issue_3.t issue_41.t issue_42.t issue_68.t issue_70.t"
second_files="ascii-auth.t stats.t item_size_max.t dash-M.t evictions.t lru.t lru-crawler.t
 lru-maintainer.t maxconns.t idle-timeout.t conn-limits.t issue_22.t issue_50.t issue_61.t
 issue_183.t 64bit.t unixsocket.t"

tarball=memcached_1.6.18.orig.tar.xz
tarball_sha256=35872bd25f8d29d7cc2072d23e74344530891bfd0aa4f4f64184a8ae7291164b
tarball_urls="https://deb.debian.org/debian/pool/main/m/memcached/$tarball
 http://deb.debian.org/debian/pool/main/m/memcached/$tarball
 https://snapshot.debian.org/archive/debian/20250520T000000Z/pool/main/m/memcached/$tarball"

die() { echo "memcached-t: $*" >&2; exit 2; }

allow="" jobs=1 set=""
while getopts "a:j:s:" opt; do
	case $opt in
	a) allow=$OPTARG ;;
	j) jobs=$OPTARG ;;
	s) set=$OPTARG ;;
	*) die "usage: SERVER_BIN=... $0 [-a ALLOW] [-j JOBS] [-s default|second] [FILE.t ...]" ;;
	esac
done
shift $((OPTIND - 1))
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
	case ${set:-default} in
	default) read -r -a files <<<"$(echo $default_files)" ;;
	second) read -r -a files <<<"$(echo $second_files)" ;;
	*) die "-s $set: want default or second" ;;
	esac
fi
[ -n "$allow" ] && { [ -f "$allow" ] || die "no allow-list $allow"; }
: "${SERVER_BIN:?set SERVER_BIN to the server binary}"
server=$(command -v "$SERVER_BIN") || die "SERVER_BIN $SERVER_BIN not found"
case $server in /*) ;; *) server=$PWD/$server ;; esac
command -v perl >/dev/null || die "needs perl"
file_timeout=${FILE_TIMEOUT:-300}

# suite prints the directory holding t/, fetching it if needed.
suite() {
	local repo
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	if [ -n "${MEMCACHED_T:-}" ]; then
		[ -d "$MEMCACHED_T/t" ] || die "MEMCACHED_T=$MEMCACHED_T has no t/"
		echo "$MEMCACHED_T"
		return
	fi
	if [ -d "$repo/../shared/memcached-t/t" ]; then
		(cd "$repo/../shared/memcached-t" && pwd)
		return
	fi
	local cache=${MEMCACHED_T_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gomemcached}
	local dir=$cache/memcached-1.6.18
	if [ ! -f "$dir/t/lib/MemcachedTest.pm" ]; then
		mkdir -p "$cache" || die "cannot make $cache"
		local got="" url
		for url in $tarball_urls; do
			echo "memcached-t: fetching $url" >&2
			if curl -fsSL --retry 2 --max-time 120 -o "$cache/$tarball.part" "$url"; then
				got=1
				break
			fi
		done
		[ -n "$got" ] || die "could not fetch $tarball"
		echo "$tarball_sha256  $cache/$tarball.part" | sha256sum -c --quiet - >&2 ||
			die "$tarball: SHA-256 mismatch"
		# Unpacked beside, then moved: an interrupted run leaves no half tree.
		rm -rf "$dir" "$cache/unpack"
		mkdir -p "$cache/unpack"
		tar -xJf "$cache/$tarball.part" -C "$cache/unpack" memcached-1.6.18/t memcached-1.6.18/COPYING ||
			die "could not unpack $tarball"
		mv "$cache/unpack/memcached-1.6.18" "$dir" && rm -rf "$cache/unpack" "$cache/$tarball.part"
	fi
	echo "$dir"
}
src=$(suite) || exit 2

work=$(mktemp -d "${TMPDIR:-/tmp}/memcached-t.XXXXXX")
cleanup() {
	local f p
	for f in "$work"/*/pids; do
		while read -r p; do kill "$p" 2>/dev/null; done <"$f"
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# runfile FILE: runs one file in its own directory under $work, leaving
# its TAP output in out, its stderr in err and perl's status in rc.
runfile() {
	local f=$1 d=$work/${1%.t}
	mkdir -p "$d"
	cp -R "$src/t" "$d/t"
	cat >"$d/memcached-debug" <<-EOF
		#!/usr/bin/env bash
		# Runs the server under test as the suite runs memcached-debug.
		keep=()
		while [ \$# -gt 0 ]; do
			if [ "\$1" = -o ] && [ "\${2:-}" = relaxed_privileges ]; then
				shift 2
				continue
			fi
			keep+=("\$1")
			shift
		done
		echo \$\$ >>"$d/pids"
		exec "$server" "\${keep[@]}"
	EOF
	cat >"$d/timedrun" <<-'EOF'
		#!/bin/sh
		# timedrun SECONDS PROGRAM ARGS...: PROGRAM, killed after SECONDS.
		limit=$1
		shift
		exec timeout -k 5 "$limit" "$@"
	EOF
	chmod +x "$d/memcached-debug" "$d/timedrun"
	(cd "$d" && unset SSL_TEST T_MEMD_USE_DAEMON VALGRIND_TEST && exec timeout -k 5 "$file_timeout" perl "t/$f") >"$d/out" 2>"$d/err"
	echo $? >"$d/rc"
	local p
	if [ -f "$d/pids" ]; then
		while read -r p; do kill "$p" 2>/dev/null; done <"$d/pids"
		sleep 0.2
		while read -r p; do kill -9 "$p" 2>/dev/null; done <"$d/pids"
	fi
}

for f in "${files[@]}"; do
	f=${f##*/}
	[ -f "$src/t/$f" ] || die "no test file $f in $src/t"
done
running=0
for f in "${files[@]}"; do
	f=${f##*/}
	runfile "$f" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

# allowed FILE POINT: whether the allow-list lets that point fail.
allowed() {
	[ -n "$allow" ] && awk -v f="$1" -v p="$2" '$1 == f && $2 == p { found = 1 } END { exit !found }' "$allow"
}
# plan_of FILE: the plan the allow-list requires, if any.
plan_of() {
	[ -n "$allow" ] && awk -v f="$1" '$1 == f && $2 == "plan" { print $3 }' "$allow"
}

pass=0 fail=0 allowed_fails=0 bad_files=0
for f in "${files[@]}"; do
	f=${f##*/}
	d=$work/${f%.t}
	rc=$(cat "$d/rc")
	planned=$(grep -a -m1 -oE '^1\.\.[0-9]+' "$d/out" | cut -c4-)
	ok=$(grep -a -cE '^ok [0-9]+' "$d/out")
	skipped=$(grep -a -cE '^ok [0-9]+ # skip' "$d/out")
	mapfile -t failing < <(grep -a -E '^not ok [0-9]+' "$d/out" | grep -av '# TODO' | awk '{ print $3 }')
	ran=$((ok + ${#failing[@]}))
	note="" unexpected=0 missing=0
	if grep -aq '^1\.\.0 # SKIP' "$d/out"; then
		note=", skipped whole file"
	elif [ -z "$planned" ] || [ "$ran" -lt "$planned" ]; then
		missing=$(( ${planned:-$ran} - ran ))
		[ "$missing" -lt 1 ] && missing=1 # no plan: at least the plan is missing
		note=", $missing not run (exit $rc): $(tail -n 2 "$d/err" | tr '\n' ' ' | cut -c1-200)"
		unexpected=1
	fi
	want=$(plan_of "$f")
	if [ -n "$want" ] && [ "${planned:-}" != "$want" ]; then
		note="$note, planned ${planned:-?} where the allow-list says $want"
		unexpected=1
	fi
	nallowed=0
	lines=()
	for p in "${failing[@]}"; do
		if allowed "$f" "$p"; then
			nallowed=$((nallowed + 1))
			lines+=("    not ok $p (allowed)")
		else
			unexpected=1
			lines+=("$(grep -a -m1 -E "^not ok $p( |\$)" "$d/out" | cut -c1-160 | sed 's/^/    /')")
		fi
	done
	echo "$f: planned ${planned:-?}, passed $((ok - skipped)), failed $((${#failing[@]} + missing)), skipped $skipped$note"
	for l in "${lines[@]:0:20}"; do echo "$l"; done
	[ "${#lines[@]}" -gt 20 ] && echo "    ... $(( ${#lines[@]} - 20 )) more"
	pass=$((pass + ok - skipped))
	fail=$((fail + ${#failing[@]} + ${missing:-0}))
	allowed_fails=$((allowed_fails + nallowed))
	bad_files=$((bad_files + unexpected))
done
echo "$pass passed, $fail failed ($allowed_fails allowed); $bad_files of ${#files[@]} files with unexpected failures"
[ "$bad_files" -eq 0 ]
