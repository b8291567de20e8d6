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
		echo "round $r (load average $(cut -d' ' -f1-3 /proc/loadavg))"
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

# size_bytes SIZE: KLUIS_BENCH_SIZE's form (a number with an optional
# K/M/G or KiB/MiB/GiB suffix, powers of 1024) in bytes.
size_bytes() {
	local v="$1" m=1
	case "$v" in
	*GiB) v="${v%GiB}" m=$((1 << 30)) ;;
	*MiB) v="${v%MiB}" m=$((1 << 20)) ;;
	*KiB) v="${v%KiB}" m=$((1 << 10)) ;;
	*G) v="${v%G}" m=$((1 << 30)) ;;
	*M) v="${v%M}" m=$((1 << 20)) ;;
	*K) v="${v%K}" m=$((1 << 10)) ;;
	esac
	case "$v" in
	'' | *[!0-9]*) echo "size $1: want e.g. 1GiB, 256MiB or 1048576" >&2; return 1 ;;
	esac
	echo $((v * m))
}

# start_versitygw DIR: starts versitygw (on PATH or in $(go env GOPATH)/bin)
# on a free loopback port with its posix back end in DIR, with the
# credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (set to bench
# ones if unset), and waits until it listens. Sets vgw_pid, vgw_port and
# vgw_bin.
start_versitygw() {
	vgw_bin="$(command -v versitygw || true)"
	[ -n "$vgw_bin" ] || vgw_bin="$(go env GOPATH)/bin/versitygw"
	if [ ! -x "$vgw_bin" ]; then
		echo "no versitygw: install it with" >&2
		echo "  go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2
		return 1
	fi
	export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-bench}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-benchbench}"
	vgw_port=$((20000 + RANDOM % 20000))
	mkdir -p "$1"
	"$vgw_bin" --port "127.0.0.1:$vgw_port" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --quiet posix "$1" >"$1.log" 2>&1 &
	vgw_pid=$!
	for _ in $(seq 1 50); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$vgw_port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "versitygw did not start:" >&2
	cat "$1.log" >&2
	return 1
}
