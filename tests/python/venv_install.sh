#!/usr/bin/env bash
# `pip install ./python` into a fresh virtual environment, offline, then the
# example runs from outside the source tree against the built libllmrt.so.
# Usage: venv_install.sh PYTHON SOURCE_DIR LIBLLMRT WORK_DIR
set -euo pipefail
python=$1 src=$2 lib=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
# Debian's venv has setuptools but not wheel; the system's (python3-wheel) is seen
# through --system-site-packages, and --no-build-isolation keeps pip offline.
"$python" -m venv --system-site-packages "$work/venv"
# From a copy: setuptools writes build/ and *.egg-info next to the sources.
cp -r "$src/python" "$work/package"
"$work/venv/bin/pip" install --quiet --no-index --no-cache-dir --no-build-isolation "$work/package"
cd "$work"
where=$("$work/venv/bin/python" -c 'import llmrt, os; print(os.path.dirname(llmrt.__file__))')
case "$where" in "$work/venv/"*) ;; *) echo "llmrt imported from $where, not the venv" >&2; exit 1 ;; esac
out=$(LLMRT_LIBRARY="$lib" "$work/venv/bin/python" "$src/python/examples/quickstart.py")
echo "$out"
[ "$(echo "$out" | grep -c -- "-> '.*' (length)")" -eq 2 ] || { echo "unexpected example output" >&2; exit 1; }
[ -n "$(echo "$out" | tail -1)" ] || { echo "no streamed text" >&2; exit 1; }
echo "venv_install: ok"
