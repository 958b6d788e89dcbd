#!/usr/bin/env bash
# `llmrt build` streams weights: from a 0.9 GB bf16 checkpoint (a reduced
# LLaMA shape, written by bench/build_memory.sh), the build's peak resident
# memory stays within 1.2x the engine's size plus 200 MiB for the process
# itself. Reading the whole checkpoint into memory (or keeping its pages
# mapped) would need about 2x.
# usage: cli_build_memory.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
[ -x /usr/bin/time ] || { echo "SKIP: no /usr/bin/time"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
out=$(CONFIG=tests/cli/build_memory_config.json bash bench/build_memory.sh "$llmrt" "$tmp/ckpt" 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAIL: build_memory.sh exited $rc"; exit 1; }
peak_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/ckpt/time.log")
bytes=$(stat -c %s "$tmp/ckpt/model.engine")
limit_kb=$(( bytes * 12 / 10 / 1024 + 200 * 1024 ))
echo "peak ${peak_kb} KiB, engine $(( bytes / 1024 )) KiB, limit ${limit_kb} KiB"
[ "$peak_kb" -le "$limit_kb" ] || { echo "FAIL: peak resident memory over 1.2x the engine + 200 MiB"; exit 1; }
echo "ok"
