// The 8-bit KV cache's append (--kv-cache fp8|int8): RoPE on q and k as
// rope.cu does, then each (token, kv head) row of the rotated k and of v
// quantized with scale max|row| / QMAX into codes at the token's slot. The
// CPU twin is cpu_kv8_cache_write (backends/cpu/cpu_kernels_kv8.c): the
// same scale and codes for the same f32 row (divisions rounded to nearest
// despite the build's --use_fast_math, so the GPU test can compare codes).
//
// One block per (token, head): a block of head h rotates query head h and,
// for h < kv_heads, writes kv head h; the row is reduced once in shared
// memory. Append is one token's worth of bytes per layer: its cost is the
// launch, not the arithmetic.
#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/kv_cache8.cuh"

enum { KV8_THREADS = 128, KV8_MAX_HALF = 128 };

// Quantizes the row x[0..D) (shared) into codes / *scale_out.
template <int KIND>
__device__ void quantize_row(uint8_t *codes, float *scale_out, const float *x, int D, float *scratch) {
    float m = 0.0f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) m = fmaxf(m, fabsf(x[d]));
    m = block_max(m, scratch);
    float s = __fdiv_rn(m, kv8_qmax<KIND>());
    if (!(s > 0.0f) || isinf(s)) s = 1.0f; // an all-zero (or non-finite) row, as llmrt_q8_quantize_activation
    for (int d = threadIdx.x; d < D; d += blockDim.x) codes[d] = kv8_encode<KIND>(__fdiv_rn(x[d], s));
    if (threadIdx.x == 0) *scale_out = s;
}

template <typename T, int KIND>
__global__ void __launch_bounds__(KV8_THREADS) rope_kv8_write_kernel(
    T *q_out, const T *q, const T *k, const T *v, cuda_kv8_layer cache, const int32_t *positions,
    const int32_t *slot_mapping, int heads, int kv_heads, int D, int rotary_dim, const float *inv_freq, int neox) {
    __shared__ float cs[KV8_MAX_HALF], sn[KV8_MAX_HALF], row_s[CUDA_MAX_HEAD_DIM], scratch[32];
    const int64_t t = blockIdx.x;
    const int h = blockIdx.y, half = inv_freq ? rotary_dim / 2 : 0;
    const int32_t pos = positions[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) rope_cos_sin(pos, inv_freq[i], cs[i], sn[i]);
    __syncthreads();
    // row_s = x rotated (dims past rotary_dim as they are)
    auto rotate_into_shared = [&](const T *x) {
        for (int d = threadIdx.x; d < D; d += blockDim.x) row_s[d] = to_float<T>(x[d]);
        __syncthreads();
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            const int d1 = neox ? i : 2 * i, d2 = neox ? i + half : 2 * i + 1;
            float o1, o2;
            rope_pair(row_s[d1], row_s[d2], cs[i], sn[i], o1, o2);
            row_s[d1] = o1;
            row_s[d2] = o2;
        }
        __syncthreads();
    };
    if (h < heads) {
        rotate_into_shared(q + (t * heads + h) * D);
        T *dst = q_out + (t * heads + h) * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) dst[d] = from_float<T>(row_s[d]);
        __syncthreads();
    }
    const int32_t slot = slot_mapping[t];
    if (h >= kv_heads || slot < 0) return; // a query head only, or a padding token
    const int64_t row = (int64_t)slot * kv_heads + h; // (slot, kv head)
    rotate_into_shared(k + (t * kv_heads + h) * D);
    quantize_row<KIND>((uint8_t *)cache.k_codes + row * D, cache.k_scales + row, row_s, D, scratch);
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) row_s[d] = to_float<T>(v[(t * kv_heads + h) * D + d]);
    __syncthreads();
    quantize_row<KIND>((uint8_t *)cache.v_codes + row * D, cache.v_scales + row, row_s, D, scratch);
}

template <typename T>
static cudaError_t launch_write(void *q_out, const void *q, const void *k, const void *v, const cuda_kv8_layer *cache,
                                const cuda_attention_batch *batch, int32_t heads, int32_t kv_heads, int32_t head_dim,
                                int32_t rotary_dim, const float *inv_freq, int neox, cudaStream_t stream) {
    const dim3 grid((unsigned)batch->num_tokens, (unsigned)(heads > kv_heads ? heads : kv_heads));
    if (cache->kind == CUDA_KV8_FP8)
        rope_kv8_write_kernel<T, KV_FP8><<<grid, KV8_THREADS, 0, stream>>>(
            (T *)q_out, (const T *)q, (const T *)k, (const T *)v, *cache, batch->positions, batch->slot_mapping, heads,
            kv_heads, head_dim, rotary_dim, inv_freq, neox);
    else
        rope_kv8_write_kernel<T, KV_INT8><<<grid, KV8_THREADS, 0, stream>>>(
            (T *)q_out, (const T *)q, (const T *)k, (const T *)v, *cache, batch->positions, batch->slot_mapping, heads,
            kv_heads, head_dim, rotary_dim, inv_freq, neox);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_rope_kv8_write(void *q_out, const void *q, const void *k, const void *v,
                                           const cuda_kv8_layer *cache, llmrt_dtype type,
                                           const cuda_attention_batch *batch, int32_t heads, int32_t kv_heads,
                                           int32_t head_dim, int32_t rotary_dim, const float *inv_freq, int neox_style,
                                           cudaStream_t stream) {
    if (batch->num_tokens <= 0) return cudaSuccess;
    if (!inv_freq) rotary_dim = 0;
    if (rotary_dim > head_dim || rotary_dim / 2 > KV8_MAX_HALF || rotary_dim % 2 || head_dim < 1 ||
        head_dim > CUDA_MAX_HEAD_DIM || kv_heads <= 0 || heads < kv_heads ||
        (cache->kind != CUDA_KV8_FP8 && cache->kind != CUDA_KV8_INT8))
        return cudaErrorInvalidValue;
    DISPATCH_FLOAT_TYPES(type, T, {
        return launch_write<T>(q_out, q, k, v, cache, batch, heads, kv_heads, head_dim, rotary_dim, inv_freq,
                               neox_style, stream);
    });
    return cudaErrorInvalidValue;
}
