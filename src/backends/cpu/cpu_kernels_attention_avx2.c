/* AVX2 attention for the query heads [h0, h1) of one token (see
 * cpu_attn_token_avx2 in cpu_kernels_internal.h): the AVX-512 design of
 * cpu_kernels_attention_avx512.c at 8 floats a vector. The positions of a
 * chunk (up to ATTN_CHUNK) go through three passes:
 *   1. scores, 8 positions at a time for every head of the range while the
 *      positions' K rows are in L1 (one reduction folds 8 dot products);
 *   2. per head: max, exp and sum over the stored scores, vectorised;
 *   3. out += Σ_j p_j · v_j, up to 64 floats of out in registers.
 * K and V stream once per token for all its heads (a GQA group re-reads
 * them from L1), where the per-(token, head) loop read them once per head
 * and took a scalar expf per score. Longer contexts rescale the output
 * once per chunk (online softmax across chunks). A head's arithmetic depends
 * only on its q, the cache and the chunk boundaries (fixed positions), never
 * on the batch, the thread or which heads share its range. */
#include <immintrin.h>
#include <math.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "backends/cpu/cpu_simd_avx2.h"

/* Positions per softmax chunk: the scores of a chunk for every head of the
 * range (≤ CPU_ATTN_HEADS_MAX × ATTN_CHUNK floats, 32 KB) live on the stack. */
#define ATTN_CHUNK 256

/* Lanes i < left of 8 as an all-ones mask (for blends). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256 lanes_below(int64_t left) {
    const int n = left >= 8 ? 8 : left <= 0 ? 0 : (int)left;
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

/* scores[i] = scale · q·k_i for the 8 K rows kh + rows[i]: one FMA chain per
 * lane of head_dim, then cpu_reduce8. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 __m256
score8(const int HD, const float *qh, const float *kh, const size_t *rows, int64_t hd_rt, __m256 vscale) {
    const int64_t head_dim = HD > 0 ? HD : hd_rt;
    const float *k0 = kh + rows[0], *k1 = kh + rows[1], *k2 = kh + rows[2], *k3 = kh + rows[3];
    const float *k4 = kh + rows[4], *k5 = kh + rows[5], *k6 = kh + rows[6], *k7 = kh + rows[7];
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t d = 0; d < head_dim; d += 8) {
        const __m256 qv = _mm256_loadu_ps(qh + d);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + d), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + d), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + d), a3);
        a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k4 + d), a4);
        a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k5 + d), a5);
        a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k6 + d), a6);
        a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k7 + d), a7);
    }
    const __m256 dots[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    return _mm256_mul_ps(cpu_reduce8(dots), vscale);
}

/* out[0..8·NV) += Σ_j p[j] · v_j over cnt rows vh + rows[j]; NV ≤ 8 vectors
 * held in registers (HD > 0 makes NV a constant). */
static inline __attribute__((always_inline)) CPU_TARGET_AVX2 void
pv_rows(const int NV, float *out, const float *p, const float *vh, const size_t *rows, int cnt) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int x = 0; x < NV; x++) acc[x] = _mm256_loadu_ps(out + 8 * x);
    for (int j = 0; j < cnt; j++) {
        const __m256 pj = _mm256_broadcast_ss(p + j);
        const float *vj = vh + rows[j];
#pragma GCC unroll 8
        for (int x = 0; x < NV; x++) acc[x] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * x), acc[x]);
    }
#pragma GCC unroll 8
    for (int x = 0; x < NV; x++) _mm256_storeu_ps(out + 8 * x, acc[x]);
}

static inline __attribute__((always_inline)) CPU_TARGET_AVX2 void
attn_token(const int HD, float *out, const float *q, int64_t h0, int64_t h1, int64_t group, const float *k_cache,
           const float *v_cache, const int32_t *table, int32_t bs, int64_t len, int64_t slot_stride, int64_t hd_rt,
           float scale) {
    const int64_t head_dim = HD > 0 ? HD : hd_rt;
    const int64_t nh = h1 - h0;
    const __m256 vscale = _mm256_set1_ps(scale), neg_inf = _mm256_set1_ps(-INFINITY);
    float running_max[CPU_ATTN_HEADS_MAX], normaliser[CPU_ATTN_HEADS_MAX], alpha[CPU_ATTN_HEADS_MAX];
    float scores[CPU_ATTN_HEADS_MAX * ATTN_CHUNK] __attribute__((aligned(32)));
    size_t off[ATTN_CHUNK + 8]; /* slot row of each position of the chunk (floats) */
    int64_t block = 0, slot = 0; /* the next position to place = block·bs + slot */
    for (int64_t c0 = 0; c0 < len; c0 += ATTN_CHUNK) {
        const int n = len - c0 < ATTN_CHUNK ? (int)(len - c0) : ATTN_CHUNK;
        const int groups = (n + 7) / 8;
        const int first = c0 == 0;
        /* Rows past the end repeat the last valid one (their scores are
         * −inf, p = 0), so no load leaves the sequence's blocks. */
        for (int j = 0; j < n; j++) {
            off[j] = ((size_t)table[block] * (size_t)bs + (size_t)slot) * (size_t)slot_stride;
            if (++slot == bs) slot = 0, block++;
        }
        for (int j = n; j < groups * 8; j++) off[j] = off[n - 1];

        /* 1. scores */
        for (int g = 0; g < groups; g++) {
            const __m256 valid = lanes_below(n - 8 * g);
            for (int64_t h = h0; h < h1; h++) {
                const __m256 s = score8(HD, q + h * head_dim, k_cache + (h / group) * head_dim, off + 8 * g,
                                        head_dim, vscale);
                _mm256_store_ps(scores + (h - h0) * ATTN_CHUNK + 8 * g, _mm256_blendv_ps(neg_inf, s, valid));
            }
        }

        /* 2. softmax of the chunk, folded into the running max and sum */
        for (int64_t i = 0; i < nh; i++) {
            float *si = scores + i * ATTN_CHUNK;
            __m256 mx = neg_inf;
            for (int g = 0; g < groups; g++) mx = _mm256_max_ps(mx, _mm256_load_ps(si + 8 * g));
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
            const float chunk_max = _mm_cvtss_f32(m4);
            const float new_max = first || chunk_max > running_max[i] ? chunk_max : running_max[i];
            alpha[i] = first ? 0.0f : _mm256_cvtss_f32(cpu_exp8(_mm256_set1_ps(running_max[i] - new_max)));
            const __m256 vmax = _mm256_set1_ps(new_max);
            __m256 sum0 = _mm256_setzero_ps(), sum1 = sum0;
            for (int g = 0; g < groups; g++) {
                /* masked to 0: cpu_exp8 of −inf is ~1e-38, not 0 */
                const __m256 p = _mm256_and_ps(lanes_below(n - 8 * g),
                                               cpu_exp8(_mm256_sub_ps(_mm256_load_ps(si + 8 * g), vmax)));
                _mm256_store_ps(si + 8 * g, p);
                if (g & 1) sum1 = _mm256_add_ps(sum1, p);
                else sum0 = _mm256_add_ps(sum0, p);
            }
            const __m256 s8 = _mm256_add_ps(sum0, sum1);
            __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
            s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
            const float sum = _mm_cvtss_f32(s4);
            normaliser[i] = first ? sum : normaliser[i] * alpha[i] + sum;
            running_max[i] = new_max;
        }

        /* 3. out = out · alpha + Σ p_j v_j (out is the accumulator) */
        for (int64_t h = h0; h < h1; h++) {
            float *oh = out + h * head_dim;
            const __m256 va = _mm256_set1_ps(alpha[h - h0]);
            for (int64_t d = 0; d < head_dim; d += 8)
                _mm256_storeu_ps(oh + d, first ? _mm256_setzero_ps() : _mm256_mul_ps(_mm256_loadu_ps(oh + d), va));
            const float *ph = scores + (h - h0) * ATTN_CHUNK, *vh = v_cache + (h / group) * head_dim;
            for (int64_t d = 0; d < head_dim; d += 64) {
                const int64_t left = (head_dim - d) / 8;
                if (left >= 8) pv_rows(8, oh + d, ph, vh + d, off, n);
                else if (left == 4) pv_rows(4, oh + d, ph, vh + d, off, n);
                else for (int64_t x = 0; x < left; x++) pv_rows(1, oh + d + 8 * x, ph, vh + d + 8 * x, off, n);
            }
        }
    }
    for (int64_t h = h0; h < h1; h++) {
        float *oh = out + h * head_dim;
        const float l = normaliser[h - h0];
        const __m256 inv = _mm256_set1_ps(l > 0.0f ? 1.0f / l : 0.0f);
        for (int64_t d = 0; d < head_dim; d += 8) _mm256_storeu_ps(oh + d, _mm256_mul_ps(_mm256_loadu_ps(oh + d), inv));
    }
}

CPU_TARGET_AVX2 void cpu_attn_token_avx2(float *out, const float *q, int64_t h0, int64_t h1, int64_t group,
                                         const float *k_cache, const float *v_cache, const int32_t *table, int32_t bs,
                                         int64_t len, int64_t slot_stride, int64_t head_dim, float scale) {
    if (len <= 0) {
        for (int64_t i = h0 * head_dim; i < h1 * head_dim; i++) out[i] = 0.0f;
        return;
    }
    if (head_dim == 64)
        attn_token(64, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 64, scale);
    else if (head_dim == 128)
        attn_token(128, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 128, scale);
    else
        attn_token(0, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, head_dim, scale);
}
