#!/usr/bin/env bash
# Compares Kluis's downloads with other servers on this machine, in the same
# run (issue 21 item 1): the same file downloaded with curl into /dev/null
# from Kluis, from Gokapi v2 with encryption level 1 (server-side AES-GCM,
# key in its configuration) and from transfer.sh serving the plaintext
# from its local folder; age -d of Kluis's stored segments over both
# cores; each server's ZIP of the file; and on S3 (versitygw), Kluis
# against a raw GET of the plaintext. A report, not a gate: it exits 0
# whether the targets are met or not.
#
#   bash bench/peers.sh                      # 1 GiB, 3 rounds
#   KLUIS_BENCH_SIZE=256MiB KLUIS_BENCH_COUNT=1 bash bench/peers.sh
#
# The peers are built from their public source in KLUIS_PEERS_DIR (default
# ${TMPDIR:-/tmp}/kluis-peers), never in this repository, and nothing of
# them is committed. Their source: KLUIS_PEERS_GOKAPI_SRC and
# KLUIS_PEERS_TRANSFERSH_SRC, each a source folder or a git directory;
# unset, a shallow clone from GitHub of the tags below. Go modules come
# from the module proxy. Needs go, curl (7.75 or later, for --aws-sigv4)
# and jq; S3 as in bench/s3.sh (KLUIS_BENCH_S3_URL, else a versitygw
# started here).
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$(pwd -P)"
. bench/lib.sh

export KLUIS_BENCH_SIZE="${KLUIS_BENCH_SIZE:-1GiB}"
size=$(size_bytes "$KLUIS_BENCH_SIZE")
count="${KLUIS_BENCH_COUNT:-3}"
gokapi_ref="${KLUIS_PEERS_GOKAPI_REF:-v2.2.4}"
transfersh_ref="${KLUIS_PEERS_TRANSFERSH_REF:-v1.6.1}"
scratch="${KLUIS_PEERS_DIR:-${TMPDIR:-/tmp}/kluis-peers}"
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd -P)"
case "$scratch/" in "$repo/"*)
	echo "bench/peers.sh: KLUIS_PEERS_DIR ($scratch) is inside the repository; choose a folder outside it" >&2
	exit 1
	;;
esac
for tool in go curl jq; do
	command -v "$tool" >/dev/null || { echo "bench/peers.sh: $tool is needed" >&2; exit 1; }
done

work="$(mktemp -d "$scratch/run.XXXXXX")"
pids=()
cleanup_steps=()
cleanup() {
	for step in "${cleanup_steps[@]}"; do eval "$step" || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
out="$work/out.txt"
bin="$scratch/bin"
mkdir -p "$bin"

# source NAME REF SRC URL: the source of a peer at REF in $scratch/NAME-REF,
# from SRC (a folder, or a git directory: blobs missing from a partial
# copy are skipped) or a shallow clone of URL.
source_of() {
	local name="$1" ref="$2" src="$3" url="$4" dest="$scratch/$1-$2"
	if [ -f "$dest/.kluis-source" ]; then echo "$dest"; return; fi
	rm -rf "$dest"
	if [ -z "$src" ]; then
		git clone -q --depth 1 --branch "$ref" "$url" "$dest" >&2
	elif git --git-dir="$src" rev-parse -q --verify "$ref^{commit}" >/dev/null 2>&1; then
		mkdir -p "$dest"
		git --git-dir="$src" ls-tree -r "$ref" | while read -r _ type obj path; do
			[ "$type" = blob ] || continue
			mkdir -p "$dest/$(dirname "$path")"
			git --git-dir="$src" cat-file blob "$obj" >"$dest/$path" 2>/dev/null || rm -f "$dest/$path"
		done
	else
		cp -R "$src/." "$dest"
	fi
	echo "$name $ref" >"$dest/.kluis-source"
	echo "$dest"
}

echo "Kluis download comparison: size $KLUIS_BENCH_SIZE, $count round(s), $(nproc) CPU(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Scratch folder: $scratch"
if [ ! -x "$bin/gokapi-$gokapi_ref" ]; then
	src="$(source_of gokapi "$gokapi_ref" "${KLUIS_PEERS_GOKAPI_SRC:-}" https://github.com/Forceu/Gokapi.git)"
	echo "building Gokapi $gokapi_ref (go generate, then go build, as its makefile does)"
	(cd "$src" && go generate ./... >/dev/null && CGO_ENABLED=0 go build -o "$bin/gokapi-$gokapi_ref" ./cmd/gokapi)
fi
if [ ! -x "$bin/transfersh-$transfersh_ref" ]; then
	src="$(source_of transfersh "$transfersh_ref" "${KLUIS_PEERS_TRANSFERSH_SRC:-}" https://github.com/dutchcoders/transfer.sh.git)"
	echo "building transfer.sh $transfersh_ref"
	(cd "$src" && go build -o "$bin/transfersh-$transfersh_ref" .)
fi
go build -trimpath -o "$work/kluis" ./cmd/kluis
go build -trimpath -o "$work/age" filippo.io/age/cmd/age
go test -c -o "$work/bench.test" ./bench

port() { echo $((20000 + RANDOM % 20000)); }
wait_http() { # URL: until it answers at all
	for _ in $(seq 1 100); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "bench/peers.sh: nothing answers at $1" >&2
	return 1
}

file="$work/bench.bin"
head -c "$size" /dev/urandom >"$file"

# Kluis: kluis_start NAME [STORAGE] starts `kluis serve`; kluis_share NAME
# uploads the file to a new transfer without password, finishes it and
# unlocks its link. They set kluis_url, kluis_tid, kluis_fid,
# kluis_session and kluis_secret.
kluis_start() {
	local dir="$work/$1"
	mkdir -p "$dir"
	env KLUIS_DB= KLUIS_SMTP= "$work/kluis" serve --addr 127.0.0.1:0 --data "$dir/data" ${2:+--storage "$2"} \
		--log-level warn --rate-limit 0 --rate-limit-global 0 --max-transfer-size 100GiB >"$dir/out" 2>"$dir/err" &
	pids+=($!)
	for _ in $(seq 1 100); do
		kluis_url="$(sed -n 's/^Kluis is running at \(http:[^ ]*\)\/ .*/\1/p' "$dir/out")"
		[ -n "$kluis_url" ] && return 0
		sleep 0.1
	done
	echo "bench/peers.sh: kluis serve ($1) did not start:" >&2
	cat "$dir/err" >&2
	return 1
}
kluis_share() {
	local dir="$work/$1" key c ut fin link
	key="$("$work/kluis" admin apikey create --sender bench@example.nl --data "$dir/data" 2>/dev/null)"
	c="$(curl -sSf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
		-d '{"sender":{"email":"bench@example.nl"},"to":["r@example.nl"],"password":{"mode":"none"}}' "$kluis_url/api/v1/transfers")"
	kluis_tid="$(jq -r .id <<<"$c")"
	ut="$(jq -r .upload_token <<<"$c")"
	kluis_secret="$(jq -r .link_secret <<<"$c")"
	kluis_fid="$(curl -sSf -T "$file" -H "Authorization: Bearer $ut" -H 'Kluis-File-Name: bench.bin' \
		-H 'Content-Type: application/octet-stream' "$kluis_url/api/v1/transfers/$kluis_tid/files" | jq -r .id)"
	fin="$(curl -sSf -H "Authorization: Bearer $ut" -H 'Content-Type: application/json' \
		-d "{\"link_secret\":\"$kluis_secret\"}" "$kluis_url/api/v1/transfers/$kluis_tid/finish")"
	link="$(jq -r '.links[0].url' <<<"$fin")"
	link="${link%%#*}"
	kluis_session="$(curl -sSf -H 'Content-Type: application/json' -d "{\"secret\":\"$kluis_secret\"}" \
		"$kluis_url/api/v1/links/${link##*/}/unlock" | jq -r .session)"
	# Erase the transfer at the end (on S3 this deletes its objects).
	cleanup_steps+=("curl -sS -o /dev/null -X POST -H 'Authorization: Bearer $key' '$kluis_url/api/v1/transfers/$kluis_tid/revoke'; curl -sS -o /dev/null -X DELETE -H 'Authorization: Bearer $key' '$kluis_url/api/v1/transfers/$kluis_tid'")
}

echo "Kluis (local folder)"
kluis_start local
kluis_share local
export KLUIS_PEERS_KLUIS="$kluis_url" KLUIS_PEERS_KLUIS_SESSION="$kluis_session" KLUIS_PEERS_KLUIS_FILE="$kluis_fid"

# age: the identity of that transfer (exported with its link secret, as
# an operator would) and its stored segments; and the whole file as one
# age file, for the one-process figure.
"$work/kluis" admin export-identity "$kluis_tid" --reason "bench: peers interoperability" --data "$work/local/data" --password-stdin -o "$work/age-identity.txt" <<<"$kluis_secret" 2>/dev/null
export KLUIS_PEERS_AGE="$work/age" KLUIS_PEERS_AGE_IDENTITY="$work/age-identity.txt"
export KLUIS_PEERS_AGE_SEGMENTS="$work/local/data/blobs/t/$kluis_tid/$kluis_fid" KLUIS_PEERS_AGE_FILE="$work/bench.bin.age"
"$work/age" -e -i "$work/age-identity.txt" -o "$KLUIS_PEERS_AGE_FILE" "$file"
segments=$(ls "$KLUIS_PEERS_AGE_SEGMENTS" | wc -l)

echo "Gokapi $gokapi_ref (encryption level 1)"
gk_port=$(port)
mkdir -p "$work/gokapi/config" "$work/gokapi/data"
(cd "$work/gokapi" && GOKAPI_CONFIG_DIR="$work/gokapi/config" GOKAPI_DATA_DIR="$work/gokapi/data" GOKAPI_PORT=$gk_port \
	exec "$bin/gokapi-$gokapi_ref" >"$work/gokapi/log" 2>&1) &
pids+=($!)
gk="http://127.0.0.1:$gk_port"
wait_http "$gk/setup/start"
# The setup form, as its web page posts it: local storage, SQLite, login by
# a proxy header (X-Bench-User: bench), encryption level 1.
jq -n --arg port "$gk_port" --arg db "$work/gokapi/data/gokapi.sqlite" '
	{localhost_sel:"1", ssl_sel:"0", logip_sel:"0", port:$port, public_name:"bench",
	 url:"http://127.0.0.1:\($port)/", url_redirection:"http://127.0.0.1:\($port)/", showfilename_sel:"1",
	 authentication_sel:"2", auth_username:"", auth_pw:"", oauth_provider:"", oauth_id:"", oauth_secret:"",
	 oauth_allowed_groups:"", oauth_admin_user:"", oauth_scope_groups:"", oauth_restrict_groups:"false",
	 oauth_recheck_interval:"12", oauth_only_registered_users:"false", auth_headerkey:"X-Bench-User",
	 auth_header_admin:"bench", auth_header_only_registered_users:"false", storage_sel:"local",
	 storage_sel_image:"nochange", storage_sel_proxy:"proxy", s3_bucket:"", s3_region:"", s3_api:"",
	 s3_secret:"", s3_endpoint:"", encrypt_sel:"1", enc_pw:"", dbtype_sel:"0", sqlite_location:$db,
	 redis_location:"", redis_prefix:"", redis_user:"", redis_password:"", redis_ssl_sel:"0"}
	| to_entries | map({name: .key, value: .value})' >"$work/gokapi/setup.json"
curl -sSf -o /dev/null --data-binary @"$work/gokapi/setup.json" "$gk/setup/setupResult"
gk_token() {
	for _ in $(seq 1 100); do
		# Until the setup server has made way for Gokapi itself, the
		# answer is a maintenance page.
		if t="$(curl -sf -H 'X-Bench-User: bench' -H "permission: $1" "$gk/auth/token")" && k="$(jq -er .key <<<"$t" 2>/dev/null)"; then
			echo "$k"
			return 0
		fi
		sleep 0.1
	done
	echo "bench/peers.sh: Gokapi gives no API token:" >&2
	cat "$work/gokapi/log" >&2
	return 1
}
gk_key="$(gk_token PERM_UPLOAD)"
gk_info="$(curl -sSf -H "apikey: $gk_key" -F "file=@$file" -F allowedDownloads=0 -F expiryDays=0 "$gk/api/files/add")"
[ "$(jq -r .FileInfo.IsEncrypted <<<"$gk_info")" = true ] || { echo "bench/peers.sh: Gokapi did not encrypt the file: $gk_info" >&2; exit 1; }
export KLUIS_PEERS_GOKAPI="$gk" KLUIS_PEERS_GOKAPI_FILE="$(jq -r .FileInfo.Id <<<"$gk_info")"

echo "transfer.sh $transfersh_ref (local provider)"
ts_port=$(port)
mkdir -p "$work/transfersh/data" "$work/transfersh/tmp"
"$bin/transfersh-$transfersh_ref" --provider local --basedir "$work/transfersh/data" --temp-path "$work/transfersh/tmp" \
	--listener "127.0.0.1:$ts_port" >"$work/transfersh/log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$ts_port/"
ts_url="$(curl -sSf -T "$file" "http://127.0.0.1:$ts_port/bench.bin")"
ts_path="${ts_url#http://127.0.0.1:$ts_port/}"
export KLUIS_PEERS_TRANSFERSH="$ts_url" KLUIS_PEERS_TRANSFERSH_ZIP="http://127.0.0.1:$ts_port/($ts_path).zip"

echo "S3"
s3url="${KLUIS_BENCH_S3_URL:-}"
if [ -z "$s3url" ]; then
	start_versitygw "$work/vgw"
	pids+=("$vgw_pid")
	s3url="s3://kluis-bench?endpoint=http://127.0.0.1:$vgw_port&region=us-east-1"
	echo "  versitygw ($vgw_bin) started here, posix back end in $work/vgw"
fi
bucket="${s3url#s3://}"
bucket="${bucket%%[/?]*}"
query="${s3url#*\?}"
endpoint="$(tr '&' '\n' <<<"$query" | sed -n 's/^endpoint=//p')"
region="$(tr '&' '\n' <<<"$query" | sed -n 's/^region=//p')"
region="${region:-us-east-1}"
prefix="peers-$(basename "$work" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')"
s3curl=(--aws-sigv4 "aws:amz:$region:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
if [ "$(curl -s -o /dev/null -w '%{http_code}' -I "${s3curl[@]}" "$endpoint/$bucket")" = 404 ]; then
	curl -sSf -o /dev/null -X PUT "${s3curl[@]}" "$endpoint/$bucket"
fi
curl -sSf -o /dev/null -T "$file" "${s3curl[@]}" "$endpoint/$bucket/$prefix/raw.bin"
cleanup_steps+=("curl -sS -o /dev/null -X DELETE $(printf '%q ' "${s3curl[@]}") '$endpoint/$bucket/$prefix/raw.bin'")
export KLUIS_PEERS_S3_OBJECT="$endpoint/$bucket/$prefix/raw.bin" KLUIS_PEERS_S3_REGION="$region"
export KLUIS_PEERS_S3_USER="$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
storage="s3://$bucket/$prefix/kluis?$query"
kluis_start s3 "$storage"
kluis_share s3
export KLUIS_PEERS_KLUIS_S3="$kluis_url" KLUIS_PEERS_KLUIS_S3_SESSION="$kluis_session" KLUIS_PEERS_KLUIS_S3_FILE="$kluis_fid"

echo "(raw go test -bench output follows; the summary is at the end)"
rounds "bench/peers.sh: the comparison" '^BenchmarkPeers$' skip-fails
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

m() { metric "BenchmarkPeers/$1" MiB/s median; }
c() { metric "BenchmarkPeers/$1" cpu-s/GiB median; }
bc() { metric "BenchmarkPeers/$1" busy-cores median; }
r() { ratio "BenchmarkPeers/$1" "BenchmarkPeers/$2"; }
echo
echo "Summary (MiB/s: median of $count rounds; ratios: median of the per-round ratios; load average at the end $load_end)"
awk -v ts="$(m TransferSh)" -v gk="$(m Gokapi)" -v kl="$(m Kluis)" -v age="$(m AgeDecrypt)" -v age1="$(m AgeDecryptOneProcess)" \
	-v tsz="$(m TransferShZip)" -v gkz="$(m GokapiZip)" -v klz="$(m KluisZip)" \
	-v raw="$(m S3RawGet)" -v kls="$(m KluisS3)" -v klsz="$(m KluisS3Zip)" \
	-v r_gk="$(r Kluis Gokapi)" -v r_ts="$(r Kluis TransferSh)" -v r_age="$(r Kluis AgeDecrypt)" \
	-v rz_gk="$(r KluisZip GokapiZip)" -v rz_ts="$(r KluisZip TransferShZip)" -v rz_age="$(r KluisZip AgeDecrypt)" \
	-v rs="$(r KluisS3 S3RawGet)" -v rsz="$(r KluisS3Zip S3RawGet)" -v rs_age="$(r KluisS3 AgeDecrypt)" \
	-v size="$KLUIS_BENCH_SIZE" -v segs="$segments" -v gkref="$gokapi_ref" -v tsref="$transfersh_ref" \
	-v c_ts="$(c TransferSh)" -v c_gk="$(c Gokapi)" -v c_kl="$(c Kluis)" -v c_raw="$(c S3RawGet)" -v c_kls="$(c KluisS3)" -v c_klsz="$(c KluisS3Zip)" \
	-v b_ts="$(bc TransferSh)" -v b_gk="$(bc Gokapi)" -v b_kl="$(bc Kluis)" -v b_raw="$(bc S3RawGet)" -v b_kls="$(bc KluisS3)" -v b_klsz="$(bc KluisS3Zip)" \
	-v cores="$(nproc)" '
	function verdict(ok) { return ok ? "PASS" : "BELOW TARGET" }
	function row(name, v) { printf "  %-52s %9.0f MiB/s\n", name, v }
	function cpu(name, c, bc) { printf "  %-52s %6.2f cpu-s/GiB  %4.2f cores busy\n", name, c, bc }
	function target(name, v, t) { printf "  %-52s %6.2f  target >= %.2f  %s\n", name, v, t, verdict(v >= t) }
	BEGIN {
		row("transfer.sh " tsref ", plaintext, local (" size ")", ts)
		row("Gokapi " gkref ", encryption level 1", gk)
		row("Kluis, local folder", kl)
		row("age -d of the " segs " stored segments, 2 processes", age)
		row("age -d of the file as one age file, 1 process", age1)
		row("transfer.sh ZIP", tsz)
		row("Gokapi ZIP", gkz)
		row("Kluis ZIP", klz)
		row("raw S3 GET of the plaintext", raw)
		row("Kluis on S3", kls)
		row("Kluis ZIP on S3", klsz)
		print ""
		target("Kluis / Gokapi", r_gk, 1.5)
		target("Kluis / transfer.sh", r_ts, 0.8)
		target("Kluis / age -d over both cores", r_age, 0.8)
		target("Kluis ZIP / Gokapi ZIP", rz_gk, 1.5)
		target("Kluis ZIP / transfer.sh ZIP", rz_ts, 0.8)
		target("Kluis ZIP / age -d over both cores", rz_age, 0.8)
		target("Kluis on S3 / raw S3 GET", rs, 0.8)
		target("Kluis ZIP on S3 / raw S3 GET", rsz, 0.8)
		printf "  %-52s %6.2f\n", "Kluis on S3 / age -d over both cores (diagnostic)", rs_age
		print ""
		print "  Where the cores went (whole machine: server, curl and the S3 server; median)"
		cpu("transfer.sh", c_ts, b_ts)
		cpu("Gokapi", c_gk, b_gk)
		cpu("Kluis, local folder", c_kl, b_kl)
		cpu("raw S3 GET of the plaintext", c_raw, b_raw)
		cpu("Kluis on S3", c_kls, b_kls)
		cpu("Kluis ZIP on S3", c_klsz, b_klsz)
		# With every core busy, a download cannot go faster than the cores
		# divided by its CPU cost per GiB: the most Kluis on S3 could reach
		# here, against the raw GET.
		if (c_kls > 0 && raw > 0)
			printf "  %-52s %6.2f  (%d cores / %.2f cpu-s per GiB = %.0f MiB/s)\n", "ceiling of Kluis on S3 / raw S3 GET", cores * 1024 / c_kls / raw, cores, c_kls, cores * 1024 / c_kls
	}'
exit 0
