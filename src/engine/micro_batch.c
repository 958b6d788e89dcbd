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
    if (parts > S) parts = S;
    if (min_tokens < 1) min_tokens = 1;
    if (parts > T / min_tokens) parts = T / min_tokens;
    if (parts < 2) return whole(step, out);
    for (int32_t l = 1; l < step->num_logits; l++)
        if (step->logits_indices[l] < step->logits_indices[l - 1]) return whole(step, out);
    /* piece g ends at the first sequence boundary at or past g·T/parts,
     * leaving a sequence for each piece after it */
    int32_t count = 0, seq = 0;
    for (int32_t g = 0; g < parts && seq < S; g++) {
        int32_t end = S;
        if (g < parts - 1) {
            const int64_t target = (int64_t)T * (g + 1) / parts;
            end = seq + 1;
            while (end < S - (parts - 1 - g) && step->seq_start[end] < target) end++;
        }
        const int32_t t0 = step->seq_start[seq], t1 = step->seq_start[end];
        const int32_t l0 = first_logit_at(step, t0), l1 = first_logit_at(step, t1);
        out[count++] = (llmrt_micro_batch){seq, end - seq, t0, t1 - t0, l0, l1 - l0};
        seq = end;
    }
    for (int32_t g = 0; g < count; g++)
        if (out[g].num_tokens < min_tokens) return whole(step, out);
    return count;
}

void llmrt_micro_batch_step(const llmrt_step *step, const llmrt_micro_batch *mb, int32_t *scratch,
                            llmrt_step *out) {
    int32_t *seq_start = scratch, *logits_indices = scratch + mb->num_seqs + 1;
    for (int32_t s = 0; s <= mb->num_seqs; s++) seq_start[s] = step->seq_start[mb->first_seq + s] - mb->first_token;
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
