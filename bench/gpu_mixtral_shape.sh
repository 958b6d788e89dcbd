#!/usr/bin/env bash
# Mixture-of-experts decode on one GPU: a Mixtral-shaped model that fits
# (8 experts of LLaMA-2-7B's MLP, 4096 → 11008, top-2; 8 layers; Mixtral's
# attention, 32 heads over 8 KV heads), bf16, random weights. Prints the
# batch-1 decode floor first: the bytes one token must read — the two
# active experts of every layer, attention, router and LM head — over the
# GPU's memory bandwidth (BW_GBS, default 3350: H100 SXM; 4800 for H200).
#
# usage: bench/gpu_mixtral_shape.sh LLMRT_BINARY [OUT_DIR]
# HF=0 skips the HF transformers reference (bench/hf_reference.py).
set -uo pipefail
llmrt=$1 out=${2:-/tmp}
config=bench/configs/mixtral-8x7bmlp-8l.json
engine=/tmp/mixtral-8x7bmlp-8l-bf16.engine
python3 - "$config" "${BW_GBS:-3350}" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); bw = float(sys.argv[2]) * 1e9
h, i, l, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
hd = h // c["num_attention_heads"]; kv = c["num_key_value_heads"] * hd
k, e = c["num_experts_per_tok"], c["num_local_experts"]
per_layer = k * 3 * h * i + (2 * h * h + 2 * h * kv) + e * h
active = 2 * (l * per_layer + v * h)  # bf16 bytes; the embedding reads one row
print(f"floor: {active / 1e9:.2f} GB a token at {bw / 1e9:.0f} GB/s = {active / bw * 1e3:.3f} ms "
      f"({bw / active:.0f} tokens/s); all experts: {2 * l * e * 3 * h * i / 1e9:.1f} GB")
PY
if [ ! -f "$engine" ]; then
  "$llmrt" build --config "$config" --random-weights --backend cuda --dtype bf16 \
    --max-seq-len 2304 --max-batch 256 --max-num-tokens 4096 --output "$engine" --quiet || exit 1
fi
b() { "$llmrt" bench --engine "$engine" "$@"; }
echo "== batch 1 decode"
b --input-len 128 --output-len 128 --concurrency 1 --requests 4 --json | tee "$out/moe_b1_128.json"
echo "== 128/128 throughput"
for c in ${CONC_128:-16 64 256}; do
  b --input-len 128 --output-len 128 --concurrency $c --requests $((4 * c)) --json | tee "$out/moe_tp_128_c$c.json"
done
[ "${HF:-1}" = 0 ] && exit 0
echo "== HF transformers eager bf16"
python3 bench/hf_reference.py "$config" --json | tee "$out/moe_hf.json"
