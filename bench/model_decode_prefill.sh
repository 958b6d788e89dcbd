#!/usr/bin/env bash
# Full-model timing through the CLI: builds a random-weight engine from a
# config and runs a prompt of P tokens with D decode tokens, printing
# llmrt's own prompt and decode rates (llmrt run --verbose), median of runs.
#
# usage: bench/model_decode_prefill.sh LLMRT CONFIG BACKEND DTYPE "P1 P2 ..." D [RUNS] [THREADS]
set -euo pipefail
llmrt=$1 config=$2 backend=$3 dtype=$4 prompts=$5 decode=$6 runs=${7:-3} threads=${8:-0}
engine=${ENGINE_DIR:-/tmp}/bench-$(basename "$config" .json)-$backend-$dtype.engine
max_prompt=0
for p in $prompts; do [ "$p" -gt "$max_prompt" ] && max_prompt=$p; done
if [ ! -f "$engine" ]; then
  "$llmrt" build --config "$config" --random-weights --backend "$backend" --dtype "$dtype" \
    --max-seq-len $((max_prompt + decode + 16)) --max-num-tokens "$max_prompt" --max-batch 8 --output "$engine"
fi
thread_args=()
[ "$threads" != 0 ] && thread_args=(--threads "$threads")
for p in $prompts; do
  ids=$(python3 -c "import random; random.seed($p); print(','.join(str(random.randrange(3, 32000)) for _ in range($p)))")
  for r in $(seq "$runs"); do
    "$llmrt" run --engine "$engine" --no-verify --prompt-ids "$ids" --max-tokens "$decode" --ignore-eos --verbose \
      "${thread_args[@]}" 2>&1 >/dev/null | grep -E "^(prompt|decode):" | sed "s/^/P=$p run=$r /"
  done
done
