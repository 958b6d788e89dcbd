#!/usr/bin/env bash
# Full-model benchmark hook (issue 3, item 6): a LLaMA-2-7B-shaped engine with
# random bf16 weights, run through the CUDA backend by the CLI. Needs
# `llmrt bench` (not there yet: until then this prints what it would run and
# the kernel-level figures come from bench_cuda_kernels, which runs the same
# kernels in the same order as a fused LLaMA plan).
#
# usage: bench/cuda/bench_model.sh BUILD_DIR [OUT_DIR]
set -euo pipefail
BUILD=${1:-build-gpu}
OUTDIR=${2:-${OUT:-$BUILD}}
LLMRT="$BUILD/llmrt"
mkdir -p "$OUTDIR"
cat > "$OUTDIR/llama2-7b-config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
 "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
 "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
 "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": false,
 "bos_token_id": 1, "eos_token_id": 2}
JSON
if ! "$LLMRT" bench --help > /dev/null 2>&1; then
  echo "bench_model: '$LLMRT bench' is not available yet; would run:"
  echo "  $LLMRT build --config $OUTDIR/llama2-7b-config.json --random-weights --dtype bf16 --backend cuda \\"
  echo "      --max-seq-len 4096 --max-num-tokens 2048 --max-batch 8 --output $OUTDIR/llama2-7b.engine"
  echo "  $LLMRT bench --engine $OUTDIR/llama2-7b.engine --input-len 128 --output-len 128 --concurrency 1 --requests 3 --json"
  echo "  $LLMRT bench --engine $OUTDIR/llama2-7b.engine --input-len 2048 --output-len 128 --concurrency 1 --requests 3 --json"
  exit 0
fi
"$LLMRT" build --config "$OUTDIR/llama2-7b-config.json" --random-weights --dtype bf16 --backend cuda \
  --max-seq-len 4096 --max-num-tokens 2048 --max-batch 8 --output "$OUTDIR/llama2-7b.engine"
for len in 128 2048; do
  "$LLMRT" bench --engine "$OUTDIR/llama2-7b.engine" --input-len $len --output-len 128 --concurrency 1 \
    --requests 3 --json | tee "$OUTDIR/bench-model-$len.json"
done
rm -f "$OUTDIR/llama2-7b.engine"
