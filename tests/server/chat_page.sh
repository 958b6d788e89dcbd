#!/usr/bin/env bash
# The chat page (GET /) in headless Chromium against a live server
# (chat_page.mjs); the screenshot is kept as SCREENSHOT. Skipped (exit 77)
# without chromium or node (scripts/install-deps.sh installs both).
# usage: chat_page.sh LLMRT SOURCE_DIR SCREENSHOT.png
set -u
llmrt=$1 src=$2 screenshot=$3
for c in chromium node; do
  command -v $c >/dev/null || { echo "SKIP: $c is not installed (scripts/install-deps.sh installs it)"; exit 77; }
done
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$src/tests/server/lib.sh"
engine=$tmp/demo.engine
"$llmrt" build --model "$src/models/demo" --output "$engine" --max-seq-len 1024 --quiet || { echo "FAIL: build"; exit 1; }
start_server main --engine "$engine" --served-model-name demo --threads 2
curl -s "$URL_main/v1/chat/completions" \
  -d '{"model":"demo","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":64}' |
  python3 -c "import json,sys; sys.stdout.write(json.load(sys.stdin)['choices'][0]['message']['content'])" >"$tmp/expected.txt"
node --experimental-websocket --no-warnings "$src/tests/server/chat_page.mjs" "$URL_main" "$tmp/expected.txt" \
  "$screenshot" "$tmp/profile" && ok || bad "chat page in chromium"
grep -q '"POST /v1/chat/completions" 200' "$tmp/main.log" && ok || bad "the page did not call the API"
stop_server main
finish
