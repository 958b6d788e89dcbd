#!/usr/bin/env bash
# usage: cli_quant8.sh LLMRT SOURCE_DIR
# 8-bit weights and activations from the command line: --quant fp8|w8a8
# and their options, bad input, every mode builds, inspects and runs,
# a corrupted 8-bit weight is a clear load error, refit requantizes, and
# the demo model's validation perplexity against its 16-bit engine
# (fp8 within +1.5%, w8a8 within +3%).
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

demo=$src/models/demo
case_dir=$src/tests/golden/cases/llama_f32
small=(--max-seq-len 64 --max-batch 4 --max-num-tokens 64 --quiet)

# bad input is an error naming the option
expect 2 "--quant 'fp4'" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant fp4
expect 2 "--weight-scales 'row'" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant fp8 --weight-scales row
expect 2 "--act-scales 'token'" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant fp8 --act-scales token
expect 2 "--group-size" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant fp8 --group-size 64
expect 2 "--quant-scheme" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant w8a8 --quant-scheme asym
expect 2 "need --quant fp8" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant w8a8 --weight-scales tensor
expect 2 "need --quant fp8" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --act-scales dynamic
expect 1 "--calib" -- "$llmrt" build --model "$case_dir" --output "$tmp/x.engine" --quant fp8 --act-scales static "${small[@]}"

# every mode builds and runs; inspect names each layer's precision and the bytes by kind
for q in "fp8" "fp8 --weight-scales tensor" "fp8 --act-scales dynamic" "w8a8"; do
  name=$(tr ' ' '_' <<<"$q")
  label=${q%% *}
  [ "$q" = "fp8 --weight-scales tensor" ] && label=fp8/tensor
  expect 0 "" -- "$llmrt" build --model "$case_dir" --output "$tmp/$name.engine" --quant $q "${small[@]}"
  expect 0 "layers 0-1     $label: self_attn.q_proj" -- "$llmrt" inspect "$tmp/$name.engine"
  expect 0 "lm_head f32" -- "$llmrt" inspect "$tmp/$name.engine"
  expect 0 " codes " -- "$llmrt" inspect "$tmp/$name.engine"
  expect 0 "" -- "$llmrt" run --engine "$tmp/$name.engine" --prompt-ids 5,6,7 --max-tokens 4 --ignore-eos
done
# GPT-2's Conv1D weights quantize too
gpt2=$src/tests/golden/cases/gpt2_f32
expect 0 "" -- "$llmrt" build --model "$gpt2" --output "$tmp/gpt2.engine" --quant w8a8 "${small[@]}"
expect 0 "" -- "$llmrt" run --engine "$tmp/gpt2.engine" --prompt-ids 5,6,7 --max-tokens 4 --ignore-eos

# a corrupted 8-bit weight (header or a scale) is an error naming it, not a crash
corrupt() { # corrupt ENGINE OUT WHAT: the first 8-bit blob's magic or first scale
  python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
at = b.find(b"LWQ8")
assert at > 0, "no 8-bit weight in the engine"
if sys.argv[3] == "magic":
    b[at] ^= 1
else:
    scales = struct.unpack_from("<I", b, at + 28)[0]
    struct.pack_into("<f", b, at + scales, -1.0)
open(sys.argv[2], "wb").write(b)
PY
}
corrupt "$tmp/fp8.engine" "$tmp/bad_scale.engine" scale
expect 1 "row 0's scale -1 is not finite and positive" -- "$llmrt" run --engine "$tmp/bad_scale.engine" --no-verify --prompt-ids 5,6 --max-tokens 2
corrupt "$tmp/w8a8.engine" "$tmp/bad_magic.engine" magic
expect 1 "its header does not describe a w8a8" -- "$llmrt" run --engine "$tmp/bad_magic.engine" --no-verify --prompt-ids 5,6 --max-tokens 2

# refit requantizes: the same tokens as a fresh build
"$llmrt" build --config "$case_dir/config.json" --random-weights --output "$tmp/r.engine" --quant fp8 "${small[@]}"
expect 0 "" -- "$llmrt" refit --engine "$tmp/r.engine" --model "$case_dir" --output "$tmp/refit.engine" --quiet
a=$("$llmrt" run --engine "$tmp/refit.engine" --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos --json 2>&1)
b=$("$llmrt" run --engine "$tmp/fp8.engine" --prompt-ids 1,2,3,4 --max-tokens 8 --ignore-eos --json 2>&1)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "refit fp8 engine: $a, a fresh build: $b"

# perplexity per mode against the 16-bit engine, on the first 20000 tokens
ppl() { "$llmrt" perplexity --engine "$1" --max-tokens 20000 --json 2>/dev/null | sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p'; }
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo16.engine" --quiet
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo_fp8.engine" --quant fp8 --quiet
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo_fp8t.engine" --quant fp8 --weight-scales tensor --quiet
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/demo_w8a8.engine" --quant w8a8 --quiet
p16=$(ppl "$tmp/demo16.engine") pf=$(ppl "$tmp/demo_fp8.engine") pt=$(ppl "$tmp/demo_fp8t.engine") pw=$(ppl "$tmp/demo_w8a8.engine")
echo "perplexity: bf16 $p16, fp8 $pf, fp8 per-tensor $pt, w8a8 $pw"
within() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * f) }'; }
within "$pf" "$p16" 1.015 && ok || bad "fp8 perplexity $pf vs bf16 $p16 (bound +1.5%)"
within "$pt" "$p16" 1.015 && ok || bad "fp8 per-tensor perplexity $pt vs bf16 $p16 (bound +1.5%)"
within "$pw" "$p16" 1.03 && ok || bad "w8a8 perplexity $pw vs bf16 $p16 (bound +3%)"
cli_finish
