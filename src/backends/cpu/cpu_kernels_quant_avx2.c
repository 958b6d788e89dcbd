/* The integer path of quantized linears on AVX2 (cpu_kernels_quant.h): the
 * AVX-512 design (see there) on 8-lane registers, each 64-byte panel step
 * taken as two halves of 8 outputs. vpmaddubsw multiplies u8 codes by the
 * 4 broadcast s8 of x into s16 pairs and vpmaddwd sums the pairs into s32.
 *  - int4 codes (≤ 15) cannot saturate vpmaddubsw (15 · 127 · 2).
 *  - int8 codes (≤ 255) could, so they are made signed, v = code − 128,
 *    and multiplied as |v| (u8, up to 128) by x · sign(v) (|x| ≤ 127 never
 *    overflows; 128 · 127 · 2 fits); the zero point is then z − 128. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_quant.h"
#include "core/dtype.h"

#define MT 4

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256i bcast4(const int8_t *x) {
    int32_t v;
    __builtin_memcpy(&v, x, 4);
    return _mm256_set1_epi32(v);
}

/* Outputs [8·half, 8·half + 8) of panel p. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 void half_tile(float *y, int64_t N, const void *blob,
                                                                           const float *bias, const cpu_qact *a,
                                                                           int64_t p, int half, int64_t m0,
                                                                           const int mt) {
    const llmrt_qweight_header *h = blob;
    const int64_t per = h->group_size / 32, nb = a->nb, K = a->K;
    const uint8_t *codes = llmrt_qweight_codes(blob) + p * h->panel_bytes + half * 32;
    const uint16_t *scales = llmrt_qweight_scales(blob) + p * h->groups * 16 + half * 8;
    const uint8_t *zeros = llmrt_qweight_zeros(blob) + p * h->groups * 16 + half * 8;
    const __m256i mask = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    __m256 acc[MT];
    for (int i = 0; i < mt; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t g = 0; g < h->groups; g++) {
        __m256 group_acc[MT];
        for (int i = 0; i < mt; i++) group_acc[i] = _mm256_setzero_ps();
        const int64_t b1 = (g + 1) * per < nb ? (g + 1) * per : nb;
        for (int64_t b = g * per; b < b1; b++) {
            __m256i dot[MT];
            for (int i = 0; i < mt; i++) dot[i] = _mm256_setzero_si256();
            if (h->bits == 4) {
                for (int s = 0; s < 4; s++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(codes + (b * 4 + s) * 64));
                    const __m256i lo = _mm256_and_si256(v, mask);
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                    for (int i = 0; i < mt; i++) {
                        const int8_t *x = a->q + (m0 + i) * K + b * 32 + s * 8;
                        const __m256i pairs =
                            _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(x)), _mm256_maddubs_epi16(hi, bcast4(x + 4)));
                        dot[i] = _mm256_add_epi32(dot[i], _mm256_madd_epi16(pairs, ones));
                    }
                }
            } else {
                for (int s = 0; s < 8; s++) {
                    const __m256i v =
                        _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(codes + (b * 8 + s) * 64)), flip);
                    const __m256i magnitude = _mm256_abs_epi8(v);
                    for (int i = 0; i < mt; i++) {
                        const __m256i x = bcast4(a->q + (m0 + i) * K + b * 32 + s * 4);
                        const __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(x, v));
                        dot[i] = _mm256_add_epi32(dot[i], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            for (int i = 0; i < mt; i++)
                group_acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[i]), _mm256_set1_ps(a->d[(m0 + i) * nb + b]),
                                               group_acc[i]);
        }
        const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(scales + g * 16)));
        __m256 z = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(zeros + g * 16))));
        if (h->bits == 8) z = _mm256_sub_ps(z, _mm256_set1_ps(128.0f));
        for (int i = 0; i < mt; i++) {
            const __m256 centred =
                _mm256_fnmadd_ps(z, _mm256_set1_ps(a->gsum[(m0 + i) * a->groups + g]), group_acc[i]);
            acc[i] = _mm256_fmadd_ps(s, centred, acc[i]);
        }
    }
    const int64_t n0 = p * 16 + half * 8, count = N - n0 < 8 ? N - n0 : 8;
    for (int i = 0; i < mt; i++) {
        float out[8];
        _mm256_storeu_ps(out, acc[i]);
        for (int64_t j = 0; j < count; j++) y[(m0 + i) * N + n0 + j] = (bias ? bias[n0 + j] : 0.0f) + out[j];
    }
}

/* mt is a constant in each instance, so the accumulators stay in registers. */
#define PANELS_WITH_TILE(name, mt)                                                                             \
    static CPU_TARGET_AVX2 void name(float *y, int64_t N, const void *blob, const float *bias, const cpu_qact *a, \
                                     int64_t m0, int64_t p_begin, int64_t p_end) {                            \
        for (int64_t p = p_begin; p < p_end; p++)                                                             \
            for (int half = 0; half < 2 && p * 16 + half * 8 < N; half++)                                     \
                half_tile(y, N, blob, bias, a, p, half, m0, mt);                                              \
    }
PANELS_WITH_TILE(panels_tile1, 1)
PANELS_WITH_TILE(panels_tile2, 2)
PANELS_WITH_TILE(panels_tile3, 3)
PANELS_WITH_TILE(panels_tile4, 4)

CPU_TARGET_AVX2 void cpu_qlinear_rows_avx2(float *y, int64_t N, const void *blob, const float *bias,
                                           const cpu_qact *a, int64_t n_begin, int64_t n_end) {
    const int64_t p_begin = n_begin / 16, p_end = (n_end + 15) / 16;
    for (int64_t m0 = 0; m0 < a->M; m0 += MT) {
        const int64_t mt = a->M - m0 < MT ? a->M - m0 : MT;
        if (mt == 4) panels_tile4(y, N, blob, bias, a, m0, p_begin, p_end);
        else if (mt == 3) panels_tile3(y, N, blob, bias, a, m0, p_begin, p_end);
        else if (mt == 2) panels_tile2(y, N, blob, bias, a, m0, p_begin, p_end);
        else panels_tile1(y, N, blob, bias, a, m0, p_begin, p_end);
    }
}
