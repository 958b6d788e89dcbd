#!/usr/bin/env bash
# The GPU suites and the kernel benchmark on a machine with a GPU: build
# with CUDA into build-gpu/, run the CUDA kernel, attention, backend and
# runtime tests (a missing GPU is a failure here), the CUDA golden tests when
# they are built, then the kernel benchmark; print a short table last. Full
# logs go to $OUT when it is set, else to build-gpu/gpu-check-logs/.
#
# With --bin DIR nothing is built: the binaries are taken from DIR, built
# elsewhere (for example where the GPU machine lacks the jansson or PCRE2
# headers) and copied to any folder:
#   cmake -S . -B build-gpu -DLLMRT_CUDA=ON && cmake --build build-gpu -j --target llmrt_cli \
#     test_cuda_kernels test_cuda_attention test_cuda_backend test_cuda_runtime bench_cuda_kernels test_golden
#   mkdir -p build-gpu/bin && cp build-gpu/llmrt build-gpu/tests/cuda/test_cuda_* \
#     build-gpu/bench/bench_cuda_kernels build-gpu/tests/golden/test_golden build-gpu/bin/
#   scripts/gpu-check.sh --bin build-gpu/bin
# DIR holds test_cuda_kernels, test_cuda_attention, test_cuda_backend, test_cuda_runtime, bench_cuda_kernels,
# test_golden and llmrt (a missing one is reported as FAIL, a missing test_golden as skipped). The
# script runs in the source tree's root (the tests read tests/golden/cases), and a relative DIR is
# taken from there.
#
# usage: scripts/gpu-check.sh [--quick] [--no-build] [--no-bench] [--bin DIR]
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0 BUILD_STEP=1 BENCH=1 BIN=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) BUILD_STEP=0 ;;
    --no-bench) BENCH=0 ;;
    --bin) shift; BIN=${1:-}; BUILD_STEP=0
           [ -d "$BIN" ] || { echo "$0: --bin: no folder '$BIN'" >&2; exit 2; } ;;
    --bin=*) BIN=${1#--bin=}; BUILD_STEP=0
           [ -d "$BIN" ] || { echo "$0: --bin: no folder '$BIN'" >&2; exit 2; } ;;
    *) echo "usage: $0 [--quick] [--no-build] [--no-bench] [--bin DIR]" >&2; exit 2 ;;
  esac
  shift
done

BUILD=build-gpu
LOGS=${OUT:-$BUILD/gpu-check-logs}
# Where each binary lives: the prebuilt folder, or the CMake build tree.
if [ -n "$BIN" ]; then
  BIN_KERNELS=$BIN/test_cuda_kernels BIN_ATTENTION=$BIN/test_cuda_attention BIN_BACKEND=$BIN/test_cuda_backend
  BIN_RUNTIME=$BIN/test_cuda_runtime
  BIN_BENCH=$BIN/bench_cuda_kernels BIN_GOLDEN=$BIN/test_golden BIN_CLI=$BIN/llmrt
else
  BIN_KERNELS=$BUILD/tests/cuda/test_cuda_kernels BIN_BACKEND=$BUILD/tests/cuda/test_cuda_backend
  BIN_ATTENTION=$BUILD/tests/cuda/test_cuda_attention
  BIN_RUNTIME=$BUILD/tests/cuda/test_cuda_runtime
  BIN_BENCH=$BUILD/bench/bench_cuda_kernels BIN_GOLDEN=$BUILD/tests/golden/test_golden BIN_CLI=$BUILD/llmrt
fi
NOT_BUILT="not built"
[ -n "$BIN" ] && NOT_BUILT="not in $BIN"
mkdir -p "$LOGS"
JOBS=$(nproc 2>/dev/null || echo 4)
export LLMRT_REQUIRE_GPU=1
SUMMARY=()
FAILED=0
record() { SUMMARY+=("$(printf '%-24s %-6s %s' "$1" "$2" "${3:-}")"); [ "$2" = FAIL ] && FAILED=1; return 0; }

if ! { nvidia-smi -L; nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,clocks.mem --format=csv; } \
  > "$LOGS/nvidia-smi.txt" 2>&1; then
  record gpu warn "nvidia-smi lists no GPU (see nvidia-smi.txt)"
fi

# Prebuilt binaries: say up front when a shared library is missing here.
if [ -n "$BIN" ]; then
  for b in "$BIN_KERNELS" "$BIN_ATTENTION" "$BIN_BACKEND" "$BIN_RUNTIME" "$BIN_BENCH" "$BIN_GOLDEN" "$BIN_CLI"; do
    [ -x "$b" ] || continue
    missing=$(ldd "$b" 2>/dev/null | grep "not found" | awk '{print $1}' | tr '\n' ' ')
    [ -n "$missing" ] && record "$(basename "$b")-libs" FAIL "missing: $missing"
  done
fi

if [ "$BUILD_STEP" = 1 ]; then
  start=$(date +%s)
  if cmake -S . -B "$BUILD" -DLLMRT_CUDA=ON -DCMAKE_BUILD_TYPE=Release > "$LOGS/configure.log" 2>&1 &&
     cmake --build "$BUILD" -j "$JOBS" --target test_cuda_kernels test_cuda_attention test_cuda_backend \
       test_cuda_runtime bench_cuda_kernels > "$LOGS/build.log" 2>&1; then
    record build ok "$(( $(date +%s) - start )) s"
  else
    record build FAIL "see build.log"
    tail -40 "$LOGS/configure.log" "$LOGS/build.log"
  fi
  # Everything else (golden tests, CLI) is optional: a failure there is a warning.
  cmake --build "$BUILD" -j "$JOBS" > "$LOGS/build-all.log" 2>&1 || record build-all warn "see build-all.log"
fi

run_test() { # name binary [args...]
  local name=$1 bin=$2
  shift 2
  if [ ! -x "$bin" ]; then record "$name" FAIL "$NOT_BUILT"; return; fi
  local start=$(date +%s)
  "$bin" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$? line
  line=$(grep -E "passed, [0-9]+ failed" "$LOGS/$name.log" | tail -1)
  if [ $rc -eq 0 ]; then record "$name" ok "$line ($(( $(date +%s) - start )) s)"
  else
    record "$name" FAIL "rc=$rc $line"
    echo "---- $name: first failures (full log $LOGS/$name.log)"
    grep -E "CHECK failed|error|FAIL" "$LOGS/$name.log" | head -25
    tail -5 "$LOGS/$name.log"
  fi
}

run_test cuda_kernels "$BIN_KERNELS"
run_test cuda_attention "$BIN_ATTENTION"
run_test cuda_backend "$BIN_BACKEND"
run_test cuda_runtime "$BIN_RUNTIME" tests/golden/cases/llama_f32
# Golden cases run directly (not through ctest: the build tree's absolute
# paths do not exist where prebuilt binaries run); the per-case error table
# goes to the log.
if [ -x "$BIN_GOLDEN" ]; then
  run_test golden_cuda "$BIN_GOLDEN" tests/golden/cases cuda
  sed -n '/^case /,$p' "$LOGS/golden_cuda.log" > "$LOGS/golden_cuda_table.txt" 2>/dev/null || true
else
  record golden_cuda skip "test_golden $NOT_BUILT"
fi

if [ "$BENCH" = 1 ]; then
  if [ -x "$BIN_BENCH" ]; then
    args=()
    [ "$QUICK" = 1 ] && args+=(--quick)
    if "$BIN_BENCH" "${args[@]}" > "$LOGS/bench.log" 2>&1; then record bench ok
    else record bench FAIL "see bench.log"; tail -20 "$LOGS/bench.log"; fi
    echo
    sed -n '/^device:/,$p' "$LOGS/bench.log"
  else
    record bench FAIL "$NOT_BUILT"
  fi
fi

if [ -s "$LOGS/golden_cuda_table.txt" ]; then
  echo
  echo "== golden (worst rel L2 per case and variant)"
  cat "$LOGS/golden_cuda_table.txt"
fi
echo
echo "== gpu-check summary (logs: $LOGS)"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
