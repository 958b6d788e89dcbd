#!/usr/bin/env bash
# llmrt against llama.cpp on the CPU, one SIMD path at a time, in alternating
# rounds: TinyLlama-1.1B shape, fp16, prompt of 128 tokens and 32 decoded, 2
# threads. Each round prints each contender's prompt and decode tokens/s and
# the machine's read bandwidth (decode's floor is the weights' bytes over it).
#
# usage: bench/cpu_isa_side_by_side.sh ROUNDS ENGINE GGUF KERNEL_BENCH PAIR...
#   PAIR: ISA=LLAMA_BENCH, e.g. avx2=/path/llama-avx2/bin/llama-bench
#         (llmrt runs with LLMRT_CPU_ISA=ISA next to that llama.cpp build)
#   ENGINE: llmrt build --config bench/configs/tinyllama-1.1b.json --random-weights --dtype fp16
#   GGUF: the same shape from ../shared/bench/make_gguf_random.py (2048 22 32 4 5632 32000)
#   KERNEL_BENCH: bench/cpu_kernels_bench.c built as its header says
set -euo pipefail
rounds=$1 engine=$2 gguf=$3 kernel_bench=$4
shift 4
llmrt=${LLMRT:-build/llmrt}
for r in $(seq "$rounds"); do
  for pair in "$@"; do
    isa=${pair%%=*} llama=${pair#*=}
    LLMRT_CPU_ISA=$isa "$llmrt" bench --engine "$engine" --input-len 128 --output-len 32 --concurrency 1 \
      --requests 2 --threads 2 --json | tail -1 | python3 -c "
import json, sys
d = json.load(sys.stdin)
print('round $r llmrt $isa: prompt %.1f tokens/s, decode %.2f tokens/s' % (128e3 / d['ttft_ms']['p50'], 1e3 / d['tpot_ms']['p50']))"
    "$llama" -m "$gguf" -t 2 -p 128 -n 32 -r 2 -o csv 2>/dev/null | python3 -c "
import csv, sys
rows = {('prompt' if int(x['n_prompt']) > 0 else 'decode'): float(x['avg_ts']) for x in csv.DictReader(sys.stdin)}
print('round $r llama.cpp $isa: prompt %.1f tokens/s, decode %.2f tokens/s' % (rows['prompt'], rows['decode']))"
  done
  OMP_NUM_THREADS=2 "$kernel_bench" peaks | grep -E "read bandwidth" | sed "s/^/round $r /"
done
