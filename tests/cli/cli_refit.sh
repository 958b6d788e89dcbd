#!/usr/bin/env bash
# llmrt refit: round trips (LLaMA, GPT-2's transposed Conv1D weights, a bf16
# checkpoint) whose weights section is byte-identical to a fresh build's and
# whose greedy tokens and logits match it; then every refusal — missing,
# reshaped, integer, extra and non-finite tensors, a clobbered or special
# output — with the engine checked unchanged after each.
# usage: cli_refit.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

# section NAME FILE: "offset size checksum" of an engine section, from the header
section() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
b = open(sys.argv[2], "rb").read(4096); n = struct.unpack("<I", b[12:16])[0]
for i in range(n):
    e = b[32 + 48 * i: 80 + 48 * i]
    if e[:24].rstrip(b"\0").decode() == sys.argv[1]: print(*struct.unpack("<QQQ", e[24:48]))
PY
}
same_bytes() { cmp -s "$1" "$2" && ok || bad "$3"; }

prompt=5,6,7,9
for name in llama_f32 gpt2_f32 llama_bf16; do
  c=$src/tests/golden/cases/$name
  expect 0 "" -- "$llmrt" build --config "$c/config.json" --random-weights --seed 3 --output "$tmp/$name.engine" --max-seq-len 64 --quiet
  expect 0 "" -- "$llmrt" build --model "$c" --output "$tmp/$name.fresh" --max-seq-len 64 --quiet
  [ "$(section weights "$tmp/$name.engine")" != "$(section weights "$tmp/$name.fresh")" ] && ok || bad "$name: random weights equal the checkpoint's"
  cp "$tmp/$name.engine" "$tmp/$name.random"
  # to another file: the input engine untouched
  expect 0 "" -- "$llmrt" refit --engine "$tmp/$name.engine" --model "$c" --output "$tmp/$name.out" --quiet
  same_bytes "$tmp/$name.engine" "$tmp/$name.random" "$name: --output changed the input engine"
  # in place (the default)
  expect 0 "refit $tmp/$name.engine" -- "$llmrt" refit --engine "$tmp/$name.engine" --model "$c"
  for e in "$tmp/$name.engine" "$tmp/$name.out"; do
    [ "$(section weights "$e")" = "$(section weights "$tmp/$name.fresh")" ] && ok || bad "$name: $e weights section differs from a fresh build's"
    [ "$(section meta "$e")" = "$(section meta "$tmp/$name.fresh")" ] && ok || bad "$name: $e metadata differs from a fresh build's"
  done
  fresh=$("$llmrt" run --engine "$tmp/$name.fresh" --prompt-ids $prompt --max-tokens 8 --ignore-eos --json 2>&1)
  refit=$("$llmrt" run --engine "$tmp/$name.engine" --prompt-ids $prompt --max-tokens 8 --ignore-eos --json 2>&1)
  [ -n "$fresh" ] && [ "$fresh" = "$refit" ] && ok || bad "$name: greedy tokens differ: $fresh vs $refit"
  "$llmrt" run --engine "$tmp/$name.fresh" --prompt-ids $prompt --max-tokens 1 --dump-logits "$tmp/$name.fresh.npy" >/dev/null 2>&1
  "$llmrt" run --engine "$tmp/$name.engine" --prompt-ids $prompt --max-tokens 1 --dump-logits "$tmp/$name.refit.npy" >/dev/null 2>&1
  same_bytes "$tmp/$name.fresh.npy" "$tmp/$name.refit.npy" "$name: logits differ from a fresh build's"
done

# every other golden case, and a storage dtype other than the checkpoint's:
# the weights section equals a fresh build's
for c in "$src"/tests/golden/cases/*/; do
  name=$(basename "$c"); case $name in llama_f32|gpt2_f32|llama_bf16) continue;; esac
  expect 0 "" -- "$llmrt" build --config "$c/config.json" --random-weights --output "$tmp/$name.engine" --max-seq-len 64 --quiet
  expect 0 "" -- "$llmrt" build --model "$c" --output "$tmp/$name.fresh" --max-seq-len 64 --quiet
  expect 0 "" -- "$llmrt" refit --engine "$tmp/$name.engine" --model "$c" --quiet
  [ "$(section weights "$tmp/$name.engine")" = "$(section weights "$tmp/$name.fresh")" ] && ok || bad "$name: weights differ from a fresh build's"
done
for dtype in fp16 bf16; do
  c=$src/tests/golden/cases/gpt2_f32
  expect 0 "" -- "$llmrt" build --config "$c/config.json" --random-weights --dtype $dtype --output "$tmp/$dtype.engine" --max-seq-len 64 --quiet
  expect 0 "" -- "$llmrt" build --model "$c" --dtype $dtype --output "$tmp/$dtype.fresh" --max-seq-len 64 --quiet
  expect 0 "" -- "$llmrt" refit --engine "$tmp/$dtype.engine" --model "$c" --quiet
  [ "$(section weights "$tmp/$dtype.engine")" = "$(section weights "$tmp/$dtype.fresh")" ] && ok || bad "gpt2_f32 as $dtype: weights differ from a fresh build's"
done

# --- refusals: exit 1, the culprit named, the engine byte for byte unchanged --
case_dir=$src/tests/golden/cases/llama_f32
engine=$tmp/llama_f32.random
cp "$engine" "$tmp/before.engine"
# rewrite PYTHON: a mutated copy of the checkpoint, its tensors re-serialised
# after PYTHON edits `t` (name -> [dtype, shape, bytes])
rewrite() {
  mutate "$1" "
b, n, h = header(); h.pop('__metadata__', None); data = b[8 + n:]
t = {k: [v['dtype'], v['shape'], bytes(data[v['data_offsets'][0]:v['data_offsets'][1]])] for k, v in h.items()}
$2
hdr, off, blob = {}, 0, b''
for k, (dt, shape, raw) in t.items():
    hdr[k] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(raw)]}; off += len(raw); blob += raw
j = json.dumps(hdr).encode(); j += b' ' * ((8 - len(j) % 8) % 8)
open(st, 'wb').write(struct.pack('<Q', len(j)) + j + blob)"
}
unchanged() { same_bytes "$engine" "$tmp/before.engine" "$1: the engine changed after a failed refit"; }
refit_fails() { # NEEDLE DIR [options]
  local needle=$1 dir=$2; shift 2
  expect 1 "$needle" -- "$llmrt" refit --engine "$engine" --model "$dir" --quiet "$@"
  unchanged "$needle"
  [ ! -e "$engine.tmp" ] && ok || bad "$needle: left $engine.tmp behind"
}
d=$(rewrite missing "del t['model.norm.weight']")
refit_fails "checkpoint has no tensor 'model.norm.weight'" "$d"
d=$(rewrite shape "t['model.norm.weight'][1] = [63]; t['model.norm.weight'][2] = t['model.norm.weight'][2][:63 * 4]")
refit_fails "tensor 'model.norm.weight' has shape [63] but the config implies [64]" "$d"
d=$(rewrite dtype "t['model.norm.weight'][0] = 'I32'")
refit_fails "tensor 'model.norm.weight' has dtype i32 (expected a float type)" "$d"
d=$(rewrite extra "t['model.extra.weight'] = ['F32', [2], bytes(8)]")
refit_fails "model.extra.weight" "$d"
expect 0 "" -- "$llmrt" refit --engine "$engine" --model "$d" --output "$tmp/extra.engine" --ignore-extra-tensors --quiet
[ "$(section weights "$tmp/extra.engine")" = "$(section weights "$tmp/llama_f32.fresh")" ] && ok || bad "--ignore-extra-tensors weights"
d=$(rewrite nan "import math; t['model.norm.weight'][2] = struct.pack('<f', math.nan) + t['model.norm.weight'][2][4:]")
refit_fails "weight 'model.norm.weight' has 1 non-finite values" "$d"
expect 0 "" -- "$llmrt" refit --engine "$engine" --model "$d" --output "$tmp/nan.engine" --allow-nonfinite --quiet
refit_fails "has no tensor 'model.embed_tokens.weight'" "$src/tests/golden/cases/gpt2_f32"
# a config.json that disagrees where shapes cannot tell: a warning naming the field
d=$(mutate theta "c = json.load(open(cfg)); c['rope_parameters']['rope_theta'] = 5000.0; json.dump(c, open(cfg, 'w'))")
expect 0 "differs from the engine's config in 'rope'" -- "$llmrt" refit --engine "$engine" --model "$d" --output "$tmp/theta.engine"
# outputs that must not be clobbered, inputs that are not engines
mkfifo "$tmp/fifo"
expect 1 "not a regular file" -- "$llmrt" refit --engine "$engine" --model "$case_dir" --output "$tmp/fifo" --quiet
[ -p "$tmp/fifo" ] && ok || bad "the FIFO output was replaced"
mkdir "$tmp/dir"
expect 1 "$tmp/dir" -- "$llmrt" refit --engine "$engine" --model "$case_dir" --output "$tmp/dir" --quiet
ln "$engine" "$tmp/hardlink.engine"
expect 1 "$tmp/hardlink.engine" -- "$llmrt" refit --engine "$engine" --model "$case_dir" --output "$tmp/hardlink.engine" --quiet
unchanged "hard link output"
cp -r "$case_dir" "$tmp/ckpt"
expect 1 "model.safetensors" -- "$llmrt" refit --engine "$engine" --model "$tmp/ckpt" --output "$tmp/ckpt/model.safetensors" --quiet
same_bytes "$tmp/ckpt/model.safetensors" "$case_dir/model.safetensors" "the checkpoint was overwritten"
expect 1 "a FIFO" -- "$llmrt" refit --engine "$tmp/fifo" --model "$case_dir" --output "$tmp/x.engine" --quiet
expect 1 "not an llmrt engine file" -- "$llmrt" refit --engine "$case_dir/config.json" --model "$case_dir" --output "$tmp/x.engine" --quiet
expect 1 "$tmp/none.engine" -- "$llmrt" refit --engine "$tmp/none.engine" --model "$case_dir" --quiet
cp "$engine" "$tmp/corrupt.engine"
printf 'X' | dd of="$tmp/corrupt.engine" bs=1 seek=$(( $(stat -c %s "$engine") - 1 )) conv=notrunc 2>/dev/null
expect 1 "'weights' checksum mismatch" -- "$llmrt" refit --engine "$tmp/corrupt.engine" --model "$case_dir" --quiet
# the command line
expect 0 "usage: llmrt refit" -- "$llmrt" refit --help
expect 2 "required" -- "$llmrt" refit --engine "$engine"
expect 2 "unknown option '--bogus'" -- "$llmrt" refit --bogus
expect 0 "refit" -- "$llmrt" --help

# --- split engines (an llmrt built with MPI): every rank file refit, each
# rank's weights a fresh split build's, shards of fused and stacked tensors
# cut as the build cuts them; a quantized shard refused, no file touched
probe=$("$llmrt" build --config "$src/tests/golden/cases/qwen2_f32/config.json" --random-weights --tp 2 \
        --output "$tmp/probe.engine" 2>&1)
case "$probe" in
*"built without"*) echo "split engines: $probe: skipped" ;;
*)
  for spec in llama_f32:--tp=2 llama_f32:--pp=2 gpt2_f32:--tp=2 falcon_mqa_bf16:--tp=2 mixtral_f32:--tp=2 bloom_f32:--tp=2; do
    name=${spec%%:*} split=${spec#*:}; split=${split/=/ }; c=$src/tests/golden/cases/$name
    out=$tmp/split_${name}_${split// /}
    expect 0 "" -- "$llmrt" build --config "$c/config.json" --random-weights $split --output "$out.engine" --max-seq-len 64 --quiet
    expect 0 "" -- "$llmrt" build --model "$c" $split --output "$out.fresh" --max-seq-len 64 --quiet
    expect 0 "and its rank files" -- "$llmrt" refit --engine "$out.engine" --model "$c"
    for rank in "" .rank1; do
      [ -n "$(section weights "$out.engine$rank")" ] && [ "$(section weights "$out.engine$rank")" = "$(section weights "$out.fresh$rank")" ] &&
        ok || bad "$name $split$rank: weights differ from a fresh build's"
    done
  done
  if command -v mpirun >/dev/null 2>&1; then
    run_mpi=$src/tests/parallel/run_mpi.sh out=$tmp/split_llama_f32_--tp2
    a=$("$run_mpi" 2 "$llmrt" run --engine "$out.engine" --prompt-ids $prompt --max-tokens 8 --ignore-eos --json 2>/dev/null |
        grep -o '"output_ids":\[[0-9,]*\]')
    b=$("$run_mpi" 2 "$llmrt" run --engine "$out.fresh" --prompt-ids $prompt --max-tokens 8 --ignore-eos --json 2>/dev/null |
        grep -o '"output_ids":\[[0-9,]*\]')
    [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "refit --tp 2 engine: $a; fresh: $b"
  fi
  c=$src/tests/golden/cases/llama_f32
  expect 0 "" -- "$llmrt" build --model "$c" --tp 2 --quant int8-wo --output "$tmp/q.engine" --max-seq-len 64 --quiet
  cp "$tmp/q.engine" "$tmp/q.before" && cp "$tmp/q.engine.rank1" "$tmp/q.before.rank1"
  expect 1 "a quantized tensor-parallel shard" -- "$llmrt" refit --engine "$tmp/q.engine" --model "$c" --quiet
  same_bytes "$tmp/q.engine" "$tmp/q.before" "a refused split refit changed rank 0's file"
  same_bytes "$tmp/q.engine.rank1" "$tmp/q.before.rank1" "a refused split refit changed rank 1's file"
  ;;
esac
cli_finish
