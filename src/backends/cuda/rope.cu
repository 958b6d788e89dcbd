// RoPE and the paged-KV write, fused: each block takes one token and a group
// of ROPE_HEADS_PER_BLOCK heads, rotates its query heads (into q_out) and key
// heads (straight into the cache) and copies its value heads into the cache.
// (One block per token left most SMs idle at decode batch sizes: 33 µs per
// layer for 64 tokens on an H100.) Rotation is fp32 with the HF pairing; the
// angle is (float)pos · inv_freq[i] rounded to fp32 as HF computes it, and
// its sine and cosine are taken in double (the build uses --use_fast_math,
// whose sinf/cosf lose accuracy for the angles of long contexts).
#include "backends/cuda/cuda_device.cuh"

enum { ROPE_THREADS = 128, ROPE_MAX_HALF = 256, ROPE_HEADS_PER_BLOCK = 4 };

// Rotates `heads` heads of x_in (row of heads*D) into x_out, pair by pair so
// in place is safe; dims ≥ rotary_dim pass through.
template <typename T>
__device__ void rope_row(T *x_out, const T *x_in, int heads, int D, int rotary_dim, int neox, const float *cs,
                         const float *sn) {
    const int half = rotary_dim / 2;
    for (int p = threadIdx.x; p < heads * half; p += blockDim.x) {
        const int h = p / half, i = p % half;
        const int d1 = neox ? i : 2 * i, d2 = neox ? i + half : 2 * i + 1;
        const float x1 = to_float<T>(x_in[h * D + d1]), x2 = to_float<T>(x_in[h * D + d2]);
        float o1, o2;
        rope_pair(x1, x2, cs[i], sn[i], o1, o2);
        x_out[h * D + d1] = from_float<T>(o1);
        x_out[h * D + d2] = from_float<T>(o2);
    }
    const int pass = D - rotary_dim;
    if (pass > 0 && x_out != x_in)
        for (int e = threadIdx.x; e < heads * pass; e += blockDim.x) {
            const int h = e / pass, d = rotary_dim + e % pass;
            x_out[h * D + d] = x_in[h * D + d];
        }
}

template <typename T>
__global__ void __launch_bounds__(ROPE_THREADS) rope_kv_write_kernel(
    T *q_out, const T *q, const T *k, const T *v, T *k_cache, T *v_cache, const int32_t *positions,
    const int32_t *slot_mapping, int heads, int kv_heads, int D, int rotary_dim, const float *inv_freq, int neox) {
    __shared__ float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    pdl_trigger();
    pdl_wait();
    const int64_t t = blockIdx.x;
    const int half = inv_freq ? rotary_dim / 2 : 0;
    const int32_t pos = positions[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) rope_cos_sin(pos, inv_freq[i], cs[i], sn[i]);
    __syncthreads();
    const int rdim = 2 * half;
    const int h0 = blockIdx.y * ROPE_HEADS_PER_BLOCK;
    const int64_t q_row = t * (int64_t)heads * D, kv_row = t * (int64_t)kv_heads * D;
    const int q_count = heads - h0 < ROPE_HEADS_PER_BLOCK ? heads - h0 : ROPE_HEADS_PER_BLOCK;
    if (q_count > 0)
        rope_row<T>(q_out + q_row + (int64_t)h0 * D, q + q_row + (int64_t)h0 * D, q_count, D, rdim, neox, cs, sn);
    const int32_t slot = slot_mapping[t];
    const int kv_count = kv_heads - h0 < ROPE_HEADS_PER_BLOCK ? kv_heads - h0 : ROPE_HEADS_PER_BLOCK;
    if (slot < 0 || kv_count <= 0) return; // a padding token, or no kv heads in this group
    const int64_t cache_row = (int64_t)slot * kv_heads * D + (int64_t)h0 * D;
    rope_row<T>(k_cache + cache_row, k + kv_row + (int64_t)h0 * D, kv_count, D, rdim, neox, cs, sn);
    const T *v_src = v + kv_row + (int64_t)h0 * D;
    for (int e = threadIdx.x; e < kv_count * D; e += blockDim.x) v_cache[cache_row + e] = v_src[e];
}

extern "C" cudaError_t cuda_rope_kv_write(void *q_out, const void *q, const void *k, const void *v, void *k_cache,
                                          void *v_cache, llmrt_dtype type, const cuda_attention_batch *batch,
                                          int32_t heads, int32_t kv_heads, int32_t head_dim, int32_t rotary_dim,
                                          const float *inv_freq, int neox_style, int pdl, cudaStream_t stream) {
    if (batch->num_tokens <= 0) return cudaSuccess;
    if (rotary_dim > head_dim || rotary_dim / 2 > ROPE_MAX_HALF || rotary_dim % 2) return cudaErrorInvalidValue;
    if (!inv_freq) rotary_dim = 0;
    DISPATCH_FLOAT_TYPES(type, T, {
        const int groups = ((heads > kv_heads ? heads : kv_heads) + ROPE_HEADS_PER_BLOCK - 1) / ROPE_HEADS_PER_BLOCK;
        launch_pdl(rope_kv_write_kernel<T>, dim3((unsigned)batch->num_tokens, (unsigned)groups), dim3(ROPE_THREADS),
            pdl, stream, (T *)q_out, (const T *)q, (const T *)k, (const T *)v, (T *)k_cache, (T *)v_cache, batch->positions,
            batch->slot_mapping, heads, kv_heads, head_dim, rotary_dim, inv_freq, neox_style);
    });
    return cudaGetLastError();
}

// The step's rotation table for the fused decode attention: table[t][i] =
// (cos, sin) of positions[t] · inv_freq[i], i < half. Computed once per
// step (and inv_freq), read by every layer's attention.
__global__ void rope_table_kernel(float2 *table, const int32_t *positions, const float *inv_freq, int half,
                                  int64_t count) {
    pdl_trigger();
    pdl_wait();
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += (int64_t)gridDim.x * blockDim.x) {
        float c, s;
        rope_cos_sin(positions[e / half], inv_freq[e % half], c, s);
        table[e] = make_float2(c, s);
    }
}

extern "C" cudaError_t cuda_rope_table(float *table, const int32_t *positions, int32_t num_tokens,
                                       const float *inv_freq, int32_t rotary_dim, int pdl, cudaStream_t stream) {
    const int half = rotary_dim / 2;
    if (num_tokens <= 0 || half <= 0) return cudaSuccess;
    if (!inv_freq || rotary_dim % 2 || half > ROPE_MAX_HALF) return cudaErrorInvalidValue;
    const int64_t count = (int64_t)num_tokens * half;
    launch_pdl(rope_table_kernel, dim3(grid_for(count, ROPE_THREADS)), dim3(ROPE_THREADS), pdl, stream, (float2 *)table,
               positions, inv_freq, half, count);
    return cudaGetLastError();
}
