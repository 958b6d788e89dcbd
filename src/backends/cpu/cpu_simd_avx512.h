/* AVX-512 building blocks shared by the CPU kernels (each call site is
 * compiled for AVX-512 through CPU_TARGET_AVX512 and inlines these). */
#ifndef LLMRT_BACKENDS_CPU_SIMD_AVX512_H
#define LLMRT_BACKENDS_CPU_SIMD_AVX512_H

#include <immintrin.h>

#include "backends/cpu/cpu_kernels_internal.h"

/* exp(x) = 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2 split into a
 * high and a low part (Cody–Waite); e^r is the degree-7 Taylor polynomial
 * (truncation 5e-9 relative at |r| = ln2/2). Measured error vs expf: ≤ 2 ulp;
 * vscalefps saturates to 0 / inf like expf. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 __m512 cpu_exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(100.0f)), _mm512_set1_ps(-110.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Lane i of the result = the horizontal sum of acc[i]:
 * pairwise unpacks fold within 128-bit lanes, then two rounds of
 * shuffle_f32x4 fold across lanes. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 __m512 cpu_reduce16(const __m512 acc[16]) {
    __m512 s[8], t[4];
    for (int p = 0; p < 8; p++)
        s[p] = _mm512_add_ps(_mm512_unpacklo_ps(acc[2 * p], acc[2 * p + 1]),
                             _mm512_unpackhi_ps(acc[2 * p], acc[2 * p + 1]));
    for (int q = 0; q < 4; q++) {
        __m512d a = _mm512_castps_pd(s[2 * q]), b = _mm512_castps_pd(s[2 * q + 1]);
        t[q] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    __m512 u01 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 u23 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* y[j] = bias[j] + the sum of acc8[j], j < nr: an 8-row GEMV's outputs
 * through cpu_reduce16's tree, so M = 1 gives the bits of any other M. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 void cpu_store_gemv8(float *y, const __m512 acc8[8],
                                                                                   int nr, const float *bias) {
    const __m512 z = _mm512_setzero_ps();
    const __m512 acc[16] = {acc8[0], acc8[1], acc8[2], acc8[3], acc8[4], acc8[5], acc8[6], acc8[7],
                            z,       z,       z,       z,       z,       z,       z,       z};
    float sums[16] __attribute__((aligned(64)));
    _mm512_store_ps(sums, cpu_reduce16(acc));
    for (int j = 0; j < nr; j++) y[j] = (bias ? bias[j] : 0.0f) + sums[j];
}

#endif
