/* The vector inner loops of cpu_attention (see cpu_kernels_attention.c).
 * head_dim may be anything: AVX-512 finishes rows with masked loads, AVX2
 * with a scalar loop, so no load reads past a row. */
#include <immintrin.h>
#include <math.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "backends/cpu/cpu_simd_avx512.h"

static inline __attribute__((always_inline)) CPU_TARGET_AVX512 __mmask16 tail_mask16(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* Two accumulators: a 64-dim head is 4 vectors, so two chains halve the
 * FMA latency on the critical path without a long reduction. */
CPU_TARGET_AVX512 void cpu_attn_scores_avx512(float *scores, const float *q, const float *k, int64_t stride,
                                              int n, int64_t head_dim, float scale) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + j * stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int64_t d = 0;
        for (; d + 32 <= head_dim; d += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kj + d), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d + 16), _mm512_loadu_ps(kj + d + 16), a1);
        }
        for (; d < head_dim; d += 16) {
            __mmask16 m = tail_mask16(head_dim - d);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, kj + d), a0);
        }
        scores[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
    }
}

CPU_TARGET_AVX512 void cpu_attn_accumulate_avx512(float *acc, float alpha, const float *p, const float *v,
                                                  int64_t stride, int n, int64_t head_dim) {
    const __m512 va = _mm512_set1_ps(alpha);
    for (int64_t d = 0; d < head_dim; d += 16) {
        __mmask16 m = tail_mask16(head_dim - d);
        __m512 a = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, acc + d), va);
        for (int j = 0; j < n; j++)
            a = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, v + j * stride + d), a);
        _mm512_mask_storeu_ps(acc + d, m, a);
    }
}

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

/* ---- AVX-512 attention over one (token, kv head) pair -----------------------
 *
 * Short heads (LLaMA-small: 32-64 dims) make the per-position work tiny, so
 * the loop above spends its time on one horizontal sum per score, a libm
 * expf per score and per-chunk bookkeeping. This path instead takes 16
 * positions at a time: their 16 dot products are folded into one vector by
 * a transposing reduction (lane j = score j), softmax runs on that vector
 * with a vector exp, and every query head of the GQA group reuses the
 * chunk's K/V rows while they are in L1. Each (token, head) result depends
 * only on its own q and the cache, never on the rest of the batch. */

/* Positions per chunk: ATTN_NV vectors of 16 scores. The softmax update
 * (max, exp, rescale) is a long dependency chain per chunk and head; 32
 * positions give it independent work to overlap with, and the chunk's K and
 * V rows (32 KB for 4 kv heads × 32 dims) stay in L1 for every head. */
#define ATTN_NV 2
#define ATTN_CH (16 * ATTN_NV)

/* HD > 0: head_dim is the constant HD (loops unroll into registers);
 * HD = 0: head_dim at run time, masked tails. Query heads [h0, h1) of one
 * token (h1 − h0 ≤ CPU_ATTN_HEADS_MAX); out and q point at head 0. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 void
attn_token(const int HD, float *out, const float *q, int64_t h0, int64_t h1, int64_t group, const float *k_cache,
           const float *v_cache, const int32_t *table, int32_t bs, int64_t len, int64_t slot_stride, int64_t hd_rt,
           float scale) {
    const int64_t head_dim = HD > 0 ? HD : hd_rt;
    const __m512 vscale = _mm512_set1_ps(scale), neg_inf = _mm512_set1_ps(-INFINITY);
    float running_max[CPU_ATTN_HEADS_MAX], normaliser[CPU_ATTN_HEADS_MAX];
    for (int64_t h = h0; h < h1; h++) running_max[h - h0] = -INFINITY, normaliser[h - h0] = 0.0f;
    /* The kv heads this range reads: bytes [pf_begin, pf_end) of a slot row. */
    const size_t pf_begin = (size_t)((h0 / group) * head_dim) * sizeof(float);
    const size_t pf_end = (size_t)(((h1 - 1) / group + 1) * head_dim) * sizeof(float);
    size_t offs[2][ATTN_CH];
    float pbuf[ATTN_CH] __attribute__((aligned(64)));
    int64_t block = 0, slot = 0; /* the next position to place = block·bs + slot */
    /* offs[c & 1] holds chunk c's rows; chunk c + 1's are computed (and
     * their lines prefetched) before chunk c runs: the hardware prefetcher
     * cannot follow the jumps between blocks. Rows past the end repeat the
     * last valid one (their lanes are masked). */
#define ATTN_NEXT_CHUNK(dst, start)                                                                   \
    do {                                                                                              \
        const int nn = len - (start) < ATTN_CH ? (int)(len - (start)) : ATTN_CH;                      \
        for (int j = 0; j < nn; j++) {                                                                \
            (dst)[j] = ((size_t)table[block] * (size_t)bs + (size_t)slot) * (size_t)slot_stride;      \
            if (++slot == bs) slot = 0, block++;                                                      \
        }                                                                                             \
        for (int j = nn; j < ATTN_CH; j++) (dst)[j] = (dst)[nn - 1];                                  \
    } while (0)
    ATTN_NEXT_CHUNK(offs[0], 0);
    for (int64_t p0 = 0, c = 0; p0 < len; p0 += ATTN_CH, c++) {
        const int n = len - p0 < ATTN_CH ? (int)(len - p0) : ATTN_CH;
        const size_t *off = offs[c & 1];
        if (p0 + ATTN_CH < len) {
            size_t *next = offs[(c + 1) & 1];
            ATTN_NEXT_CHUNK(next, p0 + ATTN_CH);
            const int nn = len - p0 - ATTN_CH < ATTN_CH ? (int)(len - p0 - ATTN_CH) : ATTN_CH;
            for (int j = 0; j < nn; j++)
                for (size_t b = pf_begin; b < pf_end; b += 64) {
                    _mm_prefetch((const char *)(k_cache + next[j]) + b, _MM_HINT_T0);
                    _mm_prefetch((const char *)(v_cache + next[j]) + b, _MM_HINT_T0);
                }
        }
        __mmask16 valid[ATTN_NV];
        for (int v = 0; v < ATTN_NV; v++) {
            int left = n - 16 * v;
            valid[v] = (__mmask16)(left >= 16 ? 0xffff : left <= 0 ? 0 : (1u << left) - 1);
        }
        const int nvec = (n + 15) / 16;
        const int first = p0 == 0;
        for (int64_t h = h0, kv = h0 / group, in_group = h0 % group; h < h1; h++) {
            const float *qh = q + h * head_dim;
            float *oh = out + h * head_dim;
            const float *kh = k_cache + kv * head_dim, *vh = v_cache + kv * head_dim;
            if (++in_group == group) in_group = 0, kv++;
            __m512 s[ATTN_NV];
            for (int v = 0; v < ATTN_NV; v++) {
                if (v >= nvec) {
                    s[v] = neg_inf;
                    continue;
                }
                __m512 dots[16];
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++) {
                    const float *kj = kh + off[16 * v + j];
                    __m512 a = _mm512_setzero_ps();
#pragma GCC unroll 8
                    for (int64_t d = 0; d < head_dim; d += 16) {
                        __mmask16 m = tail_mask16(head_dim - d);
                        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qh + d), _mm512_maskz_loadu_ps(m, kj + d), a);
                    }
                    dots[j] = a;
                }
                s[v] = _mm512_mask_blend_ps(valid[v], neg_inf, _mm512_mul_ps(cpu_reduce16(dots), vscale));
            }
            __m512 mx = s[0];
            for (int v = 1; v < ATTN_NV; v++) mx = _mm512_max_ps(mx, s[v]);
            float *rm = &running_max[h - h0], *nl = &normaliser[h - h0];
            float chunk_max = _mm512_reduce_max_ps(mx);
            float new_max = chunk_max > *rm ? chunk_max : *rm;
            const __m512 vmax = _mm512_set1_ps(new_max);
            __m512 sum = _mm512_setzero_ps();
            for (int v = 0; v < ATTN_NV; v++) {
                __m512 p = _mm512_maskz_mov_ps(valid[v], cpu_exp16(_mm512_sub_ps(s[v], vmax)));
                sum = _mm512_add_ps(sum, p);
                _mm512_store_ps(pbuf + 16 * v, p);
            }
            float alpha = first ? 0.0f : _mm512_cvtss_f32(cpu_exp16(_mm512_set1_ps(*rm - new_max)));
            *nl = *nl * alpha + _mm512_reduce_add_ps(sum);
            *rm = new_max;
            /* Broadcast p_j from memory (a load, not a shuffle). */
            __asm__ volatile("" : : "r"(pbuf) : "memory");
            const __m512 va = _mm512_set1_ps(alpha);
            if (HD > 0 && HD <= 64) {
                /* The whole output row in registers: one offset load and one
                 * broadcast per position feed HD / 16 FMAs; two chains. */
                const int NVD = HD / 16;
                __m512 e[4], o[4];
#pragma GCC unroll 4
                for (int x = 0; x < NVD; x++) {
                    e[x] = first ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_loadu_ps(oh + 16 * x), va);
                    o[x] = _mm512_setzero_ps();
                }
                int j = 0;
                for (; j + 2 <= n; j += 2) {
                    const float *v0 = vh + off[j], *v1 = vh + off[j + 1];
                    const __m512 p0 = _mm512_set1_ps(pbuf[j]), p1 = _mm512_set1_ps(pbuf[j + 1]);
#pragma GCC unroll 4
                    for (int x = 0; x < NVD; x++) {
                        e[x] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + 16 * x), e[x]);
                        o[x] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(v1 + 16 * x), o[x]);
                    }
                }
                if (j < n) {
                    const float *v0 = vh + off[j];
                    const __m512 p0 = _mm512_set1_ps(pbuf[j]);
#pragma GCC unroll 4
                    for (int x = 0; x < NVD; x++) e[x] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + 16 * x), e[x]);
                }
#pragma GCC unroll 4
                for (int x = 0; x < NVD; x++) _mm512_storeu_ps(oh + 16 * x, _mm512_add_ps(e[x], o[x]));
                continue;
            }
            for (int64_t d = 0; d < head_dim; d += 16) {
                __mmask16 m = tail_mask16(head_dim - d);
                __m512 a0 = first ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_maskz_loadu_ps(m, oh + d), va);
                __m512 a1 = _mm512_setzero_ps(), a2 = a1, a3 = a1;
                int j = 0;
                for (; j + 4 <= n; j += 4) {
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(pbuf[j]), _mm512_maskz_loadu_ps(m, vh + off[j] + d), a0);
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(pbuf[j + 1]), _mm512_maskz_loadu_ps(m, vh + off[j + 1] + d), a1);
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(pbuf[j + 2]), _mm512_maskz_loadu_ps(m, vh + off[j + 2] + d), a2);
                    a3 = _mm512_fmadd_ps(_mm512_set1_ps(pbuf[j + 3]), _mm512_maskz_loadu_ps(m, vh + off[j + 3] + d), a3);
                }
                for (; j < n; j++)
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(pbuf[j]), _mm512_maskz_loadu_ps(m, vh + off[j] + d), a0);
                _mm512_mask_storeu_ps(oh + d, m, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
            }
        }
    }
#undef ATTN_NEXT_CHUNK
    for (int64_t h = h0; h < h1; h++) {
        float *oh = out + h * head_dim;
        const float l = normaliser[h - h0];
        const __m512 inv = _mm512_set1_ps(l > 0.0f ? 1.0f / l : 0.0f);
        for (int64_t d = 0; d < head_dim; d += 16) {
            __mmask16 m = tail_mask16(head_dim - d);
            _mm512_mask_storeu_ps(oh + d, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, oh + d), inv));
        }
    }
}

CPU_TARGET_AVX512 void cpu_attn_token_avx512(float *out, const float *q, int64_t h0, int64_t h1, int64_t group,
                                             const float *k_cache, const float *v_cache, const int32_t *table,
                                             int32_t bs, int64_t len, int64_t slot_stride, int64_t head_dim,
                                             float scale) {
    if (len <= 0) {
        for (int64_t i = h0 * head_dim; i < h1 * head_dim; i++) out[i] = 0.0f;
        return;
    }
    if (head_dim == 32)
        attn_token(32, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 32, scale);
    else if (head_dim == 64)
        attn_token(64, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 64, scale);
    else if (head_dim == 128)
        attn_token(128, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 128, scale);
    else
        attn_token(0, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, head_dim, scale);
}
