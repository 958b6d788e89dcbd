#!/usr/bin/env bash
# Block timeline of the decode GEMVs and attention (kernel_probe.cuh) at batch 1: llmrt bench
# from a diagnostic build (cmake -DLLMRT_CUDA_PROBE=ON) with
# LLMRT_CUDA_PROBE_OUT, then bench/cuda/probe_summary.py.
#
# usage: bench/cuda/probe_decode.sh PROBE_LLMRT_BINARY ENGINE OUT_DIR [INPUT_LEN]
set -uo pipefail
llmrt=$1 engine=$2 out=$3 len=${4:-200}
mkdir -p "$out"
LLMRT_CUDA_PROBE_OUT="$out/probe_$len.csv" "$llmrt" bench --engine "$engine" --input-len "$len" --output-len 32 \
  --concurrency 1 --requests 1 --json > "$out/probe_bench_$len.json" || exit 1
echo "== GEMV blocks, decode after $len tokens"
python3 "$(dirname "$0")/probe_summary.py" "$out/probe_$len.csv"
