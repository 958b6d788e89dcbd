#!/usr/bin/env bash
# Malformed ONNX files (make_graphs.py's bad_*.onnx: truncated, garbage, a
# tensor's bytes short of its shape, an int weight, a cycle, a missing
# initializer, shapes that disagree, unsupported ops, a fixed sequence length,
# external data outside the model's folder, past its file or missing, an old
# opset) must each fail the build with exit status 1 and the error
# malformed.txt names.
# usage: onnx_malformed.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
. "$src/tests/onnx/lib.sh"
py=$(onnx_python) || { echo "SKIP: python3-onnx is not installed (scripts/install-deps.sh installs it)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$src/tests/onnx/make_graphs.py" "$tmp" || { echo "FAIL: make_graphs.py"; exit 1; }
fails=0 count=0
while IFS=$'\t' read -r name expect; do
  count=$((count + 1))
  msg=$("$llmrt" build --onnx "$tmp/$name.onnx" --output "$tmp/out.engine" --quiet 2>&1)
  rc=$?
  if [ "$rc" -ne 1 ] || [[ "$msg" != *"$expect"* ]] || [ -e "$tmp/out.engine" ]; then
    echo "FAIL: $name: exit $rc, expected an error with '$expect', got: $msg"
    fails=$((fails + 1))
  else
    echo "ok: $name: $msg"
  fi
done <"$tmp/malformed.txt"
[ "$count" -ge 13 ] || { echo "FAIL: only $count malformed cases"; exit 1; }
[ "$fails" -eq 0 ] && echo "PASS: $count malformed files, each a clear error" && exit 0
exit 1
