#!/usr/bin/env bash
# A/B of two llmrt binaries on one engine, rounds alternating in one run:
# batch-1 decode ms/token (p50) per context length, then output tokens/s
# at concurrency 384 (128 in / 128 out), twice each, alternating.
#
# usage: bench/cuda/ab_bin.sh BASE_BINARY NEW_BINARY ENGINE [ROUNDS] [INPUT_LENS]
set -uo pipefail
base=$1 new=$2 engine=$3 rounds=${4:-3} lens=${5:-128 2048}
declare -A bin=([base]=$base [new]=$new)
bash "$(dirname "$0")/ab_env.sh" - "$engine" - "LLMRT=$base LLMRT=$new" "$rounds" "$lens"
for r in 1 2; do
  for b in base new; do
    t=$("${bin[$b]}" bench --engine "$engine" --input-len 128 --output-len 128 --concurrency 384 --requests 1536 \
          --json | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["output_tokens_per_s"])')
    echo "$b 128/128 c=384 output tokens/s: $t"
  done
done
