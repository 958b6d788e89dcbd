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
#include "core/thread_pool.h"
#include "graph/graph.h"

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

/* Cache positions 0..span-1 that token t of sequence s attends to: up to
 * its own (causal), or up to its sequence's last token in the step
 * (non-causal: an encoder's whole input is one step, cached before the
 * attention runs). */
static int64_t attention_span(const cpu_attention_batch *batch, int32_t s, int64_t t) {
    const int64_t last = batch->non_causal ? batch->seq_start[s + 1] - 1 : t;
    const int64_t span = (int64_t)batch->positions[last] + 1, cap = (int64_t)batch->max_blocks_per_seq * batch->block_size;
    return span < cap ? span : cap;
}

/* What the attention kernels' chunks read. */
typedef struct attention_job {
    float *out;
    const float *q, *k, *v;
    float *k_cache, *v_cache;
    const float *k_cache_in, *v_cache_in;
    const cpu_attention_batch *batch;
    int64_t heads, kv_heads, head_dim, group, per, ranges;
    float scale;
    int avx512; /* the token kernel: AVX-512, else AVX2 */
    cpu_attention_variant variant; /* the pair kernel only */
    cpu_attn_scores_fn *scores_fn;
    cpu_attn_accumulate_fn *accumulate_fn;
    /* an 8-bit cache (k_cache_in, v_cache_in unused): each item dequantizes
     * what it reads into its thread's scratch, and sets *out_of_memory
     * when it cannot have one */
    const cpu_kv8_layer *kv8;
    int *out_of_memory;
    uint64_t call_id;
} attention_job;

static void kv_cache_write_chunk(void *ctx, int64_t begin, int64_t end) {
    const attention_job *j = ctx;
    const cpu_attention_batch *batch = j->batch;
    const int64_t row = j->kv_heads * j->head_dim;
    const int32_t bs = batch->block_size;
    for (int64_t t = begin; t < end; t++) {
        int32_t s = cpu_attention_seq_of_token(batch, t), pos = batch->positions[t];
        if (pos < 0 || pos / bs >= batch->max_blocks_per_seq) continue; /* no slot: the runtime's bug */
        int64_t block = batch->block_tables[(int64_t)s * batch->max_blocks_per_seq + pos / bs];
        size_t offset = ((size_t)block * bs + (size_t)(pos % bs)) * (size_t)row;
        memcpy(j->k_cache + offset, j->k + t * row, sizeof(float) * (size_t)row);
        memcpy(j->v_cache + offset, j->v + t * row, sizeof(float) * (size_t)row);
    }
}

void cpu_kv_cache_write(float *k_cache, float *v_cache, const float *k, const float *v,
                        const cpu_attention_batch *batch, int64_t T, int64_t kv_heads, int64_t head_dim) {
    attention_job job = {.k = k, .v = v, .k_cache = k_cache, .v_cache = v_cache, .batch = batch,
                         .kv_heads = kv_heads, .head_dim = head_dim};
    llmrt_parallel_for(T, llmrt_parallel_chunk(T, 1), T * kv_heads * head_dim >= (1 << 15), kv_cache_write_chunk, &job);
}

/* An 8-bit cache seen by the token kernels: positions [0, len) of sequence
 * s for the kv heads of query heads [h0, h1), dequantized into the
 * thread's scratch as an f32 cache of blocks 0, 1, ... (*table the
 * identity), so the kernel reads the same values, chunked the same way, as
 * from an f32 cache. The scratch is sized for the sequence's longest span
 * in the step and remembers how far it got: the next token of the same
 * sequence and head range on this thread (a prompt's tokens come in order)
 * dequantizes only its new positions, not the whole prefix again. */
static uint64_t kv8_calls; /* a fresh id per cpu_attention_kv8 call: the memo's validity */
static __thread struct { uint64_t call; const float *buf; int32_t seq; int64_t range, done; } kv8_memo;

static int kv8_span_view(const attention_job *j, int32_t s, int64_t r, int64_t h0, int64_t h1, int64_t len,
                         const int32_t **table, const float **k_cache, const float **v_cache) {
    const cpu_attention_batch *batch = j->batch;
    const int32_t bs = batch->block_size;
    const int64_t slot_stride = j->kv_heads * j->head_dim;
    const int64_t longest = attention_span(batch, s, batch->seq_start[s + 1] - 1);
    const int64_t blocks = (longest + bs - 1) / bs;
    const size_t floats = (size_t)blocks * (size_t)bs * (size_t)slot_stride;
    float *buf = cpu_thread_scratch(2 * floats * sizeof(float) + (size_t)blocks * sizeof(int32_t));
    if (!buf) return 0;
    int64_t done = 0;
    if (kv8_memo.call == j->call_id && kv8_memo.buf == buf && kv8_memo.seq == s && kv8_memo.range == r)
        done = kv8_memo.done;
    const int64_t kvh0 = h0 / j->group, kvh1 = (h1 - 1) / j->group + 1;
    const int32_t *real = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq;
    int32_t *identity = (int32_t *)(buf + 2 * floats);
    for (int64_t p = done; p < len;) { /* slot runs within one block */
        const int64_t b = p / bs, n = (b + 1) * bs < len ? (b + 1) * bs - p : len - p;
        const size_t at = (size_t)(p * slot_stride + kvh0 * j->head_dim);
        cpu_kv8_dequantize_slots(j->kv8, (size_t)real[b] * (size_t)bs + (size_t)(p % bs), n, kvh0, kvh1, j->kv_heads,
                                 j->head_dim, buf + at, slot_stride, buf + floats + at);
        p += n;
    }
    for (int64_t b = 0; b < blocks; b++) identity[b] = (int32_t)b;
    if (len > done) {
        kv8_memo.call = j->call_id, kv8_memo.buf = buf, kv8_memo.seq = s, kv8_memo.range = r;
        kv8_memo.done = len;
    }
    *table = identity, *k_cache = buf, *v_cache = buf + floats;
    return 1;
}

/* Items t·ranges + r: query heads [r·per, (r+1)·per) of token t. */
static void attention_token_chunk(void *ctx, int64_t begin, int64_t end) {
    const attention_job *j = ctx;
    const cpu_attention_batch *batch = j->batch;
    const int32_t bs = batch->block_size;
    const int64_t slot_stride = j->kv_heads * j->head_dim;
    for (int64_t item = begin; item < end; item++) {
        const int64_t t = item / j->ranges, r = item % j->ranges;
        const int32_t s = cpu_attention_seq_of_token(batch, t);
        const int64_t len = attention_span(batch, s, t);
        const int64_t h0 = r * j->per, h1 = h0 + j->per < j->heads ? h0 + j->per : j->heads;
        /* a decode token among several sequences reads its cache once */
        const int stream = batch->num_seqs > 1 && batch->seq_start[s + 1] - batch->seq_start[s] == 1;
        float *out = j->out + t * j->heads * j->head_dim;
        const float *q = j->q + t * j->heads * j->head_dim;
        const int32_t *table = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq;
        const float *k_cache = j->k_cache_in, *v_cache = j->v_cache_in;
        if (j->kv8 && len > 0 && !kv8_span_view(j, s, r, h0, h1, len, &table, &k_cache, &v_cache)) {
            __atomic_store_n(j->out_of_memory, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (j->avx512)
            cpu_attn_token_avx512(out, q, h0, h1, j->group, k_cache, v_cache, table, bs, len, slot_stride,
                                  j->head_dim, j->scale, stream);
        else
            cpu_attn_token_avx2(out, q, h0, h1, j->group, k_cache, v_cache, table, bs, len, slot_stride,
                                j->head_dim, j->scale);
    }
}

/* Items t·heads + h: one (token, head) pair. */
static void attention_pair_chunk(void *ctx, int64_t begin, int64_t end) {
    const attention_job *j = ctx;
    const cpu_attention_batch *batch = j->batch;
    const int32_t bs = batch->block_size;
    const int64_t slot_stride = j->kv_heads * j->head_dim, head_dim = j->head_dim;
    /* an 8-bit cache: a chunk's rows of one kv head, dequantized */
    float *k_rows = NULL, *v_rows = NULL;
    if (j->kv8) {
        if (!(k_rows = cpu_thread_scratch(2 * sizeof(float) * ATTN_CHUNK * (size_t)head_dim))) {
            __atomic_store_n(j->out_of_memory, 1, __ATOMIC_RELAXED);
            return;
        }
        v_rows = k_rows + ATTN_CHUNK * head_dim;
    }
    for (int64_t item = begin; item < end; item++) {
        const int64_t t = item / j->heads, h = item % j->heads;
        const float *qv = j->q + (t * j->heads + h) * head_dim;
        float *acc = j->out + (t * j->heads + h) * head_dim;
        memset(acc, 0, sizeof(float) * (size_t)head_dim);
        const int32_t s = cpu_attention_seq_of_token(batch, t);
        const int32_t *table = batch->block_tables + (int64_t)s * batch->max_blocks_per_seq;
        const int64_t pos = batch->positions[t];
        const int64_t len = attention_span(batch, s, t);
        const int64_t kv_offset = (h / j->group) * head_dim;
        const cpu_attention_variant *var = &j->variant;
        /* keys before the window are never read (their blocks may be freed) */
        const int64_t first =
            var->sliding_window > 0 && pos + 1 > var->sliding_window ? pos + 1 - var->sliding_window : 0;
        const float cap = var->logit_softcap;
        const float slope = var->alibi_max_bias > 0.0f
                                ? llmrt_alibi_slope((int32_t)h + var->alibi_first_head,
                                                    var->alibi_total_heads ? var->alibi_total_heads : (int32_t)j->heads,
                                                    var->alibi_max_bias)
                                : 0.0f;
        float running_max = -INFINITY, normaliser = 0.0f, scores[ATTN_CHUNK];
        for (int64_t p0 = first; p0 < len;) {
            /* A chunk never crosses a block: its slots are evenly strided. */
            int64_t slot = p0 % bs, n = bs - slot;
            if (n > len - p0) n = len - p0;
            if (n > ATTN_CHUNK) n = ATTN_CHUNK;
            const size_t first_slot = (size_t)table[p0 / bs] * bs + (size_t)slot;
            const float *k_chunk = k_rows, *v_chunk = v_rows;
            int64_t stride = head_dim;
            if (j->kv8) {
                const int64_t kvh = h / j->group;
                cpu_kv8_dequantize_slots(j->kv8, first_slot, n, kvh, kvh + 1, j->kv_heads, head_dim, k_rows, head_dim,
                                         v_rows);
            } else {
                k_chunk = j->k_cache_in + first_slot * (size_t)slot_stride + kv_offset;
                v_chunk = j->v_cache_in + first_slot * (size_t)slot_stride + kv_offset;
                stride = slot_stride;
            }
            j->scores_fn(scores, qv, k_chunk, stride, (int)n, head_dim, j->scale);
            if (cap > 0.0f)
                for (int i = 0; i < n; i++) scores[i] = cap * tanhf(scores[i] / cap);
            if (slope != 0.0f)
                for (int i = 0; i < n; i++) scores[i] += slope * (float)(p0 + i - pos);
            float chunk_max = scores[0];
            for (int i = 1; i < n; i++) chunk_max = scores[i] > chunk_max ? scores[i] : chunk_max;
            float new_max = chunk_max > running_max ? chunk_max : running_max;
            float alpha = expf(running_max - new_max); /* 0 on the first chunk */
            float chunk_sum = 0.0f;
            for (int i = 0; i < n; i++) {
                scores[i] = expf(scores[i] - new_max);
                chunk_sum += scores[i];
            }
            normaliser = normaliser * alpha + chunk_sum;
            j->accumulate_fn(acc, alpha, scores, v_chunk, stride, (int)n, head_dim);
            running_max = new_max;
            p0 += n;
        }
        if (normaliser > 0.0f) {
            float inv = 1.0f / normaliser;
            for (int64_t d = 0; d < head_dim; d++) acc[d] *= inv;
        }
    }
}

void cpu_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                   const cpu_attention_batch *batch, int64_t T, int64_t heads, int64_t kv_heads, int64_t head_dim,
                   float scale) {
    cpu_attention_ex(out, q, k_cache, v_cache, batch, T, heads, kv_heads, head_dim, scale, NULL);
}

static void run_attention(attention_job job, const cpu_attention_variant *variant, int64_t T) {
    const int64_t heads = job.heads, head_dim = job.head_dim;
    const int has_variant = variant && (variant->sliding_window > 0 || variant->logit_softcap > 0.0f ||
                                        variant->alibi_max_bias > 0.0f);
    if (has_variant) job.variant = *variant;
    const int level = cpu_isa_level();
    /* The variants take the (token, head) pair kernel: the token kernels
     * walk every position from 0 without per-score hooks. */
    if (!has_variant && (level == CPU_ISA_AVX512 || (level == CPU_ISA_AVX2 && head_dim % 8 == 0))) {
        /* A work item is a range of query heads of one token, walking the
         * token's cache positions 16 (AVX2: 8) at a time: every head of the range
         * reads the chunk's slot rows (all kv heads, contiguous within a
         * block) while they are in L1, so the cache streams once per token.
         * Heads are split finer only to give every thread work (and to
         * bound the per-item state); a head's arithmetic is the same
         * whichever range it falls in. */
        const int threads = omp_get_max_threads();
        int64_t per = heads < CPU_ATTN_HEADS_MAX ? heads : CPU_ATTN_HEADS_MAX;
        while (per > 1 && T * ((heads + per - 1) / per) < 2 * (int64_t)threads && threads > 1) per = (per + 1) / 2;
        job.per = per;
        job.ranges = (heads + per - 1) / per;
        /* One item a chunk: tokens late in a long prompt attend to far
         * more positions than early ones. */
        job.avx512 = level == CPU_ISA_AVX512;
        llmrt_parallel_for(T * job.ranges, 1, T * job.ranges > 1 && threads > 1, attention_token_chunk, &job);
        return;
    }
    job.scores_fn = attn_scores_portable;
    job.accumulate_fn = attn_accumulate_portable;
    if (level == CPU_ISA_AVX2) { /* head_dim not a multiple of 8 */
        job.scores_fn = cpu_attn_scores_avx2;
        job.accumulate_fn = cpu_attn_accumulate_avx2;
    }
    /* One pair a chunk: pairs late in a long prompt attend to far more
     * positions than early ones, so an even split would leave one thread
     * idle. */
    llmrt_parallel_for(T * heads, 1, T * heads > 1, attention_pair_chunk, &job);
}

void cpu_attention_ex(float *out, const float *q, const float *k_cache, const float *v_cache,
                      const cpu_attention_batch *batch, int64_t T, int64_t heads, int64_t kv_heads,
                      int64_t head_dim, float scale, const cpu_attention_variant *variant) {
    attention_job job = {.out = out, .q = q, .k_cache_in = k_cache, .v_cache_in = v_cache, .batch = batch,
                         .heads = heads, .kv_heads = kv_heads, .head_dim = head_dim, .group = heads / kv_heads,
                         .scale = scale};
    run_attention(job, variant, T);
}

llmrt_status cpu_attention_kv8(float *out, const float *q, const cpu_kv8_layer *cache,
                               const cpu_attention_batch *batch, int64_t T, int64_t heads, int64_t kv_heads,
                               int64_t head_dim, float scale, const cpu_attention_variant *variant) {
    int out_of_memory = 0;
    attention_job job = {.out = out, .q = q, .batch = batch, .heads = heads, .kv_heads = kv_heads,
                         .head_dim = head_dim, .group = heads / kv_heads, .scale = scale, .kv8 = cache,
                         .out_of_memory = &out_of_memory,
                         .call_id = __atomic_add_fetch(&kv8_calls, 1, __ATOMIC_RELAXED)};
    run_attention(job, variant, T);
    if (out_of_memory)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "attention: no memory to dequantize the 8-bit KV cache (%lld "
                           "positions of %lld kv heads)", (long long)batch->max_blocks_per_seq * batch->block_size,
                           (long long)kv_heads);
    return LLMRT_OK;
}
/* HF's order of operations, all in fp32: angle = (float)pos · inv_freq[i]
 * (one rounding), cos/sin of that angle, then x·cos ∓ x_pair·sin. Angles are
 * computed once per token for up to ROPE_CHUNK frequencies and reused by
 * every head. */
#define ROPE_CHUNK 64

typedef struct rope_job {
    float *x, *dst;
    const float *src, *cos_sin, *inv_freq;
    const int32_t *positions;
    int64_t heads, head_dim, rotary_dim;
    int neox_style;
} rope_job;

static void rope_chunk(void *ctx, int64_t begin, int64_t end) {
    const rope_job *j = ctx;
    const int64_t half = j->rotary_dim / 2;
    for (int64_t t = begin; t < end; t++) {
        float cos_v[ROPE_CHUNK], sin_v[ROPE_CHUNK];
        const float pos = (float)j->positions[t];
        for (int64_t i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
            int64_t n = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
            for (int64_t i = 0; i < n; i++) {
                float angle = pos * j->inv_freq[i0 + i];
                cos_v[i] = cosf(angle);
                sin_v[i] = sinf(angle);
            }
            for (int64_t h = 0; h < j->heads; h++) {
                float *xh = j->x + (t * j->heads + h) * j->head_dim;
                for (int64_t i = 0; i < n; i++) {
                    int64_t a = j->neox_style ? i0 + i : 2 * (i0 + i);
                    int64_t b = j->neox_style ? i0 + i + half : 2 * (i0 + i) + 1;
                    float xa = xh[a], xb = xh[b];
                    xh[a] = xa * cos_v[i] - xb * sin_v[i];
                    xh[b] = xb * cos_v[i] + xa * sin_v[i];
                }
            }
        }
    }
}

void cpu_rope(float *x, const int32_t *positions, int64_t T, int64_t heads, int64_t head_dim, int64_t rotary_dim,
              const float *inv_freq, int neox_style) {
    rope_job job = {.x = x, .inv_freq = inv_freq, .positions = positions, .heads = heads, .head_dim = head_dim,
                    .rotary_dim = rotary_dim, .neox_style = neox_style};
    llmrt_parallel_for(T, llmrt_parallel_chunk(T, 1), T * heads * rotary_dim >= (1 << 15), rope_chunk, &job);
}

/* The same rotation in two steps, for a step whose every attention layer
 * rotates at the same positions: the angles' cos/sin once per step, then
 * each layer's q and k from the table (the trigonometry was most of the
 * rotation's cost, repeated for q, k and every layer). Same values as
 * cpu_rope, bit for bit. */
static void rope_table_chunk(void *ctx, int64_t begin, int64_t end) {
    const rope_job *j = ctx;
    const int64_t half = j->rotary_dim / 2;
    for (int64_t t = begin; t < end; t++) {
        const float pos = (float)j->positions[t];
        float *row = j->dst + t * j->rotary_dim;
        for (int64_t i = 0; i < half; i++) {
            float angle = pos * j->inv_freq[i];
            row[i] = cosf(angle);
            row[half + i] = sinf(angle);
        }
    }
}

void cpu_rope_table(float *cos_sin, const int32_t *positions, int64_t T, int64_t rotary_dim, const float *inv_freq) {
    rope_job job = {.dst = cos_sin, .inv_freq = inv_freq, .positions = positions, .rotary_dim = rotary_dim};
    llmrt_parallel_for(T, llmrt_parallel_chunk(T, 1), T * (rotary_dim / 2) >= (1 << 12), rope_table_chunk, &job);
}

static void rope_apply_chunk(void *ctx, int64_t begin, int64_t end) {
    const rope_job *j = ctx;
    const int64_t half = j->rotary_dim / 2, heads = j->heads, head_dim = j->head_dim;
    for (int64_t t = begin; t < end; t++) {
        const float *cos_v = j->cos_sin + t * j->rotary_dim, *sin_v = cos_v + half;
        for (int64_t h = 0; h < heads; h++) {
            const float *xs = j->src + (t * heads + h) * head_dim;
            float *xd = j->dst + (t * heads + h) * head_dim;
            if (j->neox_style) {
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

void cpu_rope_apply(float *dst, const float *src, const float *cos_sin, int64_t T, int64_t heads, int64_t head_dim,
                    int64_t rotary_dim, int neox_style) {
    rope_job job = {.dst = dst, .src = src, .cos_sin = cos_sin, .heads = heads, .head_dim = head_dim,
                    .rotary_dim = rotary_dim, .neox_style = neox_style};
    llmrt_parallel_for(T, llmrt_parallel_chunk(T, 1), T * heads * head_dim >= (1 << 16), rope_apply_chunk, &job);
}
