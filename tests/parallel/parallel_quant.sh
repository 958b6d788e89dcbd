#!/usr/bin/env bash
# Quantized tensor-parallel engines under mpirun: a --tp 2 engine of a
# quantized golden model holds TP=1's codes and scales cut on the shard
# boundaries, so it gives the one-rank quantized engine's greedy tokens and
# prompt logits within 1e-5 relative per row (the all-reduce sums partial
# products in another order; fp32 activations). Also: the LM head stays
# unquantized behind a vocab-parallel gather and pipeline sends, and the
# splits that cannot equal TP=1 are build errors naming the weight.
# With WRITE_CHECKPOINT (test_quant_checkpoint), AWQ and GPTQ checkpoints
# it writes are built with --tp 2 the same way.
# usage: parallel_quant.sh LLMRT NPY_CLOSE CASES_DIR [WRITE_CHECKPOINT]
set -u
llmrt=$1 npy_close=$2 cases=$3 write_checkpoint=${4:-}
here=$(dirname "$0")
source "$here/parallel_lib.sh"
prompt=1,15,27,3,99,4,7,7,7,42,17

# compare NAME SPLIT_FLAGS RANKS BUILD_ARGS...: TP=1 against the split engine
compare() {
    local name=$1 flags=$2 ranks=$3
    shift 3
    "$llmrt" build "$@" --output "$tmp/$name.one.engine" --quiet || { echo "FAIL: build $name"; fail=1; return; }
    "$llmrt" build "$@" $flags --output "$tmp/$name.split.engine" --quiet ||
        { echo "FAIL: build $flags $name"; fail=1; return; }
    local one two
    one=$("$llmrt" run --engine "$tmp/$name.one.engine" --prompt-ids $prompt --max-tokens 16 \
          --dump-logits "$tmp/$name.one.npy" 2>&1 | tail -1)
    "$here/run_mpi.sh" "$ranks" "$llmrt" run --engine "$tmp/$name.split.engine" --prompt-ids $prompt \
        --max-tokens 16 --dump-logits "$tmp/$name.split.npy" >"$tmp/$name.log" 2>&1
    two=$(tail -1 "$tmp/$name.log")
    echo "$name TP=1: $one"
    echo "$name $flags: $two"
    [ "$one" = "$two" ] || grep -v '^-*$' "$tmp/$name.log" | tail -15
    check test -n "$one"
    check test "$one" = "$two"
    check "$npy_close" "$tmp/$name.one.npy" "$tmp/$name.split.npy" 1e-5
}

# llama_f32 (hidden 64, intermediate 96): per-channel scales (int4-wo's
# default group of 128 exceeds every K), so each row-parallel shard keeps
# the full row's scale. The CPU's integer kernels quantize x in blocks of
# 32 and down_proj's shard has 48 inputs, so both sides run the exact
# kernel (f32 x against the dequantized codes): the same weights, the
# same math.
export LLMRT_CPU_QUANT_ACTIVATIONS=0
compare llama_int8 "--tp 2" 2 --model "$cases/llama_f32" --quant int8-wo
compare llama_int4 "--tp 2" 2 --model "$cases/llama_f32" --quant int4-wo
compare llama_int4_asym_pp "--tp 2 --pp 2" 4 --model "$cases/llama_f32" --quant int4-wo --quant-scheme asym
compare llama_int8_pp "--pp 2" 2 --model "$cases/llama_f32" --quant int8-wo
compare mixtral_int8 "--tp 2" 2 --model "$cases/mixtral_f32" --quant int8-wo
# prequantized: llama_f32's linears packed 4-bit in groups of 16, which
# divide every rank's inputs (32 of o_proj's 64, 48 of down_proj's 96)
if [ -n "$write_checkpoint" ]; then
    for method in awq gptq; do
        mkdir -p "$tmp/$method"
        "$write_checkpoint" --write "$tmp/$method" 16 $method >/dev/null ||
            { echo "FAIL: writing the $method checkpoint"; fail=1; continue; }
        compare ${method}_g16 "--tp 2" 2 --model "$tmp/$method"
        check grep -q "int4-wo" <<<"$("$llmrt" inspect "$tmp/${method}_g16.split.engine.rank1")"
    done
fi
unset LLMRT_CPU_QUANT_ACTIVATIONS

# groups on the shard boundaries, on the integer kernels (every K a
# multiple of 32, so x's blocks of 32 are TP=1's too): llama_f32's
# architecture with intermediate 128, random weights
sed 's/"intermediate_size": 96/"intermediate_size": 128/' "$cases/llama_f32/config.json" >"$tmp/wide.json"
check grep -q '"intermediate_size": 128' "$tmp/wide.json"
compare wide_int4_g32 "--tp 2" 2 --config "$tmp/wide.json" --random-weights --quant int4-wo --group-size 32
compare wide_int8_g64 "--tp 2" 2 --config "$tmp/wide.json" --random-weights --quant int8-wo --group-size 64 \
    --quant-scheme asym

# the rank's engine holds quantized shards (int4: under half the f32 bytes)
check grep -q "int4-wo" <<<"$("$llmrt" inspect "$tmp/wide_int4_g32.split.engine.rank1")"

# a group that does not divide a rank's inputs names the weight, the group and the ranks
msg=$("$llmrt" build --model "$cases/llama_f32" --quant int4-wo --group-size 32 --tp 2 \
      --output "$tmp/bad.engine" --quiet 2>&1)
echo "$msg"
check grep -q "'model.layers.0.mlp.down_proj.weight': tensor parallelism over 2 ranks gives each rank 48 of its 96 inputs, not a multiple of the quantization group size 32" <<<"$msg"
check test ! -e "$tmp/bad.engine"

# per-token activation scales of a row-parallel shard would differ from one rank's
for q in fp8 w8a8; do
    msg=$("$llmrt" build --model "$cases/llama_f32" --quant $q --tp 2 --output "$tmp/bad.engine" --quiet 2>&1)
    echo "$msg"
    check grep -q "'model.layers.0.self_attn.o_proj.weight': $q with per-token activation scales cannot split its 64 inputs over 2 tensor-parallel ranks" <<<"$msg"
done
exit $fail
