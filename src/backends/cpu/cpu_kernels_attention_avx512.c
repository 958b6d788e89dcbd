/* AVX-512 attention for the query heads [h0, h1) of one token (see
 * cpu_attn_token_avx512 in cpu_kernels_internal.h).
 *
 * A decode step reads every cached position of every sequence once per
 * layer, with little arithmetic per byte (head_dim 32: two FMAs per position
 * and head for q·k, two for p·v), so the loop must not add work per position:
 * no softmax bookkeeping per 16-32 positions, no K/V row loaded once per
 * query head. The positions of a chunk (up to ATTN_CHUNK) go through three
 * passes whose steps are independent of each other:
 *   1. scores, 16 positions at a time for every head of the range while the
 *      positions' K rows are in L1; the two query heads of a pair sharing a
 *      kv head take 8 positions each per reduction, so a K load feeds both;
 *   2. per head: max, exp and sum over the stored scores;
 *   3. out += Σ_j p_j · v_j, 16 positions at a time, pairs sharing V loads.
 * K and V each stream once per token. Longer contexts rescale the output once
 * per chunk (online softmax across chunks). A head's arithmetic depends only
 * on its q, the cache and the chunk boundaries (fixed positions), never on
 * the batch, the thread or which heads share its range. */
#include <immintrin.h>
#include <math.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "backends/cpu/cpu_simd_avx512.h"

/* Positions per softmax chunk: the scores of a chunk for every head of the
 * range (≤ CPU_ATTN_HEADS_MAX × ATTN_CHUNK floats, 32 KB) live on the stack. */
#define ATTN_CHUNK 256

static inline __attribute__((always_inline)) CPU_TARGET_AVX512 __mmask16 tail_mask16(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

/* Prefetches the slot rows of the next 16 positions (bytes [begin, end) of
 * each row: the kv heads in use), non-temporally. Only for `stream` calls
 * (decode tokens of a batch): a batched decode step reads each sequence's
 * cache once (12 MB per step for the demo model at 8 × 192 positions), which would
 * otherwise push the weights out of L3 before the next layer's linears;
 * measured 1.31 → 1.21 ms per 8-token step (1.27 without prefetch). A lone
 * sequence's cache is re-read every step, and a prompt's by each of its
 * tokens: those should stay in the caches. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 void prefetch_rows(const float *cache,
                                                                                 const size_t *off, size_t begin,
                                                                                 size_t end) {
    for (int j = 0; j < 16; j++)
        for (size_t b = begin; b < end; b += 64) _mm_prefetch((const char *)(cache + off[j]) + b, _MM_HINT_NTA);
}

/* scores[i] (i < 8) = q_a·k_i and scores[8 + i] = q_b·k_i for the 8 K rows
 * `rows[i]` (nb = 2 heads), or scores[i] = q_a·k_i for 16 rows (nb = 1);
 * scaled, and −inf where `valid` is clear. Each score is the same
 * arithmetic either way: one FMA chain per lane over head_dim, then the fixed
 * reduction tree of cpu_reduce16, whatever lane it lands in. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 __m512
score_tile(const int HD, int nb, const float *qa, const float *qb, const float *kh, const size_t *rows,
           int64_t hd_rt, __m512 vscale, __mmask16 valid) {
    const int64_t head_dim = HD > 0 ? HD : hd_rt;
    __m512 dots[16];
    const int per = nb == 2 ? 8 : 16;
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) {
        const float *qh = j < per ? qa : qb, *kj = kh + rows[j % per];
        __m512 a = _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int64_t d = 0; d < head_dim; d += 16) {
            __mmask16 m = tail_mask16(head_dim - d);
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qh + d), _mm512_maskz_loadu_ps(m, kj + d), a);
        }
        dots[j] = a;
    }
    return _mm512_mask_blend_ps(valid, _mm512_set1_ps(-INFINITY), _mm512_mul_ps(cpu_reduce16(dots), vscale));
}

/* out_h (+)= Σ_j p_h[j] · v_j over `cnt` rows for NB (1 or 2) heads of one kv
 * head, HD ≤ 64 in registers. Even rows go to one chain, odd rows to
 * another, and the chains are summed into out: the same arithmetic as the
 * run-time head_dim loop below. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 void
pv_rows(const int HD, const int NB, float *oa, float *ob, const float *pa, const float *pb, const float *vh,
        const size_t *rows, int cnt) {
    const int NVD = HD / 16;
    __m512 ea[4], oa_[4], eb[4], ob_[4];
#pragma GCC unroll 4
    for (int x = 0; x < NVD; x++) {
        ea[x] = _mm512_loadu_ps(oa + 16 * x), oa_[x] = _mm512_setzero_ps();
        if (NB == 2) eb[x] = _mm512_loadu_ps(ob + 16 * x), ob_[x] = _mm512_setzero_ps();
    }
    int j = 0;
    for (; j + 2 <= cnt; j += 2) {
        const float *v0 = vh + rows[j], *v1 = vh + rows[j + 1];
        const __m512 pa0 = _mm512_set1_ps(pa[j]), pa1 = _mm512_set1_ps(pa[j + 1]);
        const __m512 pb0 = NB == 2 ? _mm512_set1_ps(pb[j]) : pa0, pb1 = NB == 2 ? _mm512_set1_ps(pb[j + 1]) : pa1;
#pragma GCC unroll 4
        for (int x = 0; x < NVD; x++) {
            const __m512 w0 = _mm512_loadu_ps(v0 + 16 * x), w1 = _mm512_loadu_ps(v1 + 16 * x);
            ea[x] = _mm512_fmadd_ps(pa0, w0, ea[x]);
            oa_[x] = _mm512_fmadd_ps(pa1, w1, oa_[x]);
            if (NB == 2) {
                eb[x] = _mm512_fmadd_ps(pb0, w0, eb[x]);
                ob_[x] = _mm512_fmadd_ps(pb1, w1, ob_[x]);
            }
        }
    }
    if (j < cnt) {
        const float *v0 = vh + rows[j];
#pragma GCC unroll 4
        for (int x = 0; x < NVD; x++) {
            const __m512 w0 = _mm512_loadu_ps(v0 + 16 * x);
            ea[x] = _mm512_fmadd_ps(_mm512_set1_ps(pa[j]), w0, ea[x]);
            if (NB == 2) eb[x] = _mm512_fmadd_ps(_mm512_set1_ps(pb[j]), w0, eb[x]);
        }
    }
#pragma GCC unroll 4
    for (int x = 0; x < NVD; x++) {
        _mm512_storeu_ps(oa + 16 * x, _mm512_add_ps(ea[x], oa_[x]));
        if (NB == 2) _mm512_storeu_ps(ob + 16 * x, _mm512_add_ps(eb[x], ob_[x]));
    }
}

/* HD > 0: head_dim is the constant HD (loops unroll into registers);
 * HD = 0: head_dim at run time, masked tails. Heads are taken in pairs that
 * share a kv head, so each K/V row load feeds both. */
static inline __attribute__((always_inline)) CPU_TARGET_AVX512 void
attn_token(const int HD, float *out, const float *q, int64_t h0, int64_t h1, int64_t group, const float *k_cache,
           const float *v_cache, const int32_t *table, int32_t bs, int64_t len, int64_t slot_stride, int64_t hd_rt,
           float scale, int stream) {
    const int64_t head_dim = HD > 0 ? HD : hd_rt;
    const int64_t nh = h1 - h0;
    const __m512 vscale = _mm512_set1_ps(scale), neg_inf = _mm512_set1_ps(-INFINITY);
    float running_max[CPU_ATTN_HEADS_MAX], normaliser[CPU_ATTN_HEADS_MAX];
    float scores[CPU_ATTN_HEADS_MAX * ATTN_CHUNK] __attribute__((aligned(64)));
    size_t off[ATTN_CHUNK + 16]; /* slot row of each position of the chunk (floats) */
    const size_t pf_begin = (size_t)((h0 / group) * head_dim) * sizeof(float);
    const size_t pf_end = (size_t)(((h1 - 1) / group + 1) * head_dim) * sizeof(float);
    int64_t block = 0, slot = 0; /* the next position to place = block·bs + slot */
    for (int64_t c0 = 0; c0 < len; c0 += ATTN_CHUNK) {
        const int n = len - c0 < ATTN_CHUNK ? (int)(len - c0) : ATTN_CHUNK;
        const int groups = (n + 15) / 16;
        const int first = c0 == 0;
        /* Rows past the end repeat the last valid one (their lanes are
         * masked; p = 0 there), so no load leaves the sequence's blocks. */
        for (int j = 0; j < n; j++) {
            off[j] = ((size_t)table[block] * (size_t)bs + (size_t)slot) * (size_t)slot_stride;
            if (++slot == bs) slot = 0, block++;
        }
        for (int j = n; j < groups * 16; j++) off[j] = off[n - 1];

        /* 1. scores, 16 positions at a time for every head while the
         * positions' K rows are in L1. */
        for (int g = 0; g < groups; g++) {
            const size_t *og = off + 16 * g;
            if (stream && g + 1 < groups) prefetch_rows(k_cache, og + 16, pf_begin, pf_end);
            const __mmask16 valid = tail_mask16(n - 16 * g);
            for (int64_t h = h0; h < h1;) {
                const float *kh = k_cache + (h / group) * head_dim;
                float *sa = scores + (h - h0) * ATTN_CHUNK + 16 * g;
                if (h + 1 < h1 && (h + 1) / group == h / group) {
                    float *sb = sa + ATTN_CHUNK;
                    for (int half = 0; half < 2; half++) {
                        const __mmask16 v8 = (__mmask16)((valid >> (8 * half)) & 0xff);
                        __m512 s = score_tile(HD, 2, q + h * head_dim, q + (h + 1) * head_dim, kh, og + 8 * half,
                                              head_dim, vscale, (__mmask16)(v8 | (v8 << 8)));
                        _mm256_store_ps(sa + 8 * half, _mm512_castps512_ps256(s));
                        _mm256_store_ps(sb + 8 * half, _mm512_extractf32x8_ps(s, 1));
                    }
                    h += 2;
                } else {
                    _mm512_store_ps(sa, score_tile(HD, 1, q + h * head_dim, NULL, kh, og, head_dim, vscale, valid));
                    h += 1;
                }
            }
        }

        /* 2. softmax of the chunk, folded into the running max and sum. */
        float alpha[CPU_ATTN_HEADS_MAX];
        for (int64_t i = 0; i < nh; i++) {
            float *si = scores + i * ATTN_CHUNK;
            __m512 mx = neg_inf;
            for (int g = 0; g < groups; g++) mx = _mm512_max_ps(mx, _mm512_load_ps(si + 16 * g));
            const float chunk_max = _mm512_reduce_max_ps(mx);
            const float new_max = first || chunk_max > running_max[i] ? chunk_max : running_max[i];
            alpha[i] = first ? 0.0f : _mm512_cvtss_f32(cpu_exp16(_mm512_set1_ps(running_max[i] - new_max)));
            const __m512 vmax = _mm512_set1_ps(new_max);
            __m512 sum0 = _mm512_setzero_ps(), sum1 = sum0;
            for (int g = 0; g < groups; g++) {
                const __mmask16 valid = tail_mask16(n - 16 * g);
                __m512 p = _mm512_maskz_mov_ps(valid, cpu_exp16(_mm512_sub_ps(_mm512_load_ps(si + 16 * g), vmax)));
                _mm512_store_ps(si + 16 * g, p);
                if (g & 1) sum1 = _mm512_add_ps(sum1, p);
                else sum0 = _mm512_add_ps(sum0, p);
            }
            const float sum = _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
            normaliser[i] = first ? sum : normaliser[i] * alpha[i] + sum;
            running_max[i] = new_max;
        }

        /* 3. out = out · alpha + Σ p_j v_j (out is the accumulator), 16
         * positions at a time for every head while their V rows are in L1. */
        for (int64_t h = h0; h < h1; h++) {
            float *oh = out + h * head_dim;
            const __m512 va = _mm512_set1_ps(alpha[h - h0]);
            for (int64_t d = 0; d < head_dim; d += 16) {
                __mmask16 m = tail_mask16(head_dim - d);
                __m512 a = first ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_maskz_loadu_ps(m, oh + d), va);
                _mm512_mask_storeu_ps(oh + d, m, a);
            }
        }
        for (int g = 0; g < groups; g++) {
            const size_t *og = off + 16 * g;
            if (stream && g + 1 < groups) prefetch_rows(v_cache, og + 16, pf_begin, pf_end);
            const int cnt = n - 16 * g < 16 ? n - 16 * g : 16;
            for (int64_t h = h0; h < h1;) {
                const float *pa = scores + (h - h0) * ATTN_CHUNK + 16 * g, *vh = v_cache + (h / group) * head_dim;
                float *oa = out + h * head_dim;
                const int pair = h + 1 < h1 && (h + 1) / group == h / group;
                if (HD > 0 && HD <= 64) {
                    if (pair) pv_rows(HD, 2, oa, oa + head_dim, pa, pa + ATTN_CHUNK, vh, og, cnt);
                    else pv_rows(HD, 1, oa, NULL, pa, NULL, vh, og, cnt);
                    h += pair ? 2 : 1;
                    continue;
                }
                for (int64_t d = 0; d < head_dim; d += 16) {
                    __mmask16 m = tail_mask16(head_dim - d);
                    __m512 a0 = _mm512_maskz_loadu_ps(m, oa + d), a1 = _mm512_setzero_ps();
                    int j = 0;
                    for (; j + 2 <= cnt; j += 2) {
                        a0 = _mm512_fmadd_ps(_mm512_set1_ps(pa[j]), _mm512_maskz_loadu_ps(m, vh + og[j] + d), a0);
                        a1 = _mm512_fmadd_ps(_mm512_set1_ps(pa[j + 1]), _mm512_maskz_loadu_ps(m, vh + og[j + 1] + d), a1);
                    }
                    if (j < cnt) a0 = _mm512_fmadd_ps(_mm512_set1_ps(pa[j]), _mm512_maskz_loadu_ps(m, vh + og[j] + d), a0);
                    _mm512_mask_storeu_ps(oa + d, m, _mm512_add_ps(a0, a1));
                }
                h += 1;
            }
        }
    }
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
                                             float scale, int stream) {
    if (len <= 0) {
        for (int64_t i = h0 * head_dim; i < h1 * head_dim; i++) out[i] = 0.0f;
        return;
    }
    if (head_dim == 32)
        attn_token(32, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 32, scale, stream);
    else if (head_dim == 64)
        attn_token(64, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 64, scale, stream);
    else if (head_dim == 128)
        attn_token(128, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, 128, scale, stream);
    else
        attn_token(0, out, q, h0, h1, group, k_cache, v_cache, table, bs, len, slot_stride, head_dim, scale, stream);
}
