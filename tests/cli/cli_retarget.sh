#!/usr/bin/env bash
# One engine file on either backend (--backend at load). Engines built for
# cuda (which needs no GPU) run with --backend cpu and give the greedy
# tokens and prompt logits, byte for byte, of the same checkpoint built for
# cpu: fp32, bf16, int4-wo, fp8, an fp8 KV cache, mixture of experts. Then
# inspect, the load log, limits, and the errors for a bad --backend.
# With BACKEND cuda (a GPU test: 77 without one), engines built for cpu run
# with --backend cuda and give a cuda-built engine's greedy tokens.
# usage: cli_retarget.sh LLMRT SOURCE_DIR [BACKEND]
set -u
llmrt=$1 src=$2 backend=${3:-cpu}
source "$(dirname "$0")/cli_lib.sh"

cases=$src/tests/golden/cases
small=(--max-seq-len 64 --max-batch 4 --max-num-tokens 64 --quiet)
prompt=1,15,27,3,99,4,7,7,7,42,17
other=cuda
[ "$backend" = cuda ] && other=cpu

# run ENGINE NAME [options]: greedy tokens as JSON into $tmp/NAME.json, the
# prompt's logits into $tmp/NAME.npy
run() {
  local engine=$1 name=$2; shift 2
  "$llmrt" run --engine "$engine" --prompt-ids $prompt --max-tokens 12 --ignore-eos --json \
    --dump-logits "$tmp/$name.npy" "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"
}

if [ "$backend" = cuda ]; then
  "$llmrt" build --model "$cases/llama_f32" --output "$tmp/probe.engine" "${small[@]}"
  run "$tmp/probe.engine" probe --backend cuda
  if grep -q "no CUDA device\|built without the CUDA backend" "$tmp/probe.err"; then
    [ "${LLMRT_REQUIRE_GPU:-0}" = 1 ] && { echo "FAIL: LLMRT_REQUIRE_GPU=1: $(cat "$tmp/probe.err")"; exit 1; }
    echo "$(tail -1 "$tmp/probe.err"): skipped"
    exit 77
  fi
fi

# same CASE NAME [build options]: built for $other and run on $backend, and
# built for $backend: the same tokens; on the CPU the same logits too
same() {
  local case=$1 name=$2; shift 2
  "$llmrt" build --model "$cases/$case" --backend "$other" --output "$tmp/$name.$other.engine" "${small[@]}" "$@" \
    || { bad "build --backend $other $name"; return; }
  "$llmrt" build --model "$cases/$case" --backend "$backend" --output "$tmp/$name.$backend.engine" "${small[@]}" "$@" \
    || { bad "build --backend $backend $name"; return; }
  run "$tmp/$name.$other.engine" "$name.retargeted" --backend "$backend" || { bad "$name: $(cat "$tmp/$name.retargeted.err")"; return; }
  run "$tmp/$name.$backend.engine" "$name.native" || { bad "$name: $(cat "$tmp/$name.native.err")"; return; }
  local a b
  a=$(grep -o '"output_ids":\[[0-9,]*\]' "$tmp/$name.retargeted.json") b=$(grep -o '"output_ids":\[[0-9,]*\]' "$tmp/$name.native.json")
  [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "$name built for $other on $backend: $a; built for $backend: $b"
  if [ "$backend" = cpu ]; then
    cmp -s "$tmp/$name.retargeted.npy" "$tmp/$name.native.npy" && ok || bad "$name: logits differ from the $backend build"
  fi
}

same llama_f32 llama_f32
same qwen2_bf16 qwen2_bf16
same llama_bf16 llama_int4 --quant int4-wo --group-size 32
same llama_bf16 llama_fp8 --quant fp8
same qwen2_bf16 qwen2_kv_fp8 --kv-cache fp8
same mixtral_bf16 mixtral_bf16
echo "retargeted to $backend: $(grep -o '"output_ids":\[[0-9,]*\]' "$tmp/qwen2_bf16.retargeted.json")"
[ "$backend" = cuda ] && { cli_finish; exit; }

engine=$tmp/qwen2_bf16.cuda.engine
# inspect names what it was built for and where it runs, and shows it as
# the other backend runs it
expect 0 "built for cuda; runs on cpu, cuda" -- "$llmrt" inspect "$engine"
expect 0 "activations bf16" -- "$llmrt" inspect "$engine"
expect 0 "activations f32" -- "$llmrt" inspect "$engine" --backend cpu
expect 0 "shown as on cpu" -- "$llmrt" inspect "$engine" --backend cpu
expect 0 "built for cpu; runs on cpu, cuda" -- "$llmrt" inspect "$tmp/qwen2_bf16.cpu.engine"

# the load log says it retargets; the limits stay the build's (a cuda
# build's defaults, 256 and 2048, where none were given)
expect 0 "built for cuda, retargeted to cpu: activations bf16 -> f32" -- \
  "$llmrt" run --engine "$engine" --backend cpu --prompt-ids 1,2 --max-tokens 2 --verbose
"$llmrt" build --model "$cases/qwen2_bf16" --backend cuda --output "$tmp/defaults.engine" --quiet
expect 0 "max_batch 256, max_num_tokens 2048 (the build's)" -- \
  "$llmrt" run --engine "$tmp/defaults.engine" --backend cpu --prompt-ids 1,2 --max-tokens 2 --verbose
expect 0 "max_batch 256, max_num_tokens 2048" -- "$llmrt" inspect "$tmp/defaults.engine" --backend cpu
expect 0 "max_batch 8, max_num_tokens 96 (given at load)" -- \
  "$llmrt" run --engine "$tmp/defaults.engine" --backend cpu --max-batch 8 --max-num-tokens 96 --prompt-ids 1,2 \
  --max-tokens 2 --verbose
# the engine file is not changed by running it elsewhere
before=$(md5sum <"$engine")
"$llmrt" run --engine "$engine" --backend cpu --prompt-ids 1,2 --max-tokens 2 >/dev/null 2>&1
[ "$(md5sum <"$engine")" = "$before" ] && ok || bad "running with --backend cpu changed $engine"

# tensor-parallel ranks retarget too (MPI builds with mpirun)
if command -v mpirun >/dev/null 2>&1 &&
   "$llmrt" build --model "$cases/qwen2_f32" --backend cuda --dtype bf16 --tp 2 --output "$tmp/tp.engine" \
     "${small[@]}" 2>/dev/null; then
  run_mpi=$src/tests/parallel/run_mpi.sh
  # Open MPI's own start-up allocations (PMIx) are never freed: under the
  # sanitizers the ranks check everything but leaks
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
  "$llmrt" build --model "$cases/qwen2_f32" --backend cuda --dtype bf16 --output "$tmp/tp1.engine" "${small[@]}"
  a=$("$run_mpi" 2 "$llmrt" run --engine "$tmp/tp.engine" --backend cpu --prompt-ids $prompt --max-tokens 8 \
      --ignore-eos 2>&1 | tail -1)
  b=$("$llmrt" run --engine "$tmp/tp1.engine" --backend cpu --prompt-ids $prompt --max-tokens 8 --ignore-eos 2>&1)
  [ -n "$b" ] && [ "$a" = "$b" ] && ok || bad "--tp 2 built for cuda on cpu: $a; one rank: $b"
  # every rank must run on one backend: a rank given another fails, naming both
  out=$(timeout 60 mpirun --allow-run-as-root --oversubscribe --mca btl self,vader \
        -np 1 "$llmrt" run --engine "$tmp/tp.engine" --backend cpu --prompt-ids 1,2 --max-tokens 2 : \
        -np 1 "$llmrt" run --engine "$tmp/tp.engine" --backend cuda --prompt-ids 1,2 --max-tokens 2 2>&1)
  grep -qF "rank 1 would run on cuda but rank 0 runs on cpu" <<<"$out" && ok || bad "ranks on two backends: $out"
fi

# a bad --backend is an error naming it, before any engine is opened
for cmd in run bench serve perplexity embed; do
  expect 2 "--backend 'tpu': expected cpu or cuda" -- "$llmrt" $cmd --engine "$engine" --backend tpu
  expect 2 "--backend needs a value" -- "$llmrt" $cmd --engine "$engine" --backend
done
expect 2 "--backend 'tpu': expected cpu or cuda" -- "$llmrt" inspect "$engine" --backend tpu
expect 2 "usage: llmrt inspect" -- "$llmrt" inspect "$engine" --backend
expect 2 "--backend is for --engine" -- "$llmrt" bench --url http://127.0.0.1:9 --backend cpu
expect 2 "--backend 'CPU': expected cpu or cuda" -- "$llmrt" run --engine "$engine" --backend CPU --prompt-ids 1
# the library refuses one too (the Python API's path)
expect 1 "unknown backend 'tpu' (cpu, cuda)" -- "$llmrt" build --model "$cases/llama_f32" --backend tpu \
  --output "$tmp/x.engine"
cli_finish
