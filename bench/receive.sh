#!/usr/bin/env bash
# `kluis receive` against `curl -o FILE` of the same file from the same
# server in the same run (issue 21: receive reaches at least 0.8 of curl).
# Both write the file to disk in the same folder; kluis also checks its
# SHA-256 (while it writes), fsyncs it and renames it into place, and opens
# the link (lookup, unlock, contents) in the time measured; curl only
# downloads with a session opened beforehand. Each round runs both, in
# alternating order, after a sync; the figures are medians over the rounds.
# A report, not a gate: it exits 0 whether the target is met or not.
#
#   bash bench/receive.sh                        # 1 GiB, 3 rounds
#   KLUIS_BENCH_SIZE=256MiB KLUIS_BENCH_COUNT=1 bash bench/receive.sh
#   KLUIS_BENCH_DIR=/srv/kluis bash bench/receive.sh   # the disk to measure on
#   KLUIS_BENCH_BIN=/tmp/kluis-old bash bench/receive.sh # another kluis binary
#                                                          (server and client)
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.sh

size_arg="${KLUIS_BENCH_SIZE:-1GiB}"
count="${KLUIS_BENCH_COUNT:-3}"
case "$size_arg" in
*GiB) size=$(( ${size_arg%GiB} * 1024 * 1024 * 1024 )) ;;
*MiB) size=$(( ${size_arg%MiB} * 1024 * 1024 )) ;;
*KiB) size=$(( ${size_arg%KiB} * 1024 )) ;;
*G) size=$(( ${size_arg%G} * 1000 * 1000 * 1000 )) ;;
*M) size=$(( ${size_arg%M} * 1000 * 1000 )) ;;
*) size=$size_arg ;;
esac
command -v curl >/dev/null || { echo "bench/receive.sh: curl is needed" >&2; exit 1; }
work="$(mktemp -d "${KLUIS_BENCH_DIR:-${TMPDIR:-/tmp}}/kluis-receive-bench.XXXXXX")"
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "kluis receive against curl: size $size_arg ($size bytes), $count round(s), folder $work"
kluis="${KLUIS_BENCH_BIN:-$work/kluis}"
[ -n "${KLUIS_BENCH_BIN:-}" ] || go build -o "$kluis" ./cmd/kluis
export KLUIS_LANG=en XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache"
mkdir -p "$work/data" "$work/out"

"$kluis" serve --data "$work/data" --addr 127.0.0.1:0 --max-transfer-size 1TB --log-level error \
	>"$work/serve.out" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 300); do
	url=$(sed -n 's/^Kluis is running at \(http:[^ ]*\)\/ .*/\1/p' "$work/serve.out")
	[ -n "$url" ] && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log"; echo "kluis serve did not start" >&2; exit 1; }
	sleep 0.1
done
[ -n "$url" ] || { echo "kluis serve printed no address" >&2; exit 1; }
export KLUIS_SERVER="$url"

KLUIS_API_KEY=$("$kluis" admin apikey create --sender bench@example.nl --data "$work/data" 2>/dev/null)
export KLUIS_API_KEY
head -c "$size" /dev/urandom >"$work/file.bin"
"$kluis" send --to ontvanger@example.nl --no-password --json "$work/file.bin" >"$work/send.json"
link=""
for _ in $(seq 1 100); do
	link=$(curl -s "$url/dev/mailbox.json" | grep -o 'http://[^" \\]*/r/[^" \\]*#[A-Za-z0-9_-]*' | head -n 1 || true)
	[ -n "$link" ] && break
	sleep 0.2
done
[ -n "$link" ] || { echo "no link in the development mailbox" >&2; exit 1; }
access=${link##*/r/}
secret=${access#*#}
access=${access%%#*}

# curl's session, opened once (not timed): what a script would do.
session=$(curl -sf -H 'Content-Type: application/json' -d "{\"secret\":\"$secret\"}" \
	"$url/api/v1/links/$access/unlock" | grep -o '"session": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/')
fid=$(curl -sf -H "Authorization: Bearer $session" "$url/api/v1/session" |
	grep -o '"id": *"[^"]*"' | sed -n '2s/.*"\([^"]*\)"$/\1/p')
[ -n "$session" ] && [ -n "$fid" ] || { echo "could not open the link with curl" >&2; exit 1; }

now() { date +%s.%N; }
run_curl() {
	rm -f "$work/out/curl.bin"
	sync
	local t0 t1
	t0=$(now)
	curl -sf -o "$work/out/curl.bin" -H "Authorization: Bearer $session" "$url/api/v1/session/files/$fid"
	t1=$(now)
	cmp -s "$work/out/curl.bin" "$work/file.bin" || { echo "curl's file differs" >&2; exit 1; }
	echo "$t0 $t1" | awk -v n="$size" '{ printf "%.1f", n / ($2 - $1) / 1e6 }'
}
run_kluis() {
	rm -rf "$work/out/kluis"
	sync
	local t0 t1
	t0=$(now)
	"$kluis" receive "$link" -o "$work/out/kluis" --json >/dev/null
	t1=$(now)
	cmp -s "$work/out/kluis/file.bin" "$work/file.bin" || { echo "kluis's file differs" >&2; exit 1; }
	echo "$t0 $t1" | awk -v n="$size" '{ printf "%.1f", n / ($2 - $1) / 1e6 }'
}

# One untimed download first: the server's first read of the stored file
# comes from the disk, later ones from the page cache; without this the
# first round times that for whichever client goes first.
run_curl >/dev/null
: >"$work/rounds.txt"
for r in $(seq 1 "$count"); do
	if [ $((r % 2)) -eq 1 ]; then c=$(run_curl); k=$(run_kluis); else k=$(run_kluis); c=$(run_curl); fi
	ratio=$(awk -v k="$k" -v c="$c" 'BEGIN { printf "%.3f", k / c }')
	echo "round $r: curl -o $c MB/s, kluis receive $k MB/s, ratio $ratio"
	echo "$c $k $ratio" >>"$work/rounds.txt"
done
c=$(awk '{ print $1 }' "$work/rounds.txt" | sort -g | agg median)
k=$(awk '{ print $2 }' "$work/rounds.txt" | sort -g | agg median)
ratio=$(awk '{ print $3 }' "$work/rounds.txt" | sort -g | agg median)
echo
echo "Summary (medians of $count rounds; the ratio is the median of the per-round ratios)"
awk -v c="$c" -v k="$k" -v r="$ratio" 'BEGIN {
	printf "  %-36s %10.0f MB/s\n", "curl -o FILE", c
	printf "  %-36s %10.0f MB/s\n", "kluis receive (hash, fsync, rename)", k
	printf "  %-36s %10.2f  target >= 0.80  %s\n", "kluis receive / curl", r, (r >= 0.8 ? "PASS" : "BELOW TARGET")
}'
exit 0
