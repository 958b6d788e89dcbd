/* The integer path of quantized linears on AVX-512 VNNI (cpu_kernels_quant.h).
 *
 * A 64-byte step of a panel (core/quant.h) holds 4 inputs of 16 outputs
 * (int8), or 8 as two nibbles (int4: the low nibbles are inputs 0..3 of the
 * step, the high ones 4..7). vpdpbusd multiplies those u8 codes by 4 s8
 * codes of x broadcast to every lane and adds each lane's 4 products: one
 * instruction advances 16 dot products by 4 inputs. After each block of 32
 * inputs the 16 s32 sums turn f32 and accumulate × d_b (x's block scale,
 * broadcast); after each group, × s_g (a vector of the 16 outputs' scales)
 * less z_g · s_g · Σ x of the group. The 16 lanes are the 16 outputs, so the
 * result is stored as it is: no horizontal sums. Up to MT rows of x share
 * each loaded (and for int4 unpacked) step; 6 measured no faster than 4. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_quant.h"
#include "core/dtype.h"

#define CPU_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")))
#define MT 4

static inline __attribute__((always_inline)) CPU_TARGET_VNNI __m512i bcast4(const int8_t *x) {
    int32_t v;
    __builtin_memcpy(&v, x, 4);
    return _mm512_set1_epi32(v);
}

static inline __attribute__((always_inline)) CPU_TARGET_VNNI void panel_tile(float *y, int64_t N, const void *blob,
                                                                            const float *bias, const cpu_qact *a,
                                                                            int64_t p, int64_t m0, const int mt) {
    const llmrt_qweight_header *h = blob;
    const int64_t per = h->group_size / 32, nb = a->nb, K = a->K;
    const uint8_t *codes = llmrt_qweight_codes(blob) + p * h->panel_bytes;
    const uint16_t *scales = llmrt_qweight_scales(blob) + p * h->groups * 16;
    const uint8_t *zeros = llmrt_qweight_zeros(blob) + p * h->groups * 16;
    const __m512i mask = _mm512_set1_epi8(0x0f);
    __m512 acc[MT];
    for (int i = 0; i < mt; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < h->groups; g++) {
        __m512 group_acc[MT];
        for (int i = 0; i < mt; i++) group_acc[i] = _mm512_setzero_ps();
        const int64_t b1 = (g + 1) * per < nb ? (g + 1) * per : nb;
        for (int64_t b = g * per; b < b1; b++) {
            __m512i dot[MT];
            for (int i = 0; i < mt; i++) dot[i] = _mm512_setzero_si512();
            if (h->bits == 4) {
                const uint8_t *step = codes + b * 4 * 64;
                for (int s = 0; s < 4; s++) {
                    const __m512i v = _mm512_loadu_si512(step + s * 64);
                    const __m512i lo = _mm512_and_si512(v, mask);
                    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
                    for (int i = 0; i < mt; i++) {
                        const int8_t *x = a->q + (m0 + i) * K + b * 32 + s * 8;
                        dot[i] = _mm512_dpbusd_epi32(dot[i], lo, bcast4(x));
                        dot[i] = _mm512_dpbusd_epi32(dot[i], hi, bcast4(x + 4));
                    }
                }
            } else {
                const uint8_t *step = codes + b * 8 * 64;
                for (int s = 0; s < 8; s++) {
                    const __m512i v = _mm512_loadu_si512(step + s * 64);
                    for (int i = 0; i < mt; i++)
                        dot[i] = _mm512_dpbusd_epi32(dot[i], v, bcast4(a->q + (m0 + i) * K + b * 32 + s * 4));
                }
            }
            for (int i = 0; i < mt; i++)
                group_acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i]), _mm512_set1_ps(a->d[(m0 + i) * nb + b]),
                                               group_acc[i]);
        }
        const __m512 s = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(scales + g * 16)));
        const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(zeros + g * 16))));
        for (int i = 0; i < mt; i++) {
            const __m512 centred =
                _mm512_fnmadd_ps(z, _mm512_set1_ps(a->gsum[(m0 + i) * a->groups + g]), group_acc[i]);
            acc[i] = _mm512_fmadd_ps(s, centred, acc[i]);
        }
    }
    const int64_t n0 = p * 16, count = N - n0 < 16 ? N - n0 : 16;
    const __mmask16 store = (__mmask16)((1u << count) - 1);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(store, bias + n0) : _mm512_setzero_ps();
    for (int i = 0; i < mt; i++) _mm512_mask_storeu_ps(y + (m0 + i) * N + n0, store, _mm512_add_ps(b, acc[i]));
}

/* mt is a constant in each instance, so the accumulators stay in registers. */
#define PANELS_WITH_TILE(name, mt)                                                                             \
    static CPU_TARGET_VNNI void name(float *y, int64_t N, const void *blob, const float *bias, const cpu_qact *a, \
                                     int64_t m0, int64_t p_begin, int64_t p_end) {                            \
        for (int64_t p = p_begin; p < p_end; p++) panel_tile(y, N, blob, bias, a, p, m0, mt);                 \
    }
PANELS_WITH_TILE(panels_tile1, 1)
PANELS_WITH_TILE(panels_tile2, 2)
PANELS_WITH_TILE(panels_tile3, 3)
PANELS_WITH_TILE(panels_tile4, 4)

CPU_TARGET_VNNI void cpu_qlinear_rows_avx512vnni(float *y, int64_t N, const void *blob, const float *bias,
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
