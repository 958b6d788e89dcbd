# Shared helpers of the server tests: start `llmrt serve` on a free loopback
# port (--port 0; the port is read from its start-up line), call it with
# curl, and assert on status codes and JSON with python3.
# Needs: $llmrt (the program), $tmp (a scratch folder).
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# start_server NAME [serve options...]: sets URL_<NAME>, PID_<NAME>; log in $tmp/NAME.log
start_server() {
  local name=$1; shift
  "$llmrt" serve --port 0 "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$! url=""
  for _ in $(seq 1 600); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/$name.log" | head -1)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "FAIL: server $name did not start:"; cat "$tmp/$name.log"; exit 1
  fi
  eval "URL_$name=$url PID_$name=$pid"
}

# stop_server NAME: SIGTERM, wait, and check the exit code is 0
stop_server() {
  local pid; eval "pid=\$PID_$1"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"; local rc=$?
  [ "$rc" -eq 0 ] && ok || { bad "server $1 exited $rc after SIGTERM"; tail -40 "$tmp/$1.log"; }
}

# call OUT METHOD URL [curl args...]: prints the status code; body in OUT
call() {
  local out=$1 method=$2 url=$3; shift 3
  curl -s -o "$out" -w '%{http_code}' -X "$method" "$url" "$@"
}

# jcheck FILE 'python expression over j' [what]: the expression must be true
jcheck() {
  if python3 - "$1" "$2" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1], encoding="utf-8"))
    sys.exit(0 if eval(sys.argv[2]) else 1)
except Exception as e:
    print("  (", type(e).__name__, e, ")")
    sys.exit(1)
PY
  then ok; else bad "${3:-$2} :: $(head -c 400 "$1")"; fi
}

# expect_status WANT OUT METHOD URL [curl args...]: status and, for 4xx/5xx, the error object
expect_error() {
  local want=$1 out=$2; shift 2
  local code; code=$(call "$out" "$@")
  if [ "$code" != "$want" ]; then bad "status $code (want $want): $* :: $(head -c 300 "$out")"; return; fi
  jcheck "$out" 'isinstance(j["error"]["message"], str) and j["error"]["message"] and "type" in j["error"] and "param" in j["error"] and j["error"]["code"] == '"$want" "error shape of $*"
}

# expect_code WANT OUT METHOD URL [curl args...]
expect_code() {
  local want=$1 out=$2; shift 2
  local code; code=$(call "$out" "$@")
  [ "$code" = "$want" ] && ok || bad "status $code (want $want): $* :: $(head -c 300 "$out")"
}

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
