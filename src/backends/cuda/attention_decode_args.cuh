// The decode attention's constants, launch arguments and per-row address
// helpers (attention_decode.cu's kernel; split out to keep it readable).
#ifndef LLMRT_CUDA_ATTENTION_DECODE_ARGS_CUH
#define LLMRT_CUDA_ATTENTION_DECODE_ARGS_CUH

#include "backends/cuda/cuda_device.cuh"

// PRE2_MIN_BLOCKS: blocks an SM must hold for the PRE2 instance of one query
// head a block (≤ 128 registers a thread): left free, the compiler took 241
// (147 for the kernel as it is now: three blocks an SM) and a batch-1 launch
// at 2048 tokens of context (512 blocks) ran in two waves. Where the live
// blocks fit one wave of that free instance (the WIDE one: a short context,
// cuda_decode_wide_fits), it is the faster one, so the caller may ask for
// it (batch->wide). PRE2_MAX_TOKENS: the launches that take the PRE2
// instances.
enum {
    DECODE_THREADS = 128,
    TARGET_BLOCKS = 1024,
    PRE2_MIN_BLOCKS = 4,
    MIN_BLOCKS = 6, // the others, one head a block: as resident as before PRE2 (80 registers)
    PRE2_MAX_TOKENS = 4
};

static constexpr int pow2_at_least(int x) { return x <= 1 ? 1 : 2 * pow2_at_least((x + 1) / 2); }

template <typename T, int D, int NH> struct decode_shape {
    static constexpr int VEC = 16 / sizeof(T);                     // elements per 16-byte load
    static constexpr int CHUNKS = D / VEC;                          // 16-byte chunks per row
    static constexpr int TPK = pow2_at_least(CHUNKS) > 32 ? 32 : pow2_at_least(CHUNKS); // threads per key row
    static constexpr int CPT = (CHUNKS + TPK - 1) / TPK;            // chunks per thread
    static constexpr int KPB = DECODE_THREADS / TPK;                // row groups per block
    static constexpr int UNROLL = NH >= 8 || CPT > 1 ? 2 : 4;       // rows per group in flight
};

struct decode_args {
    const int32_t *positions, *token_seq, *block_tables, *token_index;
    // fused RoPE: raw k, v [T, kv_heads*d] of the step (NULL: unfused), the
    // step's (cos, sin) table [T][rotary_dim/2] and the slots to write
    const void *rk, *rv;
    const float2 *rope_table;
    const int32_t *slot_mapping;
    int rotary_dim, rope_neox;
    int32_t *early; // early mode (cuda_rope_fused.early): [q rows stored, mergers done]; NULL: off
    int32_t early_rows;
    int32_t *counters; // [tokens, kv_heads * head_chunks], zero between launches
    int32_t block_table_stride, block_size;
    int32_t block_shift; // log2(block_size) when a power of two, else -1
    int heads, kv_heads, group, head_chunks, num_partitions;
    int head_dim; // d: the row length in the cache, q and out (≤ the instance's D)
    int64_t token_offset;
    float scale;
};

// Keys per partition for a context of ctx keys cut into at most `parts`.
__host__ __device__ __forceinline__ int partition_length(int ctx, int parts) {
    int len = (ctx + parts - 1) / parts;
    len = (len + 15) / 16 * 16;
    return len < CUDA_DECODE_MIN_PART ? CUDA_DECODE_MIN_PART : len;
}

__device__ __forceinline__ int64_t step_token(const decode_args &a, int64_t local) {
    return a.token_index ? a.token_index[local] : local;
}

// A shift and a mask for the usual power-of-two block size: a division by
// a runtime value is ~20 dependent instructions ahead of the block-table load.
__device__ __forceinline__ int64_t cache_row(const decode_args &a, int seq, int p, int g) {
    const bool pow2 = a.block_shift >= 0;
    const int pb = pow2 ? p >> a.block_shift : p / a.block_size, po = pow2 ? p & (a.block_size - 1) : p % a.block_size;
    const int32_t block = a.block_tables[(int64_t)seq * a.block_table_stride + pb];
    return ((int64_t)block * a.block_size + po) * a.kv_heads + g;
}

#endif
