/* cpu_linear on AVX2+FMA+F16C: y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias), W f32/f16/bf16.
 *
 * Dot form: W rows are read as stored (contiguous in k, or in 32-value
 * pieces of the interleaved layout: cpu_weight_interleave; no transpose
 * and no packing), f16/bf16 converted in registers. Every output is the same
 * arithmetic on every path: eight lane chains, lane l an FMA chain over
 * k ≡ l (mod 8) in k order for k < K8 (K rounded down to 8), folded by
 * hsum8's tree, then the tail k ≥ K8 by scalar FMAs in k order, then bias +
 * that. K is never blocked, so a row's result is the same bits whatever M
 * is, wherever the row sits in a tile and however N is split across
 * threads: a decode token gets the same logits alone, in a batch, or beside
 * a prefill chunk.
 *
 *  - M = 1 (decode): gemv8, eight W rows against x, prefetching ahead in
 *    every row into L2: eight DRAM streams a core; or, W interleaved, one
 *    stream left to the hardware prefetcher.
 *  - M ≥ 2: register tiles of x rows × W rows, 2 × 6 (below 32 rows) or
 *    3 × 4, in 12 accumulators; each W vector is converted once and feeds
 *    every row of the tile. The W rows are taken in chunks of ≤ 256 KB and x
 *    in blocks of ≤ 384 KB of rows, so both stay in L2 (1 MB) while every
 *    row group of the block meets every W group of the chunk (L1).
 *
 * Measured on the AVX-512 Zen 4 VM (one thread, CPU time, f16 512×2048 and
 * 256×5632; GFLOP/s): M = 128: 3 × 4 98-105, 2 × 6 88-101, the AVX-512
 * path 98-101; M = 4-16: 2 × 6 86-107, 3 × 4 81-105. An outer-product 6 ×
 * 16 kernel on packed, transposed f32 panels reached 78-90 (packing 16
 * rows K·2 bytes apart thrashes an L1 set, and the transpose costs
 * shuffles); the 2 × 4 tile on a converted f32 panel 72-75 (the conversion
 * in registers is not the bottleneck). */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/dtype.h"

/* Ahead in each W row being streamed, into L2 (_MM_HINT_T1): rows K·2
 * bytes apart share an L1 set when K is a multiple of 2048, and prefetching
 * 8 of them into L1 evicted the lines being read. Measured (2 threads, f16,
 * 8 × 5632×2048 and 8 × 1024×5632 from DRAM, alternating, medians): L1 at
 * 1 KB 12.0 / 16.1 GB/s, L2 at 2 KB 18.0 / 19.3, no prefetch 17.8 / 16.5. */
#define PREFETCH_BYTES 2048
/* From this many rows of x the 3 × 4 tile beats the 2 × 6 one. */
#define WIDE_TILE_MIN_M 32
/* L2 budget of the M ≥ 2 loop: a chunk of W rows and a block of x rows. */
#define CHUNK_BYTES (256 << 10)
#define XBLOCK_BYTES (384 << 10)

/* The weight's dtype and layout in one constant: the _IL kinds are the
 * interleaved layout (cpu_w_row / cpu_w_col). */
enum { W_F32 = 0, W_F16 = 1, W_BF16 = 2, W_F16_IL = 3, W_BF16_IL = 4 };
#define W_IL(type) ((type) >= W_F16_IL)
#define W_HALF(type) ((type) == W_F16 || (type) == W_F16_IL)

static int w_kind(llmrt_dtype t, int il) {
    if (t == LLMRT_DTYPE_F16) return il ? W_F16_IL : W_F16;
    return t == LLMRT_DTYPE_BF16 ? (il ? W_BF16_IL : W_BF16) : W_F32;
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256 halves_to_f32(__m128i h, int type) {
    if (W_HALF(type)) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Values k .. k + 7 of the row that starts at w (k a multiple of 8). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256 load8_w(const void *w, int type, int64_t k) {
    if (type == W_F32) return _mm256_loadu_ps((const float *)w + k);
    return halves_to_f32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + cpu_w_col(W_IL(type), k))), type);
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float load1_w(const void *w, int type, int64_t k) {
    if (type == W_F32) return ((const float *)w)[k];
    const uint16_t h = ((const uint16_t *)w)[cpu_w_col(W_IL(type), k)];
    return W_HALF(type) ? _cvtsh_ss(h) : llmrt_bf16_to_f32(h);
}

/* r[j] = the start of row n + j of W, for j < count; rows past nr repeat
 * row n + nr - 1 (their results are dropped). */
static inline __attribute__((always_inline)) void w_rows(const char **r, int count, const void *w, int type, int64_t n,
                                                         int nr, int64_t K) {
    const size_t esize = type == W_F32 ? 4 : 2;
    for (int j = 0; j < count; j++)
        r[j] = (const char *)w + (size_t)cpu_w_row(W_IL(type), n + (j < nr ? j : nr - 1), K) * esize;
}

/* acc += x[k .. k + 32) · row's 32 values from k, in four steps of 8 in k
 * order: the lanes' chains of gemv8's step loop. */
#define IL_ROW(acc, row)                                                                                  \
    acc = _mm256_fmadd_ps(x0, load8_w(row, type, k), acc);                                                \
    acc = _mm256_fmadd_ps(x1, load8_w(row, type, k + 8), acc);                                            \
    acc = _mm256_fmadd_ps(x2, load8_w(row, type, k + 16), acc);                                           \
    acc = _mm256_fmadd_ps(x3, load8_w(row, type, k + 24), acc);

/* The lane fold every path uses: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* s + x·w rounded once, as the vector FMAs do (no reliance on contraction). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float fma1(float x, float w, float s) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(x), _mm_set_ss(w), _mm_set_ss(s)));
}

/* Decode GEMV: y[j] = bias[j] + x · w_j for rows n .. n + 7 of W, nr ≤ 8
 * valid (rows past nr re-read the last one, or are an interleaved group's
 * zero padding; results dropped). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 void
gemv8(const int type, float *y, const float *x, const void *w, int64_t n, int64_t K, int nr, const float *bias) {
    const size_t esize = type == W_F32 ? 4 : 2;
    const int group = W_IL(type) && n % CPU_IL_ROWS == 0; /* one interleaved group */
    const char *r[8];
    w_rows(r, 8, w, type, n, group ? 8 : nr, K);
    const int64_t pf_every = 64 / (int64_t)esize; /* k values a cache line holds */
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    int64_t k = 0;
    /* A group's 512-byte chunks in address order, one ascending stream for
     * the hardware prefetcher: a row's four steps of a chunk one after the
     * other, then the next row's (each lane still in k order, so the same
     * bits). */
    for (; group && k + CPU_IL_CHUNK <= K; k += CPU_IL_CHUNK) {
        const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
        const __m256 x2 = _mm256_loadu_ps(x + k + 16), x3 = _mm256_loadu_ps(x + k + 24);
        IL_ROW(a0, r[0]) IL_ROW(a1, r[1]) IL_ROW(a2, r[2]) IL_ROW(a3, r[3])
        IL_ROW(a4, r[4]) IL_ROW(a5, r[5]) IL_ROW(a6, r[6]) IL_ROW(a7, r[7])
    }
    for (; k + 8 <= K; k += 8) {
        if (!W_IL(type) && k % pf_every == 0)
            for (int j = 0; j < 8; j++) _mm_prefetch(r[j] + k * (int64_t)esize + PREFETCH_BYTES, _MM_HINT_T1);
        const __m256 xv = _mm256_loadu_ps(x + k);
        a0 = _mm256_fmadd_ps(xv, load8_w(r[0], type, k), a0);
        a1 = _mm256_fmadd_ps(xv, load8_w(r[1], type, k), a1);
        a2 = _mm256_fmadd_ps(xv, load8_w(r[2], type, k), a2);
        a3 = _mm256_fmadd_ps(xv, load8_w(r[3], type, k), a3);
        a4 = _mm256_fmadd_ps(xv, load8_w(r[4], type, k), a4);
        a5 = _mm256_fmadd_ps(xv, load8_w(r[5], type, k), a5);
        a6 = _mm256_fmadd_ps(xv, load8_w(r[6], type, k), a6);
        a7 = _mm256_fmadd_ps(xv, load8_w(r[7], type, k), a7);
    }
    const __m256 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int j = 0; j < nr; j++) {
        float s = hsum8(acc[j]);
        for (int64_t t = k; t < K; t++) s = fma1(x[t], load1_w(r[j], type, t), s);
        y[j] = (bias ? bias[j] : 0.0f) + s;
    }
}
#undef IL_ROW

/* y[m, j] = bias[j] + x_m · w_j for m < MR and NR W rows (nr ≤ NR valid;
 * rows past nr re-read the last one, results dropped): MR × NR ≤ 12
 * accumulators, MR x registers and one W vector at a time, converted once
 * for the MR rows. Named accumulators, not an array: GCC keeps these in
 * registers (the unused ones vanish). prefetch: the tile reads these rows
 * first (from DRAM), and they are interleaved. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 void
dot_tile(const int MR, const int NR, const int type, float *y, int64_t ldy, const float *x, int64_t ldx,
         const void *w, int64_t n, int64_t K, int nr, const float *bias, int prefetch) {
    const char *r[6];
    w_rows(r, 6, w, type, n, nr, K);
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c04 = c00, c05 = c00;
    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00, c14 = c00, c15 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00, c24 = c00, c25 = c00;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        if (W_IL(type) && prefetch && (k & 31) == 0) /* a line of each row a chunk */
            for (int j = 0; j < NR; j++)
                _mm_prefetch(r[j] + cpu_w_col(1, k) * 2 + CPU_IL_TILE_PREFETCH_BYTES, _MM_HINT_T1);
        const __m256 x0 = _mm256_loadu_ps(x + k);
        const __m256 x1 = MR > 1 ? _mm256_loadu_ps(x + ldx + k) : x0;
        const __m256 x2 = MR > 2 ? _mm256_loadu_ps(x + 2 * ldx + k) : x0;
#define DOT_COL(j, d0, d1, d2)                                                                            \
    if (NR > j) {                                                                                         \
        const __m256 wv = load8_w(r[j], type, k);                                                         \
        d0 = _mm256_fmadd_ps(x0, wv, d0);                                                                 \
        if (MR > 1) d1 = _mm256_fmadd_ps(x1, wv, d1);                                                     \
        if (MR > 2) d2 = _mm256_fmadd_ps(x2, wv, d2);                                                     \
    }
        DOT_COL(0, c00, c10, c20) DOT_COL(1, c01, c11, c21) DOT_COL(2, c02, c12, c22)
        DOT_COL(3, c03, c13, c23) DOT_COL(4, c04, c14, c24) DOT_COL(5, c05, c15, c25)
#undef DOT_COL
    }
    const __m256 acc[18] = {c00, c01, c02, c03, c04, c05, c10, c11, c12, c13, c14, c15,
                            c20, c21, c22, c23, c24, c25};
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < nr; j++) {
            float s = hsum8(acc[m * 6 + j]);
            for (int64_t t = k; t < K; t++) s = fma1(x[m * ldx + t], load1_w(r[j], type, t), s);
            y[m * ldy + j] = (bias ? bias[j] : 0.0f) + s;
        }
}

/* The tiles' instances: 2 × 6 below WIDE_TILE_MIN_M rows, 3 × 4 from there
 * (fewer loads and conversions per FMA, but a third x row only pays once
 * there are many). mr < the tile's rows for the block's last rows. */
static CPU_TARGET_AVX2 void tile_any(int wide, int mr, int type, float *y, int64_t ldy, const float *x, int64_t ldx,
                                     const void *w, int64_t n, int64_t K, int nr, const float *bias, int prefetch) {
#define TILE_CASE(MR, NR, T)                                                                              \
    case ((MR) * 8 + (NR)) * 8 + (T):                                                                     \
        dot_tile(MR, NR, T, y, ldy, x, ldx, w, n, K, nr, bias, prefetch);                                 \
        break
#define TILE_TYPES(MR, NR)                                                                                \
    TILE_CASE(MR, NR, W_F32); TILE_CASE(MR, NR, W_F16); TILE_CASE(MR, NR, W_BF16);                        \
    TILE_CASE(MR, NR, W_F16_IL); TILE_CASE(MR, NR, W_BF16_IL)
    switch ((mr * 8 + (wide ? 4 : 6)) * 8 + type) {
        TILE_TYPES(1, 6); TILE_TYPES(2, 6);
        TILE_TYPES(1, 4); TILE_TYPES(2, 4); TILE_TYPES(3, 4);
    default: break;
    }
#undef TILE_TYPES
#undef TILE_CASE
}

/* Rows [n_begin, n_end) of y. */
CPU_TARGET_AVX2 void cpu_linear_rows_avx2(float *y, const float *x, const void *w, llmrt_dtype w_type, int il,
                                          const float *bias, int64_t M, int64_t N, int64_t K, int64_t n_begin,
                                          int64_t n_end) {
    const int type = w_kind(w_type, il);
    const size_t esize = type == W_F32 ? 4 : 2;
    if (M == 1) {
        for (int64_t n = n_begin; n < n_end; n += 8) {
            const int nr = (int)(n_end - n < 8 ? n_end - n : 8);
            const float *b = bias ? bias + n : NULL;
            switch (type) {
            case W_F16: gemv8(W_F16, y + n, x, w, n, K, nr, b); break;
            case W_BF16: gemv8(W_BF16, y + n, x, w, n, K, nr, b); break;
            case W_F16_IL: gemv8(W_F16_IL, y + n, x, w, n, K, nr, b); break;
            case W_BF16_IL: gemv8(W_BF16_IL, y + n, x, w, n, K, nr, b); break;
            default: gemv8(W_F32, y + n, x, w, n, K, nr, b); break;
            }
        }
        return;
    }
    /* A chunk of W rows and a block of x rows share L2; each group of W rows
     * (L1) meets every row group of the block. */
    const int wide = M >= WIDE_TILE_MIN_M, tile_m = wide ? 3 : 2, tile_n = wide ? 4 : 6;
    const int64_t fit = CHUNK_BYTES / (K * (int64_t)esize) / tile_n * tile_n;
    const int64_t chunk = fit > tile_n ? fit : tile_n;
    const int64_t rows = XBLOCK_BYTES / (K * 4) / tile_m * tile_m, block = rows > tile_m ? rows : tile_m;
    for (int64_t c0 = n_begin; c0 < n_end; c0 += chunk) {
        const int64_t c1 = n_end - c0 < chunk ? n_end : c0 + chunk;
        for (int64_t m0 = 0; m0 < M; m0 += block) {
            const int64_t m1 = M - m0 < block ? M : m0 + block;
            for (int64_t n = c0; n < c1; n += tile_n) {
                const int nr = (int)(c1 - n < tile_n ? c1 - n : tile_n);
                for (int64_t m = m0; m < m1; m += tile_m)
                    tile_any(wide, (int)(m1 - m < tile_m ? m1 - m : tile_m), type, y + m * N + n, N, x + m * K, K,
                             w, n, K, nr, bias ? bias + n : NULL, m == 0);
            }
        }
    }
}

