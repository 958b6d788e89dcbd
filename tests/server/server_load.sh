#!/usr/bin/env bash
# A bounded load test of llmrt serve (load_clients.py): 64 concurrent
# streaming clients for about 30 s (LLMRT_LOAD_SECONDS), a quarter hanging
# up mid-stream; then no 5xx in the server's own counts and a clean SIGTERM.
# usage: server_load.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$src/tests/server/lib.sh"
engine=$tmp/demo.engine
"$llmrt" build --model "$src/models/demo" --output "$engine" --max-seq-len 1024 --quiet || { echo "FAIL: build"; exit 1; }
start_server main --engine "$engine" --served-model-name demo --no-access-log
python3 "$src/tests/server/load_clients.py" "$URL_main" --clients 64 --seconds "${LLMRT_LOAD_SECONDS:-30}" && ok ||
  bad "load clients"
curl -s "$URL_main/metrics" >"$tmp/metrics.txt"
grep -q '^llmrt:http_requests_total{model_name="demo",status="200"} [1-9]' "$tmp/metrics.txt" && ok || bad "no 200s counted"
grep -E '^llmrt:http_requests_total\{model_name="demo",status="5[0-9][0-9]"\}' "$tmp/metrics.txt" && bad "5xx answered" || ok
grep -q '^llmrt:request_success_total{model_name="demo",finished_reason="cancelled"} [1-9]' "$tmp/metrics.txt" && ok ||
  bad "no cancelled requests counted"
stop_server main
finish
