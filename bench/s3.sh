#!/usr/bin/env bash
# The S3 benchmark: a Kluis upload and download of KLUIS_BENCH_SIZE bytes
# through `kluis serve --storage s3://...` next to raw multipart PUT and GET
# of the same bytes to the same S3 server, in the same run, with ratios and
# the server process's memory. A report, not a gate: it exits 0 whether or
# not the figures are good (non-zero only when the benchmark itself fails).
#
#   bash bench/s3.sh                                  # 1 GiB, 3 rounds
#   KLUIS_BENCH_SIZE=256MiB KLUIS_BENCH_COUNT=1 bash bench/s3.sh
#   KLUIS_BENCH_S3_URL='s3://bucket?endpoint=https://s3.example:9000&region=eu-west-1' bash bench/s3.sh
#
# The S3 server: KLUIS_BENCH_S3_URL, else KLUIS_TEST_S3_URL (credentials in
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), else a versitygw started here
# on a temporary folder (versitygw on PATH or in $(go env GOPATH)/bin;
# install: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0).
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.sh

export KLUIS_BENCH_SIZE="${KLUIS_BENCH_SIZE:-1GiB}"
count="${KLUIS_BENCH_COUNT:-3}"
work="$(mktemp -d)"
vgw_pid=""
cleanup() {
	if [ -n "$vgw_pid" ]; then kill "$vgw_pid" 2>/dev/null || true; wait "$vgw_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
out="$work/out.txt"

s3url="${KLUIS_BENCH_S3_URL:-${KLUIS_TEST_S3_URL:-}}"
if [ -z "$s3url" ]; then
	start_versitygw "$work/vgw" || exit 1
	port=$vgw_port
	s3url="s3://kluis-bench?endpoint=http://127.0.0.1:$port&region=us-east-1"
	where="versitygw ($vgw_bin) started here on a temporary folder in ${TMPDIR:-/tmp} (posix back end)"
else
	where="the S3 server of ${KLUIS_BENCH_S3_URL:+KLUIS_BENCH_S3_URL}${KLUIS_BENCH_S3_URL:-KLUIS_TEST_S3_URL}"
fi
export KLUIS_BENCH_S3_URL="$s3url"

echo "Kluis S3 benchmark: size $KLUIS_BENCH_SIZE, $count round(s), $(nproc) CPU(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "S3: $where"
echo "(raw go test -bench output follows; the summary is at the end)"
go build -trimpath -o "$work/kluis" ./cmd/kluis
export KLUIS_BENCH_KLUIS_BIN="$work/kluis"
go test -c -o "$work/bench.test" ./bench
rounds "bench/s3.sh: the benchmark" '^BenchmarkS3$' skip-fails

put=$(metric BenchmarkS3/RawPut MB/s median)
puts=$(metric BenchmarkS3/RawPutSegmented MB/s median)
gets=$(metric BenchmarkS3/RawGetSegmented MB/s median)
up_ratio_s=$(ratio BenchmarkS3/Upload BenchmarkS3/RawPutSegmented)
dl_ratio_s=$(ratio BenchmarkS3/Download BenchmarkS3/RawGetSegmented)
encput=$(metric BenchmarkS3/RawEncryptPut MB/s median)
getdec=$(metric BenchmarkS3/RawGetDecrypt MB/s median)
up_ratio_e=$(ratio BenchmarkS3/Upload BenchmarkS3/RawEncryptPut)
dl_ratio_d=$(ratio BenchmarkS3/Download BenchmarkS3/RawGetDecrypt)
up=$(metric BenchmarkS3/Upload MB/s median)
get=$(metric BenchmarkS3/RawGet MB/s median)
dl=$(metric BenchmarkS3/Download MB/s median)
up_ratio=$(ratio BenchmarkS3/Upload BenchmarkS3/RawPut)
dl_ratio=$(ratio BenchmarkS3/Download BenchmarkS3/RawGet)
up_before=$(metric BenchmarkS3/Upload rss-before-MiB max)
up_peak=$(metric BenchmarkS3/Upload rss-peak-MiB max)
dl_peak=$(metric BenchmarkS3/Download rss-peak-MiB max)
hwm=$(metric BenchmarkS3/Download rss-hwm-MiB max)

echo
echo "Summary (throughput: median of $count rounds; ratios: median of the per-round ratios; memory: worst round)"
awk -v encput="$encput" -v getdec="$getdec" -v r1e="$up_ratio_e" -v r2d="$dl_ratio_d" -v put="$put" -v puts="$puts" -v gets="$gets" -v r1s="$up_ratio_s" -v r2s="$dl_ratio_s" -v up="$up" -v get="$get" -v dl="$dl" -v r1="$up_ratio" -v r2="$dl_ratio" \
	-v ub="$up_before" -v up_peak="$up_peak" -v dp="$dl_peak" -v hwm="$hwm" -v size="$KLUIS_BENCH_SIZE" '
	function verdict(ok) { return ok ? "PASS" : "BELOW TARGET" }
	BEGIN {
		printf "  %-48s %12s\n", "raw multipart PUT, 5 MiB parts (" size ")", sprintf("%.0f MB/s", put)
		printf "  %-48s %12s\n", "raw PUT as 16 MiB objects (Kluis layout)", sprintf("%.0f MB/s", puts)
		printf "  %-48s %12s\n", "raw age encrypt + PUT as 16 MiB objects", sprintf("%.0f MB/s", encput)
		printf "  %-48s %12s\n", "Kluis tus upload to S3 (" size ")", sprintf("%.0f MB/s", up)
		printf "  %-48s %12s\n", "raw GET (" size ")", sprintf("%.0f MB/s", get)
		printf "  %-48s %12s\n", "raw GET of the 16 MiB objects in turn", sprintf("%.0f MB/s", gets)
		printf "  %-48s %12s\n", "raw GET + age decrypt of 16 MiB objects", sprintf("%.0f MB/s", getdec)
		printf "  %-48s %12s\n", "Kluis download from S3 (" size ")", sprintf("%.0f MB/s", dl)
		printf "  %-48s %12s\n", "server RSS at rest, before the upload", sprintf("%.1f MiB", ub)
		printf "  %-48s %12s\n", "server RSS peak during the upload", sprintf("%.1f MiB", up_peak)
		printf "  %-48s %12s\n", "server RSS peak during the download", sprintf("%.1f MiB", dp)
		printf "  %-48s %12s\n", "server RSS high-water mark (whole run)", sprintf("%.1f MiB", hwm)
		print ""
		printf "  %-48s %7.2f  target >= 0.80  %s\n", "upload / raw PUT", r1, verdict(r1 >= 0.8)
		printf "  %-48s %7.2f  target >= 0.80  %s\n", "download / raw GET", r2, verdict(r2 >= 0.8)
		printf "  %-48s %7.1f  target <= 64    %s\n", "MiB of server RSS growth during the upload", up_peak - ub, verdict(up_peak - ub <= 64)
		print ""
		print "  Diagnostic: against the same bytes in the Kluis object layout (16 MiB objects)"
		printf "  %-48s %7.2f\n", "  upload / raw PUT of 16 MiB objects", r1s
		printf "  %-48s %7.2f\n", "  download / raw GET of 16 MiB objects", r2s
		print "  Diagnostic: against raw requests that do the age work too (the CPU floor)"
		printf "  %-48s %7.2f\n", "  upload / raw encrypt + PUT of 16 MiB objects", r1e
		printf "  %-48s %7.2f\n", "  download / raw GET + decrypt of 16 MiB objects", r2d
	}'
exit 0
