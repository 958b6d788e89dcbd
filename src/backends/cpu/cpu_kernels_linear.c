/* cpu_linear's dispatcher and portable path, and cpu_matmul_f32.
 * The SIMD bodies of cpu_linear live in cpu_kernels_linear_avx512.c and
 * cpu_kernels_linear_avx2.c. */
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/dtype.h"

/* Below this many multiply-adds a second thread costs more to wake than it
 * saves (~5 µs fork/join vs ~2 GFLOP/s of scalar work per µs). */
#define PARALLEL_MIN_WORK (1 << 16)

/* Portable: each W row is converted once into scratch and dotted with every
 * x row, so W is read once for all M. Eight partial sums let the compiler
 * keep several adds in flight without reassociating one chain. */
static void linear_rows_portable(float *y, const float *x, const void *w, llmrt_dtype w_type,
                                 const float *bias, int64_t M, int64_t N, int64_t K, int64_t n_begin,
                                 int64_t n_end) {
    float *row = w_type == LLMRT_DTYPE_F32 ? NULL : cpu_thread_scratch(sizeof(float) * (size_t)K);
    for (int64_t n = n_begin; n < n_end; n++) {
        const float *wn;
        if (w_type == LLMRT_DTYPE_F32) {
            wn = (const float *)w + (size_t)n * K;
        } else if (row) {
            llmrt_convert_to_f32(row, (const uint16_t *)w + (size_t)n * K, w_type, (size_t)K);
            wn = row;
        } else {
            wn = NULL;
        }
        for (int64_t m = 0; m < M; m++) {
            const float *xm = x + m * K;
            float s[8] = {0};
            int64_t k = 0;
            if (wn) {
                for (; k + 8 <= K; k += 8)
                    for (int i = 0; i < 8; i++) s[i] += xm[k + i] * wn[k + i];
                for (; k < K; k++) s[0] += xm[k] * wn[k];
            } else { /* no scratch memory: convert element by element */
                const uint16_t *h = (const uint16_t *)w + (size_t)n * K;
                for (; k < K; k++)
                    s[0] += xm[k] * (w_type == LLMRT_DTYPE_F16 ? llmrt_f16_to_f32(h[k]) : llmrt_bf16_to_f32(h[k]));
            }
            float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
            y[m * N + n] = (bias ? bias[n] : 0.0f) + total;
        }
    }
}

/* This thread's share of y = x · Wᵀ + bias: N is split into one contiguous
 * range per thread, rounded to 16 rows so tiles never straddle threads;
 * each thread owns its columns of y, so no reduction is needed and every
 * weight is read by one thread only. A row's result does not depend on the
 * split. Returns the range in *begin, *end. */
static void linear_share(int level, float *y, const float *x, const void *w, llmrt_dtype w_type, const float *bias,
                         int64_t M, int64_t N, int64_t K, int64_t *begin_out, int64_t *end_out) {
    int threads = omp_get_num_threads(), tid = omp_get_thread_num();
    int64_t per = (N + threads - 1) / threads;
    per = (per + 15) & ~(int64_t)15;
    int64_t begin = per * tid, end = begin + per < N ? begin + per : N;
    if (begin_out) *begin_out = begin, *end_out = end;
    if (begin >= end) return;
    if (K <= 0) {
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = begin; n < end; n++) y[m * N + n] = bias ? bias[n] : 0.0f;
    } else if (level >= CPU_ISA_AVX512) {
        cpu_linear_rows_avx512(y, x, w, w_type, bias, M, N, K, begin, end);
    } else if (level == CPU_ISA_AVX2) {
        cpu_linear_rows_avx2(y, x, w, w_type, bias, M, N, K, begin, end);
    } else {
        linear_rows_portable(y, x, w, w_type, bias, M, N, K, begin, end);
    }
}

void cpu_linear(float *y, const float *x, const void *w, llmrt_dtype w_type, const float *bias, int64_t M,
                int64_t N, int64_t K) {
    if (M <= 0 || N <= 0) return;
    const int level = cpu_isa_level();
    const int parallel = (double)M * N * K >= PARALLEL_MIN_WORK && N >= 8;
#pragma omp parallel if (parallel)
    linear_share(level, y, x, w, w_type, bias, M, N, K, NULL, NULL);
}

void cpu_linear_group(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K, float *gated) {
    if (M <= 0 || count <= 0) return;
    const int level = cpu_isa_level();
    double work = 0;
    for (int i = 0; i < count; i++) work += (double)M * parts[i].N * K;
    /* One fork/join for all parts (a decode step has ~5 µs of useful work
     * per linear, against ~1.5 µs per parallel region). */
#pragma omp parallel if (work >= PARALLEL_MIN_WORK)
    {
        int64_t begin = 0, end = 0;
        for (int i = 0; i < count; i++)
            linear_share(level, parts[i].y, x, parts[i].w, parts[i].w_type, parts[i].bias, M, parts[i].N, K, &begin,
                         &end);
        /* gate and up have the same N, so this thread owns the same
         * columns of both and the product needs no barrier */
        if (gated)
            for (int64_t m = 0; m < M && begin < end; m++) {
                const int64_t at = m * parts[0].N + begin;
                cpu_silu_mul_range(level, gated + at, parts[0].y + at, parts[1].y + at, end - begin);
            }
    }
}

/* c[i0:i0+rows, j0:j0+cols] = a · b for one tile, i-k-j order: the inner
 * loop is a contiguous axpy over a row of b and c that the compiler
 * vectorises for whichever target the caller carries. */
static inline __attribute__((always_inline)) void matmul_tile(float *restrict c, const float *restrict a,
                                                               const float *restrict b, int64_t N, int64_t K,
                                                               int64_t i0, int64_t rows, int64_t j0,
                                                               int64_t cols) {
    for (int64_t i = i0; i < i0 + rows; i++) {
        float *restrict ci = c + i * N + j0;
        for (int64_t j = 0; j < cols; j++) ci[j] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            const float aik = a[i * K + k];
            const float *restrict bk = b + k * N + j0;
            for (int64_t j = 0; j < cols; j++) ci[j] += aik * bk[j];
        }
    }
}

static CPU_TARGET_AVX512 void matmul_tile_avx512(float *c, const float *a, const float *b, int64_t N, int64_t K,
                                                 int64_t i0, int64_t rows, int64_t j0, int64_t cols) {
    matmul_tile(c, a, b, N, K, i0, rows, j0, cols);
}
static CPU_TARGET_AVX2 void matmul_tile_avx2(float *c, const float *a, const float *b, int64_t N, int64_t K,
                                             int64_t i0, int64_t rows, int64_t j0, int64_t cols) {
    matmul_tile(c, a, b, N, K, i0, rows, j0, cols);
}
static void matmul_tile_portable(float *c, const float *a, const float *b, int64_t N, int64_t K, int64_t i0,
                                 int64_t rows, int64_t j0, int64_t cols) {
    matmul_tile(c, a, b, N, K, i0, rows, j0, cols);
}

/* 256 columns of c (1 KB per row) stay in L1 while k sweeps; 8 rows per tile
 * give the threads enough tiles to share. */
#define MATMUL_TILE_ROWS 8
#define MATMUL_TILE_COLS 256

void cpu_matmul_f32(float *c, const float *a, const float *b, int64_t M, int64_t N, int64_t K) {
    if (M <= 0 || N <= 0) return;
    const int level = cpu_isa_level();
    const int64_t row_tiles = (M + MATMUL_TILE_ROWS - 1) / MATMUL_TILE_ROWS;
    const int64_t col_tiles = (N + MATMUL_TILE_COLS - 1) / MATMUL_TILE_COLS;
#pragma omp parallel for collapse(2) schedule(static) if ((double)M * N * K >= PARALLEL_MIN_WORK)
    for (int64_t ti = 0; ti < row_tiles; ti++)
        for (int64_t tj = 0; tj < col_tiles; tj++) {
            int64_t i0 = ti * MATMUL_TILE_ROWS, j0 = tj * MATMUL_TILE_COLS;
            int64_t rows = M - i0 < MATMUL_TILE_ROWS ? M - i0 : MATMUL_TILE_ROWS;
            int64_t cols = N - j0 < MATMUL_TILE_COLS ? N - j0 : MATMUL_TILE_COLS;
            if (level == CPU_ISA_AVX512)
                matmul_tile_avx512(c, a, b, N, K, i0, rows, j0, cols);
            else if (level == CPU_ISA_AVX2)
                matmul_tile_avx2(c, a, b, N, K, i0, rows, j0, cols);
            else
                matmul_tile_portable(c, a, b, N, K, i0, rows, j0, cols);
        }
}
