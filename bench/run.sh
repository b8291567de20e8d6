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
. bench/lib.sh

export KLUIS_BENCH_SIZE="${KLUIS_BENCH_SIZE:-1GiB}"
count="${KLUIS_BENCH_COUNT:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="$work/out.txt"

echo "Kluis benchmarks: size $KLUIS_BENCH_SIZE, $count round(s), folder ${KLUIS_BENCH_DIR:-${TMPDIR:-/tmp}}"
echo "(raw go test -bench output follows; the summary is at the end)"
go test -c -o "$work/bench.test" ./bench
rounds "bench/run.sh: the benchmarks" .

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
