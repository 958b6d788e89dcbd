#!/usr/bin/env bash
# The llmrt CLI against hostile input: FIFOs and devices where files are
# expected (nothing may block or read forever), outputs that are devices or
# inputs (nothing may be replaced or overwritten), non-finite weights, and
# inputs whose answer would be silently wrong. Every case must exit non-zero
# with a message naming what is wrong. Runs as root safely: device nodes are
# only reached through symbolic links in a temporary folder, and each refusal
# is checked to have left the target as it was.
# usage: cli_hardening.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

case_dir=$src/tests/golden/cases/llama_f32
model=$tmp/model
cp -r "$case_dir" "$model"
engine=$tmp/good.engine
"$llmrt" build --model "$model" --output "$engine" --max-seq-len 64 --quiet || { echo "FAIL: cannot build"; exit 1; }
demo=$tmp/demo.engine
"$llmrt" build --model "$src/models/demo" --output "$demo" --max-seq-len 64 --quiet || { echo "FAIL: cannot build demo"; exit 1; }
mkfifo "$tmp/fifo"

# --- 1. outputs never replace a device node, a FIFO or an input ---------------
ln -s /dev/null "$tmp/null"
expect 1 "not a regular file" -- "$llmrt" build --model "$model" --output "$tmp/null" --quiet
[ -L "$tmp/null" ] && [ -c /dev/null ] && ok || bad "the link to /dev/null was replaced"
expect 1 "not a regular file" -- "$llmrt" build --model "$model" --output "$tmp/fifo" --quiet
[ -p "$tmp/fifo" ] && ok || bad "the FIFO output was replaced"
mkdir "$tmp/outdir"
expect 1 "a directory" -- "$llmrt" build --model "$model" --output "$tmp/outdir" --quiet
sum=$(md5sum < "$model/config.json")
expect 1 "not overwriting" -- "$llmrt" build --model "$model" --output "$model/config.json" --quiet
expect 1 "not overwriting" -- "$llmrt" build --model "$model" --output "$model/model.safetensors" --quiet
[ "$(md5sum < "$model/config.json")" = "$sum" ] && ok || bad "config.json was overwritten"
expect 1 "not overwriting" -- "$llmrt" build --config "$model/config.json" --random-weights --output "$model/config.json" --quiet
ln -s "$model/config.json" "$tmp/config-link"
expect 1 "not overwriting" -- "$llmrt" build --model "$model" --output "$tmp/config-link" --quiet
[ "$(md5sum < "$model/config.json")" = "$sum" ] && ok || bad "config.json was overwritten through a link"
ln -s /dev/null "$tmp/x.engine.tmp"
expect 1 "symbolic link" -- "$llmrt" build --model "$model" --output "$tmp/x.engine" --quiet
[ -L "$tmp/x.engine.tmp" ] && [ ! -e "$tmp/x.engine" ] && ok || bad "a linked PATH.tmp was written through or renamed"
rm "$tmp/x.engine.tmp"
esum=$(md5sum < "$engine")
expect 1 "not overwriting" -- "$llmrt" run --engine "$engine" --prompt-ids 1,2 --dump-logits "$engine"
[ "$(md5sum < "$engine")" = "$esum" ] && ok || bad "--dump-logits overwrote the engine"
expect 1 "not a regular file" -- "$llmrt" run --engine "$engine" --prompt-ids 1,2 --dump-logits "$tmp/fifo"
expect 0 "" -- "$llmrt" build --model "$model" --output "$tmp/rebuilt.engine" --max-seq-len 64 --quiet
expect 0 "" -- "$llmrt" build --model "$model" --output "$tmp/rebuilt.engine" --max-seq-len 64 --quiet

# --- 2. FIFOs and devices are refused, never opened blocking -----------------
expect 1 "a FIFO" -- "$llmrt" run --engine "$tmp/fifo" --prompt-ids 1
expect 1 "a FIFO" -- "$llmrt" inspect "$tmp/fifo"
expect 1 "a FIFO" -- "$llmrt" bench --engine "$tmp/fifo" --requests 1
expect 1 "a FIFO" -- "$llmrt" perplexity --engine "$tmp/fifo" --text "$tmp/fifo"
expect 1 "a FIFO" -- "$llmrt" perplexity --engine "$demo" --text "$tmp/fifo"
expect 1 "a FIFO" -- "$llmrt" run --engine "$engine" --requests "$tmp/fifo"
expect 1 "a FIFO" -- "$llmrt" run --engine "$demo" --chat "$tmp/fifo"
expect 1 "a FIFO" -- "$llmrt" bench --engine "$engine" --dataset "$tmp/fifo"
expect 1 "a FIFO" -- "$llmrt" tokenize --tokenizer "$tmp/fifo" --text hi
expect 1 "a directory" -- "$llmrt" run --engine "$tmp/outdir" --prompt-ids 1
fifo_model=$tmp/fifo_model; cp -r "$case_dir" "$fifo_model"; rm "$fifo_model/model.safetensors"
mkfifo "$fifo_model/model.safetensors"
expect 1 "model.safetensors: not a regular file (a FIFO)" -- "$llmrt" build --model "$fifo_model" --output "$tmp/x.engine" --quiet
fifo_cfg=$tmp/fifo_cfg; cp -r "$case_dir" "$fifo_cfg"; rm "$fifo_cfg/config.json"; mkfifo "$fifo_cfg/config.json"
expect 1 "a FIFO" -- "$llmrt" build --model "$fifo_cfg" --output "$tmp/x.engine" --quiet
for name in tokenizer.json generation_config.json; do
  d=$tmp/fifo_$name; cp -r "$case_dir" "$d"; rm -f "$d/$name"; mkfifo "$d/$name"
  expect 1 "$name: not a regular file (a FIFO)" -- "$llmrt" build --model "$d" --output "$tmp/x.engine" --quiet
done
fifo_tok=$tmp/fifo_tok; mkdir "$fifo_tok"; mkfifo "$fifo_tok/tokenizer.json"
expect 1 "a FIFO" -- "$llmrt" tokenize --tokenizer "$fifo_tok" --text hi

# --- 3. bounded reads ------------------------------------------------------------
expect 1 "not a regular file (a character device)" -- "$llmrt" run --engine "$engine" --requests /dev/zero
expect 1 "not a regular file (a character device)" -- "$llmrt" bench --engine "$engine" --dataset /dev/zero --requests 1
expect 1 "not a regular file (a character device)" -- "$llmrt" tokenize --tokenizer /dev/zero --text hi
: > "$tmp/empty.jsonl"
expect 1 "no requests" -- "$llmrt" bench --engine "$engine" --dataset "$tmp/empty.jsonl" --requests 1
expect 1 "no requests" -- "$llmrt" run --engine "$engine" --requests "$tmp/empty.jsonl"
printf '{"prompt_ids": [1]}\n\0{"prompt_ids": [2]}\n' > "$tmp/nul.jsonl"
expect 1 "NUL byte at offset 20" -- "$llmrt" run --engine "$engine" --requests "$tmp/nul.jsonl"
truncate -s 300M "$tmp/big.jsonl"
expect 1 "over the limit of 256 MiB" -- "$llmrt" run --engine "$engine" --requests "$tmp/big.jsonl"
rm -f "$tmp/big.jsonl"
if [ "$(head -c 300M /dev/zero | "$llmrt" tokenize --tokenizer "$demo" 2>&1 >/dev/null)" = \
     "llmrt tokenize: stdin: larger than the limit of 256 MiB" ]; then ok; else bad "tokenize read 300 MiB of stdin"; fi
for c in run bench tokenize perplexity; do expect 0 "256 MiB" -- "$llmrt" $c --help; done

# --- 4. non-finite weights and logits --------------------------------------------
d=$(mutate nan 'b, n, h = header(); a, e = h["model.norm.weight"]["data_offsets"]
for o in range(8 + n + a, 8 + n + e, 4): b[o:o + 4] = struct.pack("<f", float("nan"))
open(st, "wb").write(b)')
expect 1 "weight 'model.norm.weight' has 64 non-finite values" -- "$llmrt" build --model "$d" --output "$tmp/nan.engine" --quiet
[ ! -e "$tmp/nan.engine" ] && [ ! -e "$tmp/nan.engine.tmp" ] && ok || bad "a refused build left a file"
d=$(mutate inf 'b, n, h = header(); a, e = h["model.layers.1.mlp.down_proj.weight"]["data_offsets"]
b[8 + n + a + 40:8 + n + a + 44] = struct.pack("<f", float("-inf")); open(st, "wb").write(b)')
expect 1 "'model.layers.1.mlp.down_proj.weight' has 1 non-finite values as f32 (NaN or Inf; the first at element 10)" -- \
  "$llmrt" build --model "$d" --output "$tmp/x.engine" --quiet
expect 1 "non-finite values as bf16" -- "$llmrt" build --model "$d" --output "$tmp/x.engine" --dtype bf16 --quiet
# finite in the checkpoint, too large for f16: the conversion makes it infinite
d=$(mutate f16_overflow 'b, n, h = header(); a, e = h["model.layers.0.mlp.up_proj.weight"]["data_offsets"]
b[8 + n + a:8 + n + a + 4] = struct.pack("<f", 1e6); open(st, "wb").write(b)')
expect 0 "" -- "$llmrt" build --model "$d" --output "$tmp/x.engine" --quiet
expect 1 "'model.layers.0.mlp.up_proj.weight' has 1 non-finite values as f16" -- \
  "$llmrt" build --model "$d" --output "$tmp/x.engine" --dtype fp16 --quiet
expect 0 "" -- "$llmrt" build --model "$tmp/nan" --output "$tmp/nan.engine" --allow-nonfinite --quiet
for mode in "" "--temperature 1" "--temperature 1 --top-k 5" "--json"; do
  expect 1 "logits are not finite" -- "$llmrt" run --engine "$tmp/nan.engine" --prompt-ids 1,2 $mode
done
printf '%s\n' '{"prompt_ids": [1, 2], "beams": 2}' '{"prompt_ids": [1, 2], "logprobs": 2}' \
  '{"prompt_ids": [1, 2], "n": 2, "temperature": 1}' '{"prompt_ids": [1, 2], "repetition_penalty": 1.2}' > "$tmp/nan.jsonl"
out=$(timeout 20 "$llmrt" run --engine "$tmp/nan.engine" --requests "$tmp/nan.jsonl" --json 2>&1); rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c 'logits are not finite' <<<"$out")" -eq 4 ] && ok || bad "NaN logits in --requests: $rc $out"

# --- 5. no silently wrong output -----------------------------------------------------
expect 1 "id 4096 (position 1) is outside the vocabulary" -- "$llmrt" tokenize --tokenizer "$demo" --decode 1,4096
expect 0 "" -- "$llmrt" tokenize --tokenizer "$demo" --decode 1,4095
expect 1 "--text: invalid UTF-8 at byte offset 2" -- "$llmrt" tokenize --tokenizer "$demo" --text $'ab\xffc'
printf 'ab\xc0\x80' > "$tmp/overlong.txt"
expect_stdin=$tmp/overlong.txt expect 1 "stdin: invalid UTF-8 at byte offset 2" -- "$llmrt" tokenize --tokenizer "$demo"
printf 'x\xed\xa0\x80' > "$tmp/surrogate.txt"
expect_stdin=$tmp/surrogate.txt expect 1 "stdin: invalid UTF-8 at byte offset 1" -- "$llmrt" tokenize --tokenizer "$demo"
expect 1 "--prompt: invalid UTF-8 at byte offset 0" -- "$llmrt" run --engine "$demo" --prompt $'\xe2\x82'
expect 1 "overlong.txt: invalid UTF-8 at byte offset 2" -- "$llmrt" perplexity --engine "$demo" --text "$tmp/overlong.txt"
expect 0 "" -- "$llmrt" tokenize --tokenizer "$demo" --text "héllo ✓ 𝄞"
printf 'a' > "$tmp/short.txt"
expect 1 "too short for one prediction" -- "$llmrt" perplexity --engine "$demo" --text "$tmp/short.txt"
expect 1 "leaves no room to generate" -- "$llmrt" bench --engine "$engine" --input-len 64 --output-len 4 --requests 1
expect 0 "" -- "$llmrt" bench --engine "$engine" --input-len 60 --output-len 4 --requests 1
full=$(seq -s, 1 64 | sed 's/[0-9]\+/5/g') most=$(seq -s, 1 62 | sed 's/[0-9]\+/5/g')
expect 0 "cut at the engine's max sequence length of 64 tokens (64 of prompt, 0 of the 16" -- \
  "$llmrt" run --engine "$engine" --prompt-ids "$full"
expect 0 "cut at the engine's max sequence length of 64 tokens (62 of prompt, 2 of the 8" -- \
  "$llmrt" run --engine "$engine" --prompt-ids "$most" --max-tokens 8 --ignore-eos
expect 0 '"finish_reason":"length"' -- "$llmrt" run --engine "$engine" --prompt-ids "$full" --json
printf '{"prompt_ids": [%s], "max_tokens": 5, "ignore_eos": true}\n' "$most" > "$tmp/cut.jsonl"
expect 0 "[0] cut at the engine's max sequence length" -- "$llmrt" run --engine "$engine" --requests "$tmp/cut.jsonl"
expect 0 '"finish_reason":"length"' -- "$llmrt" run --engine "$engine" --requests "$tmp/cut.jsonl" --json
out=$("$llmrt" run --engine "$engine" --prompt-ids 5,6 --max-tokens 3 --ignore-eos 2>&1 >/dev/null)
[ -z "$out" ] && ok || bad "a note for a request that ended at max_tokens: $out"
for field in '"logit_bias": {"5": 10}' '"min_tokens": 3' '"best_of": 2' '"stream": true'; do
  printf '{"prompt_ids": [1, 2], %s}\n' "$field" > "$tmp/field.jsonl"
  expect 1 "unsupported field \"${field%%\"*:*}" -- "$llmrt" run --engine "$engine" --requests "$tmp/field.jsonl"
done
printf '{"prompt_ids": [1], "max_tokens": 2, "max_tokens": 9}\n' > "$tmp/dup.jsonl"
expect 1 "duplicate object key" -- "$llmrt" run --engine "$engine" --requests "$tmp/dup.jsonl"
expect 1 "duplicate object key" -- "$llmrt" bench --engine "$engine" --dataset "$tmp/dup.jsonl" --requests 1
printf '{"prompt_ids": [1, 2], "temperature": 0.7}\n' > "$tmp/bench_field.jsonl"
expect 1 'request 0: unsupported field "temperature"' -- "$llmrt" bench --engine "$engine" --dataset "$tmp/bench_field.jsonl" --requests 1
printf '{"prompt_ids": [1, 2], "max_tokens": 0}\n' > "$tmp/bench_max.jsonl"
expect 1 'max_tokens must be an integer in [1, 16777216]' -- "$llmrt" bench --engine "$engine" --dataset "$tmp/bench_max.jsonl" --requests 1
printf '{"prompt_ids": [1, 2], "max_tokens": 3}\n\n{"prompt": "hi"}\n' > "$tmp/bench_ok.jsonl"
expect 1 'no tokenizer' -- "$llmrt" bench --engine "$engine" --dataset "$tmp/bench_ok.jsonl" --requests 2
head -1 "$tmp/bench_ok.jsonl" > "$tmp/bench_ids.jsonl"
expect 0 'request throughput' -- "$llmrt" bench --engine "$engine" --dataset "$tmp/bench_ids.jsonl" --requests 2
printf '{"prompt_ids": [1], "stop": ["a", ""]}\n' > "$tmp/stop.jsonl"
expect 1 '"stop"[1] must be a non-empty string' -- "$llmrt" run --engine "$engine" --requests "$tmp/stop.jsonl"
printf '{"prompt_ids": [1], "max_tokens": 2.5}\n' > "$tmp/real.jsonl"
expect 1 '"max_tokens" must be an integer' -- "$llmrt" run --engine "$engine" --requests "$tmp/real.jsonl"
printf '{"prompt_ids": [1], "seed": -1}\n' > "$tmp/seed.jsonl"
expect 1 '"seed" must be a number in [0, 9007199254740992]' -- "$llmrt" run --engine "$engine" --requests "$tmp/seed.jsonl"
expect 2 "expected a number in [0, 1000000000]" -- "$llmrt" bench --engine "$engine" --rate -1

# --- 6. checkpoints and options that do not add up ---------------------------------
d=$(mutate layers 'c = json.load(open(cfg)); c["num_hidden_layers"] = 1; json.dump(c, open(cfg, "w"))')
expect 1 "9 tensors the model does not use" -- "$llmrt" build --model "$d" --output "$tmp/x.engine" --quiet
expect 1 "model.layers.1.input_layernorm.weight" -- "$llmrt" build --model "$d" --output "$tmp/x.engine" --quiet
expect 0 "" -- "$llmrt" build --model "$d" --output "$tmp/x.engine" --ignore-extra-tensors --quiet
d=$(mutate eos 'c = json.load(open(cfg)); c["eos_token_id"] = [2, 128]; json.dump(c, open(cfg, "w"))')
expect 1 "'eos_token_id' = 128 is outside the vocabulary (vocab_size 128)" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate bos 'c = json.load(open(cfg)); c["bos_token_id"] = 500; json.dump(c, open(cfg, "w"))')
expect 1 "'bos_token_id' = 500 is outside the vocabulary" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate pad 'g = os.path.join(d, "generation_config.json"); c = json.load(open(g)); c["pad_token_id"] = 128; json.dump(c, open(g, "w"))')
expect 1 "generation_config.json: field 'pad_token_id' = 128 is outside the vocabulary" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate big_int 'c = json.load(open(cfg)); c["hidden_size"] = 1e10; json.dump(c, open(cfg, "w"))')
expect 1 "= 10000000000 is not an integer in" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
expect 1 "unknown pass 'fuse_linaer'" -- "$llmrt" build --model "$model" --output "$tmp/x.engine" --disable-passes fuse_rmsnorm,fuse_linaer
expect 0 "" -- "$llmrt" build --model "$model" --output "$tmp/x.engine" --disable-passes fuse_rmsnorm,fuse_linear --quiet
expect 2 "not both" -- "$llmrt" build --model "$model" --config "$model/config.json" --random-weights --output "$tmp/x.engine"
expect 0 "weights verified" -- "$llmrt" inspect "$engine"
cp "$engine" "$tmp/flip.engine"
printf '\x55' | dd of="$tmp/flip.engine" bs=1 seek=$(( $(stat -c %s "$engine") - 7 )) conv=notrunc 2>/dev/null
expect 1 "checksum" -- "$llmrt" inspect "$tmp/flip.engine"
cli_finish
