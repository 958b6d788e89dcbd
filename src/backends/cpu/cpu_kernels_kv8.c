/* The 8-bit KV cache on the CPU (--kv-cache fp8|int8): appending a step's
 * keys and values as codes with a scale per (token, kv head), and reading
 * them back as f32 for the attention kernels (cpu_kernels_attention.c).
 *
 * Why one scale per (token, head): a token's row is quantized once, when it
 * is appended, from values that exist then; a scale per block or per head
 * over all tokens would need the future tokens (or a calibration run).
 * 4 bytes per head_dim codes is 3% at head_dim 128. */
#include <pthread.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/quant8.h"
#include "core/thread_pool.h"

/* decode(code) for every code of each kind: the dequantization is then one
 * load and one multiply per element, and equals llmrt_q8_decode exactly. */
static float decode_lut[2][256];
static pthread_once_t decode_lut_once = PTHREAD_ONCE_INIT;

static void decode_lut_init(void) {
    for (int c = 0; c < 256; c++) {
        decode_lut[0][c] = llmrt_q8_decode(LLMRT_Q8_FP8, (uint8_t)c);
        decode_lut[1][c] = llmrt_q8_decode(LLMRT_Q8_INT8, (uint8_t)c);
    }
}

static const float *decode_table(int kind) {
    pthread_once(&decode_lut_once, decode_lut_init);
    return decode_lut[kind == LLMRT_Q8_FP8 ? 0 : 1];
}

typedef struct kv8_write_job {
    const cpu_kv8_layer *cache;
    const float *k, *v;
    const cpu_attention_batch *batch;
    int64_t kv_heads, head_dim;
} kv8_write_job;

static void kv8_write_chunk(void *ctx, int64_t begin, int64_t end) {
    const kv8_write_job *j = ctx;
    const cpu_attention_batch *batch = j->batch;
    const cpu_kv8_layer *c = j->cache;
    const int32_t bs = batch->block_size;
    for (int64_t t = begin; t < end; t++) {
        int32_t s = cpu_attention_seq_of_token(batch, t), pos = batch->positions[t];
        if (pos < 0 || pos / bs >= batch->max_blocks_per_seq) continue; /* no slot: the runtime's bug */
        int64_t block = batch->block_tables[(int64_t)s * batch->max_blocks_per_seq + pos / bs];
        size_t slot = (size_t)block * (size_t)bs + (size_t)(pos % bs);
        for (int64_t h = 0; h < j->kv_heads; h++) {
            size_t row = slot * (size_t)j->kv_heads + (size_t)h; /* (slot, head) */
            const float *kr = j->k + (t * j->kv_heads + h) * j->head_dim;
            const float *vr = j->v + (t * j->kv_heads + h) * j->head_dim;
            c->k_scales[row] = llmrt_q8_quantize_activation(c->kind, kr, j->head_dim, 0, c->k_codes + row * j->head_dim);
            c->v_scales[row] = llmrt_q8_quantize_activation(c->kind, vr, j->head_dim, 0, c->v_codes + row * j->head_dim);
        }
    }
}

void cpu_kv8_cache_write(const cpu_kv8_layer *cache, const float *k, const float *v, const cpu_attention_batch *batch,
                         int64_t T, int64_t kv_heads, int64_t head_dim) {
    kv8_write_job job = {.cache = cache, .k = k, .v = v, .batch = batch, .kv_heads = kv_heads, .head_dim = head_dim};
    llmrt_parallel_for(T, llmrt_parallel_chunk(T, 1), T * kv_heads * head_dim >= (1 << 13), kv8_write_chunk, &job);
}

static void dequantize_row(float *out, const uint8_t *codes, float scale, const float *lut, int64_t n) {
    for (int64_t d = 0; d < n; d++) out[d] = lut[codes[d]] * scale;
}

void cpu_kv8_dequantize_slots(const cpu_kv8_layer *cache, size_t first_slot, int64_t n, int64_t kvh0, int64_t kvh1,
                              int64_t kv_heads, int64_t head_dim, float *k_out, int64_t out_stride, float *v_out) {
    const float *lut = decode_table(cache->kind);
    for (int64_t j = 0; j < n; j++) {
        const size_t slot = first_slot + (size_t)j;
        for (int64_t h = kvh0; h < kvh1; h++) {
            const size_t row = slot * (size_t)kv_heads + (size_t)h;
            const int64_t at = j * out_stride + (h - kvh0) * head_dim;
            dequantize_row(k_out + at, cache->k_codes + row * (size_t)head_dim, cache->k_scales[row], lut, head_dim);
            dequantize_row(v_out + at, cache->v_codes + row * (size_t)head_dim, cache->v_scales[row], lut, head_dim);
        }
    }
}
