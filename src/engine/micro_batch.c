/* Pipeline micro-batches: splitting a step by sequences (micro_batch.h). */
#include "engine/micro_batch.h"

/* The first logit row at or after token t (rows are in token order). */
static int32_t first_logit_at(const llmrt_step *step, int32_t t) {
    int32_t lo = 0, hi = step->num_logits;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (step->logits_indices[mid] < t) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int32_t whole(const llmrt_step *step, llmrt_micro_batch *out) {
    out[0] = (llmrt_micro_batch){0, step->num_seqs, 0, step->num_tokens, 0, step->num_logits};
    return 1;
}

int32_t llmrt_micro_batches_split(const llmrt_step *step, int32_t max_parts, int32_t min_tokens,
                                  llmrt_micro_batch *out) {
    const int32_t S = step->num_seqs, T = step->num_tokens;
    int32_t parts = max_parts < LLMRT_MAX_MICRO_BATCHES ? max_parts : LLMRT_MAX_MICRO_BATCHES;
    if (min_tokens < 1) min_tokens = 1;
    if (parts > T / min_tokens) parts = T / min_tokens;
    if (parts < 2) return whole(step, out);
    for (int32_t l = 1; l < step->num_logits; l++)
        if (step->logits_indices[l] < step->logits_indices[l - 1]) return whole(step, out);
    /* piece g is tokens [g·T/parts, (g+1)·T/parts) and the sequences they
     * belong to: a sequence cut in two has its first tokens in one piece
     * and the rest in the next, which attend to what the first wrote in
     * the KV cache (each stage runs the pieces in order) */
    int32_t seq = 0;
    for (int32_t g = 0; g < parts; g++) {
        const int32_t t0 = (int32_t)((int64_t)T * g / parts), t1 = (int32_t)((int64_t)T * (g + 1) / parts);
        while (seq + 1 < S && step->seq_start[seq + 1] <= t0) seq++;
        int32_t end = seq + 1;
        while (end < S && step->seq_start[end] < t1) end++;
        const int32_t l0 = first_logit_at(step, t0), l1 = first_logit_at(step, t1);
        out[g] = (llmrt_micro_batch){seq, end - seq, t0, t1 - t0, l0, l1 - l0};
    }
    return parts;
}

void llmrt_micro_batch_step(const llmrt_step *step, const llmrt_micro_batch *mb, int32_t *scratch,
                            llmrt_step *out) {
    int32_t *seq_start = scratch, *logits_indices = scratch + mb->num_seqs + 1;
    for (int32_t s = 0; s <= mb->num_seqs; s++) { /* a cut sequence keeps only its tokens in the piece */
        const int32_t t = step->seq_start[mb->first_seq + s] - mb->first_token;
        seq_start[s] = t < 0 ? 0 : t > mb->num_tokens ? mb->num_tokens : t;
    }
    for (int32_t l = 0; l < mb->num_logits; l++)
        logits_indices[l] = step->logits_indices[mb->first_logit + l] - mb->first_token;
    *out = (llmrt_step){
        .num_tokens = mb->num_tokens,
        .token_ids = step->token_ids + mb->first_token,
        .positions = step->positions + mb->first_token,
        .num_seqs = mb->num_seqs,
        .seq_start = seq_start,
        .block_tables = step->block_tables + (size_t)mb->first_seq * (size_t)step->max_blocks_per_seq,
        .max_blocks_per_seq = step->max_blocks_per_seq,
        .num_logits = mb->num_logits,
        .logits_indices = logits_indices,
        .sampling = NULL,
        .token_type_ids = step->token_type_ids ? step->token_type_ids + mb->first_token : NULL,
        .logits_by_caller = 1,
    };
}
