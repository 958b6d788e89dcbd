#!/usr/bin/env bash
# usage: cli_kv_cache8.sh LLMRT SOURCE_DIR
# The 8-bit KV cache from the command line: --kv-cache's bad input, inspect
# and serve naming the storage, every mode running, the KV capacity a byte
# budget buys, and the demo model's validation perplexity per mode against
# the default (f32) cache: fp8 within +1%, int8 within +2%.
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

demo=$src/models/demo
case_dir=$src/tests/golden/cases/llama_f32
small=(--max-seq-len 64 --max-batch 4 --max-num-tokens 64 --quiet)

# bad input is an error naming the option
expect 2 "--kv-cache 'fp16'" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --kv-cache fp16
expect 2 "--kv-cache" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --kv-cache

# every mode builds and runs; inspect names the storage
expect 0 "" -- "$llmrt" build --model "$case_dir" --output "$tmp/auto.engine" --kv-cache auto "${small[@]}"
expect 0 "kv cache      f32 (the activation dtype)" -- "$llmrt" inspect "$tmp/auto.engine"
for m in fp8:fp8_e4m3 int8:i8; do
  mode=${m%%:*} dtype=${m##*:}
  expect 0 "" -- "$llmrt" build --model "$case_dir" --output "$tmp/$mode.engine" --kv-cache "$mode" "${small[@]}"
  expect 0 "kv cache      $dtype: 1-byte codes" -- "$llmrt" inspect "$tmp/$mode.engine"
  expect 0 "" -- "$llmrt" run --engine "$tmp/$mode.engine" --prompt-ids 5,6,7 --max-tokens 4 --ignore-eos
done

# the blocks `llmrt serve` fits in a 4 MiB budget, from its start-up line
kv_blocks() {
  local log=$tmp/serve.log
  "$llmrt" serve --engine "$1" --port 0 --threads 1 --kv-cache-memory 4194304 >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do
    grep -q 'KV cache:' "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  sed -n "s/.*KV cache: \([0-9]*\) blocks of 16 tokens.*; $2)\$/\1/p" "$log" | head -1
}

# perplexity per mode against the default cache, on the first 20000 tokens
ppl() { "$llmrt" perplexity --engine "$1" --max-tokens 20000 --json 2>/dev/null | sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p'; }
for m in auto fp8 int8; do
  expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo_$m.engine" --kv-cache "$m" --quiet
done

# the demo model's head_dim 32: an f32 row of 128 bytes becomes 32 codes
# and a 4-byte scale, 128/36 = 3.56 times as many blocks for the same bytes
# (against a 16-bit cache on the GPU: 1.78 times; 1.94 at head_dim 128)
b32=$(kv_blocks "$tmp/demo_auto.engine" f32) b8=$(kv_blocks "$tmp/demo_fp8.engine" fp8_e4m3)
echo "KV blocks in 4 MiB: f32 $b32, fp8 $b8"
awk -v a="$b8" -v b="$b32" 'BEGIN { exit !(a > 0 && b > 0 && a >= 3.5 * b && a <= 3.6 * b) }' && ok ||
  bad "KV blocks in 4 MiB: fp8 $b8 vs f32 $b32 (want 128/36 times as many)"

p32=$(ppl "$tmp/demo_auto.engine") p8=$(ppl "$tmp/demo_fp8.engine") pi=$(ppl "$tmp/demo_int8.engine")
echo "perplexity: f32 cache $p32, fp8 $p8, int8 $pi"
awk -v a="$p8" -v b="$p32" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * 1.01) }' && ok || bad "fp8 KV perplexity $p8 vs $p32"
awk -v a="$pi" -v b="$p32" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * 1.02) }' && ok || bad "int8 KV perplexity $pi vs $p32"
cli_finish
