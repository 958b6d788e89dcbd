#!/usr/bin/env bash
# A rank that hangs makes the others fail within the communicator's timeout
# with a message naming it, and the job ends instead of hanging.
set -u
here=$(dirname "$0")
start=$(date +%s)
out=$("$here/run_mpi.sh" 2 "$@" --hang-rank 1 2>&1)
rc=$?
elapsed=$(( $(date +%s) - start ))
[ "$rc" -eq 77 ] && exit 77
echo "$out"
echo "exit $rc after ${elapsed}s"
echo "$out" | grep -q "timed out after 1000 ms" || { echo "FAIL: no timeout message"; exit 1; }
[ "$rc" -ne 0 ] || { echo "FAIL: the job succeeded"; exit 1; }
[ "$elapsed" -lt 30 ] || { echo "FAIL: took ${elapsed}s"; exit 1; }
echo "PASS"
