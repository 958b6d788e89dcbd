#!/usr/bin/env bash
# A tensor-parallel rank killed mid-run: the other rank must stop with a
# clear error, not hang (mpirun ends the job when a rank dies; failing
# that, every collective has a timeout).
# usage: tp_rank_dies.sh LLMRT CASES_DIR
set -u
llmrt=$1 cases=$2
here=$(dirname "$0")
source "$here/parallel_lib.sh"
"$llmrt" build --model "$cases/qwen2_f32" --output "$tmp/tp2.engine" --tp 2 --quiet || { echo "FAIL: build"; exit 1; }

# a rank that cannot load (its shard is damaged) fails every rank at once,
# naming it, instead of leaving rank 0 waiting until the collective timeout
# (60 s; a loaded 2-core machine takes seconds just to start the ranks)
cp "$tmp/tp2.engine.rank1" "$tmp/rank1.good"
head -c 4096 "$tmp/rank1.good" > "$tmp/tp2.engine.rank1"
start=$(date +%s)
out=$(timeout 50 "$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/tp2.engine" --prompt-ids 1,2 --max-tokens 2 2>&1)
rc=$? elapsed=$(( $(date +%s) - start ))
grep -q "rank 1 of 2 could not load" <<<"$out" && [ "$rc" -ne 0 ] && [ "$elapsed" -lt 40 ] ||
    { echo "FAIL: a damaged rank-1 shard (exit $rc after ${elapsed}s): $out"; exit 1; }
cp "$tmp/rank1.good" "$tmp/tp2.engine.rank1"

# a bench long enough to be mid-run when rank 1 dies
"$here/run_mpi.sh" 2 "$llmrt" bench --engine "$tmp/tp2.engine" --input-len 16 --output-len 64 --concurrency 4 \
    --requests 16000000 >"$tmp/out" 2>&1 &
launcher=$!
start=$(date +%s)
rank1=""
for _ in $(seq 300); do
    sleep 0.1
    for pid in $(pgrep -P "$launcher" 2>/dev/null); do
        { tr "\0" "\n" <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$pid
    done
    [ -n "$rank1" ] && break
done
[ -n "$rank1" ] || { echo "FAIL: rank 1 not found"; kill "$launcher"; exit 1; }
sleep 1
echo "killing rank 1 (pid $rank1)"
kill -9 "$rank1"
for _ in $(seq 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$launcher" 2>/dev/null; then
    echo "FAIL: the job still runs 30 s after rank 1 died"
    kill "$launcher"
    exit 1
fi
wait "$launcher"
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$tmp/out"
echo "exit $rc after ${elapsed}s"
[ "$rc" -ne 0 ] || { echo "FAIL: the job reported success"; exit 1; }
grep -Eq "rank 1|timed out" "$tmp/out" || { echo "FAIL: no message naming the dead rank"; exit 1; }
echo PASS
