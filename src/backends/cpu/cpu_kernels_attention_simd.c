/* The AVX2 inner loops of cpu_attention (see cpu_kernels_attention.c; the
 * AVX-512 path is cpu_kernels_attention_avx512.c). head_dim may be anything:
 * rows finish with a scalar loop, so no load reads past a row. */
#include <immintrin.h>

#include "backends/cpu/cpu_kernels_internal.h"

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CPU_TARGET_AVX2 void cpu_attn_scores_avx2(float *scores, const float *q, const float *k, int64_t stride, int n,
                                          int64_t head_dim, float scale) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + j * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t d = 0;
        for (; d + 16 <= head_dim; d += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kj + d), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(kj + d + 8), a1);
        }
        for (; d + 8 <= head_dim; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kj + d), a0);
        float s = hsum8(_mm256_add_ps(a0, a1));
        for (; d < head_dim; d++) s += q[d] * kj[d];
        scores[j] = s * scale;
    }
}

CPU_TARGET_AVX2 void cpu_attn_accumulate_avx2(float *acc, float alpha, const float *p, const float *v,
                                              int64_t stride, int n, int64_t head_dim) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t d = 0;
    for (; d + 8 <= head_dim; d += 8) {
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(acc + d), va);
        for (int j = 0; j < n; j++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * stride + d), a);
        _mm256_storeu_ps(acc + d, a);
    }
    for (; d < head_dim; d++) {
        float a = acc[d] * alpha;
        for (int j = 0; j < n; j++) a += p[j] * v[j * stride + d];
        acc[d] = a;
    }
}
