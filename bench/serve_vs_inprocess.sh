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
# SERVE_ARGS (extra `llmrt serve` options), BASELINE (another llmrt binary,
# e.g. an older build: its server and client run in the same rounds, after
# LLMRT's, and get rows of their own)
set -eu
if [ $# -lt 2 ]; then sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
llmrt=$1 engine=$2 concs=${3:-1 16} rounds=${4:-5}
in=${INPUT_LEN:-128} out=${OUTPUT_LEN:-128}
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

# serve KIND BINARY: starts a server; sets pid_KIND and url_KIND
serve() {
  # shellcheck disable=SC2086
  "$2" serve --engine "$engine" --port 0 --no-access-log "${threads[@]}" ${SERVE_ARGS:-} >"$tmp/serve_$1.log" 2>&1 &
  eval "pid_$1=$!"
  local u=""
  for _ in $(seq 1200); do
    u=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/serve_$1.log" | head -1) && [ -n "$u" ] && break
    sleep 0.1
  done
  [ -n "$u" ] || { echo "the server did not start:" >&2; cat "$tmp/serve_$1.log" >&2; exit 1; }
  eval "url_$1=$u"
}
kinds=url
serve url "$llmrt"
if [ -n "${BASELINE:-}" ]; then kinds="url baseline"; serve baseline "$BASELINE"; fi

ticks=$(getconf CLK_TCK)
server_cpu() { awk -v t="$ticks" '{printf "%.3f\n", ($14 + $15) / t}' "/proc/$1/stat"; }
# an older build reports no cpu_s: 0
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['output_tokens_per_s'], d['ttft_ms']['p50'], d['output_tokens'], d.get('cpu_s', 0), *sys.argv[1:])" "$@"; }
for c in $concs; do
  n=$((4 * c)); [ "$n" -ge 8 ] || n=8; n=${REQUESTS:-$n}
  for r in $(seq "$rounds"); do
    cut -d' ' -f1 /proc/loadavg >>"$tmp/load_$c"
    "$llmrt" bench --engine "$engine" --input-len "$in" --output-len "$out" --concurrency "$c" --requests "$n" --seed "$r" \
      "${threads[@]}" --json 2>/dev/null | field >>"$tmp/local_$c"
    for k in $kinds; do
      bin=$llmrt; [ "$k" = baseline ] && bin=$BASELINE
      pid=$(eval echo "\$pid_$k") url=$(eval echo "\$url_$k")
      before=$(server_cpu "$pid")
      json=$("$bin" bench --url "$url" --input-len "$in" --output-len "$out" --concurrency "$c" --requests "$n" \
        --seed "$r" --json 2>/dev/null)
      # the server's CPU covers the client's warm-up requests too (c of them)
      echo "$json" | field "$before" "$(server_cpu "$pid")" $((c * out)) >>"$tmp/${k}_$c"
    done
  done
done
python3 - "$tmp" "$concs" "$kinds" <<'PY'
import statistics as st, sys
tmp, concs, kinds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print("%-5s %-8s %13s %10s %7s %12s %9s %9s | CPU us/token: %8s %7s %7s | %s" % (
    "conc", "server", "in-proc tok/s", "url tok/s", "ratio", "in-proc TTFT", "url TTFT", "TTFT +ms",
    "in-proc", "server", "client", "load"))
for c in concs:
    rows = {k: [tuple(map(float, l.split())) for l in open(f"{tmp}/{k}_{c}")] for k in ["local"] + kinds}
    load = [float(l) for l in open(f"{tmp}/load_{c}")]
    med = lambda k, f: st.median(f(r) for r in rows[k])
    tl, fl = med("local", lambda r: r[0]), med("local", lambda r: r[1])
    cpu_local = med("local", lambda r: r[3] * 1e6 / r[2])
    for k in kinds:
        tu, fu = med(k, lambda r: r[0]), med(k, lambda r: r[1])
        cpu_client = med(k, lambda r: r[3] * 1e6 / r[2])
        cpu_server = med(k, lambda r: (r[5] - r[4]) * 1e6 / (r[2] + r[6]))
        print("%-5s %-8s %13.1f %10.1f %7.3f %12.2f %9.2f %9.2f | %22.0f %7.0f %7s | %.1f-%.1f" % (
            c, "LLMRT" if k == "url" else "BASELINE", tl, tu, tu / tl, fl, fu, fu - fl, cpu_local, cpu_server,
            "%.0f" % cpu_client if cpu_client else "-", min(load), max(load)))
        print("               per round url/in-process:", " ".join("%.2f" % (u[0] / l[0]) for u, l in zip(rows[k], rows["local"])))
PY
