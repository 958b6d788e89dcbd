/* cpu_linear's dispatcher and portable path, and cpu_matmul_f32.
 * The SIMD bodies of cpu_linear live in cpu_kernels_linear_avx512.c and
 * cpu_kernels_linear_avx2.c. */
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "backends/cpu/cpu_kernels_q8.h"
#include "backends/cpu/cpu_kernels_quant.h"
#include "core/quant8.h"
#include "core/thread_pool.h"
#include "core/dtype.h"

/* Below this many multiply-adds a second thread costs more to wake than it
 * saves (~5 µs start and join vs ~2 GFLOP/s of scalar work per µs). */
#define PARALLEL_MIN_WORK (1 << 16)

/* Portable: each W row is converted once into scratch and dotted with every
 * x row, so W is read once for all M. Eight partial sums let the compiler
 * keep several adds in flight without reassociating one chain. */
static void linear_rows_portable(float *y, const float *x, const void *w, llmrt_dtype w_type, int il,
                                 const float *bias, int64_t M, int64_t N, int64_t K, int64_t n_begin,
                                 int64_t n_end) {
    float *row = w_type == LLMRT_DTYPE_F32 ? NULL : cpu_thread_scratch(sizeof(float) * (size_t)K);
    for (int64_t n = n_begin; n < n_end; n++) {
        const float *wn;
        if (w_type == LLMRT_DTYPE_F32) {
            wn = (const float *)w + (size_t)n * K;
        } else if (row) {
            cpu_weight_row_f32(row, w, w_type, il, n, K);
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
                const uint16_t *h = (const uint16_t *)w + cpu_w_row(il, n, K);
                for (; k < K; k++) {
                    const uint16_t v = h[cpu_w_col(il, k)];
                    s[0] += xm[k] * (w_type == LLMRT_DTYPE_F16 ? llmrt_f16_to_f32(v) : llmrt_bf16_to_f32(v));
                }
            }
            float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
            y[m * N + n] = (bias ? bias[n] : 0.0f) + total;
        }
    }
}

/* Rows [begin, end) of y = x · Wᵀ + bias. The pool cuts N at multiples of
 * 16 rows so tiles never straddle chunks; each chunk owns its columns of y,
 * so no reduction is needed and every weight is read once. A row's result
 * does not depend on the split. */
static void linear_rows(int level, float *y, const float *x, const void *w, llmrt_dtype w_type, int il,
                        const float *bias, int64_t M, int64_t N, int64_t K, int64_t begin, int64_t end) {
    if (begin >= end) return;
    if (K <= 0) {
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = begin; n < end; n++) y[m * N + n] = bias ? bias[n] : 0.0f;
    } else if (level >= CPU_ISA_AVX512) {
        cpu_linear_rows_avx512(y, x, w, w_type, il, bias, M, N, K, begin, end);
    } else if (level == CPU_ISA_AVX2) {
        cpu_linear_rows_avx2(y, x, w, w_type, il, bias, M, N, K, begin, end);
    } else {
        linear_rows_portable(y, x, w, w_type, il, bias, M, N, K, begin, end);
    }
}

#define LINEAR_ROW_ALIGN 16

/* The job's rows: part i's rows are items [start[i], start[i] + N) of the
 * range (each start a multiple of 16), so a chunk may cover rows of
 * several parts; a gated pair starts both parts at 0, so a chunk computes
 * the same columns of gate and up. */
typedef struct linear_job {
    int level, count;
    const uint16_t *xb; /* x rounded to bf16 for the bf16 parts, or NULL */
    const cpu_linear_part *parts;
    int64_t start[3];
    const float *x;
    int64_t M, K;
    float *gated;
} linear_job;

static void linear_chunk(void *ctx, int64_t begin, int64_t end) {
    const linear_job *j = ctx;
    for (int i = 0; i < j->count; i++) {
        const cpu_linear_part *p = &j->parts[i];
        const int64_t b = begin - j->start[i], e = end - j->start[i];
        const int il = p->w_interleaved && p->w_type != LLMRT_DTYPE_F32;
        if (j->xb && p->w_type == LLMRT_DTYPE_BF16)
            cpu_linear_rows_bf16(p->y, j->xb, p->w, il, p->bias, j->M, p->N, j->K, b > 0 ? b : 0,
                                 e < p->N ? e : p->N);
        else
            linear_rows(j->level, p->y, j->x, p->w, p->w_type, il, p->bias, j->M, p->N, j->K, b > 0 ? b : 0,
                        e < p->N ? e : p->N);
    }
    /* this chunk computed these columns of both gate and up: the product
     * needs no barrier */
    if (j->gated)
        for (int64_t m = 0; m < j->M && begin < end; m++) {
            const int64_t at = m * j->parts[0].N + begin;
            cpu_silu_mul_range(j->level, j->gated + at, j->parts[0].y + at, j->parts[1].y + at, end - begin);
        }
}

/* x rounded to bf16 in this thread's slot-2 buffer when the step computes
 * in 16 bits and some part has bf16 weights; NULL otherwise (or when the
 * buffer cannot be had: the f32 path is always correct). */
static const uint16_t *bf16_x(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K) {
    if (K <= 0 || !cpu_bf16_compute_active()) return NULL;
    int any = 0;
    for (int i = 0; i < count; i++) any |= parts[i].w_type == LLMRT_DTYPE_BF16;
    if (!any) return NULL;
    uint16_t *xb = cpu_thread_buffer(2, sizeof(uint16_t) * (size_t)(M * K));
    if (xb) cpu_bf16_round_rows(xb, x, M * K);
    return xb;
}

void cpu_linear(float *y, const float *x, const void *w, llmrt_dtype w_type, const float *bias, int64_t M,
                int64_t N, int64_t K) {
    if (N <= 0) return;
    const cpu_linear_part part = {.y = y, .w = w, .w_type = w_type, .bias = bias, .N = N};
    cpu_linear_group(&part, 1, x, M, K, NULL);
}

void cpu_linear_group(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K, float *gated) {
    if (M <= 0 || count <= 0 || count > 3) return;
    for (int i = 0; i < count; i++)
        if (llmrt_dtype_is_q8(parts[i].w_type)) {
            cpu_q8linear_group(parts, count, x, M, K, gated);
            return;
        }
    for (int i = 0; i < count; i++)
        if (llmrt_dtype_is_quantized(parts[i].w_type)) {
            cpu_qlinear_group(parts, count, x, M, K, gated);
            return;
        }
    /* One job for all parts (a decode step has ~5 µs of useful work per
     * linear, against ~1.5 µs to start and join the threads). */
    linear_job job = {.level = cpu_isa_level(), .count = count, .parts = parts, .x = x, .M = M, .K = K,
                      .gated = gated, .xb = bf16_x(parts, count, x, M, K)};
    double work = 0;
    int64_t rows = 0;
    for (int i = 0; i < count; i++) {
        work += (double)M * parts[i].N * K;
        job.start[i] = gated ? 0 : rows;
        rows = gated ? parts[i].N : rows + (parts[i].N + LINEAR_ROW_ALIGN - 1) / LINEAR_ROW_ALIGN * LINEAR_ROW_ALIGN;
    }
    llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, LINEAR_ROW_ALIGN), work >= PARALLEL_MIN_WORK && rows >= 8,
                       linear_chunk, &job);
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

typedef struct matmul_job {
    int level;
    float *c;
    const float *a, *b;
    int64_t M, N, K, col_tiles;
} matmul_job;

static void matmul_chunk(void *ctx, int64_t begin, int64_t end) {
    const matmul_job *j = ctx;
    for (int64_t tile = begin; tile < end; tile++) {
        const int64_t i0 = tile / j->col_tiles * MATMUL_TILE_ROWS, j0 = tile % j->col_tiles * MATMUL_TILE_COLS;
        const int64_t rows = j->M - i0 < MATMUL_TILE_ROWS ? j->M - i0 : MATMUL_TILE_ROWS;
        const int64_t cols = j->N - j0 < MATMUL_TILE_COLS ? j->N - j0 : MATMUL_TILE_COLS;
        if (j->level == CPU_ISA_AVX512)
            matmul_tile_avx512(j->c, j->a, j->b, j->N, j->K, i0, rows, j0, cols);
        else if (j->level == CPU_ISA_AVX2)
            matmul_tile_avx2(j->c, j->a, j->b, j->N, j->K, i0, rows, j0, cols);
        else
            matmul_tile_portable(j->c, j->a, j->b, j->N, j->K, i0, rows, j0, cols);
    }
}

void cpu_matmul_f32(float *c, const float *a, const float *b, int64_t M, int64_t N, int64_t K) {
    if (M <= 0 || N <= 0) return;
    const int64_t row_tiles = (M + MATMUL_TILE_ROWS - 1) / MATMUL_TILE_ROWS;
    const int64_t col_tiles = (N + MATMUL_TILE_COLS - 1) / MATMUL_TILE_COLS;
    matmul_job job = {.level = cpu_isa_level(), .c = c, .a = a, .b = b, .M = M, .N = N, .K = K,
                      .col_tiles = col_tiles};
    const int64_t tiles = row_tiles * col_tiles;
    llmrt_parallel_for(tiles, llmrt_parallel_chunk(tiles, 1), (double)M * N * K >= PARALLEL_MIN_WORK, matmul_chunk, &job);
}
