#!/usr/bin/env bash
# Tensor and pipeline parallelism end to end through the CLI: golden
# models built with --tp 2, --pp 2 (mpirun -np 2), both or --tp 4 (-np 4) give the
# one-rank engine's prompt logits (fp32, 1e-5 relative per row) and greedy
# tokens; run --requests, bench and serve work under mpirun too.
# On CUDA (BACKEND cuda), the two ranks share one GPU through the MPI
# communicator; TOLERANCE is then the fp32 golden one.
# usage: parallel_golden.sh LLMRT NPY_CLOSE CASES_DIR [BACKEND [TOLERANCE]]
set -u
llmrt=$1 npy_close=$2 cases=$3 backend=${4:-cpu} tolerance=${5:-1e-5}
here=$(dirname "$0")
source "$here/parallel_lib.sh"
prompt=1,15,27,3,99,4,7,7,7,42,17
# bf16 checkpoints on the CPU keep fp32 activations: 16-bit compute rounds
# each linear's input, where a shard's summation order can flip a rounding
exact=""
[ "$backend" = cpu ] && exact="--cpu-precision fp32"

# llama_f32: MHA, untied head; qwen2_f32: GQA (4 query, 2 KV heads), q/k/v bias, tied head;
# mixtral_f32: attention and every expert's MLP split (router replicated), stages too;
# qwen3_f32 (per-head q/k norm) and gemma2_f32 (windows, soft-caps, custom
# scale): attention variants on split heads (their families have no stages);
# mistral_mqa_bf16: one KV head, a copy on each rank.
# Fused q/k/v, each in its family's row layout: gpt2_f32 (Conv1D, [q | k | v]
# columns), neox_parallel_f32 (per KV head), falcon_gqa_f32 (per KV group; at
# TP=4 ranks share a group's KV head), falcon_mqa_bf16 and bigcode_mqa_f32
# (one KV head), bloom_f32 (per head; 6 heads: ALiBi's non-power-of-two
# slopes), mpt_alibi_f32 (ALiBi), phi3_f32, glm_f32, chatglm_from_glm_f32
# ([q | k | v] blocks with GQA, fused gate_up)
for case in llama_f32 qwen2_f32 mixtral_f32 qwen3_f32 gemma2_f32 mistral_mqa_bf16 gpt2_f32 neox_parallel_f32 \
            falcon_gqa_f32 falcon_mqa_bf16 bigcode_mqa_f32 bloom_f32 mpt_alibi_f32 phi3_f32 glm_f32 \
            chatglm_from_glm_f32; do
    # bf16 checkpoints: on CUDA their activations are bf16 too, past the fp32 tolerance
    case "$backend:$case" in cuda:*_bf16) continue ;; esac
    splits=tp2
    case "$case" in llama_f32 | qwen2_f32 | mixtral_f32) splits="tp2 pp2 tp2pp2" ;; falcon_*) splits="tp2 tp4" ;; esac
    build() { "$llmrt" build --backend "$backend" --model "$cases/$case" --quiet "$@"; }
    build --output "$tmp/$case.tp1.engine" || { echo "FAIL: build $case"; exit 1; }
    for split in $splits; do
        flags=""
        case "$split" in
        tp2) flags="--tp 2" ;; tp4) flags="--tp 4" ;; pp2) flags="--pp 2" ;; tp2pp2) flags="--tp 2 --pp 2" ;;
        esac
        build --output "$tmp/$case.$split.engine" $flags || { echo "FAIL: build $flags $case"; exit 1; }
    done
    one=$("$llmrt" run --engine "$tmp/$case.tp1.engine" --prompt-ids $prompt --max-tokens 16 $exact \
          --dump-logits "$tmp/$case.tp1.npy" 2>&1 | tail -1)
    case "$one" in *"no CUDA device"*) echo "$one: skipped"; exit 77 ;; esac
    echo "$case TP=1: $one"
    check test -n "$one"
    for split in $splits; do
        ranks=2
        case "$split" in tp2pp2 | tp4) ranks=4 ;; esac
        "$here/run_mpi.sh" $ranks "$llmrt" run --engine "$tmp/$case.$split.engine" --prompt-ids $prompt \
            --max-tokens 16 $exact --dump-logits "$tmp/$case.$split.npy" >"$tmp/$case.$split.log" 2>&1
        two=$(tail -1 "$tmp/$case.$split.log")
        echo "$case $split: $two"
        # a failed run shows what the ranks said, not only mpirun's last line
        [ "$one" = "$two" ] || grep -v '^-*$' "$tmp/$case.$split.log" | tail -15
        check test "$one" = "$two"
        check "$npy_close" "$tmp/$case.tp1.npy" "$tmp/$case.$split.npy" "$tolerance"
    done
done

# several requests in flight (in-flight batching across ranks)
printf '{"prompt_ids":[1,2,3],"max_tokens":6}\n{"prompt_ids":[5,6,7,8,9],"max_tokens":9}\n{"prompt_ids":[11],"max_tokens":4}\n' \
    > "$tmp/requests.jsonl"
one=$("$llmrt" run --engine "$tmp/qwen2_f32.tp1.engine" --requests "$tmp/requests.jsonl" --json 2>/dev/null | grep -o '"output_ids":\[[0-9,]*\]')
two=$("$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/qwen2_f32.tp2.engine" --requests "$tmp/requests.jsonl" --json 2>/dev/null |
      grep -o '"output_ids":\[[0-9,]*\]')
echo "requests TP=1: $(echo $one)"
echo "requests TP=2: $(echo $two)"
check test -n "$one"
check test "$one" = "$two"
pp=$("$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/qwen2_f32.pp2.engine" --requests "$tmp/requests.jsonl" --json 2>/dev/null |
     grep -o '"output_ids":\[[0-9,]*\]')
echo "requests PP=2: $(echo $pp)"
check test "$one" = "$pp"

check "$here/run_mpi.sh" 2 "$llmrt" bench --engine "$tmp/qwen2_f32.tp2.engine" --input-len 8 --output-len 8 \
    --concurrency 2 --requests 4

# serve: rank 0 owns HTTP, rank 1 computes its shard; SIGTERM stops both
if command -v curl >/dev/null 2>&1; then
    "$here/run_mpi.sh" 2 "$llmrt" serve --engine "$tmp/qwen2_f32.tp2.engine" --port 0 >"$tmp/serve.log" 2>&1 &
    server=$!
    port=$(serve_port "$tmp/serve.log")
    reply=$(curl -s "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
            -d "{\"prompt\":[$prompt],\"max_tokens\":16,\"temperature\":0}")
    echo "serve: $reply"
    check grep -q '"completion_tokens":16' <<<"$reply"
    kill -TERM "$server"
    for _ in $(seq 300); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    wait "$server"
    echo "serve job exit $? (mpirun's status after it forwarded SIGTERM)"
    check grep -q "llmrt serve: stopped" "$tmp/serve.log"
    check test ! -d "/proc/$server"
fi

# inspect shows the split
check grep -q "tensor-parallel rank 1 of 2" <<<"$("$llmrt" inspect "$tmp/qwen2_f32.tp2.engine.rank1")"
check grep -q "pipeline stage 1 of 2: layers 1..1 of 2, the LM head" <<<"$("$llmrt" inspect "$tmp/qwen2_f32.pp2.engine.rank1")"

# a family that cannot split says so at build time
msg=$("$llmrt" build --model "$cases/gpt2_f32" --output "$tmp/gpt2.engine" --pp 2 --quiet 2>&1)
echo "$msg"
check grep -q "does not split into pipeline stages" <<<"$msg"

# head counts that do not split name themselves
msg=$("$llmrt" build --model "$cases/bloom_f32" --output "$tmp/bloom.engine" --tp 4 --quiet 2>&1)
echo "$msg"
check grep -q "BloomForCausalLM network: tensor parallelism over 4 ranks" <<<"$msg"
check grep -q "6 query heads and 6 key/value heads do not split" <<<"$msg"

# launched without mpirun, a rank's engine says how to run it
msg=$("$llmrt" run --engine "$tmp/qwen2_f32.tp2.engine" --prompt-ids 1,2 2>&1)
echo "$msg"
check grep -q "mpirun -np 2" <<<"$msg"
exit $fail
