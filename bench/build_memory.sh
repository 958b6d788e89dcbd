#!/usr/bin/env bash
# Peak host memory of `llmrt build` from a checkpoint, against the engine's
# size: writes a random bf16 safetensors checkpoint of CONFIG's shape
# (default LLaMA-2-7B; numpy only) into DIR, builds it with /usr/bin/time -v
# and prints peak RSS, engine bytes and their ratio last.
#
# usage: bench/build_memory.sh LLMRT_BINARY DIR [BUILD_ARGS...]
#   CONFIG=bench/configs/llama2-7b.json; DIR needs ~2.1x the engine's size free
set -euo pipefail
llmrt=$1 dir=$2
shift 2
config=${CONFIG:-bench/configs/llama2-7b.json}
mkdir -p "$dir"
py=
for p in python3 /usr/bin/python3; do "$p" -c "import numpy" 2>/dev/null && { py=$p; break; }; done
[ -n "$py" ] || { echo "$0: needs a python3 with numpy" >&2; exit 2; }
if [ ! -f "$dir/model.safetensors" ]; then
  "$py" - "$config" "$dir" <<'PY'
import json, struct, sys
import numpy as np
cfg = json.load(open(sys.argv[1])); out = sys.argv[2]
h, i, l, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
heads = cfg["num_attention_heads"]; kv = cfg.get("num_key_value_heads", heads) * (h // heads)
shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
for n in range(l):
    p = f"model.layers.{n}."
    shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                   p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                   p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                   p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                   p + "mlp.down_proj.weight": (h, i)})
header, offset = {}, 0
for name, shape in shapes.items():
    nbytes = 2 * int(np.prod(shape))
    header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
    offset += nbytes
blob = json.dumps(header).encode()
blob += b" " * (-len(blob) % 8)
rng = np.random.default_rng(0)
with open(f"{out}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob)
    for name, shape in shapes.items():
        if len(shape) == 1:
            w = np.ones(shape, np.float32)
        else:
            w = rng.standard_normal(shape, dtype=np.float32) * 0.02
        f.write((w.view(np.uint32) >> 16).astype(np.uint16).tobytes())
json.dump(dict(cfg, torch_dtype="bfloat16"), open(f"{out}/config.json", "w"), indent=1)
print(f"wrote {offset / 1e9:.2f} GB of bf16 weights to {out}")
PY
fi
engine=$dir/model.engine
/usr/bin/time -v "$llmrt" build --model "$dir" --output "$engine" --quiet "$@" 2> "$dir/time.log"
peak_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time.log")
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time.log")
bytes=$(stat -c %s "$engine")
python3 -c "import sys; p, b = int(sys.argv[1]) * 1024, int(sys.argv[2]); print(f'peak RSS {p / 2**30:.2f} GiB, engine {b / 2**30:.2f} GiB, ratio {p / b:.3f}, wall {sys.argv[3]}')" \
  "$peak_kb" "$bytes" "$wall"
