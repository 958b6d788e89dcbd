/* Paged-KV-cache attention, the cache write, and rotary embeddings.
 *
 * Attention walks one (token, head) pair at a time over the cache blocks
 * of its sequence with the online softmax of FlashAttention: a chunk of at
 * most ATTN_CHUNK scores is computed, the running max m and normaliser l are
 * updated, and the output row (used as the accumulator) is rescaled once per
 * chunk by exp(m_old − m_new). Memory is O(head_dim) per pair; no T×T or
 * T×context matrix ever exists. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"

/* Scores of one chunk live on the stack; 64 covers block sizes 16/32/64 in
 * one chunk each and keeps the chunk's K and V rows (64 × head_dim × 4 B ×
 * 2 = 64 KB at head_dim 128) mostly within L1/L2 between the two passes. */
#define ATTN_CHUNK 64

static void attn_scores_portable(float *scores, const float *q, const float *k, int64_t stride, int n,
                                 int64_t head_dim, float scale) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + j * stride;
        float s[4] = {0};
        int64_t d = 0;
        for (; d + 4 <= head_dim; d += 4)
            for (int i = 0; i < 4; i++) s[i] += q[d + i] * kj[d + i];
        for (; d < head_dim; d++) s[0] += q[d] * kj[d];
        scores[j] = ((s[0] + s[1]) + (s[2] + s[3])) * scale;
    }
}

static void attn_accumulate_portable(float *acc, float alpha, const float *p, const float *v, int64_t stride,
                                     int n, int64_t head_dim) {
    for (int64_t d = 0; d < head_dim; d++) acc[d] *= alpha;
    for (int j = 0; j < n; j++)
        for (int64_t d = 0; d < head_dim; d++) acc[d] += p[j] * v[j * stride + d];
}

/* The sequence that token t belongs to: seq_start is non-decreasing, so a
 * binary search for the last start ≤ t. */
static int32_t seq_of_token(const cpu_attention_batch *batch, int64_t t) {
    int32_t lo = 0, hi = batch->num_seqs - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi + 1) / 2;
        if (batch->seq_start[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

void cpu_kv_cache_write(float *k_cache, float *v_cache, const float *k, const float *v,
                        const cpu_attention_batch *batch, int64_t T, int64_t kv_heads, int64_t head_dim) {
    const int64_t row = kv_heads * head_dim;
    const int32_t bs = batch->block_size;
#pragma omp parallel for schedule(static) if (T * row >= (1 << 15))
    for (int64_t t = 0; t < T; t++) {
        int32_t s = seq_of_token(batch, t), pos = batch->positions[t];
        if (pos < 0 || pos / bs >= batch->max_blocks_per_seq) continue; /* no slot: the runtime's bug */
        int64_t block = batch->block_tables[(int64_t)s * batch->max_blocks_per_seq + pos / bs];
        size_t offset = ((size_t)block * bs + (size_t)(pos % bs)) * (size_t)row;
        memcpy(k_cache + offset, k + t * row, sizeof(float) * (size_t)row);
        memcpy(v_cache + offset, v + t * row, sizeof(float) * (size_t)row);
    }
}

void cpu_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                   const cpu_attention_batch *batch, int64_t T, int64_t heads, int64_t kv_heads, int64_t head_dim,
                   float scale) {
    const int64_t group = heads / kv_heads;
    const int64_t slot_stride = kv_heads * head_dim;
    const int32_t bs = batch->block_size;
    const int64_t cap = (int64_t)batch->max_blocks_per_seq * bs;
    if (cpu_isa_level() == CPU_ISA_AVX512) {
        /* A work item is a range of query heads of one token, walking the
         * token's cache positions 16 at a time: every head of the range
         * reads the chunk's slot rows (all kv heads, contiguous within a
         * block) while they are in L1, so the cache streams once per token.
         * Heads are split finer only to give every thread work (and to
         * bound the per-item state); a head's arithmetic is the same
         * whichever range it falls in. */
        const int threads = omp_get_max_threads();
        int64_t per = heads < CPU_ATTN_HEADS_MAX ? heads : CPU_ATTN_HEADS_MAX;
        while (per > 1 && T * ((heads + per - 1) / per) < 2 * (int64_t)threads && threads > 1) per = (per + 1) / 2;
        const int64_t ranges = (heads + per - 1) / per;
        const int par = T * ranges > 1 && threads > 1;
        /* Dynamic: tokens late in a long prompt attend to far more
         * positions than early ones. */
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (par)
        for (int64_t t = 0; t < T; t++)
            for (int64_t r = 0; r < ranges; r++) {
                const int32_t s = seq_of_token(batch, t);
                int64_t len = (int64_t)batch->positions[t] + 1;
                if (len > cap) len = cap;
                const int64_t h0 = r * per, h1 = h0 + per < heads ? h0 + per : heads;
                /* a decode token among several sequences reads its cache once */
                const int stream = batch->num_seqs > 1 && batch->seq_start[s + 1] - batch->seq_start[s] == 1;
                cpu_attn_token_avx512(out + t * heads * head_dim, q + t * heads * head_dim, h0, h1, group, k_cache,
                                      v_cache, batch->block_tables + (int64_t)s * batch->max_blocks_per_seq, bs, len,
                                      slot_stride, head_dim, scale, stream);
            }
        return;
    }
    cpu_attn_scores_fn *scores_fn = attn_scores_portable;
    cpu_attn_accumulate_fn *accumulate_fn = attn_accumulate_portable;
    if (cpu_isa_level() == CPU_ISA_AVX2) {
        scores_fn = cpu_attn_scores_avx2;
        accumulate_fn = cpu_attn_accumulate_avx2;
    }
    /* Dynamic: pairs late in a long prompt attend to far more positions
     * than early ones, so a static split would leave one thread idle. */
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (T * heads > 1)
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < heads; h++) {
            const float *qv = q + (t * heads + h) * head_dim;
            float *acc = out + (t * heads + h) * head_dim;
            memset(acc, 0, sizeof(float) * (size_t)head_dim);
            const int32_t s = seq_of_token(batch, t);
            const int32_t *table = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq;
            int64_t len = (int64_t)batch->positions[t] + 1;
            if (len > (int64_t)batch->max_blocks_per_seq * bs) len = (int64_t)batch->max_blocks_per_seq * bs;
            const int64_t kv_offset = (h / group) * head_dim;
            float running_max = -INFINITY, normaliser = 0.0f, scores[ATTN_CHUNK];
            for (int64_t p0 = 0; p0 < len;) {
                /* A chunk never crosses a block: its slots are evenly strided. */
                int64_t slot = p0 % bs, n = bs - slot;
                if (n > len - p0) n = len - p0;
                if (n > ATTN_CHUNK) n = ATTN_CHUNK;
                size_t base = ((size_t)table[p0 / bs] * bs + (size_t)slot) * (size_t)slot_stride + kv_offset;
                scores_fn(scores, qv, k_cache + base, slot_stride, (int)n, head_dim, scale);
                float chunk_max = scores[0];
                for (int j = 1; j < n; j++) chunk_max = scores[j] > chunk_max ? scores[j] : chunk_max;
                float new_max = chunk_max > running_max ? chunk_max : running_max;
                float alpha = expf(running_max - new_max); /* 0 on the first chunk */
                float chunk_sum = 0.0f;
                for (int j = 0; j < n; j++) {
                    scores[j] = expf(scores[j] - new_max);
                    chunk_sum += scores[j];
                }
                normaliser = normaliser * alpha + chunk_sum;
                accumulate_fn(acc, alpha, scores, v_cache + base, slot_stride, (int)n, head_dim);
                running_max = new_max;
                p0 += n;
            }
            if (normaliser > 0.0f) {
                float inv = 1.0f / normaliser;
                for (int64_t d = 0; d < head_dim; d++) acc[d] *= inv;
            }
        }
}

/* HF's order of operations, all in fp32: angle = (float)pos · inv_freq[i]
 * (one rounding), cos/sin of that angle, then x·cos ∓ x_pair·sin. Angles are
 * computed once per token for up to ROPE_CHUNK frequencies and reused by
 * every head. */
#define ROPE_CHUNK 64

void cpu_rope(float *x, const int32_t *positions, int64_t T, int64_t heads, int64_t head_dim, int64_t rotary_dim,
              const float *inv_freq, int neox_style) {
    const int64_t half = rotary_dim / 2;
#pragma omp parallel for schedule(static) if (T * heads * rotary_dim >= (1 << 15))
    for (int64_t t = 0; t < T; t++) {
        float cos_v[ROPE_CHUNK], sin_v[ROPE_CHUNK];
        const float pos = (float)positions[t];
        for (int64_t i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
            int64_t n = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
            for (int64_t i = 0; i < n; i++) {
                float angle = pos * inv_freq[i0 + i];
                cos_v[i] = cosf(angle);
                sin_v[i] = sinf(angle);
            }
            for (int64_t h = 0; h < heads; h++) {
                float *xh = x + (t * heads + h) * head_dim;
                for (int64_t i = 0; i < n; i++) {
                    int64_t a = neox_style ? i0 + i : 2 * (i0 + i);
                    int64_t b = neox_style ? i0 + i + half : 2 * (i0 + i) + 1;
                    float xa = xh[a], xb = xh[b];
                    xh[a] = xa * cos_v[i] - xb * sin_v[i];
                    xh[b] = xb * cos_v[i] + xa * sin_v[i];
                }
            }
        }
    }
}

/* The same rotation in two steps, for a step whose every attention layer
 * rotates at the same positions: the angles' cos/sin once per step, then
 * each layer's q and k from the table (the trigonometry was most of the
 * rotation's cost, repeated for q, k and every layer). Same values as
 * cpu_rope, bit for bit. */
void cpu_rope_table(float *cos_sin, const int32_t *positions, int64_t T, int64_t rotary_dim, const float *inv_freq) {
    const int64_t half = rotary_dim / 2;
#pragma omp parallel for schedule(static) if (T * half >= (1 << 12))
    for (int64_t t = 0; t < T; t++) {
        const float pos = (float)positions[t];
        float *row = cos_sin + t * rotary_dim;
        for (int64_t i = 0; i < half; i++) {
            float angle = pos * inv_freq[i];
            row[i] = cosf(angle);
            row[half + i] = sinf(angle);
        }
    }
}

void cpu_rope_apply(float *dst, const float *src, const float *cos_sin, int64_t T, int64_t heads, int64_t head_dim,
                    int64_t rotary_dim, int neox_style) {
    const int64_t half = rotary_dim / 2;
#pragma omp parallel for schedule(static) if (T * heads * head_dim >= (1 << 16))
    for (int64_t t = 0; t < T; t++) {
        const float *cos_v = cos_sin + t * rotary_dim, *sin_v = cos_v + half;
        for (int64_t h = 0; h < heads; h++) {
            const float *xs = src + (t * heads + h) * head_dim;
            float *xd = dst + (t * heads + h) * head_dim;
            if (neox_style) {
                for (int64_t i = 0; i < half; i++) {
                    float xa = xs[i], xb = xs[i + half];
                    xd[i] = xa * cos_v[i] - xb * sin_v[i];
                    xd[i + half] = xb * cos_v[i] + xa * sin_v[i];
                }
            } else {
                for (int64_t i = 0; i < half; i++) {
                    float xa = xs[2 * i], xb = xs[2 * i + 1];
                    xd[2 * i] = xa * cos_v[i] - xb * sin_v[i];
                    xd[2 * i + 1] = xb * cos_v[i] + xa * sin_v[i];
                }
            }
            for (int64_t d = 2 * half; d < head_dim && xd != xs; d++) xd[d] = xs[d];
        }
    }
}
