/* The interleaved layout of 16-bit linear weights (cpu_weight_interleave):
 * on every path this machine has (portable, AVX2, AVX-512, and AVX-512 with
 * 16-bit compute for bf16), a linear over the interleaved weights gives the
 * same bits as over the rows, for decode and prefill M, odd N and K (tails
 * of a group of 8 rows, of a 32-value chunk, K across the AVX-512 panel's
 * k-block), alone, in groups and gated, on 1 and 2 threads; and the layout
 * puts each value where cpu_w_row / cpu_w_col say, with zero padding. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_kernels_internal.h"
#include "core/dtype.h"
#include "test_util.h"

/* The paths: an ISA, or "bf16" (AVX-512 with 16-bit compute). */
static const char *const paths[] = {"portable", "avx2", "avx512", "bf16"};

/* Selects a path; 0 (and auto restored) when this CPU lacks it. */
static int use_path(const char *path) {
    const int bf16 = strcmp(path, "bf16") == 0;
    cpu_kernels_force_isa(bf16 ? "avx512" : path);
    cpu_kernels_set_16bit_compute(bf16);
    if (bf16 ? cpu_has_bf16_dot() : strcmp(cpu_kernels_isa(), path) == 0) return 1;
    cpu_kernels_force_isa(NULL);
    cpu_kernels_set_16bit_compute(0);
    return 0;
}

static void *weights(int64_t N, int64_t K, llmrt_dtype type, uint64_t *rng) {
    float *exact = malloc(sizeof(float) * (size_t)(N * K));
    test_fill_random(exact, (size_t)(N * K), rng, 0.5f);
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)(N * K));
    llmrt_convert_from_f32(w, type, exact, (size_t)(N * K));
    free(exact);
    return w;
}

static uint16_t *interleaved_copy(const uint16_t *w, int64_t N, int64_t K) {
    uint16_t *il = malloc(cpu_weight_interleaved_bytes(N, K));
    cpu_weight_interleave(il, w, N, K);
    return il;
}

static void test_layout(void) {
    static const int64_t shapes[][2] = {{1, 1}, {8, 32}, {9, 33}, {17, 100}, {70, 257}, {600, 64}};
    uint64_t rng = 99;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t N = shapes[s][0], K = shapes[s][1];
        const int64_t Np = (N + 7) / 8 * 8, Kp = (K + 31) / 32 * 32;
        CHECK(cpu_weight_interleaved_bytes(N, K) == (size_t)(Np * Kp) * 2);
        uint16_t *w = weights(N, K, LLMRT_DTYPE_F16, &rng), *il = interleaved_copy(w, N, K);
        int placed = 1;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) placed &= il[cpu_w_row(1, n, K) + cpu_w_col(1, k)] == w[n * K + k];
        /* every element not holding a value is zero padding */
        size_t nonzero = 0, values = 0;
        for (int64_t i = 0; i < Np * Kp; i++) nonzero += il[i] != 0;
        for (int64_t i = 0; i < N * K; i++) values += w[i] != 0;
        CHECK_MSG(placed && nonzero == values, "interleave N=%lld K=%lld: values misplaced or padding not zero",
                  (long long)N, (long long)K);
        free(w), free(il);
    }
}

/* One part over the rows and over the interleaved copy: the same bits. */
static void test_linear_same_bits(void) {
    static const int64_t shapes[][2] = {{1, 1},    {5, 3},     {8, 32},   {9, 33},  {37, 100},
                                        {45, 257}, {16, 1031}, {70, 530}, {33, 2080}};
    static const int64_t Ms[] = {1, 2, 3, 5, 7, 8, 13, 17, 32, 33, 40, 129};
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    uint64_t rng = 7;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t t = 0; t < 2; t++) {
            const int64_t N = shapes[s][0], K = shapes[s][1], max_m = 129;
            float *x = malloc(sizeof(float) * (size_t)(max_m * K)), *bias = malloc(sizeof(float) * (size_t)N);
            float *want = malloc(sizeof(float) * (size_t)(max_m * N)), *y = malloc(sizeof(float) * (size_t)(max_m * N));
            test_fill_random(x, (size_t)(max_m * K), &rng, 1.0f);
            test_fill_random(bias, (size_t)N, &rng, 1.0f);
            uint16_t *w = weights(N, K, types[t], &rng), *il = interleaved_copy(w, N, K);
            for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
                if (!use_path(paths[p])) continue;
                int same = 1;
                for (size_t j = 0; j < sizeof Ms / sizeof Ms[0]; j++)
                    for (int threads = 1; threads <= 2; threads++) {
                        const int64_t M = Ms[j];
                        const float *b = (j + s) & 1 ? bias : NULL;
                        omp_set_num_threads(threads);
                        cpu_linear(want, x, w, types[t], b, M, N, K);
                        const cpu_linear_part part = {.y = y, .w = il, .w_type = types[t], .bias = b, .N = N,
                                                      .w_interleaved = 1};
                        cpu_linear_group(&part, 1, x, M, K, NULL);
                        same &= memcmp(y, want, sizeof(float) * (size_t)(M * N)) == 0;
                    }
                CHECK_MSG(same, "interleaved %s %s N=%lld K=%lld: bits differ from the rows'", paths[p],
                          llmrt_dtype_name(types[t]), (long long)N, (long long)K);
            }
            use_path("avx512"); /* leave 16-bit compute off */
            cpu_kernels_force_isa(NULL);
            omp_set_num_threads(2);
            free(x), free(bias), free(want), free(y), free(w), free(il);
        }
}

/* Groups of parts (q/k/v) and the gated pair (gate/up), interleaved and
 * not mixed in one group: each part the bits of its rows. */
static void test_group_same_bits(void) {
    static const int64_t Ms[] = {1, 3, 8, 40};
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    const int64_t N[3] = {40, 24, 40}, K = 96, max_m = 40;
    uint64_t rng = 11;
    for (size_t t = 0; t < 2; t++) {
        float *x = malloc(sizeof(float) * (size_t)(max_m * K));
        test_fill_random(x, (size_t)(max_m * K), &rng, 1.0f);
        uint16_t *w[3], *il[3];
        float *want[3], *y[3], *gated_want = malloc(sizeof(float) * (size_t)(max_m * N[0]));
        float *gated = malloc(sizeof(float) * (size_t)(max_m * N[0]));
        for (int p = 0; p < 3; p++) {
            w[p] = weights(N[p], K, types[t], &rng), il[p] = interleaved_copy(w[p], N[p], K);
            want[p] = malloc(sizeof(float) * (size_t)(max_m * N[p])), y[p] = malloc(sizeof(float) * (size_t)(max_m * N[p]));
        }
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            if (!use_path(paths[p])) continue;
            int same = 1;
            for (size_t j = 0; j < sizeof Ms / sizeof Ms[0]; j++) {
                const int64_t M = Ms[j];
                cpu_linear_part rows[3], mixed[3];
                for (int i = 0; i < 3; i++) {
                    rows[i] = (cpu_linear_part){.y = want[i], .w = w[i], .w_type = types[t], .N = N[i]};
                    mixed[i] = (cpu_linear_part){.y = y[i], .w = i == 1 ? (void *)w[i] : il[i], .w_type = types[t],
                                                 .N = N[i], .w_interleaved = i != 1};
                }
                cpu_linear_group(rows, 3, x, M, K, NULL);
                cpu_linear_group(mixed, 3, x, M, K, NULL);
                for (int i = 0; i < 3; i++) same &= memcmp(y[i], want[i], sizeof(float) * (size_t)(M * N[i])) == 0;
                rows[1] = rows[2], mixed[1] = mixed[2]; /* gate = part 0, up = part 2 (equal N) */
                cpu_linear_group(rows, 2, x, M, K, gated_want);
                cpu_linear_group(mixed, 2, x, M, K, gated);
                same &= memcmp(gated, gated_want, sizeof(float) * (size_t)(M * N[0])) == 0;
            }
            CHECK_MSG(same, "interleaved group %s %s: bits differ from the rows'", paths[p], llmrt_dtype_name(types[t]));
        }
        use_path("avx512");
        cpu_kernels_force_isa(NULL);
        for (int p = 0; p < 3; p++) free(w[p]), free(il[p]), free(want[p]), free(y[p]);
        free(x), free(gated), free(gated_want);
    }
}

int main(void) {
    RUN_TEST(test_layout);
    RUN_TEST(test_linear_same_bits);
    RUN_TEST(test_group_same_bits);
    return test_finish();
}
