#!/usr/bin/env bash
# Kernel timeline of batch-1 decode on the GPU machine (no nsys there):
# llmrt bench under the CUPTI tracer (bench/cuda/cupti_trace.c), then
# bench/cuda/trace_summary.py per context length.
#
# usage: bench/cuda/trace_decode.sh LLMRT_BINARY TRACER_SO ENGINE OUT_DIR [INPUT_LENS...]
set -uo pipefail
llmrt=$1 tracer=$2 engine=$3 out=$4
shift 4
for len in "${@:-128 2048}"; do
  CUDA_INJECTION64_PATH=$(readlink -f "$tracer") LLMRT_TRACE_OUT="$out/trace_$len.csv" \
    "$llmrt" bench --engine "$engine" --input-len "$len" --output-len 64 --concurrency 1 --requests 2 --json \
    > "$out/trace_bench_$len.json" || exit 1
  echo "== decode after $len tokens (traced)"
  python3 "$(dirname "$0")/trace_summary.py" "$out/trace_$len.csv" --skip 8
done
