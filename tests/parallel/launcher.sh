#!/usr/bin/env bash
# llmrt run | bench | serve | perplexity --ranks N / --gpus LIST start a
# split engine's ranks themselves (mpirun exec'd in place): the same tokens
# as mpirun -np 2 and as the one-rank engine, the job's exit status, signals
# reaching the ranks, and a clear error (not a hang) for a wrong rank count,
# a launch inside mpirun, no mpirun on PATH and --gpus without a GPU.
# usage: launcher.sh LLMRT CASES_DIR DEMO_MODEL_DIR
set -u
llmrt=$1 cases=$2 demo=$3
here=$(dirname "$0")
source "$here/parallel_lib.sh"
"$llmrt" build --model "$cases/llama_f32" --output "$tmp/tp2.engine" --tp 2 --quiet || { echo "FAIL: build --tp 2"; exit 1; }
ids() { grep -o '"output_ids":\[[0-9,]*\]'; }
"$llmrt" build --model "$cases/llama_f32" --output "$tmp/tp1.engine" --quiet || { echo "FAIL: build"; exit 1; }
"$llmrt" build --model "$cases/llama_f32" --output "$tmp/pp2.engine" --pp 2 --quiet || { echo "FAIL: build --pp 2"; exit 1; }
prompt="--prompt-ids 1,15,27,3,99,4,7 --max-tokens 8 --json"

one=$("$llmrt" run --engine "$tmp/tp1.engine" $prompt 2>&1 | ids)
mpi=$("$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/tp2.engine" $prompt 2>&1 | ids)
launched=$(timeout 60 "$llmrt" run --engine "$tmp/tp2.engine" --ranks 2 $prompt 2>"$tmp/err"; echo "exit $?")
echo "TP=1: $one"
echo "mpirun -np 2: $mpi"
echo "--ranks 2: $launched"
check test -n "$one"
check test "$one" = "$mpi"
check test "$one" = "$(ids <<<"$launched")"
check grep -q "exit 0" <<<"$launched"
pp=$(timeout 60 "$llmrt" run --ranks=2 --engine "$tmp/pp2.engine" $prompt 2>&1 | ids)
echo "--ranks=2, pp 2: $pp"
check test "$one" = "$pp"

# the ranks' command line: this one less --ranks (a value that only looks
# like it stays), and a share of the CPUs each unless --threads is given
mkdir "$tmp/bin"
printf '#!/bin/sh\necho "$@"\n' >"$tmp/bin/mpirun"
chmod +x "$tmp/bin/mpirun"
root=""
[ "$(id -u)" = 0 ] && root=" --allow-run-as-root"
self=$(readlink -f "$llmrt")
line=$(PATH="$tmp/bin:$PATH" "$llmrt" run --engine "$tmp/tp2.engine" --ranks 2 --prompt-ids 1,2 --stop --ranks)
share=$(($(nproc) / 2))
[ "$share" -ge 1 ] || share=1
echo "mpirun $line"
check test "$line" = "--oversubscribe --bind-to none$root -np 2 $self run --engine $tmp/tp2.engine --prompt-ids 1,2 \
--stop --ranks --threads $share"
line=$(PATH="$tmp/bin:$PATH" "$llmrt" bench --threads 3 --ranks=2 --engine "$tmp/tp2.engine")
check test "$line" = "--oversubscribe --bind-to none$root -np 2 $self bench --threads 3 --engine $tmp/tp2.engine"

# the job's status: a rank's failure is the launcher's
timeout 60 "$llmrt" run --engine "$tmp/tp2.engine" --ranks 2 --prompt-ids 1,99999 >"$tmp/out" 2>&1
status=$?
echo "a rank that fails: exit $status"
check test "$status" -ne 0 -a "$status" -ne 124

# a wrong rank count says so before launching, naming both numbers
msg=$(timeout 30 "$llmrt" run --engine "$tmp/tp2.engine" --ranks 3 $prompt 2>&1)
status=$?
echo "--ranks 3: $msg (exit $status)"
check test "$status" = 2
check grep -q -- "--ranks 3, but .*tp2.engine is built for 2 ranks" <<<"$msg"
msg=$(timeout 30 "$llmrt" run --engine "$tmp/tp1.engine" --ranks 2 $prompt 2>&1)
check grep -q -- "--ranks 2, but .*tp1.engine is built for 1 rank " <<<"$msg"

# inside an MPI job, --ranks is refused rather than nested
msg=$(timeout 30 "$here/run_mpi.sh" 1 "$llmrt" run --engine "$tmp/tp2.engine" --ranks 2 $prompt 2>&1)
echo "--ranks under mpirun: $(head -1 <<<"$msg")"
check grep -q "already one of an MPI job (OMPI_COMM_WORLD_SIZE is set)" <<<"$msg"

# no mpirun on PATH
msg=$(timeout 30 env PATH=/nonexistent "$llmrt" run --engine "$tmp/tp2.engine" --ranks 2 $prompt 2>&1)
status=$?
echo "no mpirun: $msg (exit $status)"
check test "$status" = 1
check grep -q -- "need mpirun (OpenMPI) on PATH" <<<"$msg"

# --gpus: on a host without a usable GPU (or a CPU-only llmrt) a clear error;
# with one, two ranks sharing GPU 0
msg=$(timeout 120 "$llmrt" run --engine "$tmp/tp2.engine" --gpus 0,0 $prompt 2>&1)
status=$?
echo "--gpus 0,0: $(tail -1 <<<"$msg") (exit $status)"
if grep -q -e "built without the CUDA backend" -e "no CUDA device is available" <<<"$msg"; then
    check test "$status" = 1
else
    check test "$status" = 0
    check test "$(ids <<<"$msg" | grep -o ',' | wc -l)" = 7
fi
msg=$(timeout 30 "$llmrt" run --engine "$tmp/tp2.engine" --gpus 0 --ranks 2 $prompt 2>&1)
check grep -q -- "--ranks 2 but --gpus lists 1 GPU" <<<"$msg"
msg=$(timeout 30 "$llmrt" run --engine "$tmp/tp2.engine" --gpus 0,1 --backend cpu $prompt 2>&1)
check grep -q -- "--gpus runs CUDA ranks, but --backend is cpu" <<<"$msg"

# bench
out=$(timeout 120 "$llmrt" bench --engine "$tmp/tp2.engine" --ranks 2 --input-len 8 --output-len 8 --concurrency 2 \
      --requests 4 --json 2>&1)
echo "bench --ranks 2: $(cut -c1-80 <<<"$out")"
check grep -q '"requests":4,"failed":0' <<<"$out"
msg=$("$llmrt" bench --url http://127.0.0.1:1 --ranks 2 2>&1)
check grep -q -- "--ranks and --gpus are for --engine" <<<"$msg"

# perplexity (a model with a tokenizer): the one-rank figure
"$llmrt" build --model "$demo" --output "$tmp/demo1.engine" --quiet &&
    "$llmrt" build --model "$demo" --output "$tmp/demo2.engine" --tp 2 --quiet || { echo "FAIL: build demo"; exit 1; }
ppl="--max-tokens 300 --window 64 --json --cpu-precision fp32"
one=$("$llmrt" perplexity --engine "$tmp/demo1.engine" $ppl 2>&1 | grep -o '"perplexity": [0-9.]*' | cut -d' ' -f2)
two=$(timeout 60 "$llmrt" perplexity --engine "$tmp/demo2.engine" --ranks 2 $ppl 2>&1 | grep -o '"perplexity": [0-9.]*' |
      cut -d' ' -f2)
echo "perplexity TP=1 $one, --ranks 2 $two"
check test -n "$one" -a -n "$two"
check awk -v a="$one" -v b="$two" 'BEGIN { d = a - b; exit !(a > 1 && (d < 0 ? -d : d) <= 1e-5 * a) }'

# serve: SIGTERM to the launcher (mpirun) reaches both ranks, which stop
if command -v curl >/dev/null 2>&1; then
    "$llmrt" serve --engine "$tmp/tp2.engine" --ranks 2 --port 0 >"$tmp/serve.log" 2>&1 &
    server=$!
    port=$(serve_port "$tmp/serve.log")
    reply=$(curl -s "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
            -d '{"prompt":[1,15,27,3,99,4,7],"max_tokens":8,"temperature":0}')
    echo "serve: $reply"
    check grep -q '"completion_tokens":8' <<<"$reply"
    kill -TERM "$server"
    for _ in $(seq 300); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    check test ! -d "/proc/$server"
    wait "$server"
    # mpirun exits 1 once it has forwarded a signal, however the ranks ended
    echo "serve job exit $?"
    check test "$(grep -c "llmrt serve: stopped" "$tmp/serve.log")" = 1
    check test "$(ps -eo args | grep -c "^$llmrt serve --engine $tmp/tp2.engine")" = 0
fi
exit $fail
