#!/usr/bin/env bash
# llmrt int8-wo / int4-wo against llama.cpp Q8_0 / Q4_0 (and both in 16
# bits) on the TinyLlama-1.1B shape with random weights, 2 threads, rounds
# interleaved so that a busy neighbour slows every candidate alike.
# LLAMA_BENCH: a CPU llama-bench (-DGGML_NATIVE=ON); F16_GGUF: the same
# shape in F16 (../shared/bench/make_gguf_random.py). The Q8_0 / Q4_0 files
# come from it through bench/gguf_requant.c, LM head and embeddings kept F16
# as in llmrt's engines.
# usage: bench/cpu_quant_side_by_side.sh LLMRT LLAMA_BENCH F16_GGUF [ROUNDS] [WORK_DIR]
set -euo pipefail
llmrt=$1 llama_bench=$2 f16_gguf=$3 rounds=${4:-3} work=${5:-/tmp/cpu-quant-sbs}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
config=$here/configs/tinyllama-1.1b.json
for q in fp16 int8-wo int4-wo; do
  e=$work/tl-$q.engine
  args=(--dtype fp16)
  [ "$q" != fp16 ] && args+=(--quant "$q")
  [ -s "$e" ] || "$llmrt" build --config "$config" --random-weights "${args[@]}" --max-seq-len 512 --output "$e" --quiet
done
requant=$work/gguf_requant
[ -x "$requant" ] || gcc -O2 -std=c11 -I"$here/../include" -I"$here/../src" "$here/gguf_requant.c" \
  "$here/../src/core/dtype.c" -lm -o "$requant"
for t in q8_0 q4_0; do [ -s "$work/tl-$t.gguf" ] || "$requant" "$f16_gguf" "$work/tl-$t.gguf" $t; done
for r in $(seq "$rounds"); do
  for q in fp16 int8-wo int4-wo; do
    "$llmrt" bench --engine "$work/tl-$q.engine" --input-len 128 --output-len 32 --concurrency 1 --requests 2 \
      --threads 2 --json | tail -1 | python3 -c "import json, sys; d = json.load(sys.stdin)
print('round $r llmrt $q: prompt %.1f tokens/s, decode %.2f tokens/s' % (128000 / d['ttft_ms']['p50'], 1000 / d['tpot_ms']['p50']))"
  done
  for g in "$f16_gguf" "$work/tl-q8_0.gguf" "$work/tl-q4_0.gguf"; do
    "$llama_bench" -m "$g" -t 2 -p 128 -n 32 -r 2 -o csv 2>/dev/null | python3 -c "import csv, sys
rows = list(csv.DictReader(sys.stdin))
print('round $r llama.cpp $(basename "$g"): ' + ', '.join(('prompt' if int(x['n_prompt']) > 0 else 'decode') + ' %.2f tokens/s' % float(x['avg_ts']) for x in rows))"
  done
  cat /proc/loadavg
done
