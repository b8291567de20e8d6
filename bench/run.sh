#!/usr/bin/env bash
# Runs Kluis's throughput and memory benchmarks and prints each figure next
# to its raw floor, measured in the same run, with the ratio and the target.
# A report, not a gate: it exits 0 whether the targets are met or not (and
# non-zero only when the benchmarks themselves fail).
#
#   bash bench/run.sh                      # 1 GiB, 3 runs each
#   KLUIS_BENCH_SIZE=256MiB KLUIS_BENCH_COUNT=1 bash bench/run.sh
#   KLUIS_BENCH_DIR=/srv/kluis bash bench/run.sh   # the data folder's disk
set -euo pipefail

cd "$(dirname "$0")/.."

export KLUIS_BENCH_SIZE="${KLUIS_BENCH_SIZE:-1GiB}"
count="${KLUIS_BENCH_COUNT:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="$work/out.txt"

echo "Kluis benchmarks: size $KLUIS_BENCH_SIZE, $count round(s), folder ${KLUIS_BENCH_DIR:-${TMPDIR:-/tmp}}"
echo "(raw go test -bench output follows; the summary is at the end)"
go test -c -o "$work/bench.test" ./bench
# Rounds rather than -count: each round runs every benchmark once, so a raw
# floor and its product figure are measured minutes apart at most, and a
# disk that slows down over the run (burst budgets, writeback) affects both.
for r in $(seq 1 "$count"); do
	echo
	echo "round $r"
	if ! "$work/bench.test" -test.run '^$' -test.bench . -test.benchtime=1x -test.timeout 60m >"$work/round-$r.txt" 2>&1; then
		cat "$work/round-$r.txt"
		echo "bench/run.sh: the benchmarks failed" >&2
		exit 1
	fi
	grep -E '^(Benchmark|goos|goarch|cpu)' "$work/round-$r.txt" | sed "s/^Benchmark/R$r Benchmark/; t; s/^/# /"
	sed "s/^Benchmark/R$r Benchmark/" "$work/round-$r.txt" >>"$out"
done

# metric NAME UNIT AGG [ROUND]: the median (AGG=median) or maximum (AGG=max)
# of a benchmark's metric over the rounds (or in one round). NAME is without
# the -GOMAXPROCS suffix.
metric() {
	awk -v name="$1" -v unit="$2" -v round="${4:-}" '
		$2 ~ /^Benchmark/ {
			if (round != "" && $1 != "R" round) next
			n = $2; sub(/-[0-9]+$/, "", n)
			if (n != name) next
			for (i = 4; i < NF; i++) if ($(i+1) == unit) print $i
		}' "$out" | sort -g | agg "$3"
}

# agg median|max: of the numbers on stdin.
agg() {
	awk -v agg="$1" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "NaN"; exit }
			if (agg == "max") { print v[NR]; exit }
			if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2
		}'
}

# ratio A B: the median over the rounds of A's MB/s over B's in that round.
ratio() {
	for r in $(seq 1 "$count"); do
		awk -v a="$(metric "$1" MB/s max "$r")" -v b="$(metric "$2" MB/s max "$r")" 'BEGIN { if (b > 0) print a / b }'
	done | sort -g | agg median
}

raw_w=$(metric BenchmarkRawWriteFsync MB/s median)
tus=$(metric BenchmarkTusUpload MB/s median)
raw_d=$(metric BenchmarkRawAgeDecrypt MB/s median)
dl=$(metric BenchmarkDownload MB/s median)
mem1=$(metric BenchmarkPeakMemory/uploads=1 MiB/upload max)
mem10=$(metric BenchmarkPeakMemory/uploads=10 MiB/upload max)
peak10=$(metric BenchmarkPeakMemory/uploads=10 peak-MiB max)
up_ratio=$(ratio BenchmarkTusUpload BenchmarkRawWriteFsync)
dl_ratio=$(ratio BenchmarkDownload BenchmarkRawAgeDecrypt)
ov_ratio=$(ratio BenchmarkSegmentCommit/overlapped BenchmarkRawWriteFsync)
se_ratio=$(ratio BenchmarkSegmentCommit/serial BenchmarkRawWriteFsync)

echo
echo "Summary (throughput: median of $count rounds; ratios: median of the per-round ratios; memory: worst round)"
awk -v rw="$raw_w" -v tus="$tus" -v rd="$raw_d" -v dl="$dl" -v r1="$up_ratio" -v r2="$dl_ratio" \
	-v ov="$ov_ratio" -v se="$se_ratio" \
	-v m1="$mem1" -v m10="$mem10" -v p10="$peak10" -v size="$KLUIS_BENCH_SIZE" '
	function verdict(ok) { return ok ? "PASS" : "BELOW TARGET" }
	BEGIN {
		printf "  %-44s %12s\n", "raw write + fsync every 16 MiB", sprintf("%.0f MB/s", rw)
		printf "  %-44s %12s\n", "tus upload (" size ")", sprintf("%.0f MB/s", tus)
		printf "  %-44s %12s\n", "raw age decrypt, 64 KiB reads", sprintf("%.0f MB/s", rd)
		printf "  %-44s %12s\n", "download (" size ")", sprintf("%.0f MB/s", dl)
		printf "  %-44s %12s\n", "extra memory, one upload", sprintf("%.1f MiB", m1)
		printf "  %-44s %12s\n", "extra memory, ten parallel uploads (total)", sprintf("%.1f MiB", p10)
		print ""
		printf "  %-44s %7.2f  target >= 0.90  %s\n", "upload / raw write", r1, verdict(r1 >= 0.9)
		printf "  %-44s %7.2f  target >= 0.80  %s\n", "download / raw age decrypt", r2, verdict(r2 >= 0.8)
		printf "  %-44s %7.1f  target <= 16    %s\n", "MiB per upload, one upload", m1, verdict(m1 <= 16)
		printf "  %-44s %7.1f  target <= 16    %s\n", "MiB per upload, ten parallel", m10, verdict(m10 <= 16)
		print ""
		print "  Diagnostic (no HTTP, no SQLite): segments into blobs, over raw write"
		printf "  %-44s %7.2f\n", "  commit each segment inline (as today)", se
		printf "  %-44s %7.2f\n", "  commit overlapped with the next segment", ov
	}'
exit 0
