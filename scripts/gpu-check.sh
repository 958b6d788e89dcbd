#!/usr/bin/env bash
# One run on the GPU machine: build with CUDA into build-gpu/, run the CUDA
# kernel and backend tests (a missing GPU is a failure here), the CUDA golden
# tests when they are built, then the kernel benchmark; print a short table
# last. Full logs go to $OUT (the device tool's output folder) when set, else
# build-gpu/gpu-check-logs/.
#
# usage: scripts/gpu-check.sh [--quick] [--no-build] [--no-bench]
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0 BUILD_STEP=1 BENCH=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-build) BUILD_STEP=0 ;;
    --no-bench) BENCH=0 ;;
    *) echo "usage: $0 [--quick] [--no-build] [--no-bench]" >&2; exit 2 ;;
  esac
done

BUILD=build-gpu
LOGS=${OUT:-$BUILD/gpu-check-logs}
mkdir -p "$LOGS"
JOBS=$(nproc 2>/dev/null || echo 4)
export LLMRT_REQUIRE_GPU=1
SUMMARY=()
FAILED=0
record() { SUMMARY+=("$(printf '%-24s %-6s %s' "$1" "$2" "${3:-}")"); [ "$2" = FAIL ] && FAILED=1; return 0; }

{ nvidia-smi -L; nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,clocks.mem --format=csv; } \
  > "$LOGS/nvidia-smi.txt" 2>&1 || true

if [ "$BUILD_STEP" = 1 ]; then
  start=$(date +%s)
  if cmake -S . -B "$BUILD" -DLLMRT_CUDA=ON -DCMAKE_BUILD_TYPE=Release > "$LOGS/configure.log" 2>&1 &&
     cmake --build "$BUILD" -j "$JOBS" --target test_cuda_kernels test_cuda_backend bench_cuda_kernels \
       > "$LOGS/build.log" 2>&1; then
    record build ok "$(( $(date +%s) - start )) s"
  else
    record build FAIL "see build.log"
    tail -40 "$LOGS/configure.log" "$LOGS/build.log"
  fi
  # Everything else (golden tests, CLI) is optional here: other modules may be mid-edit.
  cmake --build "$BUILD" -j "$JOBS" > "$LOGS/build-all.log" 2>&1 || record build-all warn "see build-all.log"
fi

run_test() { # name binary
  local name=$1 bin=$2
  if [ ! -x "$bin" ]; then record "$name" FAIL "not built"; return; fi
  local start=$(date +%s)
  "$bin" > "$LOGS/$name.log" 2>&1
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

run_test cuda_kernels "$BUILD/tests/cuda/test_cuda_kernels"
run_test cuda_backend "$BUILD/tests/cuda/test_cuda_backend"
if [ -x "$BUILD/tests/golden/test_golden" ]; then
  (cd "$BUILD" && ctest -R golden_cuda --output-on-failure) > "$LOGS/golden_cuda.log" 2>&1 &&
    record golden_cuda ok || { record golden_cuda FAIL "see golden_cuda.log"; tail -30 "$LOGS/golden_cuda.log"; }
else
  record golden_cuda skip "test_golden not built"
fi

if [ "$BENCH" = 1 ]; then
  if [ -x "$BUILD/bench/bench_cuda_kernels" ]; then
    args=()
    [ "$QUICK" = 1 ] && args+=(--quick)
    if "$BUILD/bench/bench_cuda_kernels" "${args[@]}" > "$LOGS/bench.log" 2>&1; then record bench ok
    else record bench FAIL "see bench.log"; tail -20 "$LOGS/bench.log"; fi
    echo
    sed -n '/^device:/,$p' "$LOGS/bench.log"
  else
    record bench FAIL "not built"
  fi
fi

echo
echo "== gpu-check summary (logs: $LOGS)"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
