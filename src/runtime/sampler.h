/* Token sampling from a row of logits, in the order HF and vLLM apply it:
 * penalties (repetition over prompt and output; presence and frequency over
 * the output) → temperature → top-k → top-p → min-p → a draw from the
 * request's own seeded generator, so the same seed and request give the same
 * tokens whatever else shares the batch. Also the log-probabilities that
 * requests report (of the raw model distribution, as vLLM's default) and the
 * top candidates beam search expands. Nothing here allocates: callers pass
 * scratch sized by the vocabulary. */
#ifndef LLMRT_RUNTIME_SAMPLER_H
#define LLMRT_RUNTIME_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct llmrt_rng {
    uint64_t s[4];
} llmrt_rng;

void llmrt_rng_seed(llmrt_rng *rng, uint64_t seed);
/* Uniform in [0, 1). */
double llmrt_rng_uniform(llmrt_rng *rng);

typedef struct llmrt_sampler_config {
    float temperature; /* <= 0: greedy */
    int32_t top_k;     /* <= 0: all */
    float top_p;       /* >= 1: all */
    float min_p;       /* <= 0: off */
} llmrt_sampler_config;

typedef struct llmrt_penalties {
    float repetition; /* 1: off; > 1 discourages tokens seen in prompt or output */
    float presence;   /* subtracted once from each token in the output */
    float frequency;  /* subtracted per occurrence in the output */
} llmrt_penalties;

/* Index of the largest logit (the lowest index among ties, as torch.argmax). */
int32_t llmrt_sample_greedy(const float *logits, int32_t vocab);

/* Bytes of scratch llmrt_sample needs. */
size_t llmrt_sampler_scratch_bytes(int32_t vocab);

/* Samples one token. `scratch` holds llmrt_sampler_scratch_bytes(vocab). */
int32_t llmrt_sample(const float *logits, int32_t vocab, const llmrt_sampler_config *config, llmrt_rng *rng,
                     void *scratch);

/* Applies penalties in place. tokens[0..num_tokens) is prompt and output,
 * the output starting at output_start. `counts` is int32 scratch [vocab],
 * all zero on entry and on return. */
void llmrt_apply_penalties(float *logits, int32_t vocab, const llmrt_penalties *p, const int32_t *tokens,
                           int32_t num_tokens, int32_t output_start, int32_t *counts);
int llmrt_penalties_active(const llmrt_penalties *p);

/* 1 if every logit is finite. A row with a NaN or an infinity has no
 * distribution: argmax, the draw, the top-k and the log-normaliser would
 * each return an arbitrary answer, so such a row fails its request. */
int llmrt_logits_finite(const float *logits, int32_t vocab);

/* log Σ exp(logits): log-probability of token t is logits[t] - this; NaN
 * when a logit is not finite. */
double llmrt_logsumexp(const float *logits, int32_t vocab);

/* The k largest logits, best first (ties: lower id first), k <= vocab. */
void llmrt_top_k_ids(const float *logits, int32_t vocab, int32_t k, int32_t *ids);

#endif
