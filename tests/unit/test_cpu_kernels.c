/* cpu_linear and cpu_matmul_f32 against double-precision references, on
 * every SIMD path this machine has, all weight dtypes, odd shapes (tails in
 * every dimension, both the decode and the panelled prefill regime), and
 * 1 vs 2 threads; and that a row's result does not depend on M. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "test_util.h"

static const char *const isa_names[] = {"portable", "avx2", "avx512"};

/* Forces `isa`; returns 0 (and restores auto) if this CPU lacks it. */
static int use_isa(const char *isa) {
    cpu_kernels_force_isa(isa);
    if (strcmp(cpu_kernels_isa(), isa) == 0) return 1;
    cpu_kernels_force_isa(NULL);
    return 0;
}

/* Random weights stored as `type`, plus their exact values as float (what
 * the kernel must multiply by). */
static void *make_weights(float *exact, size_t n, llmrt_dtype type, uint64_t *rng) {
    test_fill_random(exact, n, rng, 0.5f);
    void *w = malloc(n * llmrt_dtype_size(type));
    llmrt_convert_from_f32(w, type, exact, n);
    llmrt_convert_to_f32(exact, w, type, n);
    return w;
}

static void reference_linear(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N,
                             int64_t K) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * w[n * K + k];
            y[m * N + n] = (float)s;
        }
}

static void check_linear_shape(int64_t M, int64_t N, int64_t K, llmrt_dtype type, int with_bias, uint64_t *rng) {
    float *x = malloc(sizeof(float) * M * K), *exact = malloc(sizeof(float) * N * K);
    float *bias = with_bias ? malloc(sizeof(float) * N) : NULL;
    float *ref = malloc(sizeof(float) * M * N), *y = malloc(sizeof(float) * M * N);
    float *y1 = malloc(sizeof(float) * M * N);
    test_fill_random(x, (size_t)(M * K), rng, 1.0f);
    if (bias) test_fill_random(bias, (size_t)N, rng, 1.0f);
    void *w = make_weights(exact, (size_t)(N * K), type, rng);
    reference_linear(ref, x, exact, bias, M, N, K);
    for (size_t i = 0; i < sizeof isa_names / sizeof isa_names[0]; i++) {
        if (!use_isa(isa_names[i])) continue;
        omp_set_num_threads(2);
        for (int64_t j = 0; j < M * N; j++) y[j] = NAN; /* every output must be written */
        cpu_linear(y, x, w, type, bias, M, N, K);
        double err = test_rel_l2(y, ref, (size_t)(M * N));
        CHECK_MSG(err < 1e-5, "linear %s %s M=%lld N=%lld K=%lld bias=%d: rel err %g", isa_names[i],
                  llmrt_dtype_name(type), (long long)M, (long long)N, (long long)K, with_bias, err);
        omp_set_num_threads(1);
        cpu_linear(y1, x, w, type, bias, M, N, K);
        CHECK_MSG(memcmp(y, y1, sizeof(float) * M * N) == 0, "linear %s %s M=%lld N=%lld K=%lld: 1 vs 2 threads differ",
                  isa_names[i], llmrt_dtype_name(type), (long long)M, (long long)N, (long long)K);
    }
    cpu_kernels_force_isa(NULL);
    omp_set_num_threads(2);
    free(x), free(exact), free(bias), free(ref), free(y), free(y1), free(w);
}

static void test_linear(void) {
    /* M: decode 1, decode batches 2-8 (raw weights), 9+ (converted panels);
     * N, K: not multiples of 16 or 4, K > 512 crosses a panel's k-block and
     * N > 64 crosses a panel's rows. */
    static const int64_t shapes[][3] = {
        {1, 33, 100}, {1, 257, 257}, {1, 1, 1},   {2, 5, 16},    {3, 100, 33},  {4, 64, 512},
        {8, 37, 77},  {9, 70, 530},  {17, 33, 257}, {129, 100, 257}, {33, 131, 1100}, {5, 2, 3},
    };
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    uint64_t rng = 12345;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t t = 0; t < 3; t++)
            check_linear_shape(shapes[s][0], shapes[s][1], shapes[s][2], types[t], (int)((s + t) & 1), &rng);
}

/* A row's result is the same bits whatever M is and wherever the row sits
 * in the batch, on every path, decode (M ≤ 32) and prefill alike while K fits
 * one k-block: batched decoding must give each sequence what it gets alone. */
static void test_linear_rows_independent(void) {
    static const int64_t shapes[][2] = {{37, 100}, {70, 257}, {16, 512}, {5, 33}};
    static const int64_t Ms[] = {2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 16, 17, 32, 40, 70};
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    uint64_t rng = 2024;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t t = 0; t < 3; t++) {
            const int64_t N = shapes[s][0], K = shapes[s][1], max_m = 70;
            float *x = malloc(sizeof(float) * max_m * K), *exact = malloc(sizeof(float) * N * K);
            float *bias = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * max_m * N);
            float *one = malloc(sizeof(float) * max_m * N);
            test_fill_random(x, (size_t)(max_m * K), &rng, 1.0f);
            test_fill_random(bias, (size_t)N, &rng, 1.0f);
            void *w = make_weights(exact, (size_t)(N * K), types[t], &rng);
            for (size_t i = 0; i < sizeof isa_names / sizeof isa_names[0]; i++) {
                if (!use_isa(isa_names[i])) continue;
                for (int64_t m = 0; m < max_m; m++)
                    cpu_linear(one + m * N, x + m * K, w, types[t], s & 1 ? bias : NULL, 1, N, K);
                int same = 1;
                for (size_t j = 0; j < sizeof Ms / sizeof Ms[0]; j++) {
                    /* rows [first, first + M): each lands in a different place of its tile */
                    const int64_t M = Ms[j], first = (int64_t)(j % 3);
                    if (first + M > max_m) continue;
                    cpu_linear(y, x + first * K, w, types[t], s & 1 ? bias : NULL, M, N, K);
                    same &= memcmp(y, one + first * N, sizeof(float) * M * N) == 0;
                }
                CHECK_MSG(same, "linear %s %s N=%lld K=%lld: a row's result depends on M", isa_names[i],
                          llmrt_dtype_name(types[t]), (long long)N, (long long)K);
            }
            cpu_kernels_force_isa(NULL);
            free(x), free(exact), free(bias), free(y), free(one), free(w);
        }
}

/* cpu_linear_group gives each part cpu_linear's bits, and the gated form
 * silu(gate) · up as cpu_silu_mul computes it, on every path and thread
 * count, for decode and prefill M. */
static void test_linear_group(void) {
    static const int64_t shapes[][4] = {{1, 37, 20, 100}, {8, 256, 128, 256}, {3, 33, 33, 17}, {70, 50, 64, 257}};
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    uint64_t rng = 4242;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t t = 0; t < 3; t++) {
            const int64_t M = shapes[s][0], N0 = shapes[s][1], N1 = shapes[s][2], K = shapes[s][3];
            const int64_t N[3] = {N0, N1, N1};
            float *x = malloc(sizeof(float) * M * K), *exact = malloc(sizeof(float) * (N0 > N1 ? N0 : N1) * K);
            float *bias = malloc(sizeof(float) * N0);
            test_fill_random(x, (size_t)(M * K), &rng, 1.0f);
            test_fill_random(bias, (size_t)N0, &rng, 1.0f);
            void *w[3];
            float *y[3], *want[3];
            for (int i = 0; i < 3; i++) {
                w[i] = make_weights(exact, (size_t)(N[i] * K), types[t], &rng);
                y[i] = malloc(sizeof(float) * M * N[i]), want[i] = malloc(sizeof(float) * M * N[i]);
            }
            float *gated = malloc(sizeof(float) * M * N1), *gated_want = malloc(sizeof(float) * M * N1);
            for (size_t i = 0; i < sizeof isa_names / sizeof isa_names[0]; i++) {
                if (!use_isa(isa_names[i])) continue;
                for (int p = 0; p < 3; p++) cpu_linear(want[p], x, w[p], types[t], p == 0 ? bias : NULL, M, N[p], K);
                cpu_silu_mul(gated_want, want[1], want[2], M * N1);
                for (int threads = 1; threads <= 2; threads++) {
                    omp_set_num_threads(threads);
                    cpu_linear_part parts[3];
                    for (int p = 0; p < 3; p++)
                        parts[p] = (cpu_linear_part){.y = y[p], .w = w[p], .w_type = types[t],
                                                     .bias = p == 0 ? bias : NULL, .N = N[p]};
                    cpu_linear_group(parts, 3, x, M, K, NULL);
                    int same = 1;
                    for (int p = 0; p < 3; p++) same &= memcmp(y[p], want[p], sizeof(float) * M * N[p]) == 0;
                    cpu_linear_group(parts + 1, 2, x, M, K, gated);
                    same &= memcmp(gated, gated_want, sizeof(float) * M * N1) == 0;
                    cpu_linear_group(parts + 1, 2, x, M, K, y[1]); /* in place over gate */
                    same &= memcmp(y[1], gated_want, sizeof(float) * M * N1) == 0;
                    CHECK_MSG(same, "linear group %s %s M=%lld K=%lld threads=%d: differs from cpu_linear",
                              isa_names[i], llmrt_dtype_name(types[t]), (long long)M, (long long)K, threads);
                }
            }
            cpu_kernels_force_isa(NULL);
            omp_set_num_threads(2);
            for (int i = 0; i < 3; i++) free(w[i]), free(y[i]), free(want[i]);
            free(x), free(exact), free(bias), free(gated), free(gated_want);
        }
}

/* Special values in weights pass through (no flush of f16 subnormals,
 * inf stays inf). */
static void test_linear_special_values(void) {
    const int64_t K = 19;
    uint16_t w16[19];
    float x[19], ref = 0.0f;
    for (int k = 0; k < K; k++) {
        w16[k] = (uint16_t)(k + 1); /* f16 subnormals: (k+1) · 2^-24 */
        x[k] = 1.0f;
        ref += (float)(k + 1) * (1.0f / 16777216.0f);
    }
    for (size_t i = 0; i < 3; i++) {
        if (!use_isa(isa_names[i])) continue;
        float y = 0.0f;
        cpu_linear(&y, x, w16, LLMRT_DTYPE_F16, NULL, 1, 1, K);
        CHECK_MSG(fabsf(y - ref) <= 1e-6f * ref, "f16 subnormal weights on %s: %g vs %g", isa_names[i], y, ref);
    }
    cpu_kernels_force_isa(NULL);
}

/* Each SIMD path against the portable one on odd shapes: M = 1 (decode),
 * 3, 17 and 128 (prefill), K not a multiple of the 8- or 16-float vector
 * width, N not a multiple of the tiles' 4, 6, 8 or 16 rows. The paths sum in
 * different orders, so they agree to float rounding, not bit for bit. */
static void test_linear_paths_agree(void) {
    static const int64_t Ms[] = {1, 3, 17, 128};
    static const int64_t Ks[] = {13, 100, 257, 1031};
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    const int64_t N = 45;
    uint64_t rng = 31337;
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
            for (size_t t = 0; t < 3; t++) {
                const int64_t M = Ms[mi], K = Ks[ki];
                float *x = malloc(sizeof(float) * M * K), *exact = malloc(sizeof(float) * N * K);
                float *bias = malloc(sizeof(float) * N), *want = malloc(sizeof(float) * M * N);
                float *y = malloc(sizeof(float) * M * N);
                test_fill_random(x, (size_t)(M * K), &rng, 1.0f);
                test_fill_random(bias, (size_t)N, &rng, 1.0f);
                void *w = make_weights(exact, (size_t)(N * K), types[t], &rng);
                const float *b = (mi + ki) & 1 ? bias : NULL;
                CHECK(use_isa("portable"));
                cpu_linear(want, x, w, types[t], b, M, N, K);
                for (size_t i = 1; i < sizeof isa_names / sizeof isa_names[0]; i++) {
                    if (!use_isa(isa_names[i])) continue;
                    for (int64_t j = 0; j < M * N; j++) y[j] = NAN;
                    cpu_linear(y, x, w, types[t], b, M, N, K);
                    double err = test_rel_l2(y, want, (size_t)(M * N));
                    CHECK_MSG(err < 1e-5, "linear %s vs portable, %s M=%lld K=%lld: rel err %g", isa_names[i],
                              llmrt_dtype_name(types[t]), (long long)M, (long long)K, err);
                }
                cpu_kernels_force_isa(NULL);
                free(x), free(exact), free(bias), free(want), free(y), free(w);
            }
}

static void test_matmul(void) {
    static const int64_t shapes[][3] = {{1, 33, 100}, {17, 257, 33}, {129, 300, 70}, {3, 1, 5}, {9, 513, 17}};
    uint64_t rng = 777;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
        float *c = malloc(sizeof(float) * M * N), *c1 = malloc(sizeof(float) * M * N);
        float *ref = malloc(sizeof(float) * M * N);
        test_fill_random(a, (size_t)(M * K), &rng, 1.0f);
        test_fill_random(b, (size_t)(K * N), &rng, 1.0f);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double sum = 0.0;
                for (int64_t k = 0; k < K; k++) sum += (double)a[i * K + k] * b[k * N + j];
                ref[i * N + j] = (float)sum;
            }
        for (size_t i = 0; i < 3; i++) {
            if (!use_isa(isa_names[i])) continue;
            omp_set_num_threads(2);
            for (int64_t j = 0; j < M * N; j++) c[j] = NAN;
            cpu_matmul_f32(c, a, b, M, N, K);
            double err = test_rel_l2(c, ref, (size_t)(M * N));
            CHECK_MSG(err < 1e-5, "matmul %s M=%lld N=%lld K=%lld: rel err %g", isa_names[i], (long long)M,
                      (long long)N, (long long)K, err);
            omp_set_num_threads(1);
            cpu_matmul_f32(c1, a, b, M, N, K);
            CHECK_MSG(memcmp(c, c1, sizeof(float) * M * N) == 0, "matmul %s: 1 vs 2 threads differ", isa_names[i]);
        }
        cpu_kernels_force_isa(NULL);
        omp_set_num_threads(2);
        free(a), free(b), free(c), free(c1), free(ref);
    }
}

static void test_isa_selection(void) {
    cpu_kernels_force_isa("portable");
    CHECK(strcmp(cpu_kernels_isa(), "portable") == 0);
    cpu_kernels_force_isa("no-such-isa"); /* unknown names mean "best available" */
    const char *best = cpu_kernels_isa();
    CHECK(strcmp(best, "portable") == 0 || strcmp(best, "avx2") == 0 || strcmp(best, "avx512") == 0);
    cpu_kernels_force_isa(NULL);
    fprintf(stderr, "   best ISA here: %s\n", cpu_kernels_isa());
}

int main(void) {
    RUN_TEST(test_isa_selection);
    RUN_TEST(test_linear);
    RUN_TEST(test_linear_rows_independent);
    RUN_TEST(test_linear_paths_agree);
    RUN_TEST(test_linear_group);
    RUN_TEST(test_linear_special_values);
    RUN_TEST(test_matmul);
    return test_finish();
}
