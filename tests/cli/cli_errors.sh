#!/usr/bin/env bash
# The llmrt CLI on bad input: every case must exit with the documented code
# (2 = bad command line, 1 = the operation failed) and a message that names
# what is wrong — never a crash (exit >= 128) or a silent success. Also the
# happy path: build → inspect → run (ids and --json, --dump-logits).
# usage: cli_errors.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
source "$(dirname "$0")/cli_lib.sh"

case_dir=$src/tests/golden/cases/llama_f32
model=$tmp/model
cp -r "$case_dir" "$model"

# --- happy path -------------------------------------------------------------
expect 0 "" -- "$llmrt" build --model "$model" --output "$tmp/good.engine" --max-seq-len 128 --quiet
expect 0 "LlamaForCausalLM" -- "$llmrt" inspect "$tmp/good.engine"
expect 0 "kernels" -- "$llmrt" inspect "$tmp/good.engine"
expect 0 '"finish_reason":"length"' -- "$llmrt" run --engine "$tmp/good.engine" --prompt-ids 5,6,7 --max-tokens 4 --json --ignore-eos
expect 0 "" -- "$llmrt" run --engine "$tmp/good.engine" --prompt-ids 5,6,7 --max-tokens 2 --dump-logits "$tmp/l.npy"
if python3 -c "import numpy" 2>/dev/null; then
  shape=$(python3 -c "import numpy; a = numpy.load('$tmp/l.npy'); print(a.shape, a.dtype)")
  [ "$shape" = "(3, 128) float32" ] && ok || bad "npy shape $shape"
fi
for c in build run inspect tokenize perplexity; do expect 0 "usage" -- "$llmrt" $c --help; done

# --- bad command lines: exit 2 ----------------------------------------------
expect 2 "unknown command" -- "$llmrt" frobnicate
expect 2 "unknown option '--bogus'" -- "$llmrt" build --bogus
expect 2 "--max-batch 'x'" -- "$llmrt" build --model "$model" --output "$tmp/x.engine" --max-batch x
expect 2 "--dtype 'fp7'" -- "$llmrt" build --model "$model" --output "$tmp/x.engine" --dtype fp7
expect 2 "required" -- "$llmrt" build --output "$tmp/x.engine"
expect 2 "--random-weights" -- "$llmrt" build --config "$model/config.json" --output "$tmp/x.engine"
expect 2 "--temperature" -- "$llmrt" run --engine "$tmp/good.engine" --prompt-ids 1 --temperature -1
expect 2 "--prompt-ids" -- "$llmrt" run --engine "$tmp/good.engine" --prompt-ids 1,x,3
expect 2 "exactly one of" -- "$llmrt" run --engine "$tmp/good.engine"
expect 2 "needs a value" -- "$llmrt" run --engine
expect 2 "--cpu-precision 'fp16': expected auto or fp32" -- "$llmrt" run --engine "$tmp/good.engine" --prompt-ids 1 --cpu-precision fp16
expect 2 "--cpu-precision 'x'" -- "$llmrt" bench --engine "$tmp/good.engine" --cpu-precision x
# a bf16 engine says at load which activations its linears take
"$llmrt" build --model "$src/tests/golden/cases/llama_bf16" --output "$tmp/bf16.engine" --max-seq-len 64 --quiet
expect 0 "bf16 linears compute with fp32 activations (cpu precision fp32)" -- \
  "$llmrt" run --engine "$tmp/bf16.engine" --prompt-ids 5,6 --max-tokens 2 --cpu-precision fp32 --verbose
expect 0 "bf16 linears compute with" -- "$llmrt" run --engine "$tmp/bf16.engine" --prompt-ids 5,6 --max-tokens 2 --verbose

# --- bad inputs: exit 1 with a message naming the culprit --------------------
expect 1 "outside the vocabulary" -- "$llmrt" run --engine "$tmp/good.engine" --prompt-ids 1,999
expect 1 "max_seq_len" -- "$llmrt" run --engine "$tmp/good.engine" --prompt-ids "$(seq -s, 1 129 | sed 's/[0-9]\+/5/g')"
expect 1 "no tokenizer" -- "$llmrt" run --engine "$tmp/good.engine" --prompt "hello"
expect 1 "cannot open" -- "$llmrt" run --engine "$tmp/missing.engine" --prompt-ids 1
expect 1 "config.json" -- "$llmrt" build --model "$tmp/nowhere" --output "$tmp/x.engine"

d=$(mutate arch 'c = json.load(open(cfg)); c["architectures"] = ["FooForCausalLM"]; json.dump(c, open(cfg, "w"))')
expect 1 "FooForCausalLM" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate heads 'c = json.load(open(cfg)); c["num_key_value_heads"] = 3; json.dump(c, open(cfg, "w"))')
expect 1 "num_key_value_heads" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate hidden_type 'c = json.load(open(cfg)); c["hidden_size"] = "64"; json.dump(c, open(cfg, "w"))')
expect 1 "hidden_size" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate badjson 'open(cfg, "w").write("{\"architectures\": [")')
expect 1 "config.json" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate shape 'c = json.load(open(cfg)); c["intermediate_size"] = 100; json.dump(c, open(cfg, "w"))')
expect 1 "mlp" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate truncated 'b = open(st, "rb").read(); open(st, "wb").write(b[: len(b) // 2])')
expect 1 "model.safetensors" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate header_len 'b = bytearray(open(st, "rb").read()); b[0:8] = struct.pack("<Q", 1 << 40); open(st, "wb").write(b)')
expect 1 "model.safetensors" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate dtype 'b = open(st, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = b[8:8 + n].replace(b"\"F32\"", b"\"Q32\"", 1); open(st, "wb").write(b[:8] + h + b[8 + n:])')
expect 1 "Q32" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate missing 'b = open(st, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); h["model.norm.weightX"] = h.pop("model.norm.weight"); hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8); open(st, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])')
expect 1 "model.norm.weight" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"
d=$(mutate offsets 'b = open(st, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); k = [x for x in h if x != "__metadata__"][0]; h[k]["data_offsets"] = [0, 10 ** 9]; hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8); open(st, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])')
expect 1 "data_offsets" -- "$llmrt" build --model "$d" --output "$tmp/x.engine"

# corrupt engines
head -c 5000 "$tmp/good.engine" > "$tmp/trunc.engine"
expect 1 "truncated" -- "$llmrt" run --engine "$tmp/trunc.engine" --prompt-ids 1
expect 1 "truncated" -- "$llmrt" inspect "$tmp/trunc.engine"
head -c 100000 /dev/urandom > "$tmp/random.engine"
expect 1 "not an llmrt engine" -- "$llmrt" run --engine "$tmp/random.engine" --prompt-ids 1
cp "$tmp/good.engine" "$tmp/flip.engine"
printf '\x55' | dd of="$tmp/flip.engine" bs=1 seek=$(( $(stat -c %s "$tmp/good.engine") - 7 )) conv=notrunc 2>/dev/null
expect 1 "checksum" -- "$llmrt" run --engine "$tmp/flip.engine" --prompt-ids 1

cli_finish
