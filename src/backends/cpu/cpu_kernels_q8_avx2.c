/* The AVX2 dot products of 8-bit linears (cpu_kernels_q8.h).
 *  - int8: vpmaddubsw multiplies u8 by s8, so each 32-code step takes |w|
 *    as the u8 side and x · sign(w) as the s8 side; |x| ≤ 127 (activations
 *    are clamped there) and |w| ≤ 128, so a pair sums to at most 32,512
 *    and never saturates; vpmaddwd then sums pairs into s32 exactly.
 *  - fp8: codes decoded by shifting them into f16 (F16C), then f32 FMAs. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_q8.h"

#define MT 4
#define NT 2

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CPU_TARGET_AVX2 void cpu_q8_dot_i8_avx2(const int8_t *w, const int8_t *x, int64_t stride, int mt, int64_t K,
                                        int32_t *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[MT];
    for (int i = 0; i < MT; i++) acc[i] = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(w + k));
        const __m256i magnitude = _mm256_abs_epi8(wv);
        for (int i = 0; i < mt; i++) {
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(x + i * stride + k));
            const __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(xv, wv));
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(pairs, ones));
        }
    }
    for (int i = 0; i < mt; i++) {
        int32_t s = hsum_i32(acc[i]);
        for (int64_t t = k; t < K; t++) s += (int32_t)w[t] * x[i * stride + t];
        out[i] = s;
    }
}

CPU_TARGET_AVX2 void cpu_q8_dot_f32_avx2(const float *w, int nt, const float *x, int mt, int64_t K, float *out) {
    __m256 acc[NT][MT];
    for (int r = 0; r < NT; r++)
        for (int i = 0; i < MT; i++) acc[r][i] = _mm256_setzero_ps();
    int64_t k = 0;
    if (nt == NT) {
        for (; k + 8 <= K; k += 8) {
            const __m256 w0 = _mm256_loadu_ps(w + k), w1 = _mm256_loadu_ps(w + K + k);
            for (int i = 0; i < mt; i++) {
                const __m256 xv = _mm256_loadu_ps(x + i * K + k);
                acc[0][i] = _mm256_fmadd_ps(w0, xv, acc[0][i]);
                acc[1][i] = _mm256_fmadd_ps(w1, xv, acc[1][i]);
            }
        }
    } else {
        for (; k + 8 <= K; k += 8) {
            const __m256 w0 = _mm256_loadu_ps(w + k);
            for (int i = 0; i < mt; i++) acc[0][i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i * K + k), acc[0][i]);
        }
    }
    for (int r = 0; r < nt; r++)
        for (int i = 0; i < mt; i++) {
            float s = hsum_ps(acc[r][i]);
            for (int64_t t = k; t < K; t++) s += w[r * K + t] * x[i * K + t];
            out[r * MT + i] = s;
        }
}

/* E4M3 → f16 is a shift: sign to bit 15, exponent and mantissa to bits
 * 13..7, the value then 2^-8 of the code's (both formats' subnormals line
 * up), exact through F16C. t = code << 7 puts the sign at bit 14, and
 * t + (t & 0x4000) carries it to 15. The NaN codes (0x7f, 0xff) get f16's
 * all-ones exponent, so they stay NaN. 16 codes → lo, hi, each 2^-8 of
 * the value (a power of two: sums of them are exactly 2^-8 of the sums). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 void decode16_scaled(const uint8_t *codes, __m256 *lo,
                                                                                 __m256 *hi) {
    const __m256i t = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)codes)), 7);
    __m256i h = _mm256_add_epi16(t, _mm256_and_si256(t, _mm256_set1_epi16(0x4000)));
    const __m256i magnitude = _mm256_and_si256(h, _mm256_set1_epi16(0x3f80));
    h = _mm256_or_si256(h, _mm256_and_si256(_mm256_cmpeq_epi16(magnitude, _mm256_set1_epi16(0x3f80)),
                                            _mm256_set1_epi16(0x7c00)));
    *lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    *hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
}

CPU_TARGET_AVX2 void cpu_q8_decode_avx2(const float *table, const uint8_t *codes, int64_t K, float *out) {
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256 lo, hi;
        decode16_scaled(codes + k, &lo, &hi);
        _mm256_storeu_ps(out + k, _mm256_mul_ps(lo, _mm256_set1_ps(256.0f)));
        _mm256_storeu_ps(out + k + 8, _mm256_mul_ps(hi, _mm256_set1_ps(256.0f)));
    }
    for (; k < K; k++) out[k] = table[codes[k]];
}

CPU_TARGET_AVX2 void cpu_q8_dot_fp8_avx2(const float *table, const uint8_t *w, const float *x, int mt, int64_t K,
                                         float *out) {
    __m256 acc[MT];
    for (int i = 0; i < MT; i++) acc[i] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256 lo, hi;
        decode16_scaled(w + k, &lo, &hi);
        for (int i = 0; i < mt; i++) {
            acc[i] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + i * K + k), acc[i]);
            acc[i] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + i * K + k + 8), acc[i]);
        }
    }
    for (int i = 0; i < mt; i++) {
        float s = hsum_ps(acc[i]) * 256.0f;
        for (int64_t t = k; t < K; t++) s += table[w[t]] * x[i * K + t];
        out[i] = s;
    }
}
