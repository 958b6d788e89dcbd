#!/usr/bin/env bash
# Engines of every format version llmrt has written, kept as test data, must
# keep loading: a format change either still reads them or replaces them on
# purpose. data/engine_format_v1.engine: tests/golden/cases/llama_f32 built
# with --random-weights --seed 1 --max-seq-len 64 --max-batch 4
# --max-num-tokens 64, then refit from that checkpoint (so its answers are
# the checkpoint's). An engine of another version is refused, saying which.
# usage: cli_engine_format.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

case_dir=$src/tests/golden/cases/llama_f32
expect 0 "" -- "$llmrt" build --model "$case_dir" --output "$tmp/fresh.engine" --max-seq-len 64 --max-batch 4 --max-num-tokens 64 --quiet
for kept in "$src"/tests/cli/data/engine_format_v*.engine; do
  v=${kept##*_v}; v=${v%.engine}
  expect 0 "(format v$v)" -- "$llmrt" inspect "$kept"
  expect 0 "built for cpu; runs on cpu, cuda" -- "$llmrt" inspect "$kept"
  expect 0 "checksums     header, sections and weights verified" -- "$llmrt" inspect "$kept"
  for prompt in 5,6,7 1,2,3,4,5,6,7,8,9; do
    want=$("$llmrt" run --engine "$tmp/fresh.engine" --prompt-ids $prompt --max-tokens 12 --ignore-eos --json 2>&1)
    got=$("$llmrt" run --engine "$kept" --prompt-ids $prompt --max-tokens 12 --ignore-eos --json 2>&1)
    [ -n "$want" ] && [ "$want" = "$got" ] && ok || bad "v$v: greedy tokens for $prompt: $got, a fresh build: $want"
  done
  "$llmrt" run --engine "$tmp/fresh.engine" --prompt-ids 5,6,7 --max-tokens 1 --dump-logits "$tmp/want.npy" >/dev/null 2>&1
  "$llmrt" run --engine "$kept" --prompt-ids 5,6,7 --max-tokens 1 --dump-logits "$tmp/got.npy" >/dev/null 2>&1
  if python3 -c "import numpy" 2>/dev/null; then
    python3 -c "import numpy as n, sys; a = n.load('$tmp/want.npy'); b = n.load('$tmp/got.npy'); sys.exit(not (a.shape == b.shape and n.abs(a - b).max() < 1e-4))" \
      && ok || bad "v$v: logits differ from a fresh build's"
  fi
  # an old engine can be refit (it is read by the same loader)
  expect 0 "" -- "$llmrt" refit --engine "$kept" --model "$case_dir" --output "$tmp/refit_v$v.engine" --quiet
done

# another version: the byte at offset 8 is the format version (u32, little-endian)
kept=$src/tests/cli/data/engine_format_v1.engine
version_copy() { cp "$kept" "$tmp/v$1.engine"; printf "\\x$(printf %02x "$1")" | dd of="$tmp/v$1.engine" bs=1 seek=8 conv=notrunc 2>/dev/null; }
version_copy 0
expect 1 "engine format 0, this llmrt reads formats 1..1: rebuild" -- "$llmrt" run --engine "$tmp/v0.engine" --prompt-ids 1
version_copy 200
expect 1 "engine format 200 was made by a newer llmrt" -- "$llmrt" run --engine "$tmp/v200.engine" --prompt-ids 1
expect 1 "engine format 200 was made by a newer llmrt" -- "$llmrt" inspect "$tmp/v200.engine"
expect 1 "engine format 200 was made by a newer llmrt" -- "$llmrt" refit --engine "$tmp/v200.engine" --model "$case_dir" --quiet
cli_finish
