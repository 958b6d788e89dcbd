#include "runtime/sampler.h"

#include <math.h>
#include <stdlib.h>

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void llmrt_rng_seed(llmrt_rng *rng, uint64_t seed) {
    /* splitmix64 expands the seed into xoshiro256** state */
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        rng->s[i] = z ^ (z >> 31);
    }
}

static uint64_t rng_next(llmrt_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double llmrt_rng_uniform(llmrt_rng *rng) { return (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0); }

int32_t llmrt_sample_greedy(const float *logits, int32_t vocab) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

typedef struct candidate {
    float prob;
    int32_t id;
} candidate;

static int by_prob_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->prob != y->prob) return x->prob < y->prob ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t llmrt_sample(const float *logits, int32_t vocab, const llmrt_sampler_config *config, llmrt_rng *rng,
                     void *scratch) {
    if (config->temperature <= 0.0f || config->top_k == 1) return llmrt_sample_greedy(logits, vocab);
    candidate *c = scratch;
    float max_logit = logits[llmrt_sample_greedy(logits, vocab)];
    double total = 0;
    for (int32_t i = 0; i < vocab; i++) {
        c[i].id = i;
        c[i].prob = expf((logits[i] - max_logit) / config->temperature);
        total += c[i].prob;
    }
    int32_t count = vocab;
    int need_sort = (config->top_k > 0 && config->top_k < vocab) || config->top_p < 1.0f;
    if (need_sort) {
        qsort(c, (size_t)vocab, sizeof *c, by_prob_desc);
        if (config->top_k > 0 && config->top_k < count) count = config->top_k;
        total = 0;
        for (int32_t i = 0; i < count; i++) total += c[i].prob;
        if (config->top_p < 1.0f) {
            /* keep the smallest prefix whose mass reaches top_p (at least one) */
            double mass = 0;
            int32_t keep = 0;
            while (keep < count) {
                mass += c[keep].prob / total;
                keep++;
                if (mass >= config->top_p) break;
            }
            count = keep;
            total = 0;
            for (int32_t i = 0; i < count; i++) total += c[i].prob;
        }
    }
    double r = llmrt_rng_uniform(rng) * total, acc = 0;
    for (int32_t i = 0; i < count; i++) {
        acc += c[i].prob;
        if (r < acc) return c[i].id;
    }
    return c[count - 1].id;
}
