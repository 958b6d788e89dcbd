/* The sampler: greedy ties, top-k = 1 is greedy, top-k / top-p / min-p keep
 * exactly the tokens they should, penalties match their definitions, seeds
 * reproduce, log-probabilities and top-N ids are right. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sampler.h"
#include "test_util.h"

enum { V = 1000 };

static void make_logits(float *x, uint64_t seed) {
    uint64_t st = seed;
    test_fill_random(x, V, &st, 4.0f);
}

static void test_greedy_and_top_k1(void) {
    float x[V];
    make_logits(x, 1);
    x[10] = 9;
    x[20] = 9; /* tie: the lower index wins, as torch.argmax */
    CHECK(llmrt_sample_greedy(x, V) == 10);
    void *scratch = malloc(llmrt_sampler_scratch_bytes(V));
    llmrt_rng rng;
    llmrt_rng_seed(&rng, 5);
    llmrt_sampler_config top1 = {1.0f, 1, 1.0f, 0.0f};
    for (int i = 0; i < 20; i++) CHECK(llmrt_sample(x, V, &top1, &rng, scratch) == 10);
    llmrt_sampler_config greedy = {0.0f, 0, 1.0f, 0.0f};
    CHECK(llmrt_sample(x, V, &greedy, &rng, scratch) == 10);
    free(scratch);
}

/* Draws many samples; returns 1 if every draw is in allowed[] and every
 * allowed token was drawn at least once (when `all_seen`). */
static int draws_within(const float *x, const llmrt_sampler_config *c, const int *allowed, int all_seen) {
    void *scratch = malloc(llmrt_sampler_scratch_bytes(V));
    int seen[V] = {0}, ok = 1;
    llmrt_rng rng;
    llmrt_rng_seed(&rng, 42);
    for (int i = 0; i < 4000; i++) {
        int32_t t = llmrt_sample(x, V, c, &rng, scratch);
        if (!allowed[t]) ok = 0;
        seen[t] = 1;
    }
    for (int i = 0; all_seen && i < V; i++)
        if (allowed[i] && !seen[i]) ok = 0;
    free(scratch);
    return ok;
}

static void test_filters(void) {
    float x[V];
    for (int i = 0; i < V; i++) x[i] = -10.0f;
    /* probabilities ∝ e^l: token 0: e^2, 1: e^1.5, 2: e^1, 3: e^0, rest tiny */
    x[0] = 2.0f, x[1] = 1.5f, x[2] = 1.0f, x[3] = 0.0f;
    int allowed[V] = {0};
    allowed[0] = allowed[1] = 1;
    llmrt_sampler_config k2 = {1.0f, 2, 1.0f, 0.0f};
    CHECK(draws_within(x, &k2, allowed, 1));
    double p[4], z = 0;
    for (int i = 0; i < 4; i++) z += exp(x[i]);
    z += (V - 4) * exp(-10.0);
    for (int i = 0; i < 4; i++) p[i] = exp(x[i]) / z;
    /* top-p just above p0 + p1 needs token 2 too */
    llmrt_sampler_config nucleus = {1.0f, 0, (float)(p[0] + p[1] + 0.01), 0.0f};
    allowed[2] = 1;
    CHECK(draws_within(x, &nucleus, allowed, 1));
    /* min-p: keep tokens with p >= 0.5 × p0: e^1.5 / e^2 = 0.61 yes, e^1 / e^2 = 0.37 no */
    llmrt_sampler_config minp = {1.0f, 0, 1.0f, 0.5f};
    allowed[2] = 0;
    CHECK(draws_within(x, &minp, allowed, 1));
    /* temperature sharpens: at 0.05 essentially always token 0 */
    llmrt_sampler_config cold = {0.05f, 0, 1.0f, 0.0f};
    int only0[V] = {1};
    CHECK(draws_within(x, &cold, only0, 1));
    /* the partial-sort shortcut (top-p over a large flat tail) still keeps
     * the whole nucleus: 1000 equal logits and top_p 0.5 → 500 tokens */
    float flat[V];
    for (int i = 0; i < V; i++) flat[i] = 0.0f;
    llmrt_sampler_config half = {1.0f, 0, 0.5f, 0.0f};
    int first_half[V] = {0};
    for (int i = 0; i < 500; i++) first_half[i] = 1; /* ties sort by id */
    CHECK(draws_within(flat, &half, first_half, 0));
}

static void test_seed_reproducible(void) {
    float x[V];
    make_logits(x, 3);
    void *scratch = malloc(llmrt_sampler_scratch_bytes(V));
    llmrt_sampler_config c = {0.8f, 40, 0.9f, 0.02f};
    int32_t a[64], b[64];
    llmrt_rng r1, r2;
    llmrt_rng_seed(&r1, 1234);
    for (int i = 0; i < 64; i++) a[i] = llmrt_sample(x, V, &c, &r1, scratch);
    llmrt_rng_seed(&r2, 1234);
    for (int i = 0; i < 64; i++) b[i] = llmrt_sample(x, V, &c, &r2, scratch);
    CHECK(memcmp(a, b, sizeof a) == 0);
    llmrt_rng_seed(&r2, 1235);
    int differ = 0;
    for (int i = 0; i < 64; i++) differ |= llmrt_sample(x, V, &c, &r2, scratch) != a[i];
    CHECK(differ);
    free(scratch);
}

static void test_penalties(void) {
    float x[8] = {2, -2, 1, 0.5f, 3, -1, 0, 1};
    float y[8];
    memcpy(y, x, sizeof x);
    int32_t counts[8] = {0};
    /* prompt {0, 1}, output {4, 4, 2} */
    int32_t tokens[5] = {0, 1, 4, 4, 2};
    llmrt_penalties p = {2.0f, 0.5f, 0.25f};
    llmrt_apply_penalties(y, 8, &p, tokens, 5, 2, counts);
    CHECK(fabsf(y[0] - 1.0f) < 1e-6f);                 /* positive: divided */
    CHECK(fabsf(y[1] - -4.0f) < 1e-6f);                /* negative: multiplied */
    CHECK(fabsf(y[4] - (1.5f - 0.5f - 0.5f)) < 1e-6f); /* once by repetition, then presence + 2 × frequency */
    CHECK(fabsf(y[2] - (0.5f - 0.5f - 0.25f)) < 1e-6f);
    CHECK(y[3] == x[3] && y[7] == x[7]);
    for (int i = 0; i < 8; i++) CHECK(counts[i] == 0); /* scratch handed back clean */
    llmrt_penalties off = {1.0f, 0.0f, 0.0f};
    CHECK(!llmrt_penalties_active(&off) && llmrt_penalties_active(&p));
}

static void test_logprobs_and_top(void) {
    float x[V];
    make_logits(x, 9);
    double lse = llmrt_logsumexp(x, V), total = 0;
    for (int i = 0; i < V; i++) total += exp(x[i] - lse);
    /* log-probabilities are reported as float32; the logsumexp uses a
     * vectorised exp good to ~2e-7 relative, so probabilities sum to 1
     * within a few 1e-7 (the exact-libm version was at 1e-9) */
    CHECK(fabs(total - 1.0) < 1e-6);
    int32_t ids[5];
    llmrt_top_k_ids(x, V, 5, ids);
    CHECK(ids[0] == llmrt_sample_greedy(x, V));
    for (int i = 1; i < 5; i++) CHECK(x[ids[i]] <= x[ids[i - 1]]);
    int bigger = 0; /* nothing outside the top 5 beats the fifth */
    for (int i = 0; i < V; i++) bigger += x[i] > x[ids[4]];
    CHECK(bigger == 4);
}

/* Every non-finite value anywhere in the row is caught, the vectorised body
 * and the tail alike (by llmrt_logsumexp too, under UBSan: its fast exp
 * must never see a NaN); the largest finite float and -0 are not. */
static void test_logits_finite(void) {
    enum { N = 1027 };
    float x[N];
    make_logits(x, 5);
    CHECK(llmrt_logits_finite(x, N));
    x[0] = 3.4028235e38f;
    x[1] = -0.0f;
    CHECK(llmrt_logits_finite(x, N));
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const int at[] = {0, 511, N - 1};
    for (int b = 0; b < 3; b++)
        for (int p = 0; p < 3; p++) {
            float saved = x[at[p]];
            x[at[p]] = bad[b];
            CHECK(!llmrt_logits_finite(x, N));
            CHECK(isnan(llmrt_logsumexp(x, N))); /* the runtime fails such a row on this */
            x[at[p]] = saved;
        }
}

int main(void) {
    RUN_TEST(test_greedy_and_top_k1);
    RUN_TEST(test_filters);
    RUN_TEST(test_seed_reproducible);
    RUN_TEST(test_penalties);
    RUN_TEST(test_logprobs_and_top);
    RUN_TEST(test_logits_finite);
    return test_finish();
}
