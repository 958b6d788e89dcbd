#!/usr/bin/env bash
# ONNX import against onnxruntime: tiny decoders built with onnx.helper
# (make_graphs.py: LLaMA without and with past key/values, GPT-2 style at
# opset 13 and 17, and a decoder of the remaining supported ops) are run by onnxruntime-node (ort_reference.mjs) and by
# llmrt engines built with `build --onnx`; the prompt's logits must agree
# within 1e-4 relative and the greedy tokens exactly, with the fusions on and
# off, prompts prefilled in chunks and several requests batched in flight;
# a bf16 engine built for cuda, run on the cpu, matches the cpu build.
# The build's report must show every attention recognised. When the exports
# of tests/onnx/export_llama.py are in tests/onnx/data/, the same checks run
# on them, and their engines must match the native build of the checkpoint
# they came from (same kernels per step, same greedy tokens).
# onnxruntime-node is installed with npm into this test's folder in the build
# tree (once); without python3-onnx, node or npm the test is skipped (77).
# The LLaMA graph is also built with the weights of the golden case llama_f32
# and checked against transformers' logits and the native engine.
# usage: onnx_import.sh LLMRT SOURCE_DIR ORT_DIR
set -u
llmrt=$1 src=$2 ort_dir=$3
ort_version=1.31.1
. "$src/tests/onnx/lib.sh"
py=$(onnx_python) || { echo "SKIP: python3-onnx is not installed (scripts/install-deps.sh installs it)"; exit 77; }
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node and npm are not installed (scripts/install-deps.sh installs them)"; exit 77
fi
if [ ! -f "$ort_dir/node_modules/onnxruntime-node/package.json" ] ||
   ! grep -q "\"version\": \"$ort_version\"" "$ort_dir/node_modules/onnxruntime-node/package.json"; then
  mkdir -p "$ort_dir"
  # the CPU build ships in the package; its install script would fetch CUDA's
  ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install --no-audit --no-fund --silent --prefer-offline \
    --prefix "$ort_dir" "onnxruntime-node@$ort_version" ||
    { echo "FAIL: npm could not install onnxruntime-node@$ort_version"; exit 1; }
fi
cp "$src/tests/onnx/ort_reference.mjs" "$ort_dir/"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$src/tests/onnx/make_graphs.py" "$tmp" >/dev/null || { echo "FAIL: make_graphs.py"; exit 1; }

fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_in() { # file, text, what
  grep -qF -- "$2" "$1" || bad "$3: the build report lacks '$2':$(printf '\n'; cat "$1")"
}
unfused=fuse_layernorm,fuse_rmsnorm,fuse_activations,fuse_silu_mul,fuse_linear
prompt=1,17,42,9,5,63,7
steps=8

check_model() { # name, checks on the build report...
  local m=$1; shift
  node "$ort_dir/ort_reference.mjs" "$tmp/$m.onnx" "$prompt" "$steps" "$tmp/$m.ref.json" ||
    { bad "$m: onnxruntime"; return; }
  "$llmrt" build --onnx "$tmp/$m.onnx" --output "$tmp/$m.engine" --max-num-tokens 4 --max-batch 4 2>"$tmp/$m.log" \
    >"$tmp/$m.report" || { bad "$m: build: $(cat "$tmp/$m.log")"; return; }
  for text in "$@"; do expect_in "$tmp/$m.report" "$text" "$m"; done
  "$llmrt" run --engine "$tmp/$m.engine" --prompt-ids "$prompt" --max-tokens "$steps" --json \
    --dump-logits "$tmp/$m.npy" >"$tmp/$m.run.json" 2>"$tmp/$m.log" || { bad "$m: run: $(cat "$tmp/$m.log")"; return; }
  "$py" "$src/tests/onnx/compare.py" "$tmp/$m.ref.json" "$tmp/$m.npy" "$tmp/$m.run.json" || bad "$m: fused engine"
  "$llmrt" build --onnx "$tmp/$m.onnx" --output "$tmp/$m.unfused.engine" --disable-passes "$unfused" --quiet &&
  "$llmrt" run --engine "$tmp/$m.unfused.engine" --prompt-ids "$prompt" --max-tokens "$steps" --json \
    --dump-logits "$tmp/$m.unfused.npy" >"$tmp/$m.unfused.json" 2>/dev/null &&
  "$py" "$src/tests/onnx/compare.py" "$tmp/$m.ref.json" "$tmp/$m.unfused.npy" "$tmp/$m.unfused.json" ||
    bad "$m: unfused engine"
}

check_model llama "attention×2 → paged attention (2 with RoPE on q and k), past KV inputs no" \
  "fused         linear×15 rmsnorm×5 silu_mul×2"
check_model llama_past "attention×2 → paged attention (2 with RoPE on q and k), past KV inputs yes" \
  "fused         linear×15 rmsnorm×5 silu_mul×2"
check_model gpt "attention×2 → paged attention (0 with RoPE on q and k)" \
  "fused         linear×9 layernorm×5 gelu_tanh×2"
check_model gpt_ln "attention×2 → paged attention (0 with RoPE on q and k)" "fused         linear×9 layernorm×5"
check_model ops "attention×2 → paged attention (2 with RoPE on q and k), past KV inputs yes" \
  "fused         linear×13 rmsnorm×5"
# the same model with its tensors in a file beside it (external data)
"$llmrt" build --onnx "$tmp/llama_ext.onnx" --output "$tmp/llama_ext.engine" --quiet &&
"$llmrt" run --engine "$tmp/llama_ext.engine" --prompt-ids "$prompt" --max-tokens "$steps" --json \
  --dump-logits "$tmp/llama_ext.npy" >"$tmp/llama_ext.json" 2>/dev/null &&
"$py" "$src/tests/onnx/compare.py" "$tmp/llama.ref.json" "$tmp/llama_ext.npy" "$tmp/llama_ext.json" ||
  bad "llama_ext: external data"
"$llmrt" inspect "$tmp/llama_past.engine" >"$tmp/inspect.txt" 2>&1 || bad "inspect"
grep -q "^source .*(ONNX opset 17: attention×2 recognised, 2 with RoPE; past KV inputs replaced by the paged cache)" \
  "$tmp/inspect.txt" && grep -q "^ops .* attention×2 " "$tmp/inspect.txt" ||
  bad "inspect does not show what the import recognised: $(cat "$tmp/inspect.txt")"

# Any engine runs on either backend: an imported graph built for cuda with
# bf16 weights and run with --backend cpu gives the cpu build's tokens and
# logits, byte for byte.
for m in llama_past gpt ops; do
  for b in cpu cuda; do
    "$llmrt" build --onnx "$tmp/$m.onnx" --backend $b --dtype bf16 --output "$tmp/$m.$b.engine" --quiet ||
      bad "$m: build --backend $b"
  done
  for b in cpu cuda; do
    "$llmrt" run --engine "$tmp/$m.$b.engine" --backend cpu --prompt-ids "$prompt" --max-tokens "$steps" --json \
      --dump-logits "$tmp/$m.$b.npy" >"$tmp/$m.$b.json" 2>"$tmp/$m.log" || bad "$m built for $b: $(cat "$tmp/$m.log")"
  done
  cmp -s "$tmp/$m.cpu.json" "$tmp/$m.cuda.json" && cmp -s "$tmp/$m.cpu.npy" "$tmp/$m.cuda.npy" ||
    bad "$m: built for cuda and run on cpu, not the cpu build's tokens and logits"
done

# In-flight batching: three prompts at once through the KV-cache graph's
# engine, each continued as onnxruntime continues it alone.
: >"$tmp/requests.jsonl"
for p in 3,4,5 1,17,42,9,5,63,7,11,13,2 60,2,88,41,7; do
  node "$ort_dir/ort_reference.mjs" "$tmp/llama_past.onnx" "$p" "$steps" "$tmp/ref_$p.json" || bad "ort $p"
  echo "{\"prompt_ids\": [$p], \"max_tokens\": $steps}" >>"$tmp/requests.jsonl"
done
"$llmrt" run --engine "$tmp/llama_past.engine" --requests "$tmp/requests.jsonl" --json >"$tmp/batch.jsonl" \
  2>"$tmp/batch.log" || bad "batched run: $(cat "$tmp/batch.log")"
"$py" - "$tmp" <<'PY' || bad "batched greedy tokens"
import json, sys
tmp = sys.argv[1]
runs = [json.loads(line) for line in open(f"{tmp}/batch.jsonl") if line.strip()]
ok = len(runs) == 3
for r in runs:
    key = ",".join(map(str, r["prompt_ids"]))
    want = json.load(open(f"{tmp}/ref_{key}.json"))["greedy"]
    if r["output_ids"] != want:
        print(f"prompt {key}: {r['output_ids']} vs onnxruntime {want}")
        ok = False
sys.exit(0 if ok else 1)
PY

# The LLaMA graph carrying a real checkpoint's weights (the golden case
# llama_f32): its engines must match transformers' logits and greedy tokens
# (golden.json) and the native engine of that checkpoint op for op.
golden=$src/tests/golden/cases/llama_f32
"$py" "$src/tests/onnx/make_graphs.py" --from-checkpoint "$golden" "$tmp" || bad "make_graphs.py --from-checkpoint"
"$py" - "$golden/golden.json" "$tmp/golden_ref.json" <<'PY' || bad "golden.json"
import json, sys
p = json.load(open(sys.argv[1]))["prompts"][0]
assert p["logit_rows"] == list(range(len(p["ids"])))
json.dump({"prompt": p["ids"], "logits": p["logits"], "greedy": p["greedy"]}, open(sys.argv[2], "w"))
PY
golden_prompt=$("$py" -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['prompt'])))" \
                "$tmp/golden_ref.json")
golden_steps=$("$py" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['greedy']))" "$tmp/golden_ref.json")
"$llmrt" build --model "$golden" --output "$tmp/native.engine" --quiet || bad "native build"
native_ops=$("$llmrt" inspect "$tmp/native.engine" | grep -E "^(kernels|ops) ")
same_ops_as_native() { # engine, label
  local ops
  ops=$("$llmrt" inspect "$1" | grep -E "^(kernels|ops) ")
  [ "$ops" = "$native_ops" ] || bad "$2: kernels and ops differ from the native engine's:
$ops
native:
$native_ops"
}
for m in llama_ckpt llama_ckpt_past; do
  "$llmrt" build --onnx "$tmp/$m.onnx" --config "$golden/config.json" --output "$tmp/$m.engine" --quiet ||
    { bad "$m: build"; continue; }
  "$llmrt" run --engine "$tmp/$m.engine" --prompt-ids "$golden_prompt" --max-tokens "$golden_steps" --json \
    --dump-logits "$tmp/$m.npy" >"$tmp/$m.run.json" 2>/dev/null || { bad "$m: run"; continue; }
  "$py" "$src/tests/onnx/compare.py" "$tmp/golden_ref.json" "$tmp/$m.npy" "$tmp/$m.run.json" ||
    bad "$m: against transformers (golden.json)"
  same_ops_as_native "$tmp/$m.engine" "$m"
done

# The exports of a real model, when the exporter's files are present.
data=$src/tests/onnx/data
if [ -f "$data/llama_nocache.onnx" ] && [ -f "$data/reference.json" ]; then
  ref_prompt=$("$py" -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['prompt'])))" \
               "$data/reference.json")
  "$llmrt" run --engine "$tmp/native.engine" --prompt-ids "$ref_prompt" --max-tokens "$steps" --json \
    >"$tmp/native.json" 2>/dev/null || bad "native run"
  for m in llama_nocache llama_past; do
    [ -f "$data/$m.onnx" ] || { bad "$data/$m.onnx is missing"; continue; }
    "$llmrt" build --onnx "$data/$m.onnx" --config "$data/config.json" --output "$tmp/$m.x.engine" \
      2>"$tmp/$m.x.log" >"$tmp/$m.x.report" || { bad "$m: build: $(cat "$tmp/$m.x.log")"; continue; }
    expect_in "$tmp/$m.x.report" "attention×2 → paged attention (2 with RoPE on q and k)" "$m"
    "$llmrt" run --engine "$tmp/$m.x.engine" --prompt-ids "$ref_prompt" --max-tokens "$steps" --json \
      --dump-logits "$tmp/$m.x.npy" >"$tmp/$m.x.json" 2>/dev/null || { bad "$m: run"; continue; }
    "$py" "$src/tests/onnx/compare.py" "$data/reference.json" "$tmp/$m.x.npy" || bad "$m: logits against torch"
    "$py" -c "import json,sys; a,b=(json.load(open(f))['output_ids'] for f in sys.argv[1:]); sys.exit(a!=b)" \
      "$tmp/$m.x.json" "$tmp/native.json" || bad "$m: greedy tokens differ from the native engine's"
    same_ops_as_native "$tmp/$m.x.engine" "$m"
  done
else
  echo "note: no exports in $data (tests/onnx/export_llama.py makes them); onnx.helper graphs only"
fi

[ "$fails" -eq 0 ] && echo "PASS: ONNX import matches onnxruntime" && exit 0
exit 1
