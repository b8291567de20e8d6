# Shared by bench/run.sh and bench/s3.sh, which source it: the rounds of the
# benchmark binary and the figures over them. The caller sets work (a
# temporary folder holding bench.test), out (the file the rounds' lines
# gather in) and count (the number of rounds).

# rounds WHAT BENCH [skip-fails]: runs the benchmarks matching BENCH once per
# round, shows their lines and gathers them in $out, prefixed "R<round> ".
# When a round fails (or, with skip-fails, skips), it shows the round's
# output, says "WHAT failed" (or "WHAT skipped") and exits 1.
#
# Rounds rather than -count: each round runs every benchmark once, so a raw
# floor and its product figure are measured minutes apart at most, and a
# disk that slows down over the run (burst budgets, writeback) affects both.
rounds() {
	for r in $(seq 1 "$count"); do
		echo
		echo "round $r"
		if ! "$work/bench.test" -test.run '^$' -test.bench "$2" -test.benchtime=1x -test.timeout 60m >"$work/round-$r.txt" 2>&1; then
			cat "$work/round-$r.txt"
			echo "$1 failed" >&2
			exit 1
		fi
		if [ -n "${3:-}" ] && grep -q -- '--- SKIP' "$work/round-$r.txt"; then
			cat "$work/round-$r.txt"
			echo "$1 skipped" >&2
			exit 1
		fi
		grep -E '^(Benchmark|goos|goarch|cpu)' "$work/round-$r.txt" | sed "s/^Benchmark/R$r Benchmark/; t; s/^/# /"
		sed "s/^Benchmark/R$r Benchmark/" "$work/round-$r.txt" >>"$out"
	done
}

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
