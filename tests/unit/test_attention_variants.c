/* cpu_attention_ex (sliding window, logit soft-cap, ALiBi) against a
 * double-precision reference over plain per-sequence K/V arrays. Windows
 * cut a KV block, equal it, and exceed the context; the block-table slots
 * wholly before each sequence's window are -1 and their blocks NaN, as the
 * runtime leaves them after freeing, so any read before the window shows.
 * Also ALiBi's slopes against BLOOM's closed form. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "graph/graph.h"
#include "test_util.h"

#define NUM_SEQS 3
/* a decode token deep in its context, a prefill with a past, a fresh prefill */
static const int32_t past[NUM_SEQS] = {70, 19, 0};
static const int32_t fresh[NUM_SEQS] = {1, 13, 40};

static void reference(float *ref, const float *q, const float *k_all, const float *v_all, const int32_t *seq_start,
                      const int32_t *positions, int32_t max_len, int64_t heads, int64_t kv_heads, int64_t head_dim,
                      float scale, const cpu_attention_variant *var) {
    const int64_t row = kv_heads * head_dim;
    double *w = malloc(sizeof(double) * (size_t)max_len), *acc = malloc(sizeof(double) * (size_t)head_dim);
    for (int s = 0; s < NUM_SEQS; s++)
        for (int64_t t = seq_start[s]; t < seq_start[s + 1]; t++)
            for (int64_t h = 0; h < heads; h++) {
                const float *qv = q + (t * heads + h) * head_dim;
                const int64_t kvh = h / (heads / kv_heads), pos = positions[t];
                const int64_t first = var->sliding_window > 0 && pos + 1 > var->sliding_window
                                          ? pos + 1 - var->sliding_window : 0;
                const int32_t all_heads = var->alibi_total_heads ? var->alibi_total_heads : (int32_t)heads;
                const double slope = var->alibi_max_bias > 0
                                         ? llmrt_alibi_slope((int32_t)h + var->alibi_first_head, all_heads,
                                                             var->alibi_max_bias)
                                         : 0.0;
                double max = -INFINITY, sum = 0.0;
                for (int64_t p = first; p <= pos; p++) {
                    const float *kv = k_all + ((int64_t)s * max_len + p) * row + kvh * head_dim;
                    double dot = 0.0;
                    for (int64_t d = 0; d < head_dim; d++) dot += (double)qv[d] * kv[d];
                    w[p] = dot * scale;
                    if (var->logit_softcap > 0) w[p] = var->logit_softcap * tanh(w[p] / var->logit_softcap);
                    w[p] += slope * (double)(p - pos);
                    if (w[p] > max) max = w[p];
                }
                for (int64_t p = first; p <= pos; p++) sum += (w[p] = exp(w[p] - max));
                for (int64_t d = 0; d < head_dim; d++) acc[d] = 0.0;
                for (int64_t p = first; p <= pos; p++) {
                    const float *vv = v_all + ((int64_t)s * max_len + p) * row + kvh * head_dim;
                    for (int64_t d = 0; d < head_dim; d++) acc[d] += w[p] / sum * vv[d];
                }
                for (int64_t d = 0; d < head_dim; d++) ref[(t * heads + h) * head_dim + d] = (float)acc[d];
            }
    free(w), free(acc);
}

static void check_variant(int32_t block_size, int64_t heads, int64_t kv_heads, int64_t head_dim,
                          const cpu_attention_variant *var, uint64_t *rng) {
    int32_t seq_start[NUM_SEQS + 1] = {0}, max_len = 0;
    for (int s = 0; s < NUM_SEQS; s++) {
        seq_start[s + 1] = seq_start[s] + fresh[s];
        if (past[s] + fresh[s] > max_len) max_len = past[s] + fresh[s];
    }
    const int64_t T = seq_start[NUM_SEQS], row = kv_heads * head_dim;
    const int32_t max_blocks = (max_len + block_size - 1) / block_size;
    const int32_t num_blocks = NUM_SEQS * max_blocks;
    int32_t *tables = malloc(sizeof(int32_t) * (size_t)num_blocks);
    for (int32_t i = 0; i < num_blocks; i++) tables[i] = i;
    for (int32_t i = num_blocks - 1; i > 0; i--) {
        int32_t j = (int32_t)(test_rand_u64(rng) % (uint64_t)(i + 1)), tmp = tables[i];
        tables[i] = tables[j], tables[j] = tmp;
    }
    float *k_all = malloc(sizeof(float) * (size_t)(NUM_SEQS * max_len * row));
    float *v_all = malloc(sizeof(float) * (size_t)(NUM_SEQS * max_len * row));
    test_fill_random(k_all, (size_t)(NUM_SEQS * max_len * row), rng, 1.0f);
    test_fill_random(v_all, (size_t)(NUM_SEQS * max_len * row), rng, 1.0f);
    const int64_t slots = (int64_t)num_blocks * block_size;
    float *k_cache = malloc(sizeof(float) * (size_t)(slots * row));
    float *v_cache = malloc(sizeof(float) * (size_t)(slots * row));
    for (int64_t i = 0; i < slots * row; i++) k_cache[i] = v_cache[i] = NAN;
    int32_t *positions = malloc(sizeof(int32_t) * (size_t)T);
    float *k_new = malloc(sizeof(float) * (size_t)(T * row)), *v_new = malloc(sizeof(float) * (size_t)(T * row));
    for (int s = 0; s < NUM_SEQS; s++) {
        for (int32_t p = 0; p < past[s]; p++) {
            int64_t slot = (int64_t)tables[s * max_blocks + p / block_size] * block_size + p % block_size;
            memcpy(k_cache + slot * row, k_all + ((int64_t)s * max_len + p) * row, sizeof(float) * (size_t)row);
            memcpy(v_cache + slot * row, v_all + ((int64_t)s * max_len + p) * row, sizeof(float) * (size_t)row);
        }
        for (int32_t i = 0; i < fresh[s]; i++) {
            int64_t t = seq_start[s] + i;
            positions[t] = past[s] + i;
            memcpy(k_new + t * row, k_all + ((int64_t)s * max_len + positions[t]) * row, sizeof(float) * (size_t)row);
            memcpy(v_new + t * row, v_all + ((int64_t)s * max_len + positions[t]) * row, sizeof(float) * (size_t)row);
        }
    }
    cpu_attention_batch batch = {NUM_SEQS, seq_start, positions, tables, max_blocks, block_size, 0};
    cpu_kv_cache_write(k_cache, v_cache, k_new, v_new, &batch, T, kv_heads, head_dim);
    /* free what the runtime would: blocks wholly before the first query's window */
    if (var->sliding_window > 0)
        for (int s = 0; s < NUM_SEQS; s++) {
            const int32_t first_key = past[s] + 1 - var->sliding_window;
            for (int32_t b = 0; (b + 1) * block_size <= first_key; b++) {
                int32_t *slot = &tables[s * max_blocks + b];
                for (int64_t i = (int64_t)*slot * block_size * row; i < (int64_t)(*slot + 1) * block_size * row; i++)
                    k_cache[i] = v_cache[i] = NAN;
                *slot = -1;
            }
        }

    const size_t n = (size_t)(T * heads * head_dim);
    float *q = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    test_fill_random(q, n, rng, 2.0f);
    const float scale = 0.7f / sqrtf((float)head_dim);
    reference(ref, q, k_all, v_all, seq_start, positions, max_len, heads, kv_heads, head_dim, scale, var);
    static const char *const isas[] = {"portable", "avx2", "avx512"};
    for (size_t i = 0; i < 3; i++) {
        cpu_kernels_force_isa(isas[i]);
        if (strcmp(cpu_kernels_isa(), isas[i]) != 0) continue;
        cpu_attention_ex(out, q, k_cache, v_cache, &batch, T, heads, kv_heads, head_dim, scale, var);
        double err = test_rel_l2(out, ref, n);
        CHECK_MSG(err < 1e-5, "%s bs=%d heads=%lld/%lld d=%lld window=%d softcap=%g alibi=%g: rel err %g", isas[i],
                  block_size, (long long)heads, (long long)kv_heads, (long long)head_dim, var->sliding_window,
                  (double)var->logit_softcap, (double)var->alibi_max_bias, err);
    }
    cpu_kernels_force_isa(NULL);
    free(tables), free(k_all), free(v_all), free(k_cache), free(v_cache), free(positions);
    free(k_new), free(v_new), free(q), free(ref), free(out);
}

static void test_sliding_window(void) {
    uint64_t rng = 7;
    /* windows cutting a 16-slot block, equal to one, spanning several, and
     * one past every context (= full attention) */
    static const int32_t windows[] = {1, 5, 16, 37, 4096};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++)
        for (int bs = 8; bs <= 16; bs *= 2) {
            cpu_attention_variant var = {.sliding_window = windows[w]};
            check_variant(bs, 4, 2, 64, &var, &rng);
            check_variant(bs, 3, 1, 17, &var, &rng);
        }
}

static void test_softcap_and_alibi(void) {
    uint64_t rng = 11;
    cpu_attention_variant softcap = {.logit_softcap = 1.5f}; /* small: most scores saturate */
    check_variant(16, 4, 2, 32, &softcap, &rng);
    cpu_attention_variant gemma2 = {.sliding_window = 9, .logit_softcap = 50.0f};
    check_variant(16, 8, 4, 64, &gemma2, &rng);
    cpu_attention_variant alibi = {.alibi_max_bias = 8.0f};
    check_variant(16, 6, 6, 8, &alibi, &rng);  /* BLOOM's non-power-of-two head count */
    check_variant(16, 4, 4, 16, &alibi, &rng);
    cpu_attention_variant alibi_window = {.sliding_window = 20, .alibi_max_bias = 4.0f};
    check_variant(8, 4, 4, 16, &alibi_window, &rng);
    /* a tensor-parallel rank's heads 6..11 of 12 take those heads' slopes */
    cpu_attention_variant alibi_shard = {.alibi_max_bias = 8.0f, .alibi_first_head = 6, .alibi_total_heads = 12};
    check_variant(16, 6, 6, 8, &alibi_shard, &rng);
}

/* BLOOM's build_alibi_tensor: closest power of two p, base 2^(-8/p), slopes
 * base^1..p, then 2^(-4/p)^1,3,5,... for the remaining heads. */
static void test_alibi_slopes(void) {
    for (int32_t n = 1; n <= 24; n++) {
        int32_t p = 1;
        while (2 * p <= n) p *= 2;
        for (int32_t h = 0; h < n; h++) {
            double expect = h < p ? pow(pow(2.0, -8.0 / p), h + 1) : pow(pow(2.0, -4.0 / p), 2 * (h - p) + 1);
            float got = llmrt_alibi_slope(h, n, 8.0f);
            CHECK_MSG(fabs(got - expect) <= 1e-6 * expect, "alibi slope %d of %d: %g, expected %g", h, n,
                      (double)got, expect);
        }
    }
}

int main(void) {
    omp_set_num_threads(2);
    RUN_TEST(test_sliding_window);
    RUN_TEST(test_softcap_and_alibi);
    RUN_TEST(test_alibi_slopes);
    return test_finish();
}
