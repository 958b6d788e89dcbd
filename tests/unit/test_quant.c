/* Weight-only quantization: quantize → dequantize round trips on every
 * layout (int8 / int4, symmetric / asymmetric, per channel and groups of
 * 32, 64, 128, partial last groups and odd K), the blob check, and the
 * quantized linear kernels on every SIMD path against the dequantized
 * weights: the exact path to fp32 rounding, the integer path (x quantized
 * in blocks of 32) against its portable twin and, loosely, the exact one. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_kernels_quant.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "test_util.h"

static const char *const isa_names[] = {"portable", "avx2", "avx512"};

static int use_isa(const char *isa) {
    cpu_kernels_force_isa(isa);
    if (strcmp(cpu_kernels_isa(), isa) == 0) return 1;
    cpu_kernels_force_isa(NULL);
    return 0;
}

/* A quantized [N, K] matrix of random values (with a few outliers so
 * groups differ in range), and its dequantized f32 values (in x's order).
 * `permuted`: the inputs stored in a shuffled order (GPTQ act-order). */
static void *make_qweight_perm(llmrt_dtype dtype, int64_t N, int64_t K, int64_t group, int asym, int permuted,
                               float *deq, uint64_t *rng) {
    llmrt_qweight_header h;
    if (llmrt_qweight_layout(dtype, N, K, group, permuted, &h) != LLMRT_OK) return NULL;
    void *blob = aligned_alloc(64, (size_t)h.total_bytes);
    llmrt_qweight_init(blob, &h);
    if (permuted) {
        int32_t *perm = (int32_t *)((uint8_t *)blob + llmrt_qweight_perm_offset(&h));
        for (int64_t k = 0; k < K; k++) perm[k] = (int32_t)k;
        for (int64_t k = K - 1; k > 0; k--) {
            const int64_t r = (int64_t)(test_rand_u64(rng) % (uint64_t)(k + 1));
            const int32_t t = perm[k];
            perm[k] = perm[r], perm[r] = t;
        }
    }
    float *w = malloc(sizeof(float) * (size_t)K);
    for (int64_t n = 0; n < N; n++) {
        test_fill_random(w, (size_t)K, rng, 0.1f);
        w[test_rand_u64(rng) % (uint64_t)K] *= 8.0f;
        if (asym)
            for (int64_t k = 0; k < K; k++) w[k] += 0.03f; /* off-centre ranges */
        llmrt_quantize_row(blob, n, w, asym);
        llmrt_dequantize_row(blob, n, deq + n * K);
    }
    free(w);
    return blob;
}

static void test_round_trip(void) {
    const llmrt_dtype dtypes[] = {LLMRT_DTYPE_INT8_WO, LLMRT_DTYPE_INT4_WO};
    const int64_t Ks[] = {32, 96, 100, 256, 704};
    const int64_t groups[] = {0, 32, 64, 128};
    uint64_t rng = 7;
    for (int t = 0; t < 2; t++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
            for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
                for (int asym = 0; asym < 2; asym++) {
                    const int64_t N = 5, K = Ks[ki], group = groups[gi];
                    llmrt_qweight_header h;
                    CHECK_OK(llmrt_qweight_layout(dtypes[t], N, K, group, 0, &h));
                    void *blob = aligned_alloc(64, (size_t)h.total_bytes);
                    llmrt_qweight_init(blob, &h);
                    CHECK(llmrt_qweight_check(blob, (size_t)h.total_bytes, dtypes[t], N, K, group, 0, "w") == LLMRT_OK);
                    float *w = malloc(sizeof(float) * (size_t)(N * K)), *back = malloc(sizeof(float) * (size_t)K);
                    test_fill_random(w, (size_t)(N * K), &rng, 1.0f);
                    if (asym)
                        for (int64_t i = 0; i < N * K; i++) w[i] = 0.5f + 0.5f * w[i];
                    const int qmax = (1 << h.bits) - 1, mid = 1 << (h.bits - 1);
                    int worst = 0;
                    for (int64_t n = 0; n < N; n++) {
                        llmrt_quantize_row(blob, n, w + n * K, asym);
                        llmrt_dequantize_row(blob, n, back);
                        const uint16_t *scales = llmrt_qweight_scales(blob);
                        const uint8_t *zeros = llmrt_qweight_zeros(blob);
                        for (int64_t k = 0; k < K; k++) {
                            const int64_t g = k / h.group_size;
                            const float s = llmrt_f16_to_f32(scales[llmrt_qweight_group_index(&h, n, g)]);
                            /* round to nearest: within half a step; the
                             * asymmetric zero's own rounding adds up to half */
                            const float bound = (asym ? 1.0f : 0.5f) * s * 1.001f + 1e-7f;
                            if (fabsf(back[k] - w[n * K + k]) > bound) worst = 1;
                        }
                        for (int64_t g = 0; g < h.groups; g++)
                            if (!asym && zeros[llmrt_qweight_group_index(&h, n, g)] != mid) worst = 1;
                        for (int64_t k = 0; k < K; k++)
                            if ((int)llmrt_qweight_get(blob, n, k) > qmax) worst = 1;
                    }
                    CHECK_MSG(!worst, "round trip %s K=%lld group=%lld asym=%d", llmrt_dtype_name(dtypes[t]),
                              (long long)K, (long long)group, asym);
                    free(w), free(back), free(blob);
                }
}

static void test_blob_check(void) {
    llmrt_qweight_header h;
    CHECK_OK(llmrt_qweight_layout(LLMRT_DTYPE_INT4_WO, 8, 64, 32, 0, &h));
    CHECK(h.groups == 2 && h.panel_bytes == 64 * 8 && h.total_bytes % 64 == 0);
    CHECK(llmrt_qweight_bytes(LLMRT_DTYPE_INT4_WO, 8, 64, 32, 0) == h.total_bytes);
    CHECK(llmrt_qweight_layout(LLMRT_DTYPE_F16, 8, 64, 32, 0, &h) != LLMRT_OK);
    CHECK(llmrt_qweight_layout(LLMRT_DTYPE_INT8_WO, 0, 64, 32, 0, &h) != LLMRT_OK);
    llmrt_qweight_layout(LLMRT_DTYPE_INT4_WO, 8, 64, 32, 0, &h);
    void *blob = aligned_alloc(64, (size_t)h.total_bytes);
    llmrt_qweight_init(blob, &h);
    CHECK(llmrt_qweight_check(blob, (size_t)h.total_bytes, LLMRT_DTYPE_INT4_WO, 8, 64, 32, 0, "w") == LLMRT_OK);
    CHECK(llmrt_qweight_check(blob, (size_t)h.total_bytes, LLMRT_DTYPE_INT4_WO, 8, 64, 64, 0, "w") != LLMRT_OK);
    CHECK(llmrt_qweight_check(blob, (size_t)h.total_bytes - 64, LLMRT_DTYPE_INT4_WO, 8, 64, 32, 0, "w") != LLMRT_OK);
    /* the documented placement: int4 input 13 of row 17 is panel 1, step 1
     * (inputs 8..15), the row's 4 bytes at 4, byte 13 % 4 = 1, high nibble */
    llmrt_qweight_set(blob, 17 % 8, 13, 0); /* (row 1 of panel 0: a neighbour stays 0) */
    void *big = aligned_alloc(64, llmrt_qweight_bytes(LLMRT_DTYPE_INT4_WO, 20, 64, 32, 0));
    llmrt_qweight_header hb;
    CHECK_OK(llmrt_qweight_layout(LLMRT_DTYPE_INT4_WO, 20, 64, 32, 0, &hb));
    llmrt_qweight_init(big, &hb);
    llmrt_qweight_set(big, 17, 13, 9);
    const uint8_t *codes = llmrt_qweight_codes(big);
    CHECK(codes[hb.panel_bytes + 64 + 4 + 1] == 0x90);
    CHECK(llmrt_qweight_get(big, 17, 13) == 9 && llmrt_qweight_get(big, 17, 9) == 0);
    CHECK(llmrt_qweight_group_index(&hb, 17, 1) == (size_t)((1 * 2 + 1) * 16 + 1));
    free(big);
    /* a permuted blob must hold a permutation */
    llmrt_qweight_header hp;
    CHECK_OK(llmrt_qweight_layout(LLMRT_DTYPE_INT8_WO, 4, 64, 32, 1, &hp));
    void *pb = aligned_alloc(64, (size_t)hp.total_bytes);
    llmrt_qweight_init(pb, &hp);
    int32_t *perm = (int32_t *)((uint8_t *)pb + llmrt_qweight_perm_offset(&hp));
    for (int k = 0; k < 64; k++) perm[k] = 63 - k;
    CHECK(llmrt_qweight_perm(pb) == perm);
    CHECK(llmrt_qweight_check(pb, (size_t)hp.total_bytes, LLMRT_DTYPE_INT8_WO, 4, 64, 32, 1, "p") == LLMRT_OK);
    CHECK(llmrt_qweight_check(pb, (size_t)hp.total_bytes, LLMRT_DTYPE_INT8_WO, 4, 64, 32, 0, "p") != LLMRT_OK);
    perm[5] = perm[6];
    CHECK(llmrt_qweight_check(pb, (size_t)hp.total_bytes, LLMRT_DTYPE_INT8_WO, 4, 64, 32, 1, "p") != LLMRT_OK);
    CHECK(strstr(llmrt_last_error(), "permutation") != NULL);
    free(pb);
    ((llmrt_qweight_header *)blob)->rows = 9;
    CHECK(llmrt_qweight_check(blob, (size_t)h.total_bytes, LLMRT_DTYPE_INT4_WO, 8, 64, 32, 0, "w") != LLMRT_OK);
    CHECK(strstr(llmrt_last_error(), "'w'") != NULL);
    free(blob);
}

static void reference(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N, int64_t K) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * w[n * K + k];
            y[m * N + n] = (float)s;
        }
}

static void check_shape(llmrt_dtype dtype, int64_t M, int64_t N, int64_t K, int64_t group, int asym, int permuted,
                        uint64_t *rng) {
    float *deq = malloc(sizeof(float) * (size_t)(N * K)), *x = malloc(sizeof(float) * (size_t)(M * K));
    float *bias = malloc(sizeof(float) * (size_t)N), *ref = malloc(sizeof(float) * (size_t)(M * N));
    float *y = malloc(sizeof(float) * (size_t)(M * N)), *portable = malloc(sizeof(float) * (size_t)(M * N));
    void *blob = make_qweight_perm(dtype, N, K, group, asym, permuted, deq, rng);
    test_fill_random(x, (size_t)(M * K), rng, 1.0f);
    test_fill_random(bias, (size_t)N, rng, 0.5f);
    reference(ref, x, deq, bias, M, N, K);
    const int integer_applies = K % 32 == 0 && (group == 0 || group >= K || group % 32 == 0);
    omp_set_num_threads(2);
    for (int integer = 0; integer < 2; integer++) {
        cpu_qlinear_set_integer(integer);
        for (size_t i = 0; i < sizeof isa_names / sizeof isa_names[0]; i++) {
            if (!use_isa(isa_names[i])) continue;
            for (int64_t j = 0; j < M * N; j++) y[j] = NAN; /* every output must be written */
            cpu_linear(y, x, blob, dtype, bias, M, N, K);
            if (i == 0) memcpy(portable, y, sizeof(float) * (size_t)(M * N));
            const double err = test_rel_l2(y, ref, (size_t)(M * N));
            const double twin = test_rel_l2(y, portable, (size_t)(M * N));
            /* x in 8 bits costs ~0.5% of a random dot product */
            const double tolerance = integer && integer_applies ? 2e-2 : 1e-5;
            CHECK_MSG(err < tolerance && twin < 1e-5, "%s %s integer=%d M=%lld N=%lld K=%lld group=%lld asym=%d "
                      "permuted=%d: rel err %g, against portable %g", isa_names[i], llmrt_dtype_name(dtype), integer,
                      (long long)M, (long long)N, (long long)K, (long long)group, asym, permuted, err, twin);
        }
    }
    cpu_kernels_force_isa(NULL);
    cpu_qlinear_set_integer(1);
    free(deq), free(x), free(bias), free(ref), free(y), free(portable), free(blob);
}

static void test_linear(void) {
    uint64_t rng = 11;
    const llmrt_dtype dtypes[] = {LLMRT_DTYPE_INT8_WO, LLMRT_DTYPE_INT4_WO};
    /* K: whole 128-chunks, a tail block (160 = 4·32 + 32·1), the demo's 704,
     * odd 100 (exact path only); M: decode, a tile and a ragged tile */
    const int64_t shapes[][3] = {{1, 17, 128}, {1, 40, 160}, {3, 33, 704}, {7, 16, 96}, {5, 9, 100}, {1, 64, 2048}};
    const int64_t groups[] = {0, 32, 64, 128};
    for (int t = 0; t < 2; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
                check_shape(dtypes[t], shapes[s][0], shapes[s][1], shapes[s][2], groups[g], (int)(g + s) % 2,
                            (int)(g + s + t) % 3 == 0, &rng);
}

/* Grouped (q/k/v) and gated (gate/up) calls give the separate results. */
static void test_group(void) {
    uint64_t rng = 5;
    const int64_t M = 3, K = 256, N[3] = {48, 16, 16};
    float *deq = malloc(sizeof(float) * 48 * K), *x = malloc(sizeof(float) * M * K);
    test_fill_random(x, (size_t)(M * K), &rng, 1.0f);
    void *w[3];
    float *y[3], *alone[3];
    for (int i = 0; i < 3; i++) { /* part 0 permuted: the parts run in two passes over x */
        w[i] = make_qweight_perm(i == 2 ? LLMRT_DTYPE_INT8_WO : LLMRT_DTYPE_INT4_WO, N[i], K, 64, 1, i == 0, deq, &rng);
        y[i] = malloc(sizeof(float) * (size_t)(M * N[i]));
        alone[i] = malloc(sizeof(float) * (size_t)(M * N[i]));
        cpu_linear(alone[i], x, w[i], i == 2 ? LLMRT_DTYPE_INT8_WO : LLMRT_DTYPE_INT4_WO, NULL, M, N[i], K);
    }
    cpu_linear_part parts[3];
    for (int i = 0; i < 3; i++)
        parts[i] = (cpu_linear_part){.y = y[i], .w = w[i], .w_type = i == 2 ? LLMRT_DTYPE_INT8_WO : LLMRT_DTYPE_INT4_WO,
                                     .N = N[i]};
    cpu_linear_group(parts, 3, x, M, K, NULL);
    for (int i = 0; i < 3; i++)
        CHECK_MSG(memcmp(y[i], alone[i], sizeof(float) * (size_t)(M * N[i])) == 0, "group part %d differs", i);
    /* gated: gate and up of equal N */
    float *gated = malloc(sizeof(float) * M * 16), *want = malloc(sizeof(float) * M * 16);
    cpu_linear_group(&parts[1], 2, x, M, K, gated);
    cpu_silu_mul(want, alone[1], alone[2], M * 16);
    CHECK(memcmp(gated, want, sizeof(float) * M * 16) == 0);
    for (int i = 0; i < 3; i++) free(w[i]), free(y[i]), free(alone[i]);
    free(deq), free(x), free(gated), free(want);
}

int main(void) {
    RUN_TEST(test_round_trip);
    RUN_TEST(test_blob_check);
    RUN_TEST(test_linear);
    RUN_TEST(test_group);
    return test_finish();
}
