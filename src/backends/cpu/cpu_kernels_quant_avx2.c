/* The integer path of quantized linears on AVX2 (cpu_kernels_quant.h).
 * A block of 32 inputs: int4 codes unpack from 16 bytes (low nibbles are
 * inputs 0..15, high nibbles 16..31) into 32 u8 in input order; vpmaddubsw
 * multiplies them by x's s8 codes into s16 pairs (15 · 127 · 2 cannot
 * saturate) and vpmaddwd sums pairs into 8 s32. int8 codes (up to 255)
 * could saturate vpmaddubsw, so they widen to s16 and go through vpmaddwd
 * alone. Each block's 8 sums turn f32 and accumulate scaled by d_b · s_g;
 * up to MT rows of x share each unpacked block. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_quant.h"
#include "core/dtype.h"

#define MT 4

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 s32 partial dot products of block b of a code row with 32 s8 of x. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256i block_dot4(__m256i w, const int8_t *x) {
    const __m256i p16 = _mm256_maddubs_epi16(w, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256i block_dot8(const uint8_t *codes,
                                                                                const int8_t *x) {
    const __m128i c0 = _mm_loadu_si128((const __m128i *)codes), c1 = _mm_loadu_si128((const __m128i *)codes + 1);
    const __m128i x0 = _mm_loadu_si128((const __m128i *)x), x1 = _mm_loadu_si128((const __m128i *)x + 1);
    const __m256i lo = _mm256_madd_epi16(_mm256_cvtepu8_epi16(c0), _mm256_cvtepi8_epi16(x0));
    const __m256i hi = _mm256_madd_epi16(_mm256_cvtepu8_epi16(c1), _mm256_cvtepi8_epi16(x1));
    return _mm256_add_epi32(lo, hi);
}

static CPU_TARGET_AVX2 void row_tile(float *y, int64_t N, const void *blob, const float *bias, const cpu_qact *a,
                                     int64_t n, int64_t m0, int mt) {
    const llmrt_qweight_header *h = blob;
    const int64_t per = h->group_size / 32;
    const uint8_t *codes = llmrt_qweight_codes(blob) + n * h->row_bytes;
    const uint16_t *scales = llmrt_qweight_scales(blob) + n * h->groups;
    const uint8_t *zeros = llmrt_qweight_zeros(blob) + n * h->groups;
    __m256 acc[MT];
    for (int i = 0; i < MT; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t g = 0; g < h->groups; g++) {
        const float s = _cvtsh_ss(scales[g]);
        const int64_t b1 = (g + 1) * per < a->nb ? (g + 1) * per : a->nb;
        for (int64_t b = g * per; b < b1; b++) {
            if (h->bits == 4) {
                const __m128i c = _mm_loadu_si128((const __m128i *)(codes + b * 16));
                const __m128i mask = _mm_set1_epi8(0x0f);
                const __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(c, 4), mask), _mm_and_si128(c, mask));
                for (int i = 0; i < mt; i++) {
                    const int64_t m = m0 + i;
                    const __m256 f = _mm256_cvtepi32_ps(block_dot4(w, a->q + m * a->K + b * 32));
                    acc[i] = _mm256_fmadd_ps(f, _mm256_set1_ps(a->d[m * a->nb + b] * s), acc[i]);
                }
            } else {
                for (int i = 0; i < mt; i++) {
                    const int64_t m = m0 + i;
                    const __m256 f = _mm256_cvtepi32_ps(block_dot8(codes + b * 32, a->q + m * a->K + b * 32));
                    acc[i] = _mm256_fmadd_ps(f, _mm256_set1_ps(a->d[m * a->nb + b] * s), acc[i]);
                }
            }
        }
    }
    for (int i = 0; i < mt; i++) {
        const int64_t m = m0 + i;
        float correction = 0.0f;
        for (int64_t g = 0; g < h->groups; g++)
            correction += (float)zeros[g] * _cvtsh_ss(scales[g]) * a->gsum[m * a->groups + g];
        y[m * N + n] = (bias ? bias[n] : 0.0f) + (hsum8(acc[i]) - correction);
    }
}

CPU_TARGET_AVX2 void cpu_qlinear_rows_avx2(float *y, int64_t N, const void *blob, const float *bias,
                                           const cpu_qact *a, int64_t n_begin, int64_t n_end) {
    for (int64_t m0 = 0; m0 < a->M; m0 += MT) {
        const int mt = a->M - m0 < MT ? (int)(a->M - m0) : MT;
        for (int64_t n = n_begin; n < n_end; n++) row_tile(y, N, blob, bias, a, n, m0, mt);
    }
}
