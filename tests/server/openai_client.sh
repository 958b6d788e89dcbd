#!/usr/bin/env bash
# The official openai npm client against llmrt serve (openai_client.mjs),
# with the expected texts from `llmrt run` on the same engine and settings.
# The package is installed with npm into this test's folder in the build
# tree (once). Without node and npm the test is skipped (exit 77).
# usage: openai_client.sh LLMRT SOURCE_DIR CLIENT_DIR
set -u
llmrt=$1 src=$2 client_dir=$3
openai_version=6.30.1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node and npm are not installed (scripts/install-deps.sh installs them)"; exit 77
fi
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$src/tests/server/lib.sh"

if [ ! -f "$client_dir/node_modules/openai/package.json" ] ||
   ! grep -q "\"version\": \"$openai_version\"" "$client_dir/node_modules/openai/package.json"; then
  mkdir -p "$client_dir"
  npm install --no-audit --no-fund --silent --prefix "$client_dir" "openai@$openai_version" ||
    { echo "FAIL: npm could not install openai@$openai_version"; exit 1; }
fi
cp "$src/tests/server/openai_client.mjs" "$client_dir/"

engine=$tmp/demo.engine
"$llmrt" build --model "$src/models/demo" --output "$engine" --max-seq-len 1024 --quiet || { echo "FAIL: build"; exit 1; }
prompt="Once upon a time"
user="Tell me a story."
text() { "$llmrt" run --engine "$engine" --max-tokens 12 --json "$@" 2>/dev/null |
         python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['text']))"; }
cat >"$tmp/expect.json" <<JSON
{"prompt": "$prompt", "chat_user": "$user",
 "completion_greedy": $(text --prompt "$prompt"),
 "completion_seeded": $(text --prompt "$prompt" --temperature 0.8 --seed 42),
 "chat": $(text --prompt "$(printf 'user: %s\nassistant:' "$user")")}
JSON

start_server main --engine "$engine" --served-model-name demo --threads 2
node "$client_dir/openai_client.mjs" "$URL_main/v1" "$tmp/expect.json" && ok || bad "openai client checks"
stop_server main
finish
