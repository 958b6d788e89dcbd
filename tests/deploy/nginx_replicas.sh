#!/usr/bin/env bash
# Two `llmrt serve` replicas behind nginx with deploy/nginx/llmrt.conf (its
# upstream and listen addresses rewritten to free loopback ports): `nginx -t`
# accepts it; streamed and plain requests through nginx all succeed and are
# spread over both replicas; a replica draining on SIGTERM (503) or gone
# (connection refused) is stepped over. The Kubernetes and KServe manifests
# are checked against the binary: every flag they pass is one `llmrt serve`
# takes, and every probe path answers 200 on a live replica.
# usage: nginx_replicas.sh LLMRT SOURCE_DIR
set -u
llmrt=$1 src=$2
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null; rm -rf "$tmp"' EXIT
. "$src/tests/server/lib.sh"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "SKIP: nginx is not installed (scripts/install-deps.sh installs it)"; exit 77
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

engine=$tmp/demo.engine
"$llmrt" build --model "$src/models/demo" --output "$engine" --max-seq-len 512 --quiet || { echo "FAIL: build"; exit 1; }
start_server a --engine "$engine" --served-model-name demo --threads 1 --drain-timeout 60
start_server b --engine "$engine" --served-model-name demo --threads 1 --drain-timeout 60
port_a=${URL_a##*:} port_b=${URL_b##*:}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# the shipped site config, pointed at the replicas, inside a minimal main config
sed -e "s/127\.0\.0\.1:8001/127.0.0.1:$port_a/" -e "s/127\.0\.0\.1:8002/127.0.0.1:$port_b/" \
    -e "s/listen 8000;/listen 127.0.0.1:$port;/" "$src/deploy/nginx/llmrt.conf" >"$tmp/llmrt.conf"
grep -q "$port_a" "$tmp/llmrt.conf" && grep -q "$port_b" "$tmp/llmrt.conf" && grep -q "listen 127.0.0.1:$port" "$tmp/llmrt.conf" \
  && ok || bad "the shipped config's addresses were not where expected"
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx/logs/error.log;
events { worker_connections 256; }
http {
    access_log $tmp/nginx/logs/access.log;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $tmp/llmrt.conf;
}
CONF
"$nginx_bin" -t -p "$tmp/nginx" -c "$tmp/nginx.conf" >"$tmp/nginx_t.txt" 2>&1 && ok || { bad "nginx -t: $(cat "$tmp/nginx_t.txt")"; exit 1; }
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx.conf" || { bad "nginx did not start: $(cat "$tmp/nginx/logs/error.log")"; exit 1; }
U=http://127.0.0.1:$port
for _ in $(seq 50); do curl -sf "$U/health" >/dev/null && break; sleep 0.1; done

# 12 streamed and 12 plain requests at once through nginx
for i in $(seq 12); do
  curl -sN "$U/v1/completions" -d "{\"prompt\":\"Once upon a time $i\",\"max_tokens\":24,\"ignore_eos\":true,\"stream\":true}" >"$tmp/s$i.txt" &
  curl -s -o "$tmp/p$i.json" -w '%{http_code}' "$U/v1/completions" \
       -d "{\"prompt\":\"The king $i\",\"max_tokens\":24,\"ignore_eos\":true}" >"$tmp/p$i.code" &
done
wait $(jobs -p | grep -v -x -e "$PID_a" -e "$PID_b") 2>/dev/null
for i in $(seq 12); do
  python3 "$src/tests/server/sse_check.py" "$tmp/s$i.txt" && ok || bad "stream $i through nginx malformed"
  [ "$(cat "$tmp/p$i.code")" = 200 ] && jcheck "$tmp/p$i.json" 'j["usage"]["completion_tokens"] == 24' || bad "request $i: $(cat "$tmp/p$i.code")"
done
served() { curl -s "$1/metrics" | python3 -c 'import sys; print(int(sum(float(l.split()[-1]) for l in sys.stdin if l.startswith("llmrt:request_success_total"))))'; }
na=$(served "$URL_a") nb=$(served "$URL_b")
[ "$((na + nb))" -ge 24 ] && [ "$na" -ge 4 ] && [ "$nb" -ge 4 ] && ok || bad "requests not spread over the replicas: $na and $nb"

# replica a draining: a long request keeps it alive while new ones get 503
# there and go to b
curl -s -o /dev/null "$URL_a/v1/completions" -d '{"prompt":"long","max_tokens":400,"ignore_eos":true}' &
sleep 0.5
kill -TERM "$PID_a"
sleep 0.3
for i in $(seq 6); do
  code=$(curl -s -o "$tmp/d$i.json" -w '%{http_code}' "$U/v1/completions" -d '{"prompt":"after","max_tokens":4}')
  [ "$code" = 200 ] && ok || bad "request during a replica's drain: $code $(head -c 200 "$tmp/d$i.json")"
done
wait "$PID_a"; [ $? -eq 0 ] && ok || bad "replica a did not drain cleanly"
# replica a gone: connection refused, stepped over
for i in $(seq 4); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/completions" -d '{"prompt":"gone","max_tokens":4}')
  [ "$code" = 200 ] && ok || bad "request with a replica gone: $code"
done

# the manifests against the binary
python3 - "$src" "$URL_b" "$llmrt" <<'PY' && ok || bad "a manifest does not match llmrt serve"
import re, subprocess, sys, urllib.request
src, url, llmrt = sys.argv[1:]
helptext = subprocess.run([llmrt, "serve", "--help"], capture_output=True, text=True).stdout
flags = set(re.findall(r"--[a-z-]+", helptext))
for path in ("deploy/kubernetes/llmrt.yaml", "deploy/kserve/inferenceservice.yaml"):
    text = open(f"{src}/{path}").read()
    args = re.findall(r'args: \[(.*?)\]', text, re.S)
    assert args, path
    for a in args:
        used = re.findall(r'"(--[a-z-]+)"', a)
        assert used and set(used) <= flags, (path, set(used) - flags)
        port = re.search(r'"--port", "(\d+)"', a).group(1)
        assert re.search(r"containerPort: %s\b" % port, text), (path, port)
    for probe in re.findall(r"path: (/[a-z0-9/]+)", text):
        assert urllib.request.urlopen(url + probe).status == 200, (path, probe)
PY
if python3 -c 'import yaml' 2>/dev/null; then
  python3 - "$src" <<'PY' && ok || bad "a manifest is not valid YAML of the expected kinds"
import sys, yaml
src = sys.argv[1]
kinds = [d["kind"] for d in yaml.safe_load_all(open(f"{src}/deploy/kubernetes/llmrt.yaml"))]
assert kinds == ["Deployment", "Service"], kinds
isvc = yaml.safe_load(open(f"{src}/deploy/kserve/inferenceservice.yaml"))
assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
assert isvc["spec"]["predictor"]["containers"][0]["name"] == "kserve-container"
PY
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
