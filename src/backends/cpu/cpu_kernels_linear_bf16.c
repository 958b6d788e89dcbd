/* cpu_linear for bf16 weights with 16-bit activations (AVX512-BF16):
 * y[M,N] = bf16(x)[M,K] · W[N,K]ᵀ (+ bias), products exact in fp32 and
 * summed in fp32 by vdpbf16ps, 32 k per instruction against the f32 path's
 * 16 k per convert + FMA pair. x is rounded to bf16 once per call
 * (cpu_bf16_round_rows), as llama.cpp and HF transformers' bf16 models do.
 *
 * One register tile: MR (≤ 6) rows of x against 4 rows of W in dot form,
 * 24 accumulators of 16 lanes, each lane summing k pairs in k order; then
 * cpu_reduce16's tree and + bias. M = 1 runs gemv8 (eight W rows, eight
 * DRAM streams, or one when W is interleaved: cpu_weight_interleave) with
 * the same per-lane chains and the same tree, and no
 * path blocks k, so a row's result never depends on M or on its
 * neighbours in the batch, for every K. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "backends/cpu/cpu_simd_avx512.h"

#define CPU_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma,avx2")))

/* As the f32 path: 1 KB ahead in every W row of the decode stream. */
#define PREFETCH_BYTES 1024
/* A panel of W rows, all of K, stays in L2 (1 MB) while every block of 6
 * x rows meets it: at most this many bytes (64 rows at K = 2048, 8 rows at
 * K = 14336). */
#define PANEL_BYTES (256 * 1024)
#define PANEL_ROWS_MAX 64

static inline __attribute__((always_inline)) CPU_TARGET_BF16 __m512bh load_bh(const uint16_t *p, __mmask32 mask) {
    return (__m512bh)_mm512_maskz_loadu_epi16(mask, p);
}

#define DP_ROW(xv, c0, c1, c2, c3)         \
    do {                                   \
        c0 = _mm512_dpbf16_ps(c0, xv, w0); \
        c1 = _mm512_dpbf16_ps(c1, xv, w1); \
        c2 = _mm512_dpbf16_ps(c2, xv, w2); \
        c3 = _mm512_dpbf16_ps(c3, xv, w3); \
    } while (0)

/* Into L1, or L2 for interleaved weights (CPU_IL_TILE_PREFETCH_BYTES). */
#define PREFETCH_W(p)                                       \
    do {                                                    \
        if (IL) _mm_prefetch((p), _MM_HINT_T1);             \
        else _mm_prefetch((p), _MM_HINT_T0);                \
    } while (0)

#define TILE_STEP(k, mask, PF)                                                                   \
    do {                                                                                         \
        if (PF) {                                                                                \
            PREFETCH_W((const char *)(wr0 + cpu_w_col(IL, k)) + pf_bytes);                      \
            PREFETCH_W((const char *)(wr1 + cpu_w_col(IL, k)) + pf_bytes);                      \
            PREFETCH_W((const char *)(wr2 + cpu_w_col(IL, k)) + pf_bytes);                      \
            PREFETCH_W((const char *)(wr3 + cpu_w_col(IL, k)) + pf_bytes);                      \
        }                                                                                        \
        __m512bh w0 = load_bh(wr0 + cpu_w_col(IL, k), mask), w1 = load_bh(wr1 + cpu_w_col(IL, k), mask); \
        __m512bh w2 = load_bh(wr2 + cpu_w_col(IL, k), mask), w3 = load_bh(wr3 + cpu_w_col(IL, k), mask); \
        DP_ROW(load_bh(x + (k), mask), c00, c01, c02, c03);                                      \
        if (MR > 1) DP_ROW(load_bh(x + ldx + (k), mask), c10, c11, c12, c13);                    \
        if (MR > 2) DP_ROW(load_bh(x + 2 * ldx + (k), mask), c20, c21, c22, c23);                \
        if (MR > 3) DP_ROW(load_bh(x + 3 * ldx + (k), mask), c30, c31, c32, c33);                \
        if (MR > 4) DP_ROW(load_bh(x + 4 * ldx + (k), mask), c40, c41, c42, c43);                \
        if (MR > 5) DP_ROW(load_bh(x + 5 * ldx + (k), mask), c50, c51, c52, c53);                \
    } while (0)

/* y[m, j] = bias[j] + Σ_k x[m, k] · w[n + j, k] for m < MR, j < nr (≤ 4);
 * W rows past nr re-read row nr-1 and their results are dropped. IL: W is
 * interleaved (a chunk of 32 values of a row is one 64-byte load either
 * way). */
static inline __attribute__((always_inline)) CPU_TARGET_BF16 void
tile(const int MR, const int PF, const int IL, float *y, int64_t ldy, const uint16_t *x, int64_t ldx,
     const uint16_t *w, int64_t n, int nr, int64_t K, const float *bias) {
    const int64_t pf_bytes = IL ? CPU_IL_TILE_PREFETCH_BYTES : PREFETCH_BYTES;
    const uint16_t *wr0 = w + cpu_w_row(IL, n, K), *wr1 = w + cpu_w_row(IL, n + (nr > 1 ? 1 : 0), K),
                   *wr2 = w + cpu_w_row(IL, n + (nr > 2 ? 2 : nr - 1), K),
                   *wr3 = w + cpu_w_row(IL, n + (nr > 3 ? 3 : nr - 1), K);
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
           c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00,
           c40 = c00, c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) TILE_STEP(k, 0xffffffffu, PF);
    if (k < K) TILE_STEP(k, (__mmask32)((1ull << (K - k)) - 1), 0);
    __m512 acc[16] = {c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33};
    float sums[32] __attribute__((aligned(64)));
    _mm512_store_ps(sums, cpu_reduce16(acc));
    if (MR > 4) {
        const __m512 z = _mm512_setzero_ps();
        __m512 acc2[16] = {c40, c41, c42, c43, c50, c51, c52, c53, z, z, z, z, z, z, z, z};
        _mm512_store_ps(sums + 16, cpu_reduce16(acc2));
    }
    const __mmask8 store_mask = (__mmask8)((1u << nr) - 1);
    const __m128 add = bias ? _mm_maskz_loadu_ps(store_mask, bias) : _mm_setzero_ps();
    for (int m = 0; m < MR; m++) _mm_mask_storeu_ps(y + m * ldy, store_mask, _mm_add_ps(add, _mm_load_ps(sums + 4 * m)));
}
#undef TILE_STEP
#undef PREFETCH_W
#undef DP_ROW

/* M = 1: y[j] = bias[j] + x · w_{n+j} for 8 rows (nr ≤ 8 valid),
 * prefetching rows to L2 as the f32 gemv8 does (an interleaved group's
 * chunk, a line a row, is already read in address order). */
static inline __attribute__((always_inline)) CPU_TARGET_BF16 void
gemv8(const int IL, float *y, const uint16_t *x, const uint16_t *w, int64_t n, int nr, int64_t K, const float *bias) {
    const uint16_t *r[8];
    for (int j = 0; j < 8; j++) r[j] = w + cpu_w_row(IL, n + (j < nr ? j : nr - 1), K);
    const uint16_t *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3], *r4 = r[4], *r5 = r[5], *r6 = r[6], *r7 = r[7];
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
#define GEMV_ROW(acc, row, mask, pf)                                                           \
    do {                                                                                       \
        if (pf && !IL) _mm_prefetch((const char *)(row + k) + PREFETCH_BYTES, _MM_HINT_T1);    \
        acc = _mm512_dpbf16_ps(acc, xv, load_bh(row + cpu_w_col(IL, k), mask));                \
    } while (0)
#define GEMV_STEP(mask, pf)                                                                    \
    do {                                                                                       \
        GEMV_ROW(a0, r0, mask, pf); GEMV_ROW(a1, r1, mask, pf); GEMV_ROW(a2, r2, mask, pf);    \
        GEMV_ROW(a3, r3, mask, pf); GEMV_ROW(a4, r4, mask, pf); GEMV_ROW(a5, r5, mask, pf);    \
        GEMV_ROW(a6, r6, mask, pf); GEMV_ROW(a7, r7, mask, pf);                                \
    } while (0)
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m512bh xv = load_bh(x + k, 0xffffffffu);
        GEMV_STEP(0xffffffffu, 1);
    }
    if (k < K) {
        const __mmask32 mask = (__mmask32)((1ull << (K - k)) - 1);
        const __m512bh xv = load_bh(x + k, mask);
        GEMV_STEP(mask, 0);
    }
#undef GEMV_STEP
#undef GEMV_ROW
    const __m512 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    cpu_store_gemv8(y, acc, nr, bias);
}

static CPU_TARGET_BF16 void gemv8_any(int il, float *y, const uint16_t *x, const uint16_t *w, int64_t n, int nr,
                                      int64_t K, const float *bias) {
    if (il) gemv8(1, y, x, w, n, nr, K, bias);
    else gemv8(0, y, x, w, n, nr, K, bias);
}

/* MR must be a constant for tile()'s accumulators to live in registers. */
static CPU_TARGET_BF16 void tile_any(int mr, int prefetch, int il, float *y, int64_t ldy, const uint16_t *x,
                                     int64_t ldx, const uint16_t *w, int64_t n, int nr, int64_t K, const float *bias) {
#define TILE_CASE(MR, IL)                                                       \
    case (MR) * 2 + (IL):                                                       \
        if (prefetch) tile(MR, 1, IL, y, ldy, x, ldx, w, n, nr, K, bias);       \
        else tile(MR, 0, IL, y, ldy, x, ldx, w, n, nr, K, bias);                \
        break
    switch (mr * 2 + (il != 0)) {
        TILE_CASE(1, 0); TILE_CASE(2, 0); TILE_CASE(3, 0); TILE_CASE(4, 0); TILE_CASE(5, 0); TILE_CASE(6, 0);
        TILE_CASE(1, 1); TILE_CASE(2, 1); TILE_CASE(3, 1); TILE_CASE(4, 1); TILE_CASE(5, 1); TILE_CASE(6, 1);
    default: break;
    }
#undef TILE_CASE
}

CPU_TARGET_BF16 void cpu_linear_rows_bf16(float *y, const uint16_t *x, const uint16_t *w, int il, const float *bias,
                                          int64_t M, int64_t N, int64_t K, int64_t n_begin, int64_t n_end) {
    if (n_begin >= n_end) return;
    if (M == 1) {
        for (int64_t n = n_begin; n < n_end; n += 8)
            gemv8_any(il, y + n, x, w, n, (int)(n_end - n < 8 ? n_end - n : 8), K, bias ? bias + n : NULL);
        return;
    }
    int64_t panel = PANEL_BYTES / (2 * K) / 4 * 4;
    panel = panel < 4 ? 4 : panel > PANEL_ROWS_MAX ? PANEL_ROWS_MAX : panel;
    /* A panel streams from DRAM during its first block of x rows (which
     * prefetches) and is read from L2 by the others, so W crosses the
     * memory bus once for every M. */
    /* Blocks of x rows as even as 6 allows (8 = 4 + 4, not 6 + 2: a
     * 2-row tile loads 6 vectors for 8 products). A row's arithmetic is
     * the same in any block. */
    const int64_t blocks = (M + 5) / 6, base = M / blocks, extra = M % blocks;
    for (int64_t n0 = n_begin; n0 < n_end; n0 += panel) {
        const int64_t rows = n_end - n0 < panel ? n_end - n0 : panel;
        for (int64_t b = 0, m = 0; b < blocks; b++) {
            const int mr = (int)(base + (b < extra));
            for (int64_t r = 0; r < rows; r += 4)
                tile_any(mr, m == 0, il, y + m * N + n0 + r, N, x + m * K, K, w, n0 + r,
                         (int)(rows - r < 4 ? rows - r : 4), K, bias ? bias + n0 + r : NULL);
            m += mr;
        }
    }
}

/* Rounds to nearest even, NaN kept a NaN (vcvtne2ps2bf16). */
CPU_TARGET_BF16 void cpu_bf16_round_rows(uint16_t *out, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512(out + i, (__m512i)h);
    }
    for (; i < n; i += 16) {
        const __mmask16 mask = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i));
        _mm256_mask_storeu_epi16(out + i, mask, (__m256i)h);
    }
}
