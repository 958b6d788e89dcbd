/* AVX2 building blocks shared by the CPU kernels (each call site is compiled
 * for AVX2 through CPU_TARGET_AVX2 and inlines these). */
#ifndef LLMRT_BACKENDS_CPU_SIMD_AVX2_H
#define LLMRT_BACKENDS_CPU_SIMD_AVX2_H

#include <immintrin.h>

#include "backends/cpu/cpu_kernels_internal.h"

/* exp(x) = 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2 split into a
 * high and a low part (Cody–Waite); e^r is the degree-7 Taylor polynomial
 * (truncation 5e-9 relative at |r| = ln2/2). Measured error vs expf: ≤ 2 ulp.
 * 2^n is built from exponent bits, so x is clamped to [−87.3, 88.3]: below,
 * the result is ~1e-38, not 0 (callers that need 0 mask it). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256 cpu_exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3f)), _mm256_set1_ps(-87.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

/* Lane i of the result = the horizontal sum of acc[i], i < 8: two rounds of
 * hadd fold within 128-bit lanes, then the halves are added across. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256 cpu_reduce8(const __m256 acc[8]) {
    const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

#endif
