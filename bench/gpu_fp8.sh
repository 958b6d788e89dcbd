#!/usr/bin/env bash
# Quantized modes against bf16 on one GPU, side by side in one run: a
# LLaMA-shaped model (CONFIG, default LLaMA-2-7B) with random weights, built
# in each of MODES — bf16, fp8 (--quant fp8), fp8kv (--quant fp8 --kv-cache
# fp8), int8wo, int4wo (--quant int8-wo / int4-wo) — then batch-1 decode and
# 128 / 128 throughput for each. The batch-1 floor is the bytes one token
# reads (the linears' weights at their bytes a weight, the LM head at 2, one
# embedding row) over BW_GBS, the measured copy bandwidth (pass it from
# bench_cuda_kernels' "copy D2D" line; default 3350, the H100 SXM figure).
#
# usage: bench/gpu_fp8.sh LLMRT_BINARY [OUT_DIR]
#   CONFIG=bench/configs/llama2-7b.json CONC="384" MODES="bf16 fp8 fp8kv"
#   BUILD_ONLY=1 builds the engines (in /tmp) and stops
set -uo pipefail
llmrt=$1 out=${2:-/tmp}
config=${CONFIG:-bench/configs/llama2-7b.json}
name=$(basename "$config" .json)
modes=${MODES:-bf16 fp8 fp8kv}
conc=${CONC:-384}
for mode in $modes; do
  engine=/tmp/$name-$mode.engine
  case $mode in
    bf16) extra=() ;;
    fp8) extra=(--quant fp8) ;;
    fp8kv) extra=(--quant fp8 --kv-cache fp8) ;;
    int8wo) extra=(--quant int8-wo) ;;
    int4wo) extra=(--quant int4-wo) ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  [ -f "$engine" ] || "$llmrt" build --config "$config" --random-weights --backend cuda --dtype bf16 \
    --max-seq-len 2304 --max-batch 512 --max-num-tokens 4096 "${extra[@]}" --output "$engine" --quiet || exit 1
done
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0
for mode in $modes; do
  engine=/tmp/$name-$mode.engine
  echo "== $mode"
  "$llmrt" bench --engine "$engine" --input-len 128 --output-len 128 --concurrency 1 --requests 4 --json \
    | tee "$out/${mode}_b1.json"
  for c in $conc; do
    "$llmrt" bench --engine "$engine" --input-len 128 --output-len 128 --concurrency "$c" --requests $((4 * c)) \
      --json | tee "$out/${mode}_tp_c$c.json"
  done
done
python3 - "$config" "${BW_GBS:-3350}" "$out" "$conc" $modes <<'PY'
import json, os, sys
cfg, bw, out, conc, modes = json.load(open(sys.argv[1])), float(sys.argv[2]) * 1e9, sys.argv[3], sys.argv[4].split(), sys.argv[5:]
h, i, l, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * (h // cfg["num_attention_heads"])
linear = l * (2 * h * h + 2 * h * kv + 3 * h * i)
def load(path):
    try: return json.load(open(path))
    except Exception: return None
print(f"\n{'mode':8} {'floor ms':>9} {'TPOT p50':>9} {'/floor':>7}" + "".join(f" {'tok/s c' + c:>12}" for c in conc))
base = {}
for m in modes:
    # int4-wo g128: half a byte a weight plus an f16 scale and a u8 zero a group
    per = {"int8wo": 1.0, "int4wo": 0.5 + 3 / 128}.get(m, 1.0 if m.startswith("fp8") else 2.0)
    wbytes = linear * per + 2 * v * h + 2 * h
    floor = wbytes / bw * 1e3
    b1 = load(f"{out}/{m}_b1.json")
    tpot = b1["tpot_ms"]["p50"] if b1 else float("nan")
    row = f"{m:8} {floor:9.3f} {tpot:9.3f} {tpot / floor:7.2f}"
    for c in conc:
        tp = load(f"{out}/{m}_tp_c{c}.json")
        r = tp["output_tokens_per_s"] if tp else float("nan")
        base.setdefault(c, r)
        row += f" {r:8.0f} ({r / base[c]:.2f}x)"
    print(row)
PY
