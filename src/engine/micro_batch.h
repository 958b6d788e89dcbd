/* Pipeline micro-batches: one step split into runs of its tokens, so that
 * stage s can work on micro-batch g + 1 while stage s + 1 works on g.
 *
 * Every rank splits the step it was broadcast with the same function, so
 * the ranks agree on the pieces without sending them. */
#ifndef LLMRT_ENGINE_MICRO_BATCH_H
#define LLMRT_ENGINE_MICRO_BATCH_H

#include "backends/backend.h"

/* At most this many pieces a step. */
#define LLMRT_MAX_MICRO_BATCHES 16
/* The fewest tokens a piece may have, per backend: a smaller piece reads
 * each stage's weights for too little work, since every piece reads them
 * again. Where a linear turns from reading the weights to computing: about
 * 16 rows on a CPU core, a few hundred on a GPU; so decode steps stay whole. */
#define LLMRT_MICRO_BATCH_MIN_TOKENS_CPU 16
#define LLMRT_MICRO_BATCH_MIN_TOKENS_GPU 256

typedef struct llmrt_micro_batch {
    int32_t first_seq, num_seqs;
    int32_t first_token, num_tokens;
    int32_t first_logit, num_logits;
} llmrt_micro_batch;

/* Splits `step` into at most `max_parts` (≤ LLMRT_MAX_MICRO_BATCHES)
 * pieces of equal tokens (to one), each of at least `min_tokens`, and
 * returns their count; 1 (the whole step in out[0]) when it cannot be
 * split: too few tokens, or logit rows out of token order. A sequence may
 * be cut between two pieces (one long prompt is split too): the later
 * piece's tokens attend to the KV cache rows the earlier one wrote. */
int32_t llmrt_micro_batches_split(const llmrt_step *step, int32_t max_parts, int32_t min_tokens,
                                  llmrt_micro_batch *out);

/* The step of one piece, which points into `step`'s arrays except for its
 * rebased seq_start and logits_indices, written to `scratch`
 * ([mb->num_seqs + 1 + mb->num_logits]). Its logits hand-back is left to
 * the caller (logits_by_caller). */
void llmrt_micro_batch_step(const llmrt_step *step, const llmrt_micro_batch *mb, int32_t *scratch,
                            llmrt_step *out);

#endif
