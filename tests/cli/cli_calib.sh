#!/usr/bin/env bash
# usage: cli_calib.sh LLMRT SOURCE_DIR
# Calibration from the command line: bad options, too little text, progress;
# then (where --quant fp8 / w8a8 exist) static fp8 and SmoothQuant w8a8
# engines of the demo model, and their validation perplexity against its
# bf16 engine: w8a8 within +3%, fp8 with static activation scales within
# +1.5%; and w8a8 of a variant with activation outliers, smoothed within
# +3% and better than unsmoothed. The calibration text is the last 60,000
# bytes of the demo's validation.txt, which the perplexity (its first
# 20,000 tokens) never reads.
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

demo=$src/models/demo
tail -c 60000 "$demo/validation.txt" >"$tmp/calib.txt"
calib=(--calib "$tmp/calib.txt" --calib-samples 16 --calib-len 256)

# bad input is an error naming the option
expect 2 "--smooth-alpha '2'" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" "${calib[@]}" --smooth-alpha 2
expect 2 "--calib-samples '0'" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" --calib "$tmp/calib.txt" --calib-samples 0
expect 2 "--calib-len 'many'" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" --calib "$tmp/calib.txt" --calib-len many
expect 2 "need --calib FILE" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" --calib-samples 4
expect 2 "needs --model DIR" -- "$llmrt" build --config "$demo/config.json" --random-weights --output "$tmp/x.engine" --calib "$tmp/calib.txt"
expect 1 "not a regular file" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" --calib "$tmp"
# too little text says how much there is and how much is needed
expect 1 "need 65536" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" --calib "$tmp/calib.txt" --calib-samples 128 --calib-len 512
expect 1 "the text has" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" --calib "$tmp/calib.txt" --calib-samples 128 --calib-len 512

# calibration runs on the target backend and reports its progress
expect 0 "calibrating: sample 16/16" -- "$llmrt" build --model "$demo" --output "$tmp/plain.engine" "${calib[@]}"

# the 8-bit modes (skipped while this llmrt has no --quant fp8)
if "$llmrt" build --model "$demo" --output "$tmp/probe.engine" --quant fp8 --quiet 2>&1 | grep -qF -- "--quant 'fp8'"; then
  echo "skipped: this llmrt has no --quant fp8 / w8a8"
  cli_finish
  exit $?
fi
expect 1 "--calib" -- "$llmrt" build --model "$demo" --output "$tmp/x.engine" --quant fp8 --act-scales static
expect 0 "without SmoothQuant" -- "$llmrt" build --model "$demo" --output "$tmp/w8a8_plain.engine" --quant w8a8
expect 0 "SmoothQuant (alpha 0.50): 40 LINEARs behind 16 norms" -- \
  "$llmrt" build --model "$demo" --output "$tmp/w8a8.engine" --quant w8a8 "${calib[@]}"
expect 0 "calibrating: sample 16/16" -- \
  "$llmrt" build --model "$demo" --output "$tmp/fp8.engine" --quant fp8 --act-scales static "${calib[@]}"
for e in w8a8 fp8; do
  expect 0 "" -- "$llmrt" run --engine "$tmp/$e.engine" --prompt-ids 5,6,7 --max-tokens 4 --ignore-eos
done

ppl() { "$llmrt" perplexity --engine "$1" --max-tokens 20000 --json 2>/dev/null | sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p'; }
expect 0 "" -- "$llmrt" build --model "$demo" --output "$tmp/bf16.engine" --quiet
p16=$(ppl "$tmp/bf16.engine") pw=$(ppl "$tmp/w8a8.engine") pf=$(ppl "$tmp/fp8.engine")
echo "perplexity: bf16 $p16, w8a8 smoothed $pw, fp8 static $pf"
awk -v a="$pw" -v b="$p16" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * 1.03) }' && ok || bad "w8a8 perplexity $pw vs $p16"
awk -v a="$pf" -v b="$p16" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * 1.015) }' && ok || bad "fp8 static perplexity $pf vs $p16"

# The demo model with activation outliers, the same function: 4 channels
# of every norm's gain times 128, the columns of the LINEARs reading them
# divided by 128 (powers of two, exact in bf16). Per-token int8 loses the
# other channels to the outliers; SmoothQuant gives them back.
outlier=$tmp/outlier
cp -r "$demo" "$outlier"
python3 - "$outlier/model.safetensors" <<'PY'
import json, struct, sys
path = sys.argv[1]
b = bytearray(open(path, "rb").read()); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
def scale(name, index, f):  # a bf16 element times a power of two
    assert h[name]["dtype"] == "BF16"
    at = 8 + n + h[name]["data_offsets"][0] + 2 * index
    x = struct.unpack("<f", struct.pack("<I", struct.unpack_from("<H", b, at)[0] << 16))[0] * f
    struct.pack_into("<H", b, at, struct.unpack("<I", struct.pack("<f", x))[0] >> 16)
for l in range(8):
    for norm, linears in (("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
                          ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"))):
        for c in (3, 77, 150, 201):
            scale(f"model.layers.{l}.{norm}.weight", c, 128.0)
            for lin in linears:
                rows, cols = h[f"model.layers.{l}.{lin}.weight"]["shape"]
                for r in range(rows):
                    scale(f"model.layers.{l}.{lin}.weight", r * cols + c, 1 / 128.0)
open(path, "wb").write(b)
PY
expect 0 "" -- "$llmrt" build --model "$outlier" --output "$tmp/out_plain.engine" --quant w8a8 --quiet
expect 0 "" -- "$llmrt" build --model "$outlier" --output "$tmp/out_smooth.engine" --quant w8a8 "${calib[@]}" --quiet
po=$(ppl "$tmp/out_plain.engine") ps=$(ppl "$tmp/out_smooth.engine")
echo "outlier model perplexity: w8a8 $po, w8a8 smoothed $ps (bf16 $p16)"
awk -v a="$ps" -v b="$p16" 'BEGIN { exit !(a > 0 && b > 0 && a <= b * 1.03) }' && ok || bad "smoothed w8a8 perplexity $ps vs $p16"
awk -v a="$ps" -v b="$po" 'BEGIN { exit !(a > 0 && a < b) }' && ok || bad "smoothing did not help: $ps vs $po"
cli_finish
