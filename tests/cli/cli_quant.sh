#!/usr/bin/env bash
# usage: cli_quant.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

demo=$src/models/demo
case_dir=$src/tests/golden/cases/llama_f32
small=(--max-seq-len 64 --max-batch 4 --max-num-tokens 64 --quiet)

# bad input is an error naming the option
expect 2 "--quant 'int5'" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant int5
expect 2 "--group-size 48" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant int4-wo --group-size 48
expect 2 "--quant-scheme 'half'" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant int8-wo --quant-scheme half
expect 2 "need --quant" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --group-size 64

# every mode builds and runs; inspect names the storage
for q in "int8-wo" "int8-wo --quant-scheme asym --group-size 32" "int4-wo" "int4-wo --quant-scheme sym --group-size 32"; do
  name=$(tr ' ' '_' <<<"$q")
  expect 0 "" -- "$llmrt" build --model "$case_dir" --output "$tmp/$name.engine" --quant $q "${small[@]}"
  expect 0 "${q%% *}" -- "$llmrt" inspect "$tmp/$name.engine"
  expect 0 "" -- "$llmrt" run --engine "$tmp/$name.engine" --prompt-ids 5,6,7 --max-tokens 4 --ignore-eos
done

# GPT-2's Conv1D weights ([in, out] in the checkpoint) quantize too, and
# the engine loads and runs
gpt2=$src/tests/golden/cases/gpt2_f32
for q in int8-wo int4-wo; do
  expect 0 "" -- "$llmrt" build --model "$gpt2" --output "$tmp/gpt2_$q.engine" --quant $q --group-size 32 "${small[@]}"
  expect 0 "" -- "$llmrt" run --engine "$tmp/gpt2_$q.engine" --prompt-ids 5,6,7 --max-tokens 4 --ignore-eos
done

# refit a quantized engine from the checkpoint: the same bytes as a fresh build
"$llmrt" build --config "$case_dir/config.json" --random-weights --output "$tmp/r.engine" --quant int4-wo --group-size 32 "${small[@]}"
expect 0 "" -- "$llmrt" refit --engine "$tmp/r.engine" --model "$case_dir" --output "$tmp/refit.engine" --quiet
"$llmrt" build --model "$case_dir" --output "$tmp/fresh.engine" --quant int4-wo --group-size 32 "${small[@]}"
a=$("$llmrt" run --engine "$tmp/refit.engine" --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos --json 2>&1)
b=$("$llmrt" run --engine "$tmp/fresh.engine" --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos --json 2>&1)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "refit int4-wo engine: $a, a fresh build: $b"

# perplexity per mode against the 16-bit engine, on the first 20000 tokens
ppl() { "$llmrt" perplexity --engine "$1" --max-tokens 20000 --json 2>/dev/null | sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p'; }
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo16.engine" --quiet
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo8.engine" --quant int8-wo --quiet
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo4.engine" --quant int4-wo --group-size 128 --quiet
p16=$(ppl "$tmp/demo16.engine") p8=$(ppl "$tmp/demo8.engine") p4=$(ppl "$tmp/demo4.engine")
echo "perplexity: bf16 $p16, int8-wo $p8, int4-wo g128 $p4"
awk -v a="$p8" -v b="$p16" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * 1.005) }' && ok || bad "int8-wo perplexity $p8 vs $p16"
awk -v a="$p4" -v b="$p16" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * 1.06) }' && ok || bad "int4-wo perplexity $p4 vs $p16"
cli_finish
