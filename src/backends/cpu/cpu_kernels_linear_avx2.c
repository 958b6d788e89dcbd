/* cpu_linear on AVX2+FMA+F16C: the same dot-form design as the AVX-512 file
 * (see there), scaled to 16 ymm registers: a tile is MR ≤ 2 rows of x
 * against 4 rows of W = 8 accumulators + 2 x + 1 W register. k tails are
 * scalar, so no load crosses the end of a row. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/dtype.h"

#define LINEAR_DIRECT_MAX_M 8
#define PANEL_ROWS 64
#define PANEL_K 512

enum { W_F32 = 0, W_F16 = 1, W_BF16 = 2 };

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256 load8_w(const void *w, int type,
                                                                            int64_t index) {
    if (type == W_F32) return _mm256_loadu_ps((const float *)w + index);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + index));
    if (type == W_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float load1_w(const void *w, int type,
                                                                           int64_t index) {
    if (type == W_F32) return ((const float *)w)[index];
    uint16_t h = ((const uint16_t *)w)[index];
    if (type == W_F16) return _cvtsh_ss(h);
    return llmrt_bf16_to_f32(h);
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* y[m, j] (+)= Σ_k x[m, k] · w[j, k], m < MR, j < nr ≤ 4 (rows ≥ nr re-read
 * row nr-1, results dropped). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 void
tile(const int MR, const int type, float *y, int64_t ldy, const float *x, int64_t ldx, const void *w,
     int64_t ldw, int nr, int64_t kc, int accumulate, const float *bias, int prefetch_bytes) {
    const size_t esize = type == W_F32 ? 4 : 2;
    const char *wrow[4];
    for (int j = 0; j < 4; j++) wrow[j] = (const char *)w + (size_t)(j < nr ? j : nr - 1) * ldw * esize;
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 xv[2];
        for (int m = 0; m < MR; m++) xv[m] = _mm256_loadu_ps(x + m * ldx + k);
        for (int j = 0; j < 4; j++) {
            if (prefetch_bytes) _mm_prefetch(wrow[j] + k * esize + prefetch_bytes, _MM_HINT_T0);
            __m256 wv = load8_w(wrow[j], type, k);
            for (int m = 0; m < MR; m++) acc[m * 4 + j] = _mm256_fmadd_ps(xv[m], wv, acc[m * 4 + j]);
        }
    }
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < nr; j++) {
            float s = hsum8(acc[m * 4 + j]);
            for (int64_t t = k; t < kc; t++) s += x[m * ldx + t] * load1_w(wrow[j], type, t);
            float *out = y + m * ldy + j;
            *out = accumulate ? *out + s : (bias ? bias[j] : 0.0f) + s;
        }
}

static CPU_TARGET_AVX2 void tile_any(int mr, int type, float *y, int64_t ldy, const float *x, int64_t ldx,
                                     const void *w, int64_t ldw, int nr, int64_t kc, int accumulate,
                                     const float *bias, int prefetch_bytes) {
#define TILE_CASE(MR, TYPE)                                                                       \
    case (MR) * 4 + (TYPE):                                                                       \
        tile(MR, TYPE, y, ldy, x, ldx, w, ldw, nr, kc, accumulate, bias, prefetch_bytes);         \
        break
    switch (mr * 4 + type) {
        TILE_CASE(1, W_F32); TILE_CASE(2, W_F32);
        TILE_CASE(1, W_F16); TILE_CASE(2, W_F16);
        TILE_CASE(1, W_BF16); TILE_CASE(2, W_BF16);
    default: break;
    }
#undef TILE_CASE
}

static int w_kind(llmrt_dtype t) { return t == LLMRT_DTYPE_F16 ? W_F16 : t == LLMRT_DTYPE_BF16 ? W_BF16 : W_F32; }

static CPU_TARGET_AVX2 void convert_panel(float *panel, int64_t ldp, const void *w, int type, int64_t K,
                                          int64_t n0, int64_t rows, int64_t k0, int64_t kc) {
    for (int64_t r = 0; r < rows; r++) {
        const void *src = (const char *)w + ((size_t)(n0 + r) * K + k0) * 2;
        float *dst = panel + r * ldp;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) _mm256_storeu_ps(dst + k, load8_w(src, type, k));
        for (; k < kc; k++) dst[k] = load1_w(src, type, k);
    }
}

CPU_TARGET_AVX2 void cpu_linear_rows_avx2(float *y, const float *x, const void *w, llmrt_dtype w_type,
                                          const float *bias, int64_t M, int64_t N, int64_t K, int64_t n_begin,
                                          int64_t n_end) {
    const int type = w_kind(w_type);
    const size_t esize = type == W_F32 ? 4 : 2;
    float *panel = NULL;
    if (M > LINEAR_DIRECT_MAX_M && type != W_F32) panel = cpu_thread_scratch(sizeof(float) * PANEL_ROWS * PANEL_K);
    if (M <= LINEAR_DIRECT_MAX_M || (type != W_F32 && !panel)) {
        for (int64_t n = n_begin; n < n_end; n += 4) {
            int nr = (int)(n_end - n < 4 ? n_end - n : 4);
            const void *wn = (const char *)w + (size_t)n * K * esize;
            for (int64_t m = 0; m < M; m += 2)
                tile_any((int)(M - m < 2 ? M - m : 2), type, y + m * N + n, N, x + m * K, K, wn, K, nr, K, 0,
                         bias ? bias + n : NULL, m == 0 ? 1024 : 0);
        }
        return;
    }
    for (int64_t n0 = n_begin; n0 < n_end; n0 += PANEL_ROWS) {
        int64_t rows = n_end - n0 < PANEL_ROWS ? n_end - n0 : PANEL_ROWS;
        for (int64_t k0 = 0; k0 < K; k0 += PANEL_K) {
            int64_t kc = K - k0 < PANEL_K ? K - k0 : PANEL_K;
            const float *wp = (const float *)w + (size_t)n0 * K + k0;
            int64_t ldw = K;
            if (type != W_F32) {
                convert_panel(panel, PANEL_K, w, type, K, n0, rows, k0, kc);
                wp = panel, ldw = PANEL_K;
            }
            for (int64_t r = 0; r < rows; r += 4)
                for (int64_t m = 0; m < M; m += 2)
                    tile_any((int)(M - m < 2 ? M - m : 2), W_F32, y + m * N + n0 + r, N, x + m * K + k0, K,
                             wp + r * ldw, ldw, (int)(rows - r < 4 ? rows - r : 4), kc, k0 > 0,
                             bias ? bias + n0 + r : NULL, 0);
        }
    }
}
