#!/usr/bin/env bash
# make demo: the main job on the embedded default model. `llmrt run` without
# --engine builds the demo model's engine on first use (into the cache
# folder) and streams a continuation of the prompt.
set -euo pipefail
llmrt=${1:-build/llmrt}
prompt=${DEMO_PROMPT:-And God said}
echo "== llmrt demo: a 7M-parameter LLaMA trained on the King James Bible (models/demo)"
echo "== greedy:"
printf '%s' "$prompt"
"$llmrt" run --prompt "$prompt" --max-tokens 48 --stream
echo "== sampled (temperature 0.8, top-p 0.95, seed 7):"
printf '%s' "$prompt"
"$llmrt" run --prompt "$prompt" --max-tokens 96 --temperature 0.8 --top-p 0.95 --seed 7 --stream --verbose
