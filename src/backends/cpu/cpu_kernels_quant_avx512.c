/* The integer path of quantized linears on AVX-512 VNNI (cpu_kernels_quant.h).
 *
 * vpdpbusd multiplies u8 weight codes by s8 x codes and adds each group of
 * four products into an s32 lane: 64 multiply-adds an instruction.
 *  - int4: a 128-input chunk is 64 bytes of codes (4 blocks of 16 bytes);
 *    its low nibbles are the first 16 inputs of each block, in 128-bit lane
 *    j for block j, its high nibbles the last 16. x was stored swizzled to
 *    match (the 4 blocks' first halves, then their second halves), so one
 *    mask and one shift unpack 128 codes and two vpdpbusd take the chunk;
 *    lane j's 4 sums belong to block j and are scaled by d_j · s_g(j).
 *  - int8: a 64-input chunk is 2 blocks, lanes 0-7 and 8-15, one vpdpbusd.
 * A tail of fewer blocks runs on 128/256-bit registers. Up to MT rows of x
 * share each unpacked chunk. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_quant.h"
#include "core/dtype.h"

#define CPU_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")))
#define MT 4

static inline __attribute__((always_inline)) CPU_TARGET_VNNI float hsum4i(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return (float)_mm_cvtsi128_si32(v);
}

/* The scales of `count` consecutive blocks from block b, each repeated
 * 16 / count times across the lanes (count 4 or 2). */
static inline __attribute__((always_inline)) CPU_TARGET_VNNI __m512 block_scales(const uint16_t *scales, int64_t per,
                                                                                int64_t b, int count) {
    if (per % count == 0) return _mm512_set1_ps(_cvtsh_ss(scales[b / per]));
    float s[4];
    for (int i = 0; i < count; i++) s[i] = _cvtsh_ss(scales[(b + i) / per]);
    const __m512i idx = count == 4 ? _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0)
                                   : _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(s)));
}

/* d of `count` blocks from d, spread the same way. */
static inline __attribute__((always_inline)) CPU_TARGET_VNNI __m512 block_d(const float *d, int count) {
    if (count == 4)
        return _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                                     _mm512_castps128_ps512(_mm_loadu_ps(d)));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                 _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd((const double *)d))));
}

static CPU_TARGET_VNNI void row_tile(float *y, int64_t N, const void *blob, const float *bias, const cpu_qact *a,
                                     int64_t n, int64_t m0, int mt) {
    const llmrt_qweight_header *h = blob;
    const int64_t per = h->group_size / 32, nb = a->nb, K = a->K;
    const uint8_t *codes = llmrt_qweight_codes(blob) + n * h->row_bytes;
    const uint16_t *scales = llmrt_qweight_scales(blob) + n * h->groups;
    const uint8_t *zeros = llmrt_qweight_zeros(blob) + n * h->groups;
    __m512 acc[MT];
    float tail[MT];
    for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps(), tail[i] = 0.0f;
    const __m512i mask = _mm512_set1_epi8(0x0f);
    int64_t b = 0;
    if (h->bits == 4) {
        for (; b + 4 <= nb; b += 4) {
            const __m512i c = _mm512_loadu_si512(codes + b * 16);
            const __m512i lo = _mm512_and_si512(c, mask), hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), mask);
            const __m512 s = block_scales(scales, per, b, 4);
            for (int i = 0; i < mt; i++) {
                const int8_t *x = a->q + (m0 + i) * K + b * 32;
                __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(x));
                dot = _mm512_dpbusd_epi32(dot, hi, _mm512_loadu_si512(x + 64));
                const __m512 scale = _mm512_mul_ps(block_d(a->d + (m0 + i) * nb + b, 4), s);
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[i]);
            }
        }
        for (; b < nb; b++) {
            const __m128i c = _mm_loadu_si128((const __m128i *)(codes + b * 16));
            const __m128i lo = _mm_and_si128(c, _mm_set1_epi8(0x0f));
            const __m128i hi = _mm_and_si128(_mm_srli_epi16(c, 4), _mm_set1_epi8(0x0f));
            const float s = _cvtsh_ss(scales[b / per]);
            for (int i = 0; i < mt; i++) {
                const int8_t *x = a->q + (m0 + i) * K + b * 32;
                __m128i dot = _mm_dpbusd_epi32(_mm_setzero_si128(), lo, _mm_loadu_si128((const __m128i *)x));
                dot = _mm_dpbusd_epi32(dot, hi, _mm_loadu_si128((const __m128i *)(x + 16)));
                tail[i] += hsum4i(dot) * (a->d[(m0 + i) * nb + b] * s);
            }
        }
    } else {
        for (; b + 2 <= nb; b += 2) {
            const __m512i c = _mm512_loadu_si512(codes + b * 32);
            const __m512 s = block_scales(scales, per, b, 2);
            for (int i = 0; i < mt; i++) {
                const int8_t *x = a->q + (m0 + i) * K + b * 32;
                const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c, _mm512_loadu_si512(x));
                const __m512 scale = _mm512_mul_ps(block_d(a->d + (m0 + i) * nb + b, 2), s);
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[i]);
            }
        }
        if (b < nb) {
            const __m256i c = _mm256_loadu_si256((const __m256i *)(codes + b * 32));
            const float s = _cvtsh_ss(scales[b / per]);
            for (int i = 0; i < mt; i++) {
                const int8_t *x = a->q + (m0 + i) * K + b * 32;
                const __m256i dot =
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, _mm256_loadu_si256((const __m256i *)x));
                const __m128i sum4 = _mm_add_epi32(_mm256_castsi256_si128(dot), _mm256_extracti128_si256(dot, 1));
                tail[i] += hsum4i(sum4) * (a->d[(m0 + i) * nb + b] * s);
            }
        }
    }
    for (int i = 0; i < mt; i++) {
        const int64_t m = m0 + i;
        float correction = 0.0f;
        for (int64_t g = 0; g < h->groups; g++)
            correction += (float)zeros[g] * _cvtsh_ss(scales[g]) * a->gsum[m * a->groups + g];
        y[m * N + n] = (bias ? bias[n] : 0.0f) + ((_mm512_reduce_add_ps(acc[i]) + tail[i]) - correction);
    }
}

CPU_TARGET_VNNI void cpu_qlinear_rows_avx512vnni(float *y, int64_t N, const void *blob, const float *bias,
                                                 const cpu_qact *a, int64_t n_begin, int64_t n_end) {
    for (int64_t m0 = 0; m0 < a->M; m0 += MT) {
        const int mt = a->M - m0 < MT ? (int)(a->M - m0) : MT;
        for (int64_t n = n_begin; n < n_end; n++) row_tile(y, N, blob, bias, a, n, m0, mt);
    }
}
