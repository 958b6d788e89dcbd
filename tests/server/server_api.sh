#!/usr/bin/env bash
# llmrt serve with curl: every endpoint, streaming and not, every bad input
# of the serving issue (status code and error object asserted), auth, 429
# when full, a client disconnect freeing its KV blocks, metrics, the access
# log, and SIGTERM letting an in-flight request finish.
# usage: server_api.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
. "$src/tests/server/lib.sh"
sse() { python3 "$src/tests/server/sse_check.py" "$@"; }

engine=$tmp/demo.engine
"$llmrt" build --model "$src/models/demo" --output "$engine" --max-seq-len 1024 --quiet || { echo "FAIL: build"; exit 1; }
start_server main --engine "$engine" --served-model-name demo --max-body-bytes 65536 --threads 2 --drain-timeout 300
U=$URL_main
o=$tmp/out.json

# --- health, version, models ---------------------------------------------------
expect_code 200 "$o" GET "$U/health"
expect_code 200 "$o" GET "$U/version"
jcheck "$o" 'j["version"].count(".") == 2'
expect_code 200 "$o" GET "$U/v1/models"
jcheck "$o" 'j["object"] == "list" and j["data"][0]["id"] == "demo" and j["data"][0]["object"] == "model"'

# --- completions: text against `llmrt run` (greedy) -----------------------------
prompt="Once upon a time"
"$llmrt" run --engine "$engine" --prompt "$prompt" --max-tokens 12 --json >"$tmp/run.json" 2>/dev/null
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"model\":\"demo\",\"prompt\":\"$prompt\",\"max_tokens\":12,\"temperature\":0}"
python3 - "$o" "$tmp/run.json" <<'PY' && ok || bad "completion text differs from llmrt run"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
c = a["choices"][0]
assert a["object"] == "text_completion" and a["id"].startswith("cmpl-") and a["model"] == "demo"
assert c["text"] == b["text"] and c["finish_reason"] == b["finish_reason"] == "length", (c, b)
assert a["usage"]["completion_tokens"] == 12 and a["usage"]["prompt_tokens"] == len(b["prompt_ids"])
assert a["usage"]["total_tokens"] == a["usage"]["prompt_tokens"] + 12
PY
# a list of prompts, token ids, a list of id lists
expect_code 200 "$o" POST "$U/v1/completions" -d '{"prompt":["Once upon a time","The king"],"max_tokens":4}'
jcheck "$o" '[c["index"] for c in j["choices"]] == [0, 1] and j["usage"]["completion_tokens"] == 8'
ids=$(python3 -c "import json; print(json.dumps(json.load(open('$tmp/run.json'))['prompt_ids']))")
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"prompt\":$ids,\"max_tokens\":12}"
python3 - "$o" "$tmp/run.json" <<'PY' && ok || bad "token-id prompt text differs"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["choices"][0]["text"] == b["text"]
PY
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"prompt\":[$ids,[5,6,7]],\"max_tokens\":3}"
jcheck "$o" 'len(j["choices"]) == 2'
# n, seed (same seed, same text), stop, echo, logprobs, penalties, vLLM extras, unknown fields
expect_code 200 "$o" POST "$U/v1/completions" -d '{"prompt":"The","max_tokens":8,"n":3,"temperature":1.0,"seed":7,"top_p":0.9,"top_k":40,"min_p":0.01,"repetition_penalty":1.1,"presence_penalty":0.5,"frequency_penalty":0.5,"user":"u1","some_future_field":{"x":1}}'
jcheck "$o" 'len(j["choices"]) == 3 and [c["index"] for c in j["choices"]] == [0, 1, 2]'
cp "$o" "$tmp/seed1.json"
expect_code 200 "$o" POST "$U/v1/completions" -d '{"prompt":"The","max_tokens":8,"n":3,"temperature":1.0,"seed":7,"top_p":0.9,"top_k":40,"min_p":0.01,"repetition_penalty":1.1,"presence_penalty":0.5,"frequency_penalty":0.5}'
python3 - "$o" "$tmp/seed1.json" <<'PY' && ok || bad "the same seed gave different text"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
PY
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"stop\":[\" man\"]}"
jcheck "$o" 'j["choices"][0]["finish_reason"] == "stop" and " man" not in j["choices"][0]["text"]'
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":3,\"echo\":true}"
jcheck "$o" 'j["choices"][0]["text"].startswith("Once upon a time")'
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":4,\"logprobs\":2}"
jcheck "$o" 'len(j["choices"][0]["logprobs"]["tokens"]) == 4 and len(j["choices"][0]["logprobs"]["token_logprobs"]) == 4 and all(len(t) == 2 for t in j["choices"][0]["logprobs"]["top_logprobs"]) and j["choices"][0]["logprobs"]["text_offset"][0] == 0'
cp "$o" "$tmp/lp.json"
# echo with logprobs scores the prompt too (lm-evaluation-harness's loglikelihood)
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":4,\"logprobs\":2,\"echo\":true}"
cp "$o" "$tmp/echo.json"
python3 - "$o" "$tmp/lp.json" <<'PY' && ok || bad "echo with logprobs: prompt scores missing or generated ones differ"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
la, lb = a["choices"][0]["logprobs"], b["choices"][0]["logprobs"]
p = a["usage"]["prompt_tokens"]
assert a["choices"][0]["text"].startswith("Once upon a time")
assert len(la["tokens"]) == len(la["token_logprobs"]) == len(la["top_logprobs"]) == p + 4
assert la["token_logprobs"][0] is None and la["top_logprobs"][0] is None
assert all(x <= 0 for x in la["token_logprobs"][1:]) and all(len(t) == 2 for t in la["top_logprobs"][1:])
assert la["tokens"][p:] == lb["tokens"]
assert all(abs(x - y) < 1e-5 for x, y in zip(la["token_logprobs"][p:], lb["token_logprobs"]))
PY
expect_code 200 "$o" POST "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":4,\"ignore_eos\":true,\"max_completion_tokens\":2}"
jcheck "$o" 'j["usage"]["completion_tokens"] == 4'

# --- completions, streaming ------------------------------------------------------
curl -sN "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" >"$tmp/s1.txt"
sse "$tmp/s1.txt" --usage --text-out "$tmp/s1.text" && ok || bad "completion stream with usage malformed"
python3 -c "import json,sys; sys.exit(open('$tmp/s1.text').read() != json.load(open('$tmp/run.json'))['text'])" && ok || bad "streamed text differs from llmrt run"
curl -sN "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":5,\"stream\":true,\"stream_options\":{}}" >"$tmp/s2.txt"
sse "$tmp/s2.txt" && ok || bad "completion stream with empty stream_options malformed (or has usage)"
curl -sN "$U/v1/completions" -d '{"prompt":["a","b"],"n":2,"temperature":0.7,"max_tokens":5,"stream":true,"logprobs":1}' >"$tmp/s3.txt"
sse "$tmp/s3.txt" --choices 4 && ok || bad "stream of 4 choices malformed"
grep -q '"token_logprobs"' "$tmp/s3.txt" && ok || bad "streamed logprobs missing"
curl -sN "$U/v1/completions" -d "{\"prompt\":\"$prompt\",\"max_tokens\":3,\"stream\":true,\"echo\":true,\"logprobs\":1}" >"$tmp/s4.txt"
sse "$tmp/s4.txt" && ok || bad "stream with echo and logprobs malformed"
python3 - "$tmp/s4.txt" "$tmp/echo.json" <<'PY' && ok || bad "streamed echo does not lead with the scored prompt"
import json, sys
first = json.loads(open(sys.argv[1]).read().split("\n\n")[0][6:])["choices"][0]
echo = json.load(open(sys.argv[2]))["choices"][0]["logprobs"]
assert first["text"] == "Once upon a time"
p = len(echo["tokens"]) - 4
assert first["logprobs"]["tokens"] == echo["tokens"][:p] and first["logprobs"]["token_logprobs"][0] is None
PY

# --- chat ------------------------------------------------------------------------
msgs='[{"role":"system","content":"You are terse."},{"role":"user","content":"Tell me a story."}]'
expect_code 200 "$o" POST "$U/v1/chat/completions" -d "{\"model\":\"demo\",\"messages\":$msgs,\"max_tokens\":10,\"logprobs\":true,\"top_logprobs\":2}"
jcheck "$o" 'j["object"] == "chat.completion" and j["id"].startswith("chatcmpl-") and j["choices"][0]["message"]["role"] == "assistant" and isinstance(j["choices"][0]["message"]["content"], str) and j["choices"][0]["finish_reason"] in ("stop", "length") and len(j["choices"][0]["logprobs"]["content"]) == j["usage"]["completion_tokens"] and len(j["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 2'
cp "$o" "$tmp/chat.json"
expect_code 200 "$o" POST "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_completion_tokens":3}'
jcheck "$o" 'j["usage"]["completion_tokens"] <= 3'
curl -sN "$U/v1/chat/completions" -d "{\"messages\":$msgs,\"max_tokens\":10,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" >"$tmp/c1.txt"
sse "$tmp/c1.txt" --chat --usage --text-out "$tmp/c1.text" && ok || bad "chat stream malformed"
python3 -c "import json,sys; sys.exit(open('$tmp/c1.text').read() != json.load(open('$tmp/chat.json'))['choices'][0]['message']['content'])" && ok || bad "streamed chat text differs from non-streamed"
head -1 "$tmp/c1.txt" | grep -q '"delta":{"role":"assistant"' && ok || bad "the first chat chunk has no role"

# --- bad input: 4xx with the error object, and the server keeps serving ----------
C="$U/v1/completions" H="$U/v1/chat/completions"
expect_error 400 "$o" POST "$C" -d '{"prompt": "x",'
expect_error 400 "$o" POST "$C" -d '[1,2]'
expect_error 400 "$o" POST "$C" -d '{"max_tokens":3}'
expect_error 400 "$o" POST "$C" -d '{"prompt":7}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","max_tokens":"3"}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","temperature":"hot"}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","top_p":0}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","n":0}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","stream":"yes"}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","stop":[1]}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","logprobs":99}'
expect_error 404 "$o" POST "$C" -d '{"prompt":"x","model":"gpt-4"}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","max_tokens":0}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","max_tokens":-5}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","max_tokens":5000}'
python3 -c "print('{\"prompt\":\"' + 'word ' * 3000 + '\"}')" >"$tmp/long.json"
expect_error 400 "$o" POST "$C" --data-binary @"$tmp/long.json"
printf '{"prompt":"bad \xff\xfe bytes"}' >"$tmp/utf8.json"
expect_error 400 "$o" POST "$C" --data-binary @"$tmp/utf8.json"
expect_error 400 "$o" POST "$C" -d '{"prompt":"lone \ud800 surrogate"}'
expect_error 400 "$o" POST "$C" -d '{"prompt":[1,2,4096]}'
expect_error 400 "$o" POST "$C" -d '{"prompt":[1,-2]}'
expect_error 400 "$o" POST "$C" -d '{"prompt":[]}'
expect_error 400 "$o" POST "$C" -d '{"prompt":"x","bad_words":[1]}'
head -c 70000 /dev/zero | tr '\0' 'a' >"$tmp/big.txt"
expect_error 413 "$o" POST "$C" --data-binary @"$tmp/big.txt"
expect_error 413 "$o" POST "$C" -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big.txt"
expect_error 400 "$o" POST "$H" -d '{"messages":[]}'
expect_error 400 "$o" POST "$H" -d '{"messages":"hi"}'
expect_error 400 "$o" POST "$H" -d '{"messages":[{"content":"no role"}]}'
expect_error 400 "$o" POST "$H" -d '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}'
expect_error 400 "$o" POST "$H" -d '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}'
expect_error 400 "$o" POST "$H" -d '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{}}}'
expect_error 400 "$o" POST "$H" -d '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}'
expect_error 400 "$o" POST "$H" -d '{"messages":[{"role":"user","content":"x"}],"logprobs":3}'
expect_error 400 "$o" POST "$H" -d '{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}'
expect_error 404 "$o" GET "$U/v1/nothing"
expect_error 405 "$o" GET "$C"
# a decoder engine has no embeddings
expect_error 400 "$o" POST "$U/v1/embeddings" -d '{"input":"x"}'
jcheck "$o" '"decoder" in j["error"]["message"]' "/v1/embeddings on a decoder names why"
expect_code 200 "$o" POST "$H" -d '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"},"tools":[],"max_tokens":2}'
expect_code 200 "$o" POST "$C" -d "{\"prompt\":\"$prompt\",\"max_tokens\":12}"
python3 -c "import json,sys; sys.exit(json.load(open('$o'))['choices'][0]['text'] != json.load(open('$tmp/run.json'))['text'])" && ok || bad "after bad input the server answers differently"

# --- Triton / KServe v2 ----------------------------------------------------------
expect_code 200 "$o" GET "$U/v2/health/live"
expect_code 200 "$o" GET "$U/v2/health/ready"
expect_code 200 "$o" GET "$U/v2/models/demo/ready"
expect_code 404 "$o" GET "$U/v2/models/other/ready"
jcheck "$o" 'isinstance(j["error"], str)'
expect_code 200 "$o" GET "$U/v2/models/demo"
jcheck "$o" 'j["name"] == "demo" and [t["name"] for t in j["inputs"]] == ["text_input", "max_tokens"] and j["outputs"][0]["datatype"] == "BYTES"'
expect_code 200 "$o" POST "$U/v2/models/demo/generate" -d "{\"text_input\":\"$prompt\",\"max_tokens\":12,\"temperature\":0}"
python3 -c "import json,sys; a=json.load(open('$o')); sys.exit(not (a['model_name']=='demo' and a['text_output']==json.load(open('$tmp/run.json'))['text']))" && ok || bad "generate text_output differs from llmrt run"
expect_code 200 "$o" POST "$U/v2/models/demo/generate" -d "{\"text_input\":\"$prompt\",\"parameters\":{\"max_tokens\":12,\"stop_words\":[\" man\"]}}"
jcheck "$o" '" man" not in j["text_output"] and j["finish_reason"] == "stop"'
curl -sN "$U/v2/models/demo/generate_stream" -d "{\"text_input\":\"$prompt\",\"max_tokens\":12}" >"$tmp/k1.txt"
python3 - "$tmp/k1.txt" "$tmp/run.json" <<'PY' && ok || bad "generate_stream malformed or text differs"
import json, sys
raw = open(sys.argv[1]).read()
assert raw.endswith("\n\n")
events = [json.loads(e[6:]) for e in raw[:-2].split("\n\n")]
assert all(e["model_name"] == "demo" for e in events)
assert "".join(e["text_output"] for e in events) == json.load(open(sys.argv[2]))["text"]
assert events[-1]["finish_reason"] == "length"
PY
expect_code 200 "$o" POST "$U/v2/models/demo/infer" -d "{\"id\":\"r1\",\"inputs\":[{\"name\":\"text_input\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"$prompt\"]},{\"name\":\"max_tokens\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[12]}]}"
python3 -c "import json,sys; a=json.load(open('$o')); o=a['outputs'][0]; sys.exit(not (a['id']=='r1' and o['name']=='text_output' and o['datatype']=='BYTES' and o['data'][0]==json.load(open('$tmp/run.json'))['text']))" && ok || bad "infer output differs"
expect_code 400 "$o" POST "$U/v2/models/demo/generate" -d '{"max_tokens":3}'
jcheck "$o" 'isinstance(j["error"], str)'
# bad_words: the greedy continuation's first word, banned, is not generated
expect_code 200 "$o" POST "$U/v2/models/demo/generate" -d "{\"text_input\":\"$prompt\",\"max_tokens\":12,\"bad_words\":[\"$(python3 -c "import json,re; print(re.match(r'\s*\S+', json.load(open('$tmp/run.json'))['text']).group(0))")\"]}"
python3 - "$o" "$tmp/run.json" <<'PY' && ok || bad "bad_words did not change the greedy text"
import json, re, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
first = re.match(r"\s*\S+", b["text"]).group(0)
assert not a["text_output"].startswith(first), (a, first)
PY
expect_code 400 "$o" POST "$U/v2/models/demo/generate" -d '{"text_input":"x","bad_words":{"y":1}}'
expect_code 400 "$o" POST "$U/v2/models/demo/generate" -d '{"text_input":"x","max_tokens":0}'
expect_code 400 "$o" POST "$U/v2/models/demo/infer" -d '{"inputs":[{"name":"text_input","datatype":"INT32","shape":[1],"data":[1]}]}'
expect_code 400 "$o" POST "$U/v2/models/demo/infer" -d '{"inputs":[{"name":"other","datatype":"BYTES","shape":[1],"data":["x"]}]}'
expect_code 400 "$o" POST "$U/v2/models/demo/infer" -d '{"inputs":{}}'
expect_code 404 "$o" POST "$U/v2/models/other/generate" -d '{"text_input":"x"}'
expect_code 400 "$o" POST "$U/v2/models/demo/generate" -d 'not json'

# --- the chat page ------------------------------------------------------------------
expect_code 200 "$o" GET "$U/"
grep -q '/v1/chat/completions' "$o" && ! grep -qE '(src|href)="https?://' "$o" && ok || bad "the chat page is not self-contained"

# --- a client that leaves mid-stream frees its KV blocks --------------------------
metric() { curl -s "$U/metrics" | awk -v n="llmrt:$1{" 'index($0, n) == 1 {print $2}' | head -1; }
# the streaming client reads its first events and hangs up (curl dies writing to a closed pipe)
curl -sN "$U/v1/completions" -d '{"prompt":"x","max_tokens":1000,"ignore_eos":true,"stream":true}' | head -c 300 >/dev/null
timeout 0.5 curl -s "$U/v1/completions" -d '{"prompt":["y","z","w","v"],"max_tokens":1000,"ignore_eos":true}' >/dev/null
freed=0
for _ in $(seq 1 50); do
  [ "$(metric kv_cache_used_blocks)" = "0" ] && [ "$(metric num_requests_running)" = "0" ] && { freed=1; break; }
  sleep 0.1
done
[ "$freed" = 1 ] && ok || bad "KV blocks not freed after the clients left: $(metric kv_cache_used_blocks)"
curl -s "$U/metrics" | grep -q 'llmrt:request_success_total{model_name="demo",finished_reason="cancelled"} [1-9]' && ok || bad "no cancelled request counted"

# --- metrics and the access log -----------------------------------------------------
curl -s "$U/metrics" >"$tmp/metrics.txt"
for name in num_requests_running num_requests_waiting kv_cache_usage_perc prefix_cache_hit_rate \
            num_preemptions_total prompt_tokens_total generation_tokens_total request_success_total \
            http_requests_total time_to_first_token_seconds_bucket time_per_output_token_seconds_count \
            e2e_request_latency_seconds_sum; do
  grep -q "^llmrt:$name{model_name=\"demo\"" "$tmp/metrics.txt" && ok || bad "metric llmrt:$name missing"
done
grep -q '^llmrt:http_requests_total{model_name="demo",status="400"} [1-9]' "$tmp/metrics.txt" && ok || bad "400s not counted"
grep -q '^# TYPE llmrt:e2e_request_latency_seconds histogram' "$tmp/metrics.txt" && ok || bad "histogram TYPE line"
grep -qE '"POST /v1/completions" 200 [0-9]+ [0-9.]+ms' "$tmp/main.log" && ok || bad "no access-log line"
grep -qE '"POST /v1/completions" 413 ' "$tmp/main.log" && ok || bad "no access-log line for a 413"

# --- llmrt bench --url: the benchmark over the streaming API -----------------------
if "$llmrt" bench --url "$U" --input-len 8 --output-len 4 --concurrency 2 --requests 4 --json >"$tmp/bench.json" 2>"$tmp/bench.err"; then
  jcheck "$tmp/bench.json" 'j["requests"] == 4 and j["failed"] == 0 and j["output_tokens"] == 16 and j["input_tokens"] == 32 and j["ttft_ms"]["p50"] > 0'
  # Poisson arrivals at 8 requests/s: 6 requests take about 5/8 s of arrivals
  "$llmrt" bench --url "$U" --input-len 8 --output-len 4 --rate 8 --requests 6 --warmup 0 --json >"$tmp/bench.json" 2>"$tmp/bench.err"
  jcheck "$tmp/bench.json" 'j["requests"] == 6 and j["failed"] == 0 and j["rate"] == 8 and j["output_tokens"] == 24 and j["duration_s"] > 0.1'
else
  bad "bench --url failed: $(cat "$tmp/bench.err")"
fi

# --- SIGTERM: the request in flight completes, then exit 0 -----------------------
curl -s "$U/v1/completions" -d '{"prompt":"x","max_tokens":100,"ignore_eos":true}' >"$tmp/drain.json" &
curl_pid=$!
curl -sN "$U/v1/completions" -d '{"prompt":"y","max_tokens":100,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}' >"$tmp/drain.txt" &
stream_pid=$!
for _ in $(seq 1 100); do [ "$(metric num_requests_running)" = "2" ] && break; sleep 0.05; done
stop_server main
wait $curl_pid $stream_pid
sse "$tmp/drain.txt" --usage && grep -q '"completion_tokens":100,' "$tmp/drain.txt" && ok ||
  bad "stream in flight at SIGTERM did not complete: $(tail -c 300 "$tmp/drain.txt")"
jcheck "$tmp/drain.json" 'j["usage"]["completion_tokens"] == 100 and j["choices"][0]["finish_reason"] == "length"' "in-flight request at SIGTERM did not complete: $(tail -c 300 "$tmp/drain.json")"
grep -q 'draining' "$tmp/main.log" && ok || bad "no drain message"

# --- auth ----------------------------------------------------------------------------
# a byte budget sizes the pool: 32 MiB of the demo model's 128 KiB blocks
start_server auth --engine "$engine" --api-key sekrit --threads 1 --kv-cache-memory 33554432
grep -q 'KV cache: 256 blocks of 16 tokens (32.0 MiB' "$tmp/auth.log" && ok || bad "--kv-cache-memory 33554432: $(head -1 "$tmp/auth.log")"
expect_error 401 "$o" GET "$URL_auth/v1/models"
expect_error 401 "$o" POST "$URL_auth/v1/completions" -H 'Authorization: Bearer wrong' -d '{"prompt":"x","max_tokens":1}'
expect_code 200 "$o" POST "$URL_auth/v1/completions" -H 'Authorization: Bearer sekrit' -d '{"prompt":"x","max_tokens":1}'
expect_code 200 "$o" GET "$URL_auth/health"
expect_code 200 "$o" GET "$URL_auth/v2/health/ready"
expect_code 401 "$o" GET "$URL_auth/metrics"
stop_server auth

# --- generation_config.json supplies the defaults ------------------------------
cp -r "$src/models/demo" "$tmp/gen"
echo '{"bos_token_id": 0, "eos_token_id": 0, "temperature": 0.9, "top_p": 0.95, "max_new_tokens": 7}' >"$tmp/gen/generation_config.json"
"$llmrt" build --model "$tmp/gen" --output "$tmp/gen.engine" --max-seq-len 1024 --quiet || bad "build with a generation_config"
start_server gen --engine "$tmp/gen.engine" --threads 1
"$llmrt" run --engine "$tmp/gen.engine" --prompt "$prompt" --temperature 0.9 --top-p 0.95 --seed 3 --max-tokens 7 \
  --ignore-eos --json >"$tmp/gen_run.json" 2>/dev/null
expect_code 200 "$o" POST "$URL_gen/v1/completions" -d "{\"prompt\":\"$prompt\",\"seed\":3,\"ignore_eos\":true}"
python3 - "$o" "$tmp/gen_run.json" <<'PY' && ok || bad "generation_config defaults not applied"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["usage"]["completion_tokens"] == 7 and a["choices"][0]["text"] == b["text"], (a, b)
PY
expect_code 200 "$o" POST "$URL_gen/v1/completions" -d "{\"prompt\":\"$prompt\",\"temperature\":0,\"max_tokens\":12}"
python3 -c "import json,sys; sys.exit(json.load(open('$o'))['choices'][0]['text'] != json.load(open('$tmp/run.json'))['text'])" && ok ||
  bad "an explicit temperature does not override generation_config"
stop_server gen

# --- an encoder engine: /v1/embeddings, against llmrt embed -------------------------
cat >"$tmp/bert.json" <<'JSON'
{"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 100, "hidden_size": 32,
 "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu",
 "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12}
JSON
"$llmrt" build --config "$tmp/bert.json" --random-weights --output "$tmp/bert.engine" --quiet || bad "build bert"
start_server bert --engine "$tmp/bert.engine" --served-model-name bert --threads 1
E="$URL_bert/v1/embeddings"
"$llmrt" embed --engine "$tmp/bert.engine" --ids 2,7,9,3 --json >"$tmp/cls.json" && ok || bad "llmrt embed"
"$llmrt" embed --engine "$tmp/bert.engine" --ids 5,6 --pooling mean --json >"$tmp/mean.json" && ok || bad "llmrt embed mean"
expect_code 200 "$o" POST "$E" -d '{"model":"bert","input":[2,7,9,3]}'
python3 - "$o" "$tmp/cls.json" <<'PY' && ok || bad "/v1/embeddings differs from llmrt embed"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["object"] == "list" and a["model"] == "bert" and len(a["data"]) == 1, a
d = a["data"][0]
assert d["object"] == "embedding" and d["index"] == 0 and len(d["embedding"]) == 32
assert max(abs(x - y) for x, y in zip(d["embedding"], b["embedding"])) < 1e-6
assert a["usage"]["prompt_tokens"] == 4 and a["usage"]["total_tokens"] == 4
PY
expect_code 200 "$o" POST "$E" -d '{"input":[[2,7,9,3],[5,6]],"pooling":"mean"}'
python3 - "$o" "$tmp/mean.json" <<'PY' && ok || bad "/v1/embeddings list of id lists with mean pooling"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert [d["index"] for d in a["data"]] == [0, 1] and a["usage"]["prompt_tokens"] == 6
assert max(abs(x - y) for x, y in zip(a["data"][1]["embedding"], b["embedding"])) < 1e-6
PY
# 40 inputs share steps (the engine's max_batch is 16): each as if alone
python3 - "$E" <<'PY' && ok || bad "batched /v1/embeddings differ from single inputs"
import json, sys, urllib.request
def post(body):
    r = urllib.request.Request(sys.argv[1], json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r))
inputs = [[(7 * i + k) % 97 + 2 for k in range(1 + i % 37)] for i in range(40)]
for pooling in ("cls", "mean"):
    batch = post({"input": inputs, "pooling": pooling})
    assert [d["index"] for d in batch["data"]] == list(range(40))
    assert batch["usage"]["prompt_tokens"] == sum(map(len, inputs))
    for i in (0, 7, 16, 23, 39):
        alone = post({"input": inputs[i], "pooling": pooling})["data"][0]["embedding"]
        assert max(abs(a - b) for a, b in zip(alone, batch["data"][i]["embedding"])) < 1e-5, (pooling, i)
PY
expect_error 400 "$o" POST "$URL_bert/v1/completions" -d '{"prompt":[1,2],"max_tokens":2}'
jcheck "$o" '"encoder" in j["error"]["message"]' "completions on an encoder names why"
expect_error 400 "$o" POST "$URL_bert/v1/chat/completions" -d '{"messages":[{"role":"user","content":"x"}]}'
expect_error 400 "$o" POST "$E" -d '{"input":"text"}'   # no tokenizer in a random-weights engine
expect_error 400 "$o" POST "$E" -d '{"input":[]}'
expect_error 400 "$o" POST "$E" -d '{"input":[[1,2],[-1]]}'
expect_error 400 "$o" POST "$E" -d '{"input":[1,200]}'   # outside the vocabulary
expect_error 400 "$o" POST "$E" -d "{\"input\":[$(seq -s, 1 70)]}"   # past the 64 positions
expect_error 400 "$o" POST "$E" -d '{"input":[1],"pooling":"max"}'
expect_error 400 "$o" POST "$E" -d '{"input":[1],"encoding_format":"base64"}'
expect_error 404 "$o" POST "$E" -d '{"input":[1],"model":"gpt-4"}'
expect_error 405 "$o" GET "$E"
expect_code 200 "$o" GET "$URL_bert/health"
stop_server bert

# --- full: 429 with Retry-After, never an unbounded queue ---------------------------
start_server full --engine "$engine" --max-concurrent 1 --max-queue 1 --threads 1 --kv-cache-memory 8388608
grep -q 'KV cache: 64 blocks of 16 tokens (8.0 MiB' "$tmp/full.log" && ok || bad "--kv-cache-memory 8388608: $(head -1 "$tmp/full.log")"
U=$URL_full
curl -s "$URL_full/v1/completions" -d '{"prompt":"x","max_tokens":1000,"ignore_eos":true}' >/dev/null &
full_a=$!
for _ in $(seq 1 100); do [ "$(metric num_requests_running)" = "1" ] && break; sleep 0.02; done
sleep 0.2 # the first request is past the runtime's own queue: "waiting" below is the second
curl -s "$URL_full/v1/completions" -d '{"prompt":"y","max_tokens":1000,"ignore_eos":true}' >/dev/null &
full_b=$!
for _ in $(seq 1 100); do [ "$(metric num_requests_waiting)" = "1" ] && break; sleep 0.02; done
code=$(curl -s -D "$tmp/h.txt" -o "$o" -w '%{http_code}' "$URL_full/v1/completions" -d '{"prompt":"z","max_tokens":2}')
[ "$code" = 429 ] && grep -qi '^retry-after: [0-9]' "$tmp/h.txt" && ok || bad "full server answered $code: $(cat "$tmp/h.txt")"
jcheck "$o" 'j["error"]["code"] == 429 and j["error"]["type"] == "rate_limit_error"'
expect_code 200 "$o" GET "$URL_full/health"
kill $full_a $full_b 2>/dev/null  # the clients leave: their requests are cancelled
stop_server full

finish
