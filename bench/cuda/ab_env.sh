#!/usr/bin/env bash
# A/B of environment switches (or binaries) on batch-1 decode, rounds
# alternating in one run (machines differ by a few percent; compare within
# a run only): decode ms/token (p50 of llmrt bench's time per output token)
# per value.
#
# usage: bench/cuda/ab_env.sh LLMRT_BINARY ENGINE VAR "VALUES" [ROUNDS] [INPUT_LENS]
#   one switch: each value of VALUES is VAR's
#     bench/cuda/ab_env.sh build-gpu/llmrt E LLMRT_CUDA_FUSE_ROPE "0 1" 3 "128 2048"
#   VAR "-": each value (VALUES split at spaces) is a comma-separated list of
#   KEY=VALUE settings; the key LLMRT names the binary to run for it
#   (default LLMRT_BINARY)
#     bench/cuda/ab_env.sh build-gpu/llmrt E - "LLMRT_CUDA_PDL=1 LLMRT_CUDA_PDL=0,LLMRT_CUDA_GRAPHS=0" 2 128
#     bench/cuda/ab_env.sh - E - "LLMRT=old/llmrt LLMRT=new/llmrt" 3 "128 2048"
set -uo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 LLMRT_BINARY ENGINE VAR \"VALUES\" [ROUNDS] [INPUT_LENS]" >&2
  exit 2
fi
llmrt=$1 engine=$2 var=$3 values=$4 rounds=${5:-3} lens=${6:-128 2048}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# runs llmrt bench for one value; prints the p50 time per output token
run_value() {
  local value=$1 len=$2 bin=$llmrt
  local -a env_args=()
  if [ "$var" = - ]; then
    local setting
    IFS=, read -ra settings <<< "$value"
    for setting in "${settings[@]}"; do
      case "$setting" in
        LLMRT=*) bin=${setting#LLMRT=} ;;
        *=*) env_args+=("$setting") ;;
        *) echo "$0: '$setting' is not KEY=VALUE" >&2; return 1 ;;
      esac
    done
  else
    env_args=("$var=$value")
  fi
  env "${env_args[@]}" "$bin" bench --engine "$engine" --input-len "$len" --output-len 128 --concurrency 1 \
    --requests 4 --json | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["tpot_ms"]["p50"])' 2>/dev/null
}

for len in $lens; do
  i=0
  for v in $values; do
    if [ "$var" = - ]; then printf '%s ctx %s:' "$v" "$len"; else printf '%s=%s ctx %s:' "$var" "$v" "$len"; fi \
      > "$tmp/$i"
    i=$((i + 1))
  done
  for r in $(seq "$rounds"); do
    i=0
    for v in $values; do
      t=$(run_value "$v" "$len") || t=failed
      printf ' %s' "$t" >> "$tmp/$i"
      i=$((i + 1))
    done
  done
  i=0
  for v in $values; do cat "$tmp/$i"; echo; i=$((i + 1)); done
done
