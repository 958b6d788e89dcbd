/* 16-bit compute on the CPU (AVX512-BF16): cpu_linear with bf16 weights
 * and x rounded to bf16, against a double-precision reference over the
 * rounded x; a row's bits independent of M (every K: the path never blocks
 * k) and of the thread count; cpu_linear_group's parts and gated product
 * equal to cpu_linear's; other dtypes and the switched-off state untouched;
 * and the rounding itself (nearest even, specials). Where the CPU lacks
 * AVX512-BF16 only the fallback checks run: the switch must change nothing. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_kernels_internal.h"
#include "core/dtype.h"
#include "test_util.h"

static float round_bf16(float v) {
    uint16_t h;
    llmrt_convert_from_f32(&h, LLMRT_DTYPE_BF16, &v, 1);
    float out;
    llmrt_convert_to_f32(&out, &h, LLMRT_DTYPE_BF16, 1);
    return out;
}

static uint16_t *bf16_weights(float *exact, size_t n, uint64_t *rng) {
    test_fill_random(exact, n, rng, 0.5f);
    uint16_t *w = malloc(n * sizeof *w);
    llmrt_convert_from_f32(w, LLMRT_DTYPE_BF16, exact, n);
    llmrt_convert_to_f32(exact, w, LLMRT_DTYPE_BF16, n);
    return w;
}

/* Σ_k bf16(x[m,k]) · w[n,k] in double: what vdpbf16ps sums up to fp32
 * rounding of the partial sums. */
static void reference(float *y, const float *x, const float *w, const float *bias, int64_t M, int64_t N, int64_t K) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)round_bf16(x[m * K + k]) * w[n * K + k];
            y[m * N + n] = (float)s;
        }
}

static void test_against_reference(void) {
    /* M: decode 1, tiles of 2-6, several 6-row blocks; K: tails of the
     * 32-wide step, and past 1024 and 14336-class widths where the panel
     * holds few rows; N: not multiples of the 4-, 8- or 16-row groups. */
    static const int64_t shapes[][3] = {{1, 33, 100},  {1, 9, 1},      {2, 5, 31},     {3, 100, 33},
                                        {6, 64, 512},  {7, 37, 77},    {17, 70, 1100}, {70, 45, 257},
                                        {4, 20, 4500}, {1, 131, 2048}, {13, 17, 32}};
    uint64_t rng = 99;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = malloc(sizeof(float) * M * K), *exact = malloc(sizeof(float) * N * K);
        float *bias = malloc(sizeof(float) * N), *ref = malloc(sizeof(float) * M * N);
        float *y = malloc(sizeof(float) * M * N), *y1 = malloc(sizeof(float) * M * N);
        test_fill_random(x, (size_t)(M * K), &rng, 1.0f);
        test_fill_random(bias, (size_t)N, &rng, 1.0f);
        uint16_t *w = bf16_weights(exact, (size_t)(N * K), &rng);
        const float *b = s & 1 ? bias : NULL;
        reference(ref, x, exact, b, M, N, K);
        cpu_kernels_set_16bit_compute(1);
        omp_set_num_threads(2);
        for (int64_t j = 0; j < M * N; j++) y[j] = NAN; /* every output must be written */
        cpu_linear(y, x, w, LLMRT_DTYPE_BF16, b, M, N, K);
        const double err = test_rel_l2(y, ref, (size_t)(M * N));
        CHECK_MSG(err < 1e-5, "bf16 compute M=%lld N=%lld K=%lld: rel err %g vs the rounded-x reference",
                  (long long)M, (long long)N, (long long)K, err);
        omp_set_num_threads(1);
        cpu_linear(y1, x, w, LLMRT_DTYPE_BF16, b, M, N, K);
        CHECK_MSG(memcmp(y, y1, sizeof(float) * M * N) == 0, "bf16 compute M=%lld N=%lld K=%lld: 1 vs 2 threads",
                  (long long)M, (long long)N, (long long)K);
        omp_set_num_threads(2);
        cpu_kernels_set_16bit_compute(0);
        free(x), free(exact), free(bias), free(ref), free(y), free(y1), free(w);
    }
}

/* Batched decoding gives each sequence what it gets alone, for K past any
 * k-block size of the f32 path. */
static void test_rows_independent(void) {
    static const int64_t shapes[][2] = {{37, 100}, {70, 257}, {16, 2100}, {5, 33}};
    static const int64_t Ms[] = {2, 3, 4, 5, 6, 7, 8, 11, 13, 17, 32, 40, 64};
    uint64_t rng = 7;
    cpu_kernels_set_16bit_compute(1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t N = shapes[s][0], K = shapes[s][1], max_m = 66;
        float *x = malloc(sizeof(float) * max_m * K), *exact = malloc(sizeof(float) * N * K);
        float *bias = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * max_m * N);
        float *one = malloc(sizeof(float) * max_m * N);
        test_fill_random(x, (size_t)(max_m * K), &rng, 1.0f);
        test_fill_random(bias, (size_t)N, &rng, 1.0f);
        uint16_t *w = bf16_weights(exact, (size_t)(N * K), &rng);
        for (int64_t m = 0; m < max_m; m++)
            cpu_linear(one + m * N, x + m * K, w, LLMRT_DTYPE_BF16, s & 1 ? bias : NULL, 1, N, K);
        int same = 1;
        for (size_t j = 0; j < sizeof Ms / sizeof Ms[0]; j++) {
            const int64_t M = Ms[j], first = (int64_t)(j % 3);
            cpu_linear(y, x + first * K, w, LLMRT_DTYPE_BF16, s & 1 ? bias : NULL, M, N, K);
            same &= memcmp(y, one + first * N, sizeof(float) * M * N) == 0;
        }
        CHECK_MSG(same, "bf16 compute N=%lld K=%lld: a row's result depends on M", (long long)N, (long long)K);
        free(x), free(exact), free(bias), free(y), free(one), free(w);
    }
    cpu_kernels_set_16bit_compute(0);
}

/* A group's parts are cpu_linear's bits; the gated pair is silu(gate)·up. */
static void test_group(void) {
    const int64_t M = 9, K = 300, N0 = 70, N1 = 70;
    uint64_t rng = 5;
    float *x = malloc(sizeof(float) * M * K), *e0 = malloc(sizeof(float) * N0 * K), *e1 = malloc(sizeof(float) * N1 * K);
    float *g = malloc(sizeof(float) * M * N0), *u = malloc(sizeof(float) * M * N1), *gated = malloc(sizeof(float) * M * N0);
    float *g1 = malloc(sizeof(float) * M * N0), *u1 = malloc(sizeof(float) * M * N1), *want = malloc(sizeof(float) * M * N0);
    test_fill_random(x, (size_t)(M * K), &rng, 1.0f);
    uint16_t *w0 = bf16_weights(e0, (size_t)(N0 * K), &rng), *w1 = bf16_weights(e1, (size_t)(N1 * K), &rng);
    cpu_kernels_set_16bit_compute(1);
    cpu_linear(g1, x, w0, LLMRT_DTYPE_BF16, NULL, M, N0, K);
    cpu_linear(u1, x, w1, LLMRT_DTYPE_BF16, NULL, M, N1, K);
    cpu_silu_mul(want, g1, u1, M * N0);
    const cpu_linear_part parts[2] = {{.y = g, .w = w0, .w_type = LLMRT_DTYPE_BF16, .N = N0},
                                      {.y = u, .w = w1, .w_type = LLMRT_DTYPE_BF16, .N = N1}};
    cpu_linear_group(parts, 2, x, M, K, NULL);
    CHECK(memcmp(g, g1, sizeof(float) * M * N0) == 0 && memcmp(u, u1, sizeof(float) * M * N1) == 0);
    cpu_linear_group(parts, 2, x, M, K, gated);
    CHECK_MSG(memcmp(gated, want, sizeof(float) * M * N0) == 0, "gated bf16 group differs from silu(gate)·up");
    cpu_kernels_set_16bit_compute(0);
    free(x), free(e0), free(e1), free(g), free(u), free(gated), free(g1), free(u1), free(want), free(w0), free(w1);
}

/* Only bf16 weights change: f32 and f16 linears give the same bits with the
 * switch on, and bf16 linears with it off give the f32 path's bits. */
static void test_other_paths_untouched(void) {
    const int64_t M = 5, N = 33, K = 100;
    uint64_t rng = 11;
    float *x = malloc(sizeof(float) * M * K), *exact = malloc(sizeof(float) * N * K);
    float *a = malloc(sizeof(float) * M * N), *b = malloc(sizeof(float) * M * N);
    test_fill_random(x, (size_t)(M * K), &rng, 1.0f);
    test_fill_random(exact, (size_t)(N * K), &rng, 0.5f);
    uint16_t *h = malloc(sizeof(uint16_t) * N * K);
    llmrt_convert_from_f32(h, LLMRT_DTYPE_F16, exact, (size_t)(N * K));
    cpu_kernels_set_16bit_compute(0);
    cpu_linear(a, x, exact, LLMRT_DTYPE_F32, NULL, M, N, K);
    cpu_kernels_set_16bit_compute(1);
    cpu_linear(b, x, exact, LLMRT_DTYPE_F32, NULL, M, N, K);
    CHECK_MSG(memcmp(a, b, sizeof(float) * M * N) == 0, "f32 weights changed by 16-bit compute");
    cpu_kernels_set_16bit_compute(0);
    cpu_linear(a, x, h, LLMRT_DTYPE_F16, NULL, M, N, K);
    cpu_kernels_set_16bit_compute(1);
    cpu_linear(b, x, h, LLMRT_DTYPE_F16, NULL, M, N, K);
    CHECK_MSG(memcmp(a, b, sizeof(float) * M * N) == 0, "f16 weights changed by 16-bit compute");
    /* off: bf16 weights take the f32 path, which is exact in x */
    llmrt_convert_from_f32(h, LLMRT_DTYPE_BF16, exact, (size_t)(N * K));
    llmrt_convert_to_f32(exact, h, LLMRT_DTYPE_BF16, (size_t)(N * K));
    cpu_kernels_set_16bit_compute(0);
    cpu_linear(a, x, h, LLMRT_DTYPE_BF16, NULL, M, N, K);
    cpu_linear(b, x, exact, LLMRT_DTYPE_F32, NULL, M, N, K);
    CHECK_MSG(test_rel_l2(a, b, (size_t)(M * N)) < 1e-6, "bf16 weights with 16-bit compute off are not fp32-exact");
    CHECK(strcmp(cpu_kernels_bf16_compute(), "fp32") == 0);
    cpu_kernels_set_16bit_compute(1);
    CHECK(strcmp(cpu_kernels_bf16_compute(), cpu_has_bf16_dot() ? "bf16" : "fp32") == 0);
    cpu_kernels_force_isa("avx2"); /* below AVX-512 the instruction is never used */
    CHECK(strcmp(cpu_kernels_bf16_compute(), "fp32") == 0);
    cpu_kernels_force_isa(NULL);
    cpu_kernels_set_16bit_compute(0);
    free(x), free(exact), free(a), free(b), free(h);
}

/* Nearest even on ties, NaN stays NaN, infinities and signed zero kept. */
static void test_rounding(void) {
    const float values[] = {1.0f,       1.00390625f, 1.01171875f, -1.00390625f, 3.4e38f, INFINITY,
                            -INFINITY,  -0.0f,       1e-40f,      0.1f,         NAN,     65504.0f,
                            1.0078125f, 2.0f,        -3.75f,      1.00390626f,  7.0f,    8.0f};
    const int64_t n = (int64_t)(sizeof values / sizeof values[0]);
    uint16_t got[sizeof values / sizeof values[0]], want[sizeof values / sizeof values[0]];
    llmrt_convert_from_f32(want, LLMRT_DTYPE_BF16, values, (size_t)n);
    cpu_bf16_round_rows(got, values, n);
    for (int64_t i = 0; i < n; i++) {
        if (isnan(values[i])) {
            CHECK_MSG((got[i] & 0x7f80) == 0x7f80 && (got[i] & 0x7f) != 0, "NaN rounds to 0x%04x", got[i]);
            continue;
        }
        /* denormal inputs may be flushed by the instruction (DAZ) */
        if (fabsf(values[i]) < 1.2e-38f) continue;
        CHECK_MSG(got[i] == want[i], "bf16(%g) = 0x%04x, want 0x%04x", (double)values[i], got[i], want[i]);
    }
}

int main(void) {
    if (!cpu_has_bf16_dot()) {
        fprintf(stderr, "   no AVX512-BF16 here: only the fallback is checked\n");
        RUN_TEST(test_other_paths_untouched);
        return test_finish();
    }
    RUN_TEST(test_rounding);
    RUN_TEST(test_against_reference);
    RUN_TEST(test_rows_independent);
    RUN_TEST(test_group);
    RUN_TEST(test_other_paths_untouched);
    return test_finish();
}
