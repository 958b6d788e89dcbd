#!/usr/bin/env bash
# Pipeline micro-batches in flight (mpirun -np 2, --pp 2): a step of several
# prompts is split by sequences, stage 0 runs the second piece while stage 1
# runs the first, and the logits come back to rank 0 piece by piece. The
# requests' greedy tokens and log-probabilities equal the one-rank engine's
# and the unsplit pipeline's (LLMRT_PP_MICRO_BATCHES=1); the verbose log
# counts the steps that were split; a bad LLMRT_PP_MICRO_BATCHES is an error
# naming it.
# One long prompt is split too: its second piece attends to the KV rows
# the first wrote, and its prompt logits equal TP=1's.
# usage: micro_batches.sh LLMRT NPY_CLOSE CASES_DIR
set -u
llmrt=$1 npy_close=$2 cases=$3
here=$(dirname "$0")
source "$here/parallel_lib.sh"

ids() { seq -s, "$1" "$2"; }
# prompts of 20, 17 and 24 tokens: a step of all three splits into three
# pieces of 20 or 21 tokens (at least 16, the CPU's minimum), cutting
# sequences; decode steps (3 tokens) stay whole
{
    printf '{"prompt_ids":[%s],"max_tokens":7,"logprobs":1}\n' "$(ids 3 22)"
    printf '{"prompt_ids":[%s],"max_tokens":5,"logprobs":1}\n' "$(ids 40 56)"
    printf '{"prompt_ids":[%s],"max_tokens":9,"logprobs":1}\n' "$(ids 7 30)"
} > "$tmp/requests.jsonl"

tokens() { grep -o '"output_ids":\[[0-9,]*\]' "$1"; }
logprobs() { grep -o '"token_logprobs":\[[^]]*\]' "$1" | sed 's/.*\[//; s/\]//' | tr ',' '\n'; }
# the same count of values, each within 1e-5 relative (the pieces' linears
# see fewer rows, which may sum in another order)
close() {
    paste -d' ' <(logprobs "$1") <(logprobs "$2") | awk '
        NF != 2 { bad = 1 }
        { d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1; if (d > 1e-5 * (m > 1 ? m : 1)) bad = 1; n++ }
        END { exit bad || n == 0 }'
}

for case in llama_f32 qwen2_f32; do
    "$llmrt" build --model "$cases/$case" --output "$tmp/$case.tp1.engine" --quiet || { echo "FAIL: build $case"; exit 1; }
    "$llmrt" build --model "$cases/$case" --pp 2 --output "$tmp/$case.pp2.engine" --quiet ||
        { echo "FAIL: build --pp 2 $case"; exit 1; }
    "$llmrt" run --engine "$tmp/$case.tp1.engine" --requests "$tmp/requests.jsonl" --json > "$tmp/$case.one" 2>/dev/null
    "$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/$case.pp2.engine" --requests "$tmp/requests.jsonl" --json \
        --verbose > "$tmp/$case.split" 2> "$tmp/$case.split.log"
    LLMRT_PP_MICRO_BATCHES=1 "$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/$case.pp2.engine" \
        --requests "$tmp/requests.jsonl" --json --verbose > "$tmp/$case.whole" 2> "$tmp/$case.whole.log"
    # two pieces of 30 and 31 tokens: the second prompt cut in two
    LLMRT_PP_MICRO_BATCHES=2 "$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/$case.pp2.engine" \
        --requests "$tmp/requests.jsonl" --json > "$tmp/$case.two" 2>/dev/null
    echo "$case TP=1:               $(tokens "$tmp/$case.one" | tr '\n' ' ')"
    echo "$case PP=2 micro-batches: $(tokens "$tmp/$case.split" | tr '\n' ' ')"
    grep "pipeline:" "$tmp/$case.split.log"
    check test "$(tokens "$tmp/$case.one" | wc -l)" = 3
    check test "$(tokens "$tmp/$case.one")" = "$(tokens "$tmp/$case.split")"
    check test "$(tokens "$tmp/$case.one")" = "$(tokens "$tmp/$case.whole")"
    check close "$tmp/$case.one" "$tmp/$case.split"
    check close "$tmp/$case.whole" "$tmp/$case.split"
    check test "$(tokens "$tmp/$case.one")" = "$(tokens "$tmp/$case.two")"
    check close "$tmp/$case.one" "$tmp/$case.two"
    # the prompt steps were split (decode steps stay whole); with the split off, none
    check grep -Eq "pipeline: [1-9][0-9]* of [0-9]+ steps ran in micro-batches" "$tmp/$case.split.log"
    check test "$(grep -c "ran in micro-batches" "$tmp/$case.whole.log")" = 0
done

# one prompt of 40 tokens: pieces of 10 tokens (four by default), the prompt's logits every row
long=$(ids 2 41)
"$llmrt" run --engine "$tmp/llama_f32.tp1.engine" --prompt-ids "$long" --max-tokens 6 \
    --dump-logits "$tmp/long.one.npy" > "$tmp/long.one" 2>&1
"$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/llama_f32.pp2.engine" --prompt-ids "$long" --max-tokens 6 \
    --dump-logits "$tmp/long.split.npy" --verbose > "$tmp/long.split" 2> "$tmp/long.split.log"
echo "one prompt TP=1: $(tail -1 "$tmp/long.one")"
echo "one prompt PP=2: $(tail -1 "$tmp/long.split")"
grep "pipeline:" "$tmp/long.split.log"
check test "$(tail -1 "$tmp/long.one")" = "$(tail -1 "$tmp/long.split")"
check "$npy_close" "$tmp/long.one.npy" "$tmp/long.split.npy" 1e-5
check grep -Eq "pipeline: [1-9][0-9]* of [0-9]+ steps ran in micro-batches" "$tmp/long.split.log"

# --tp 2 --pp 2: each stage's two ranks split the pieces' layers; the last
# stage's first rank sends the logits
"$llmrt" build --model "$cases/mixtral_f32" --output "$tmp/mixtral.tp1.engine" --quiet &&
    "$llmrt" build --model "$cases/mixtral_f32" --tp 2 --pp 2 --output "$tmp/mixtral.tp2pp2.engine" --quiet ||
    { echo "FAIL: build mixtral_f32"; exit 1; }
"$llmrt" run --engine "$tmp/mixtral.tp1.engine" --requests "$tmp/requests.jsonl" --json > "$tmp/mixtral.one" 2>/dev/null
"$here/run_mpi.sh" 4 "$llmrt" run --engine "$tmp/mixtral.tp2pp2.engine" --requests "$tmp/requests.jsonl" --json \
    --verbose > "$tmp/mixtral.split" 2> "$tmp/mixtral.split.log"
echo "mixtral_f32 TP=1:              $(tokens "$tmp/mixtral.one" | tr '\n' ' ')"
echo "mixtral_f32 TP=2 PP=2 pieces:  $(tokens "$tmp/mixtral.split" | tr '\n' ' ')"
check test "$(tokens "$tmp/mixtral.one" | wc -l)" = 3
check test "$(tokens "$tmp/mixtral.one")" = "$(tokens "$tmp/mixtral.split")"
check close "$tmp/mixtral.one" "$tmp/mixtral.split"
check grep -Eq "pipeline: [1-9][0-9]* of [0-9]+ steps ran in micro-batches" "$tmp/mixtral.split.log"

LLMRT_PP_MICRO_BATCHES=0 "$here/run_mpi.sh" 2 "$llmrt" run --engine "$tmp/llama_f32.pp2.engine" \
    --prompt-ids 1,2,3 --max-tokens 2 > "$tmp/bad.log" 2>&1
check test $? -ne 0
check grep -q "LLMRT_PP_MICRO_BATCHES" "$tmp/bad.log"
exit $fail
