#!/usr/bin/env bash
# The GPU benchmark in one run: LLaMA-2-7B shape, bf16, random weights.
# llmrt batch-1 latency and batched throughput, then HF transformers (eager,
# bf16) on the same shapes, side by side.
#
# usage: bench/gpu_llama7b.sh LLMRT_BINARY [OUT_DIR]
# HF=0 skips the HF transformers reference; LLMRT_PROFILE=1 makes each llmrt
# bench print its runtime's per-step phase times.
set -uo pipefail
llmrt=$1 out=${2:-/tmp}
config=bench/configs/llama2-7b.json
engine=/tmp/llama2-7b-bf16.engine
if [ ! -f "$engine" ]; then
  "$llmrt" build --config "$config" --random-weights --backend cuda --dtype bf16 \
    --max-seq-len 2304 --max-batch 512 --max-num-tokens 4096 --output "$engine" --quiet || exit 1
fi
b() { "$llmrt" bench --engine "$engine" "$@"; }
echo "== llmrt batch 1"
b --input-len 128 --output-len 128 --concurrency 1 --requests 4 --json | tee "$out/b1_128.json"
b --input-len 2048 --output-len 128 --concurrency 1 --requests 4 --json | tee "$out/b1_2048.json"
echo "== llmrt throughput"
for c in ${CONC_128:-64 256 384}; do
  # 4x as many requests as slots: the steady state, not the ramp up and down
  b --input-len 128 --output-len 128 --concurrency $c --requests $((4 * c)) --json | tee "$out/tp_128_c$c.json"
done
for c in 16 64; do
  b --input-len 2048 --output-len 128 --concurrency $c --requests $((2 * c)) --json | tee "$out/tp_2048_c$c.json"
done
[ "${HF:-1}" = 0 ] && exit 0
echo "== HF transformers eager bf16"
python3 bench/hf_reference.py "$config" --json | tee "$out/hf.json"
