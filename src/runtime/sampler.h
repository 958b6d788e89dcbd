/* Token sampling from a row of logits: greedy, or temperature with top-k and
 * top-p filtering, driven by a per-request seeded generator so the same seed
 * and request give the same tokens whatever else runs. */
#ifndef LLMRT_RUNTIME_SAMPLER_H
#define LLMRT_RUNTIME_SAMPLER_H

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
} llmrt_sampler_config;

/* Index of the largest logit (the lowest index among ties, as torch.argmax). */
int32_t llmrt_sample_greedy(const float *logits, int32_t vocab);

/* Samples one token. `scratch` must hold 2 × vocab entries (indices and
 * probabilities); no allocation happens per token. */
int32_t llmrt_sample(const float *logits, int32_t vocab, const llmrt_sampler_config *config, llmrt_rng *rng,
                     void *scratch);

#endif
