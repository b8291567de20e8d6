#!/usr/bin/env bash
# Fills SQLite and (with KLUIS_TEST_POSTGRES_URL) PostgreSQL with a million
# transfers, once, and measures them: database size per transfer, the plans
# of the hot-path queries, My transfers for a sender with 10,000 transfers,
# the admin statistics, and the purge of 100,000 expired transfers. Prints
# the figures as a table (measure, result, target). A report, not a gate:
# it exits 0 unless the runs themselves fail.
#
#   bash bench/scale.sh                          # a million transfers
#   KLUIS_SCALE_N=200000 bash bench/scale.sh     # a smaller trial
#   KLUIS_SCALE_DIR=/srv/scratch bash bench/scale.sh
#   KLUIS_SCALE_N=250000 KLUIS_SCALE_BACKLOG=100000 bash bench/scale.sh
#                                                # fewer rows, the full purge backlog
#   KLUIS_SCALE_DB=postgres bash bench/scale.sh  # one database only
#
# The databases are kept in KLUIS_SCALE_DIR (default the system temporary
# folder)/kluis-scale/N and as PostgreSQL database kluis_scale_N; remove
# them to generate again. Generating a million takes about half an hour
# per database on a small machine and several gigabytes.
set -euo pipefail

cd "$(dirname "$0")/.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
export KLUIS_SCALE=1 KLUIS_SCALE_OUT="$out"
echo "Kluis scale: ${KLUIS_SCALE_N:-1000000} transfers, $(nproc) CPU(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
go test -count=1 -timeout 6h -run 'TestScaleGenerate' -v ./bench | grep -E '^(=== RUN|--- |\s+scale_test)' || true
go test -count=1 -timeout 6h -run 'TestScaleMeasure' -v ./bench | grep -E '^(=== RUN|--- |\s+scale_test)' || true
echo
echo "| measure | result | target |"
echo "|---|---|---|"
sed -E 's/^\{"measure":"([^"]*)","result":"([^"]*)","target":"([^"]*)","ok":(true|false)\}$/| \1 | \2 | \3 |/' "$out"
