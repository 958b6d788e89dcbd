#!/usr/bin/env bash
# usage: cli_compressed_tensors.sh LLMRT SOURCE_DIR
# compressed-tensors FP8 checkpoints as they ship, written by
# make_compressed_tensors.py from two golden families (llama, qwen2):
#  - "FP8-dynamic" (per-channel weight scales, activations per token): the
#    engine equals `--quant fp8` built from the dequantized twin (the same
#    codes and scales): identical greedy tokens, logits within 1e-4;
#  - both that and "FP8" (per-tensor weight scales, static input_scale)
#    give the logits fp8_forward.py computes from the checkpoint's tensors
#    with the fp8 math of core/quant8.h, within 1e-3 (relative L2; fp8
#    against f32 differs by 10-17% on these decisive test models, static
#    against per-token scales by 15%, so each scheme is told apart);
#  - both are stored 8-bit (engine file well under the f32 engine's); an
#    LM head stored fp8 is bound 16-bit (codes x scales);
#  - quantization_config or tensors llmrt does not read: an error naming the
#    field or tensor.
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

py=
for p in python3 /usr/bin/python3; do "$p" -c "import numpy" 2>/dev/null && { py=$p; break; }; done
[ -n "$py" ] || { echo "SKIP: no python3 with numpy to write the checkpoints"; exit 77; }
small=(--max-seq-len 64 --max-batch 4 --max-num-tokens 64 --quiet)

cases=(llama_f32 qwen2_f32)
for c in "${cases[@]}"; do
  for scheme in static dynamic; do
    "$py" "$src/tests/cli/make_compressed_tensors.py" "$src/tests/golden/cases/$c" "$tmp/$c.$scheme" \
      "$tmp/$c.$scheme.ref" $scheme && ok || bad "writing the $scheme checkpoint of $c"
  done
done

# ct_config NAME PYTHON: a copy of the llama FP8-dynamic checkpoint whose
# quantization_config `q` PYTHON edits; prints the folder
ct_config() {
  local d=$tmp/$1; rm -rf "$d"; cp -r "$tmp/llama_f32.dynamic" "$d"
  "$py" - "$d/config.json" <<PY
import json, sys
p = sys.argv[1]; c = json.load(open(p)); q = c["quantization_config"]; w = q["config_groups"]["group_0"]["weights"]
$2
json.dump(c, open(p, "w"))
PY
  echo "$d"
}
build_fails() { # NEEDLE DIR
  expect 1 "$1" -- "$llmrt" build --model "$2" --output "$tmp/bad.engine" "${small[@]}"
}
build_fails "quantization field 'config_groups.group_0.weights.num_bits' is 4" "$(ct_config bits 'w["num_bits"] = 4')"
build_fails "quantization field 'config_groups.group_0.weights.type' is \"int\"" "$(ct_config int 'w["type"] = "int"')"
build_fails "quantization field 'quant_method' is \"fp8-magic\"" "$(ct_config method 'q["quant_method"] = "fp8-magic"')"
build_fails "quantization field 'config_groups.group_0.weights.group_size' is 128" \
  "$(ct_config group 'w["group_size"] = 128')"
build_fails "quantization field 'kv_cache_scheme' is set" \
  "$(ct_config kv 'q["kv_cache_scheme"] = {"num_bits": 8, "type": "float", "strategy": "tensor"}')"
expect 1 "--quant int8-wo cannot change them" -- "$llmrt" build --model "$tmp/llama_f32.dynamic" --output "$tmp/bad.engine" \
  --quant int8-wo "${small[@]}"

# The rest builds fp8 engines: it needs fp8 LINEARs in this build
# (`--quant fp8` and its CPU kernel).
if ! "$llmrt" build --model "$tmp/llama_f32.dynamic.ref" --output "$tmp/probe.engine" --quant fp8 "${small[@]}" \
     >/dev/null 2>&1; then
  echo "SKIP: this llmrt does not build --quant fp8 engines; checked the config errors only"
  cli_finish || exit 1
  exit 77
fi

# the tensors: a layer without its weight_scale names it
d=$tmp/no_scale; rm -rf "$d"; cp -r "$tmp/llama_f32.dynamic" "$d"
"$py" - "$d/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
del h["model.layers.1.self_attn.o_proj.weight_scale"]  # its 4·64 bytes stay, unreferenced
t = json.dumps(h).encode(); t += b" " * (-len(t) % 8)
open(p, "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])
PY
build_fails "'model.layers.1.self_attn.o_proj.weight' has no weight_scale tensor" "$d"

prompt=5,6,7,8,9,10,11
logits() { "$llmrt" run --engine "$1" --prompt-ids $prompt --max-tokens 1 --dump-logits "$2" >/dev/null 2>&1; }
rel_l2() { # A.npy B.npy → ‖a − b‖ / ‖b‖
  "$py" -c "import numpy as n, sys; a = n.load(sys.argv[1]).astype(n.float64); b = n.load(sys.argv[2]).astype(n.float64); print(n.linalg.norm(a - b) / n.linalg.norm(b) if a.shape == b.shape else 1e9)" "$1" "$2"
}
tokens() { "$llmrt" run --engine "$1" --prompt-ids 1,2,3,4 --max-tokens 16 --ignore-eos --json 2>&1; }
for c in "${cases[@]}"; do
  # FP8-dynamic: the same engine as --quant fp8 of the dequantized weights
  ct=$tmp/$c.dynamic.engine ref=$tmp/$c.dynamic.ref.engine
  expect 0 "" -- "$llmrt" build --model "$tmp/$c.dynamic" --output "$ct" "${small[@]}"
  expect 0 "" -- "$llmrt" build --model "$tmp/$c.dynamic.ref" --output "$ref" --quant fp8 "${small[@]}"
  expect 0 "" -- "$llmrt" build --model "$tmp/$c.dynamic.ref" --output "$tmp/$c.f32.engine" "${small[@]}"
  expect 0 "fp8" -- "$llmrt" inspect "$ct"
  a=$(tokens "$ct") b=$(tokens "$ref")
  [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "$c FP8-dynamic greedy tokens: $a, --quant fp8 of the dequantized: $b"
  logits "$ct" "$tmp/ct.npy" && logits "$ref" "$tmp/ref.npy" || bad "$c: --dump-logits"
  e=$(rel_l2 "$tmp/ct.npy" "$tmp/ref.npy")
  echo "$c FP8-dynamic: logits vs --quant fp8 of the dequantized weights: relative L2 $e"
  awk -v e="$e" 'BEGIN { exit !(e <= 1e-4) }' && ok || bad "$c FP8-dynamic logits differ by $e"
  # stored 8-bit: well under the f32 engine of the same weights
  s8=$(stat -c %s "$ct") s32=$(stat -c %s "$tmp/$c.f32.engine")
  [ "$s8" -lt $((s32 * 6 / 10)) ] && ok || bad "$c: fp8 engine $s8 bytes, f32 engine $s32"

  # both schemes: the fp8 math on the checkpoint's own tensors
  for scheme in dynamic static; do
    ct=$tmp/$c.$scheme.engine
    [ "$scheme" = static ] && expect 0 "" -- "$llmrt" build --model "$tmp/$c.static" --output "$ct" "${small[@]}"
    "$py" "$src/tests/cli/fp8_forward.py" "$tmp/$c.$scheme" "$prompt" "$tmp/want.npy" || bad "$c: fp8_forward.py"
    logits "$ct" "$tmp/ct.npy" || bad "$c $scheme: --dump-logits"
    e=$(rel_l2 "$tmp/ct.npy" "$tmp/want.npy")
    echo "$c $scheme: logits vs fp8_forward.py: relative L2 $e"
    awk -v e="$e" 'BEGIN { exit !(e <= 1e-3) }' && ok || bad "$c $scheme logits differ from the fp8 math by $e"
  done
done

# an LM head stored fp8 (not in `ignore`) stays 16-bit in llmrt: its codes
# x scales, as in --quant fp8 of the dequantized twin
"$py" "$src/tests/cli/make_compressed_tensors.py" "$src/tests/golden/cases/llama_f32" "$tmp/head" "$tmp/head.ref" \
  dynamic-head && ok || bad "writing the dynamic-head checkpoint"
expect 0 "" -- "$llmrt" build --model "$tmp/head" --output "$tmp/head.engine" "${small[@]}"
expect 0 "" -- "$llmrt" build --model "$tmp/head.ref" --output "$tmp/head.ref.engine" --quant fp8 "${small[@]}"
logits "$tmp/head.engine" "$tmp/ct.npy" && logits "$tmp/head.ref.engine" "$tmp/ref.npy" || bad "head: --dump-logits"
e=$(rel_l2 "$tmp/ct.npy" "$tmp/ref.npy")
awk -v e="$e" 'BEGIN { exit !(e <= 1e-4) }' && ok || bad "fp8 LM head: logits differ by $e"
cli_finish
