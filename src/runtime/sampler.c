#include "runtime/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

size_t llmrt_sampler_scratch_bytes(int32_t vocab) { return (size_t)vocab * sizeof(candidate); }

static int by_prob_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->prob != y->prob) return x->prob < y->prob ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Moves the candidates with prob >= threshold to the front; returns how many. */
static int32_t partition_at_least(candidate *c, int32_t count, float threshold) {
    int32_t kept = 0;
    for (int32_t i = 0; i < count; i++)
        if (c[i].prob >= threshold) {
            candidate t = c[kept];
            c[kept++] = c[i];
            c[i] = t;
        }
    return kept;
}

/* Sorts (a prefix of) the candidates best first and returns how many the
 * sampler may draw from, honouring top-k and top-p over all of them. Sorting
 * the whole vocabulary for each token is the slow part, so it first sorts
 * only the candidates above a small fraction of the top probability: when
 * they already hold top_p of the mass and number at least top_k, the nucleus
 * lies inside them (it is made of the largest probabilities), and the result
 * is the same as a full sort. */
static int32_t sort_for_filters(candidate *c, int32_t vocab, double total, float max_prob,
                                const llmrt_sampler_config *config) {
    int32_t count = vocab;
    int32_t k = config->top_k > 0 && config->top_k < vocab ? config->top_k : vocab;
    int32_t head = partition_at_least(c, vocab, max_prob * 1e-4f);
    int head_suffices = 0;
    if (k < vocab) {
        head_suffices = head >= k; /* top-p then only trims the top k */
    } else {
        double head_mass = 0;
        for (int32_t i = 0; i < head; i++) head_mass += c[i].prob;
        head_suffices = head_mass >= config->top_p * total * (1 + 1e-6);
    }
    qsort(c, (size_t)(head_suffices ? head : vocab), sizeof *c, by_prob_desc);
    if (k < count) count = k;
    if (config->top_p < 1.0f) {
        double kept_total = 0;
        for (int32_t i = 0; i < count; i++) kept_total += c[i].prob;
        /* keep the smallest prefix whose mass reaches top_p (at least one) */
        double mass = 0;
        int32_t keep = 0;
        while (keep < count) {
            mass += c[keep].prob / kept_total;
            keep++;
            if (mass >= config->top_p) break;
        }
        count = keep;
    }
    return count;
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
    if (need_sort) count = sort_for_filters(c, vocab, total, 1.0f, config);
    if (config->min_p > 0.0f) /* the top probability is exp(0) = 1 before normalisation */
        count = partition_at_least(c, count, config->min_p);
    if (count < vocab) {
        total = 0;
        for (int32_t i = 0; i < count; i++) total += c[i].prob;
    }
    double r = llmrt_rng_uniform(rng) * total, acc = 0;
    for (int32_t i = 0; i < count; i++) {
        acc += c[i].prob;
        if (r < acc) return c[i].id;
    }
    return c[count - 1].id;
}

int llmrt_penalties_active(const llmrt_penalties *p) {
    return p->repetition != 1.0f || p->presence != 0.0f || p->frequency != 0.0f;
}

void llmrt_apply_penalties(float *logits, int32_t vocab, const llmrt_penalties *p, const int32_t *tokens,
                           int32_t num_tokens, int32_t output_start, int32_t *counts) {
    if (p->repetition != 1.0f) {
        /* counts[t] marks tokens already penalised, so each is hit once (HF) */
        for (int32_t i = 0; i < num_tokens; i++) {
            int32_t t = tokens[i];
            if (t < 0 || t >= vocab || counts[t]) continue;
            counts[t] = 1;
            logits[t] = logits[t] > 0 ? logits[t] / p->repetition : logits[t] * p->repetition;
        }
        for (int32_t i = 0; i < num_tokens; i++)
            if (tokens[i] >= 0 && tokens[i] < vocab) counts[tokens[i]] = 0;
    }
    if (p->presence != 0.0f || p->frequency != 0.0f) {
        for (int32_t i = output_start; i < num_tokens; i++)
            if (tokens[i] >= 0 && tokens[i] < vocab) counts[tokens[i]]++;
        for (int32_t i = output_start; i < num_tokens; i++) {
            int32_t t = tokens[i];
            if (t < 0 || t >= vocab || !counts[t]) continue;
            logits[t] -= p->frequency * (float)counts[t] + p->presence;
            counts[t] = 0;
        }
    }
}

/* e^x for x <= 0 without a libm call, so the loop below vectorises: x =
 * n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial (relative error
 * ~2e-7), 2^n assembled in the exponent bits. Below -87 the result is 0. */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f + r * (0.00833336078f +
                                                                                     r * 0.00138889f)))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* The exponent bits all ones is NaN or ±Inf. An OR over the row's bits
 * vectorises: a small part of llmrt_logsumexp's cost, which runs it first. */
static inline int row_finite(const float *logits, int32_t vocab) {
    uint32_t bad = 0;
    for (int32_t i = 0; i < vocab; i++) {
        uint32_t bits;
        memcpy(&bits, &logits[i], sizeof bits);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    return !bad;
}

int llmrt_logits_finite(const float *logits, int32_t vocab) { return row_finite(logits, vocab); }

/* The clones are static behind a plain llmrt_logsumexp: clang 14 names the
 * dispatcher of an exported target_clones function "llmrt_logsumexp.ifunc",
 * so callers in other files (runtime.c) did not link in clang builds
 * (make fuzz). */
__attribute__((target_clones("avx512f", "avx2", "default")))
static double logsumexp_dispatched(const float *logits, int32_t vocab) {
    /* every token of every request pays this (log-probabilities are always
     * reported), over the whole vocabulary: a vectorisable exp and float
     * partial sums in blocks (each block's terms are <= 1), then double */
    if (!row_finite(logits, vocab)) return NAN; /* and exp_nonpositive never sees a NaN */
    float max_logit = logits[llmrt_sample_greedy(logits, vocab)];
    double sum = 0;
    enum { BLOCK = 256 };
    for (int32_t start = 0; start < vocab; start += BLOCK) {
        int32_t end = start + BLOCK < vocab ? start + BLOCK : vocab;
        float part = 0;
        for (int32_t i = start; i < end; i++) part += exp_nonpositive(logits[i] - max_logit);
        sum += part;
    }
    return max_logit + log(sum);
}

double llmrt_logsumexp(const float *logits, int32_t vocab) { return logsumexp_dispatched(logits, vocab); }

void llmrt_top_k_ids(const float *logits, int32_t vocab, int32_t k, int32_t *ids) {
    /* insertion into a sorted list of k: O(vocab × k) worst case, and k is
     * small here (beams × 2, logprobs <= 20) */
    int32_t n = 0;
    for (int32_t i = 0; i < vocab; i++) {
        float v = logits[i];
        if (n == k && !(v > logits[ids[k - 1]])) continue;
        int32_t j = n < k ? n++ : k - 1;
        while (j > 0 && v > logits[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
}
