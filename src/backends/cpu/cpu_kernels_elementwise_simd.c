/* The SiLU family on AVX-512 and AVX2, on the vectorised exp of
 * cpu_simd_avx512.h / cpu_simd_avx2.h. AVX2's exp clamps x to [−87.3, 88.3],
 * where SiLU's result is already exactly x or −0 to float precision. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "backends/cpu/cpu_simd_avx2.h"
#include "backends/cpu/cpu_simd_avx512.h"

static inline __attribute__((always_inline)) CPU_TARGET_AVX512 __m512 silu16(__m512 x) {
    __m512 e = cpu_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

CPU_TARGET_AVX512 void cpu_silu_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, silu16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, mask, silu16(_mm512_maskz_loadu_ps(mask, x + i)));
    }
}

CPU_TARGET_AVX512 void cpu_silu_mul_avx512(float *y, const float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(silu16(_mm512_loadu_ps(gate + i)), _mm512_loadu_ps(up + i)));
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_mul_ps(silu16(_mm512_maskz_loadu_ps(mask, gate + i)), _mm512_maskz_loadu_ps(mask, up + i));
        _mm512_mask_storeu_ps(y + i, mask, v);
    }
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256 silu8(__m256 x) {
    __m256 e = cpu_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* Scalar tails go through a one-vector bounce buffer so the tail uses the
 * same exp as the body (a row's result must not depend on where it ends). */
CPU_TARGET_AVX2 void cpu_silu_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, silu8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float tmp[8] = {0};
        for (int64_t j = i; j < n; j++) tmp[j - i] = x[j];
        _mm256_storeu_ps(tmp, silu8(_mm256_loadu_ps(tmp)));
        for (int64_t j = i; j < n; j++) y[j] = tmp[j - i];
    }
}

CPU_TARGET_AVX2 void cpu_silu_mul_avx2(float *y, const float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    if (i < n) {
        float g[8] = {0}, u[8] = {0};
        for (int64_t j = i; j < n; j++) g[j - i] = gate[j], u[j - i] = up[j];
        _mm256_storeu_ps(g, _mm256_mul_ps(silu8(_mm256_loadu_ps(g)), _mm256_loadu_ps(u)));
        for (int64_t j = i; j < n; j++) y[j] = g[j - i];
    }
}
