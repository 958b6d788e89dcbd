#!/usr/bin/env bash
# The HTTP server's cost: `llmrt bench --url` against a live `llmrt serve`
# next to the in-process `llmrt bench` on the same engine, rounds
# alternating, at each concurrency; medians of output tokens/s and p50 TTFT
# and their ratios (url / in-process), and the CPU each side used per output
# token: the in-process run's, the server's and the client's own (bench
# --url's load generator, on the same machine). Round r's prompts come from
# seed r, so the server's prefix cache never holds a measured prompt. Both
# sides run with the same engine, threads, sampling (greedy, EOS ignored)
# and lengths; the load average before each round tells how busy the
# machine was.
#
# usage: bench/serve_vs_inprocess.sh LLMRT ENGINE [CONCURRENCIES] [ROUNDS]
#   CONCURRENCIES  default "1 16"; ROUNDS default 5
# environment: INPUT_LEN (128), OUTPUT_LEN (128), REQUESTS (4 x concurrency,
# at least 8), THREADS (--threads of both sides; default all cores),
# SERVE_ARGS (extra `llmrt serve` options)
set -eu
if [ $# -lt 2 ]; then sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
llmrt=$1 engine=$2 concs=${3:-1 16} rounds=${4:-5}
in=${INPUT_LEN:-128} out=${OUTPUT_LEN:-128}
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
"$llmrt" serve --engine "$engine" --port 0 --no-access-log "${threads[@]}" ${SERVE_ARGS:-} >"$tmp/serve.log" 2>&1 &
server=$!
url=""
for _ in $(seq 1200); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/serve.log" | head -1) && [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start:" >&2; cat "$tmp/serve.log" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
server_cpu() { awk -v t="$ticks" '{printf "%.3f\n", ($14 + $15) / t}' "/proc/$server/stat"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['output_tokens_per_s'], d['ttft_ms']['p50'], d['output_tokens'], d['cpu_s'], *sys.argv[1:])" "$@"; }
for c in $concs; do
  n=$((4 * c)); [ "$n" -ge 8 ] || n=8; n=${REQUESTS:-$n}
  for r in $(seq "$rounds"); do
    cut -d' ' -f1 /proc/loadavg >>"$tmp/load_$c"
    "$llmrt" bench --engine "$engine" --input-len "$in" --output-len "$out" --concurrency "$c" --requests "$n" --seed "$r" \
      "${threads[@]}" --json 2>/dev/null | field >>"$tmp/local_$c"
    before=$(server_cpu)
    json=$("$llmrt" bench --url "$url" --input-len "$in" --output-len "$out" --concurrency "$c" --requests "$n" \
      --seed "$r" --json 2>/dev/null)
    # the server's CPU covers the client's warm-up requests too (c of them)
    echo "$json" | field "$before" "$(server_cpu)" $((c * out)) >>"$tmp/url_$c"
  done
done
python3 - "$tmp" "$concs" <<'PY'
import statistics as st, sys
tmp, concs = sys.argv[1], sys.argv[2].split()
print("%-5s %13s %10s %7s %12s %9s %9s | CPU us/token: %8s %7s %7s | %s" % (
    "conc", "in-proc tok/s", "url tok/s", "ratio", "in-proc TTFT", "url TTFT", "TTFT +ms",
    "in-proc", "server", "client", "load"))
for c in concs:
    rows = {k: [tuple(map(float, l.split())) for l in open(f"{tmp}/{k}_{c}")] for k in ("local", "url")}
    load = [float(l) for l in open(f"{tmp}/load_{c}")]
    med = lambda k, f: st.median(f(r) for r in rows[k])
    tl, tu = med("local", lambda r: r[0]), med("url", lambda r: r[0])
    fl, fu = med("local", lambda r: r[1]), med("url", lambda r: r[1])
    cpu_local = med("local", lambda r: r[3] * 1e6 / r[2])
    cpu_client = med("url", lambda r: r[3] * 1e6 / r[2])
    cpu_server = med("url", lambda r: (r[5] - r[4]) * 1e6 / (r[2] + r[6]))
    print("%-5s %13.1f %10.1f %7.3f %12.2f %9.2f %9.2f | %22.0f %7.0f %7.0f | %.1f-%.1f" % (
        c, tl, tu, tu / tl, fl, fu, fu - fl, cpu_local, cpu_server, cpu_client, min(load), max(load)))
    print("      per round url/in-process:", " ".join("%.2f" % (u[0] / l[0]) for u, l in zip(rows["url"], rows["local"])))
PY
