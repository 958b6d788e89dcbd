/* The AVX2 dot products of 8-bit linears (cpu_kernels_q8.h).
 *  - int8: vpmaddubsw multiplies u8 by s8, so each 32-code step takes |w|
 *    as the u8 side and x · sign(w) as the s8 side; |x| ≤ 127 (activations
 *    are clamped there) and |w| ≤ 128, so a pair sums to at most 32,512
 *    and never saturates; vpmaddwd then sums pairs into s32 exactly.
 *  - fp8: codes decoded through the table (vgatherdps), then f32 FMAs. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_q8.h"

#define MT 4

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

CPU_TARGET_AVX2 void cpu_q8_dot_f32_avx2(const float *w, const float *x, int64_t stride, int mt, int64_t K,
                                         float *out) {
    __m256 acc[MT][2];
    for (int i = 0; i < MT; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        const __m256 w0 = _mm256_loadu_ps(w + k), w1 = _mm256_loadu_ps(w + k + 8);
        for (int i = 0; i < mt; i++) {
            acc[i][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i * stride + k), acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i * stride + k + 8), acc[i][1]);
        }
    }
    for (int i = 0; i < mt; i++) {
        float s = hsum_ps(_mm256_add_ps(acc[i][0], acc[i][1]));
        for (int64_t t = k; t < K; t++) s += w[t] * x[i * stride + t];
        out[i] = s;
    }
}

CPU_TARGET_AVX2 void cpu_q8_decode_avx2(const float *table, const uint8_t *codes, int64_t K, float *out) {
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(codes + k)));
        _mm256_storeu_ps(out + k, _mm256_i32gather_ps(table, idx, 4));
    }
    for (; k < K; k++) out[k] = table[codes[k]];
}
