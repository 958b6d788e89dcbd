#!/usr/bin/env bash
# The HTTP server's cost: `llmrt bench --url` against a live `llmrt serve`
# next to the in-process `llmrt bench` on the same engine, rounds
# alternating, at each concurrency; medians of output tokens/s and p50 TTFT
# and their ratios (url / in-process). Round r's prompts come from seed r,
# so the server's prefix cache never holds a measured prompt.
#
# usage: bench/serve_vs_inprocess.sh LLMRT ENGINE [CONCURRENCIES] [ROUNDS]
#   CONCURRENCIES  default "1 16"; ROUNDS default 5
# environment: INPUT_LEN (128), OUTPUT_LEN (128), REQUESTS (4 x concurrency,
# at least 8), SERVE_ARGS (extra `llmrt serve` options, e.g. --threads 2)
set -eu
if [ $# -lt 2 ]; then sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
llmrt=$1 engine=$2 concs=${3:-1 16} rounds=${4:-5}
in=${INPUT_LEN:-128} out=${OUTPUT_LEN:-128}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
"$llmrt" serve --engine "$engine" --port 0 --no-access-log ${SERVE_ARGS:-} >"$tmp/serve.log" 2>&1 &
url=""
for _ in $(seq 1200); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/serve.log" | head -1) && [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start:" >&2; cat "$tmp/serve.log" >&2; exit 1; }

field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['output_tokens_per_s'], d['ttft_ms']['p50'])"; }
for c in $concs; do
  n=$((4 * c)); [ "$n" -ge 8 ] || n=8; n=${REQUESTS:-$n}
  for r in $(seq "$rounds"); do
    "$llmrt" bench --engine "$engine" --input-len "$in" --output-len "$out" --concurrency "$c" --requests "$n" --seed "$r" \
      --json 2>/dev/null | field >>"$tmp/local_$c"
    "$llmrt" bench --url "$url" --input-len "$in" --output-len "$out" --concurrency "$c" --requests "$n" --seed "$r" \
      --json 2>/dev/null | field >>"$tmp/url_$c"
  done
done
python3 - "$tmp" "$concs" <<'PY'
import statistics as st, sys
tmp, concs = sys.argv[1], sys.argv[2].split()
print("%-5s %14s %14s %7s %12s %12s %9s" % ("conc", "in-proc tok/s", "url tok/s", "ratio", "in-proc TTFT", "url TTFT", "TTFT +ms"))
for c in concs:
    rows = {k: [tuple(map(float, l.split())) for l in open(f"{tmp}/{k}_{c}")] for k in ("local", "url")}
    tl, tu = st.median(r[0] for r in rows["local"]), st.median(r[0] for r in rows["url"])
    fl, fu = st.median(r[1] for r in rows["local"]), st.median(r[1] for r in rows["url"])
    print("%-5s %14.1f %14.1f %7.3f %12.2f %12.2f %9.2f" % (c, tl, tu, tu / tl, fl, fu, fu - fl))
PY
