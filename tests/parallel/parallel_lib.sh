# Shared by the parallel suite's scripts (sourced after $llmrt and $cases
# are set): skips (exit 77) where mpirun or an MPI build of llmrt is
# missing, makes $tmp (removed at exit), and gives check and serve_port.

command -v mpirun >/dev/null 2>&1 || { echo "mpirun not found: skipped"; exit 77; }
# an llmrt built without MPI refuses --tp/--pp: nothing to test
probe_path=$(mktemp -u)
probe=$("$llmrt" build --config "$cases/qwen2_f32/config.json" --random-weights --output "$probe_path" --tp 2 2>&1)
rm -f "$probe_path" "$probe_path.rank1"
case "$probe" in *"built without"*) echo "$probe: skipped"; exit 77 ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
# check CMD...: runs it; "ok: LAST-ARG" or "FAIL: CMD", remembered in $fail
check() { if "$@"; then echo "ok: ${*: -1}"; else echo "FAIL: $*"; fail=1; fi; }
# serve_port LOG: the port a starting `llmrt serve --port 0` prints in LOG,
# waiting up to 60 s (ranks start slowly on a loaded machine); empty if none
serve_port() {
    local port=""
    for _ in $(seq 600); do
        port=$(grep -o 'http://127.0.0.1:[0-9]*' "$1" 2>/dev/null | head -1 | sed 's/.*://')
        [ -n "$port" ] && break
        sleep 0.1
    done
    echo "$port"
}
