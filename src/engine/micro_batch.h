/* Pipeline micro-batches: one step split by sequences, so that stage s can
 * work on micro-batch g + 1 while stage s + 1 works on g.
 *
 * Every rank splits the step it was broadcast with the same function, so
 * the ranks agree on the pieces without sending them. */
#ifndef LLMRT_ENGINE_MICRO_BATCH_H
#define LLMRT_ENGINE_MICRO_BATCH_H

#include "backends/backend.h"

/* At most this many pieces a step. */
#define LLMRT_MAX_MICRO_BATCHES 16
/* A piece smaller than this reads the weights for too little work: decode
 * steps of a few sequences stay whole, since reading each stage's weights
 * once per piece costs more than the overlap gains. */
#define LLMRT_MICRO_BATCH_MIN_TOKENS 16

typedef struct llmrt_micro_batch {
    int32_t first_seq, num_seqs;
    int32_t first_token, num_tokens;
    int32_t first_logit, num_logits;
} llmrt_micro_batch;

/* Splits `step` into at most `max_parts` (≤ LLMRT_MAX_MICRO_BATCHES)
 * pieces of whole sequences and about equal tokens, each of at least
 * LLMRT_MICRO_BATCH_MIN_TOKENS tokens, and returns their count; 1 (the
 * whole step in out[0]) when it cannot be split: one sequence, too few
 * tokens, or logit rows out of token order. */
int32_t llmrt_micro_batches_split(const llmrt_step *step, int32_t max_parts, llmrt_micro_batch *out);

/* The step of one piece, which points into `step`'s arrays except for its
 * rebased seq_start and logits_indices, written to `scratch`
 * ([mb->num_seqs + 1 + mb->num_logits]). Its logits hand-back is left to
 * the caller (logits_by_caller). */
void llmrt_micro_batch_step(const llmrt_step *step, const llmrt_micro_batch *mb, int32_t *scratch,
                            llmrt_step *out);

#endif
