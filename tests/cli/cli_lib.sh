# Shared by the CLI test scripts (sourced): a temporary folder removed on
# exit, pass/fail counting, `expect` and `mutate`. The sourcing script sets
# llmrt, src and (for mutate) case_dir, and ends with `cli_finish`.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect CODE NEEDLE -- command...: exit code and a message containing NEEDLE;
# stdin is /dev/null (or the file named by expect_stdin=FILE before the
# call), and a command still running after 60 s (say, blocked opening a
# FIFO) fails the case
expect() {
  local code=$1 needle=$2; shift 3
  local out rc
  out=$(timeout 60 "$@" 2>&1 <"${expect_stdin:-/dev/null}"); rc=$?
  if [ "$rc" -eq 124 ]; then bad "hung: $*"; return; fi
  if [ "$rc" -ne "$code" ]; then bad "exit $rc (want $code): $* :: $out"; return; fi
  if [ -n "$needle" ] && ! grep -qF -- "$needle" <<<"$out"; then bad "no '$needle' in output of $*: $out"; return; fi
  ok
}

# mutate NAME PYTHON: copies $case_dir to $tmp/NAME, runs PYTHON there (with
# d, st = its model.safetensors, cfg = its config.json, and header() giving
# the safetensors bytes, header length and parsed header), prints the folder
mutate() {
  local d=$tmp/$1; rm -rf "$d"; cp -r "$case_dir" "$d"
  python3 - "$d" <<PY
import json, os, struct, sys
d = sys.argv[1]
st = os.path.join(d, "model.safetensors")
cfg = os.path.join(d, "config.json")
def header():
    b = bytearray(open(st, "rb").read()); n = struct.unpack("<Q", b[:8])[0]
    return b, n, json.loads(b[8:8 + n])
$2
PY
  echo "$d"
}

cli_finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
