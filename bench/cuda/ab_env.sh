#!/usr/bin/env bash
# A/B of one environment switch on batch-1 decode, rounds alternating in one
# run (machines differ by a few percent; compare within a run only):
# decode ms/token (p50 of llmrt bench's time per output token) per value.
#
# usage: bench/cuda/ab_env.sh LLMRT_BINARY ENGINE VAR "VALUES" [ROUNDS] [INPUT_LENS]
#   e.g. bench/cuda/ab_env.sh build-gpu/llmrt E LLMRT_CUDA_FUSE_ROPE "0 1" 3 "128 2048"
set -uo pipefail
llmrt=$1 engine=$2 var=$3 values=$4 rounds=${5:-3} lens=${6:-128 2048}
for len in $lens; do
  for v in $values; do printf '%s=%s ctx %s:' "$var" "$v" "$len" > "/tmp/ab_${len}_$v"; done
  for r in $(seq "$rounds"); do
    for v in $values; do
      t=$(env "$var=$v" "$llmrt" bench --engine "$engine" --input-len "$len" --output-len 128 --concurrency 1 \
            --requests 4 --json | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["tpot_ms"]["p50"])')
      printf ' %s' "$t" >> "/tmp/ab_${len}_$v"
    done
  done
  for v in $values; do cat "/tmp/ab_${len}_$v"; echo; done
done
