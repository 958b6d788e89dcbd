#!/usr/bin/env bash
# Every model family on one GPU at its 1B-class shape (bench/configs/families,
# plus TinyLlama and the 8-layer Mixtral shape), random bf16 weights: batch-1
# decode against its floor and 128 / 128 throughput at concurrency CONC.
# The floor is the bytes a decode step reads — every weight but an untied
# embedding table (one row of it is read) — over BW_GBS, the measured copy
# bandwidth (bench_cuda_kernels' or bench_cuda_q8's "copy D2D" line).
#
# usage: bench/gpu_families.sh LLMRT_BINARY OUT_DIR [FAMILY...]
#   (FAMILY: a file name in bench/configs/families without .json, or
#   tinyllama-1.1b / mixtral-8x7bmlp-8l; default all)   BW_GBS=3350 CONC=64
set -uo pipefail
llmrt=$1 out=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(tinyllama-1.1b mixtral-8x7bmlp-8l)
  for f in "$here"/configs/families/*.json; do names+=("$(basename "$f" .json)"); done
fi
conc=${CONC:-64}
for n in "${names[@]}"; do
  cfg=$here/configs/families/$n.json
  [ -f "$cfg" ] || cfg=$here/configs/$n.json
  engine=/tmp/family-$n.engine
  "$llmrt" build --config "$cfg" --random-weights --backend cuda --dtype bf16 --max-seq-len 1024 \
    --output "$engine" --quiet || { echo "$n: build failed" >&2; continue; }
  "$llmrt" inspect "$engine" | sed -n 's/^weights *\([0-9.]*\) MiB.*/\1/p' > "$out/$n.mib"
  "$llmrt" bench --engine "$engine" --input-len 128 --output-len 128 --concurrency 1 --requests 3 --json \
    | tail -1 > "$out/${n}_b1.json"
  "$llmrt" bench --engine "$engine" --input-len 128 --output-len 128 --concurrency "$conc" \
    --requests $((2 * conc)) --json | tail -1 > "$out/${n}_c$conc.json"
  rm -f "$engine"
done
python3 - "$here" "$out" "${BW_GBS:-3350}" "$conc" "${names[@]}" <<'PY'
import json, os, sys
here, out, bw, conc, names = sys.argv[1], sys.argv[2], float(sys.argv[3]) * 1e9, sys.argv[4], sys.argv[5:]
def load(p):
    try: return json.load(open(p))
    except Exception: return None
print(f"{'family':22} {'arch':26} {'GB':>6} {'floor ms':>8} {'TPOT ms':>8} {'/floor':>6} {'tok/s c' + conc:>11}")
for n in names:
    p = f"{here}/configs/families/{n}.json"
    cfg = json.load(open(p if os.path.exists(p) else f"{here}/configs/{n}.json"))
    hidden = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
    hidden = cfg.get("word_embed_proj_dim", hidden)
    mib = open(f"{out}/{n}.mib").read().strip() if os.path.exists(f"{out}/{n}.mib") else ""
    if not mib: print(f"{n:22} (no engine)"); continue
    nbytes = float(mib) * 2**20
    if not cfg.get("tie_word_embeddings", False):
        nbytes -= 2 * cfg["vocab_size"] * hidden
    floor = nbytes / bw * 1e3
    b1, tp = load(f"{out}/{n}_b1.json"), load(f"{out}/{n}_c{conc}.json")
    tpot = b1["tpot_ms"]["p50"] if b1 else float("nan")
    rate = tp["output_tokens_per_s"] if tp else float("nan")
    print(f"{n:22} {cfg['architectures'][0]:26} {float(mib) / 1024 * 1.073741824:6.2f} {floor:8.3f} {tpot:8.3f} "
          f"{tpot / floor:6.2f} {rate:11.0f}")
PY
