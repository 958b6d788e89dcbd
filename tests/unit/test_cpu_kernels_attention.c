/* cpu_kv_cache_write + cpu_attention against a double-precision reference
 * that reads K/V from plain per-sequence arrays, never from the paged cache:
 * a packed batch mixing a decode token, a fresh prefill and a prefill with a
 * past, over shuffled block tables, with unused cache blocks poisoned with
 * NaN so any stray read shows. Also cpu_rope against HF's formula. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "test_util.h"

static const char *const isa_names[] = {"portable", "avx2", "avx512"};

static int use_isa(const char *isa) {
    cpu_kernels_force_isa(isa);
    if (strcmp(cpu_kernels_isa(), isa) == 0) return 1;
    cpu_kernels_force_isa(NULL);
    return 0;
}

/* Sequence s already has past[s] positions cached and brings fresh[s] new
 * tokens at positions past[s] .. past[s] + fresh[s] - 1. */
#define NUM_SEQS 4
static const int32_t short_past[NUM_SEQS] = {37, 0, 50, 3};
static const int32_t short_fresh[NUM_SEQS] = {1, 23, 5, 1};
/* Contexts past one softmax chunk of the AVX-512 kernel (256 positions):
 * decode tokens at 600 and 257, a prefill crossing 256. */
static const int32_t long_past[NUM_SEQS] = {599, 250, 256, 0};
static const int32_t long_fresh[NUM_SEQS] = {1, 9, 1, 3};
static const int32_t *past = short_past, *fresh = short_fresh;
/* 1: bidirectional (encoder) attention, every token sees its sequence's
 * whole step, positions after its own included. */
static int non_causal = 0;

static void check_attention(int32_t block_size, int64_t heads, int64_t kv_heads, int64_t head_dim, uint64_t *rng) {
    int32_t seq_start[NUM_SEQS + 1] = {0}, max_len = 0;
    for (int s = 0; s < NUM_SEQS; s++) {
        seq_start[s + 1] = seq_start[s] + fresh[s];
        if (past[s] + fresh[s] > max_len) max_len = past[s] + fresh[s];
    }
    const int64_t T = seq_start[NUM_SEQS];
    const int32_t max_blocks = (max_len + block_size - 1) / block_size + 1;
    const int32_t num_blocks = NUM_SEQS * max_blocks + 3;
    const int64_t row = kv_heads * head_dim, slots = (int64_t)num_blocks * block_size;

    /* Block tables: a random permutation of all blocks, dealt out. */
    int32_t *perm = malloc(sizeof(int32_t) * num_blocks), *tables = malloc(sizeof(int32_t) * NUM_SEQS * max_blocks);
    for (int32_t i = 0; i < num_blocks; i++) perm[i] = i;
    for (int32_t i = num_blocks - 1; i > 0; i--) {
        int32_t j = (int32_t)(test_rand_u64(rng) % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    memcpy(tables, perm, sizeof(int32_t) * NUM_SEQS * max_blocks);

    /* The logical K/V of every sequence: [s][pos][kv_heads][head_dim]. */
    float *k_all = malloc(sizeof(float) * NUM_SEQS * max_len * row), *v_all = malloc(sizeof(float) * NUM_SEQS * max_len * row);
    test_fill_random(k_all, (size_t)(NUM_SEQS * max_len * row), rng, 1.0f);
    test_fill_random(v_all, (size_t)(NUM_SEQS * max_len * row), rng, 1.0f);
    float *k_cache = malloc(sizeof(float) * slots * row), *v_cache = malloc(sizeof(float) * slots * row);
    for (int64_t i = 0; i < slots * row; i++) k_cache[i] = v_cache[i] = NAN;
    for (int s = 0; s < NUM_SEQS; s++) /* the past, placed by the test's own indexing */
        for (int32_t p = 0; p < past[s]; p++) {
            int64_t slot = (int64_t)tables[s * max_blocks + p / block_size] * block_size + p % block_size;
            memcpy(k_cache + slot * row, k_all + ((int64_t)s * max_len + p) * row, sizeof(float) * row);
            memcpy(v_cache + slot * row, v_all + ((int64_t)s * max_len + p) * row, sizeof(float) * row);
        }

    int32_t *positions = malloc(sizeof(int32_t) * T);
    float *k_new = malloc(sizeof(float) * T * row), *v_new = malloc(sizeof(float) * T * row);
    for (int s = 0; s < NUM_SEQS; s++)
        for (int32_t i = 0; i < fresh[s]; i++) {
            int64_t t = seq_start[s] + i;
            positions[t] = past[s] + i;
            memcpy(k_new + t * row, k_all + ((int64_t)s * max_len + positions[t]) * row, sizeof(float) * row);
            memcpy(v_new + t * row, v_all + ((int64_t)s * max_len + positions[t]) * row, sizeof(float) * row);
        }
    cpu_attention_batch batch = {NUM_SEQS, seq_start, positions, tables, max_blocks, block_size, non_causal};
    cpu_kv_cache_write(k_cache, v_cache, k_new, v_new, &batch, T, kv_heads, head_dim);
    int written_ok = 1;
    for (int64_t t = 0; t < T; t++) {
        int s = 0;
        while (t >= seq_start[s + 1]) s++;
        int64_t slot = (int64_t)tables[s * max_blocks + positions[t] / block_size] * block_size + positions[t] % block_size;
        written_ok &= memcmp(k_cache + slot * row, k_new + t * row, sizeof(float) * row) == 0;
        written_ok &= memcmp(v_cache + slot * row, v_new + t * row, sizeof(float) * row) == 0;
    }
    CHECK_MSG(written_ok, "kv_cache_write bs=%d kv_heads=%lld head_dim=%lld", block_size, (long long)kv_heads,
              (long long)head_dim);

    float *q = malloc(sizeof(float) * T * heads * head_dim), *ref = malloc(sizeof(float) * T * heads * head_dim);
    float *out = malloc(sizeof(float) * T * heads * head_dim), *out1 = malloc(sizeof(float) * T * heads * head_dim);
    test_fill_random(q, (size_t)(T * heads * head_dim), rng, 2.0f); /* scores of a few units: a peaked softmax */
    const float scale = (float)(1.0 / sqrt((double)head_dim));
    double *w = malloc(sizeof(double) * max_len), *acc = malloc(sizeof(double) * head_dim);
    for (int s = 0; s < NUM_SEQS; s++)
        for (int64_t t = seq_start[s]; t < seq_start[s + 1]; t++)
            for (int64_t h = 0; h < heads; h++) {
                const float *qv = q + (t * heads + h) * head_dim;
                int64_t kvh = h / (heads / kv_heads);
                const int32_t last = non_causal ? positions[seq_start[s + 1] - 1] : positions[t];
                double max = -INFINITY, sum = 0.0;
                for (int32_t p = 0; p <= last; p++) {
                    const float *kv = k_all + ((int64_t)s * max_len + p) * row + kvh * head_dim;
                    double dot = 0.0;
                    for (int64_t d = 0; d < head_dim; d++) dot += (double)qv[d] * kv[d];
                    w[p] = dot * scale;
                    if (w[p] > max) max = w[p];
                }
                for (int32_t p = 0; p <= last; p++) sum += (w[p] = exp(w[p] - max));
                for (int64_t d = 0; d < head_dim; d++) acc[d] = 0.0;
                for (int32_t p = 0; p <= last; p++) {
                    const float *vv = v_all + ((int64_t)s * max_len + p) * row + kvh * head_dim;
                    for (int64_t d = 0; d < head_dim; d++) acc[d] += w[p] / sum * vv[d];
                }
                for (int64_t d = 0; d < head_dim; d++) ref[(t * heads + h) * head_dim + d] = (float)acc[d];
            }
    for (size_t i = 0; i < 3; i++) {
        if (!use_isa(isa_names[i])) continue;
        omp_set_num_threads(2);
        cpu_attention(out, q, k_cache, v_cache, &batch, T, heads, kv_heads, head_dim, scale);
        double err = test_rel_l2(out, ref, (size_t)(T * heads * head_dim));
        CHECK_MSG(err < 1e-5, "attention %s%s bs=%d heads=%lld kv_heads=%lld head_dim=%lld: rel err %g", isa_names[i],
                  non_causal ? " non-causal" : "", block_size, (long long)heads, (long long)kv_heads, (long long)head_dim, err);
        omp_set_num_threads(1);
        cpu_attention(out1, q, k_cache, v_cache, &batch, T, heads, kv_heads, head_dim, scale);
        CHECK_MSG(memcmp(out, out1, sizeof(float) * T * heads * head_dim) == 0, "attention %s: 1 vs 2 threads differ",
                  isa_names[i]);
        /* Each sequence alone gives the same bits as in the batch. */
        int alone_ok = 1;
        for (int s = 0; s < NUM_SEQS; s++) {
            const int64_t t0 = seq_start[s], n = seq_start[s + 1] - t0;
            int32_t one_start[2] = {0, (int32_t)n};
            cpu_attention_batch one = {1, one_start, positions + t0, tables + s * max_blocks, max_blocks, block_size,
                                       non_causal};
            omp_set_num_threads(2);
            cpu_attention(out1, q + t0 * heads * head_dim, k_cache, v_cache, &one, n, heads, kv_heads, head_dim, scale);
            alone_ok &= memcmp(out1, out + t0 * heads * head_dim, sizeof(float) * n * heads * head_dim) == 0;
        }
        CHECK_MSG(alone_ok, "attention %s bs=%d heads=%lld kv_heads=%lld head_dim=%lld: alone differs from batched",
                  isa_names[i], block_size, (long long)heads, (long long)kv_heads, (long long)head_dim);
    }
    cpu_kernels_force_isa(NULL);
    omp_set_num_threads(2);
    free(perm), free(tables), free(k_all), free(v_all), free(k_cache), free(v_cache), free(positions);
    free(k_new), free(v_new), free(q), free(ref), free(out), free(out1), free(w), free(acc);
}

static void test_attention(void) {
    static const int64_t head_groups[][2] = {{8, 8}, {8, 2}, {16, 2}}; /* GQA ratios 1, 4, 8 */
    static const int64_t head_dims[] = {64, 80, 128, 40, 17, 256};
    uint64_t rng = 99;
    for (int bs = 16; bs <= 32; bs *= 2)
        for (size_t g = 0; g < 3; g++)
            for (size_t d = 0; d < sizeof head_dims / sizeof head_dims[0]; d++)
                check_attention(bs, head_groups[g][0], head_groups[g][1], head_dims[d], &rng);
    check_attention(128, 4, 1, 96, &rng); /* a block larger than one score chunk */
    past = long_past, fresh = long_fresh;
    check_attention(16, 8, 4, 32, &rng); /* the demo model's shape */
    check_attention(16, 6, 2, 64, &rng); /* three heads per kv head: pairs and a single */
    check_attention(32, 5, 5, 24, &rng);
    past = short_past, fresh = short_fresh;
}

/* Encoder attention: whole sequences in one step (no past) and, as a
 * kernel-level check, sequences with a past too; odd head sizes included. */
static void test_attention_non_causal(void) {
    static const int32_t encoder_past[NUM_SEQS] = {0, 0, 0, 0}, encoder_fresh[NUM_SEQS] = {7, 1, 40, 19};
    uint64_t rng = 7;
    non_causal = 1;
    past = encoder_past, fresh = encoder_fresh;
    check_attention(16, 4, 4, 64, &rng);
    check_attention(16, 3, 3, 17, &rng);
    check_attention(32, 8, 2, 80, &rng);
    past = short_past, fresh = short_fresh;
    check_attention(16, 4, 2, 32, &rng);
    past = long_past, fresh = long_fresh;
    check_attention(16, 8, 4, 32, &rng);
    past = short_past, fresh = short_fresh;
    non_causal = 0;
}

/* HF: angle = fp32(pos · inv_freq), then x·cos + rotate(x)·sin. */
static void check_rope(int64_t T, int64_t heads, int64_t head_dim, int64_t rotary_dim, int neox, uint64_t *rng) {
    const int64_t n = T * heads * head_dim, half = rotary_dim / 2;
    float *x = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n), *inv_freq = malloc(sizeof(float) * half);
    int32_t *pos = malloc(sizeof(int32_t) * T);
    test_fill_random(x, (size_t)n, rng, 1.0f);
    for (int64_t i = 0; i < half; i++) inv_freq[i] = (float)pow(10000.0, -2.0 * (double)i / (double)rotary_dim);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(test_rand_u64(rng) % 4096);
    memcpy(ref, x, sizeof(float) * n);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < half; i++) {
                float angle = (float)pos[t] * inv_freq[i];
                double c = cos((double)angle), s = sin((double)angle);
                int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
                float *r = ref + (t * heads + h) * head_dim;
                double xa = r[a], xb = r[b];
                r[a] = (float)(xa * c - xb * s), r[b] = (float)(xb * c + xa * s);
            }
    cpu_rope(x, pos, T, heads, head_dim, rotary_dim, inv_freq, neox);
    double err = test_rel_l2(x, ref, (size_t)n);
    CHECK_MSG(err < 1e-6, "rope T=%lld heads=%lld head_dim=%lld rotary=%lld neox=%d: rel err %g", (long long)T,
              (long long)heads, (long long)head_dim, (long long)rotary_dim, neox, err);
    int untouched = 1; /* dims past rotary_dim pass through bit for bit */
    for (int64_t t = 0; t < T * heads; t++)
        for (int64_t d = rotary_dim; d < head_dim; d++) untouched &= x[t * head_dim + d] == ref[t * head_dim + d];
    CHECK(untouched);
    free(x), free(ref), free(inv_freq), free(pos);
}

/* The per-step table path rotates exactly as cpu_rope, in place or not. */
static void check_rope_table(int64_t T, int64_t heads, int64_t head_dim, int64_t rotary_dim, int neox, uint64_t *rng) {
    const int64_t n = T * heads * head_dim;
    float *x = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    float *inv_freq = malloc(sizeof(float) * (rotary_dim / 2 + 1)), *table = malloc(sizeof(float) * T * rotary_dim);
    int32_t *pos = malloc(sizeof(int32_t) * T);
    test_fill_random(x, (size_t)n, rng, 1.0f);
    for (int64_t i = 0; i < rotary_dim / 2; i++) inv_freq[i] = (float)pow(10000.0, -2.0 * (double)i / (double)rotary_dim);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(test_rand_u64(rng) % 4096);
    memcpy(ref, x, sizeof(float) * n);
    cpu_rope(ref, pos, T, heads, head_dim, rotary_dim, inv_freq, neox);
    cpu_rope_table(table, pos, T, rotary_dim, inv_freq);
    cpu_rope_apply(out, x, table, T, heads, head_dim, rotary_dim, neox);
    CHECK_MSG(memcmp(out, ref, sizeof(float) * n) == 0, "rope table T=%lld head_dim=%lld rotary=%lld neox=%d differs",
              (long long)T, (long long)head_dim, (long long)rotary_dim, neox);
    cpu_rope_apply(x, x, table, T, heads, head_dim, rotary_dim, neox);
    CHECK_MSG(memcmp(x, ref, sizeof(float) * n) == 0, "rope table in place differs");
    free(x), free(ref), free(out), free(inv_freq), free(table), free(pos);
}

static void test_rope(void) {
    uint64_t rng = 4242;
    check_rope(7, 4, 64, 64, 1, &rng);
    check_rope(7, 4, 64, 64, 0, &rng);
    check_rope(5, 3, 64, 32, 0, &rng);   /* GPT-J: partial rotary */
    check_rope(5, 3, 80, 20, 1, &rng);   /* partial neox, odd pair count */
    check_rope(3, 2, 256, 256, 1, &rng); /* more pairs than one chunk */
    check_rope_table(7, 4, 64, 64, 1, &rng);
    check_rope_table(300, 3, 32, 32, 1, &rng); /* the parallel path */
    check_rope_table(5, 3, 64, 32, 0, &rng);
    check_rope_table(5, 3, 80, 20, 1, &rng);
}

int main(void) {
    RUN_TEST(test_attention);
    RUN_TEST(test_attention_non_causal);
    RUN_TEST(test_rope);
    return test_finish();
}
