#!/bin/sh
# CPU decode next to a busy neighbour: the demo model (the embedded default,
# built into the cache on first use) with the default thread count and with
# --threads 1, on a quiet machine and with a busy loop pinned to one core.
# Rounds alternate every configuration so that drifting load hits them all;
# the table gives medians and the ratios.
#
# usage: bench/cpu_busy_neighbour.sh LLMRT [BASELINE_LLMRT]
#   LLMRT           the llmrt binary to measure (nothing is built)
#   BASELINE_LLMRT  optional second binary (e.g. an older build), measured
#                   in the same rounds; its rows and the new/old ratios follow
# environment: ROUNDS (default 7), BUSY_CPU (the core the busy loop is
# pinned to, default 1), MAX_TOKENS (decode tokens per run, default 256)
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
NEW=$1
OLD=${2:-}
ROUNDS=${ROUNDS:-7}
BUSY_CPU=${BUSY_CPU:-1}
MAX_TOKENS=${MAX_TOKENS:-256}
for b in "$NEW" $OLD; do
    [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "taskset is needed (util-linux)" >&2; exit 2; }

# ~100 prompt tokens, so prompt tokens/s measures a real prefill step
PROMPT="The old lighthouse keeper climbed the stairs every evening to light the lamp."
PROMPT="$PROMPT $PROMPT $PROMPT $PROMPT $PROMPT $PROMPT"

OUT=$(mktemp -d)
BUSY_PID=
cleanup() {
    [ -n "$BUSY_PID" ] && kill "$BUSY_PID" 2>/dev/null
    rm -rf "$OUT"
}
trap cleanup EXIT INT TERM

# one run: appends "prompt_tps decode_tps" to $OUT/<label>
measure() { # label binary [--threads 1]
    label=$1
    bin=$2
    shift 2
    "$bin" run --prompt "$PROMPT" --max-tokens "$MAX_TOKENS" --ignore-eos --verbose "$@" 2>&1 >/dev/null |
        awk '/^prompt:/ { gsub(/\(/, "", $(NF-1)); p = $(NF-1) }
             /^decode:/ { gsub(/\(/, "", $(NF-1)); d = $(NF-1) }
             END { if (p == "" || d == "") exit 1; print p, d }' >>"$OUT/$label"
}

round() { # condition
    measure "new.$1.default" "$NEW"
    measure "new.$1.t1" "$NEW" --threads 1
    if [ -n "$OLD" ]; then
        measure "old.$1.default" "$OLD"
        measure "old.$1.t1" "$OLD" --threads 1
    fi
}

# builds the demo engine into the cache if needed, outside the timings
"$NEW" run --prompt "warm up" --max-tokens 1 >/dev/null 2>&1

echo "cores: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg); rounds: $ROUNDS; busy loop on cpu $BUSY_CPU"
i=0
while [ "$i" -lt "$ROUNDS" ]; do
    round quiet
    taskset -c "$BUSY_CPU" sh -c 'while :; do :; done' &
    BUSY_PID=$!
    sleep 0.2
    round busy
    kill "$BUSY_PID"
    wait "$BUSY_PID" 2>/dev/null || true
    BUSY_PID=
    i=$((i + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { # file column
    awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
printf '%-8s %-6s %-8s %14s %14s\n' binary load threads "prompt tok/s" "decode tok/s"
for b in new old; do
    [ "$b" = old ] && [ -z "$OLD" ] && continue
    for c in quiet busy; do
        for t in default t1; do
            f="$OUT/$b.$c.$t"
            printf '%-8s %-6s %-8s %14s %14s\n' "$b" "$c" "$( [ $t = t1 ] && echo 1 || echo default)" \
                "$(median "$f" 1)" "$(median "$f" 2)"
        done
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
echo
for b in new old; do
    [ "$b" = old ] && [ -z "$OLD" ] && continue
    echo "$b: busy decode, default threads / 1 thread: $(ratio "$(median "$OUT/$b.busy.default" 2)" "$(median "$OUT/$b.busy.t1" 2)")" \
        " (quiet: $(ratio "$(median "$OUT/$b.quiet.default" 2)" "$(median "$OUT/$b.quiet.t1" 2)"))"
done
if [ -n "$OLD" ]; then
    for c in quiet busy; do
        echo "new/old, $c, default threads: decode $(ratio "$(median "$OUT/new.$c.default" 2)" "$(median "$OUT/old.$c.default" 2)")," \
            "prompt $(ratio "$(median "$OUT/new.$c.default" 1)" "$(median "$OUT/old.$c.default" 1)")"
    done
fi
