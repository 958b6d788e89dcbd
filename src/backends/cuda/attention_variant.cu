// Attention with the variants of llmrt_attention_params over the paged KV
// cache: a sliding window (keys pos − window < j ≤ pos), logit soft-capping
// (cap·tanh(s/cap), Gemma 2) and ALiBi (s += slope_h·(j − pos), MPT, BLOOM).
// The CPU twin is the pair kernel of cpu_kernels_attention.c (reference test:
// tests/unit/test_attention_variants.c; tests/cuda compares the two).
//
// One block per (token, query head), any step mix: the block walks only its
// window's keys in tiles of VAR_TILE with the online softmax, a warp per key
// for the scores (lanes split the head, so K rows load coalesced) and a
// thread per head dimension for P·V. The plain kernels (attention_decode.cu,
// attention_prefill.cu) stay free of per-score hooks; a window keeps this
// one's reads at O(window) a token however long the context.
//
// It also serves every attention layer of an engine with an 8-bit KV cache
// (cuda_attention_kv8, window 0 for plain layers): K and V are read as
// codes, each key's element decode(code) · its row's scale in f32, the same
// value the CPU kernels compute from the same cache.
#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/kv_cache8.cuh"

enum { VAR_THREADS = 128, VAR_WARPS = VAR_THREADS / 32, VAR_TILE = 64 };

// The device twin of llmrt_alibi_slope (src/graph/graph.h).
__device__ __forceinline__ float alibi_slope(int h, int n, float max_bias) {
    int p = 1;
    while (2 * p <= n) p *= 2;
    if (h < p) return exp2f(-max_bias * (float)(h + 1) / (float)p);
    return exp2f(-max_bias * (float)(2 * (h - p) + 1) / (float)(2 * p));
}

// tanh from one exponential: the build's --use_fast_math may turn tanhf into
// the ~2^-11 hardware approximation, which soft-capped scores would carry
// straight into the softmax.
__device__ __forceinline__ float tanh_from_exp(float x) {
    const float e = expf(-2.0f * fabsf(x));
    return copysignf((1.0f - e) / (1.0f + e), x);
}

struct variant_args {
    const int32_t *positions, *token_seq, *block_tables;
    int32_t block_table_stride, block_size;
    int heads, kv_heads, head_dim;
    float scale;
    int32_t window;
    float softcap, alibi_max_bias;
    int alibi_first_head, alibi_total_heads; // a tensor-parallel rank's heads of all the heads
    const float *k_scales, *v_scales; // 8-bit caches: per (slot, kv head)
    // split-K (8-bit decode steps): parts > 1 cuts each token's keys into
    // that many ranges of whole tiles, one block each (blockIdx.z), which
    // write (max, sum, unnormalised output) to partials[t][h][part][D + 2]
    // for variant_merge_kernel; 1: the block writes out itself
    int32_t parts;
    float *partials;
};

// The cache's elements: T (KIND KV_PLAIN) or one-byte codes.
template <typename T, int KIND> struct kv_element { typedef T type; };
template <typename T> struct kv_element<T, KV_FP8> { typedef uint8_t type; };
template <typename T> struct kv_element<T, KV_INT8> { typedef uint8_t type; };

template <typename T, int KIND>
__device__ __forceinline__ float kv_value(const typename kv_element<T, KIND>::type *p, float scale) {
    if constexpr (KIND == KV_PLAIN) return to_float<T>(*p);
    else return __fmul_rn(kv8_decode<KIND>(*p), scale);
}

template <typename T, int KIND>
__global__ void __launch_bounds__(VAR_THREADS) attention_variant_kernel(T *out, const T *q,
                                                                        const typename kv_element<T, KIND>::type *k_cache,
                                                                        const typename kv_element<T, KIND>::type *v_cache,
                                                                        variant_args a) {
    typedef typename kv_element<T, KIND>::type C;
    __shared__ float q_s[CUDA_MAX_HEAD_DIM], acc_s[CUDA_MAX_HEAD_DIM], p_s[VAR_TILE], red_s[VAR_WARPS];
    __shared__ float k_scale_s[VAR_TILE], v_scale_s[VAR_TILE];
    __shared__ int64_t row_s[VAR_TILE];
    const int64_t t = blockIdx.x;
    const int h = blockIdx.y, D = a.head_dim, g = h / (a.heads / a.kv_heads);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const T *qrow = q + (t * a.heads + h) * D;
    for (int d = threadIdx.x; d < D; d += VAR_THREADS) {
        q_s[d] = to_float<T>(qrow[d]);
        acc_s[d] = 0.0f;
    }
    const int pos = a.positions[t], seq = a.token_seq[t];
    const int first = a.window > 0 && pos + 1 > a.window ? pos + 1 - a.window : 0;
    int lo = first, hi = pos + 1; // keys [lo, hi)
    if (a.parts > 1) {
        const int tiles = (hi - lo + VAR_TILE - 1) / VAR_TILE, per = (tiles + a.parts - 1) / a.parts * VAR_TILE;
        lo = first + (int)blockIdx.z * per;
        hi = lo + per < hi ? lo + per : hi; // lo ≥ hi: an empty part
    }
    const float slope =
        a.alibi_max_bias > 0.0f ? alibi_slope(h + a.alibi_first_head, a.alibi_total_heads, a.alibi_max_bias) : 0.0f;
    const int32_t *table = a.block_tables + (int64_t)seq * a.block_table_stride;
    float running_max = -INFINITY, normaliser = 0.0f;
    __syncthreads();
    for (int p0 = lo; p0 < hi; p0 += VAR_TILE) {
        const int n = hi - p0 < VAR_TILE ? hi - p0 : VAR_TILE;
        for (int j = threadIdx.x; j < n; j += VAR_THREADS) {
            const int p = p0 + j;
            const int64_t block = table[p / a.block_size];
            const int64_t slot_head = (block * a.block_size + p % a.block_size) * a.kv_heads + g;
            row_s[j] = slot_head * D;
            if constexpr (KIND != KV_PLAIN) {
                k_scale_s[j] = a.k_scales[slot_head];
                v_scale_s[j] = a.v_scales[slot_head];
            }
        }
        __syncthreads();
        // scores: a warp per key
        for (int j = warp; j < n; j += VAR_WARPS) {
            const C *krow = k_cache + row_s[j];
            const float ks = KIND == KV_PLAIN ? 1.0f : k_scale_s[j];
            float dot = 0.0f;
            for (int d = lane; d < D; d += 32) dot += q_s[d] * kv_value<T, KIND>(krow + d, ks);
            dot = warp_sum(dot);
            if (lane == 0) {
                float s = dot * a.scale;
                if (a.softcap > 0.0f) s = a.softcap * tanh_from_exp(s / a.softcap);
                p_s[j] = s + slope * (float)(p0 + j - pos);
            }
        }
        __syncthreads();
        // the tile's max, then its probabilities and their sum
        float m = -INFINITY;
        for (int j = threadIdx.x; j < n; j += VAR_THREADS) m = fmaxf(m, p_s[j]);
        m = warp_max(m);
        if (lane == 0) red_s[warp] = m;
        __syncthreads();
        m = red_s[0];
        for (int w = 1; w < VAR_WARPS; w++) m = fmaxf(m, red_s[w]);
        const float new_max = fmaxf(running_max, m);
        const float alpha = expf(running_max - new_max); // 0 on the first tile
        __syncthreads(); // red_s is reused below
        float sum = 0.0f;
        for (int j = threadIdx.x; j < n; j += VAR_THREADS) {
            const float e = expf(p_s[j] - new_max);
            p_s[j] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        if (lane == 0) red_s[warp] = sum;
        __syncthreads();
        sum = 0.0f;
        for (int w = 0; w < VAR_WARPS; w++) sum += red_s[w];
        normaliser = normaliser * alpha + sum;
        running_max = new_max;
        // P·V: a thread per head dimension
        for (int d = threadIdx.x; d < D; d += VAR_THREADS) {
            float o = acc_s[d] * alpha;
            for (int j = 0; j < n; j++)
                o += p_s[j] * kv_value<T, KIND>(v_cache + row_s[j] + d, KIND == KV_PLAIN ? 1.0f : v_scale_s[j]);
            acc_s[d] = o;
        }
        __syncthreads(); // p_s, row_s and red_s are rewritten by the next tile
    }
    if (a.parts > 1) {
        float *part = a.partials + ((t * a.heads + h) * a.parts + blockIdx.z) * (int64_t)(D + 2);
        if (threadIdx.x == 0) part[0] = running_max, part[1] = normaliser;
        for (int d = threadIdx.x; d < D; d += VAR_THREADS) part[2 + d] = acc_s[d];
        return;
    }
    const float inv = normaliser > 0.0f ? 1.0f / normaliser : 0.0f;
    T *orow = out + (t * a.heads + h) * D;
    for (int d = threadIdx.x; d < D; d += VAR_THREADS) orow[d] = from_float<T>(acc_s[d] * inv);
}

// out[t, h] from the parts of attention_variant_kernel: each rescaled by
// exp(its max − the largest), summed, divided by the rescaled sums. An
// empty part (max −inf, sum 0) weighs 0.
template <typename T>
__global__ void __launch_bounds__(VAR_THREADS) variant_merge_kernel(T *out, variant_args a) {
    const int64_t t = blockIdx.x;
    const int h = blockIdx.y, D = a.head_dim;
    const float *parts = a.partials + (t * a.heads + h) * a.parts * (int64_t)(D + 2);
    float m = -INFINITY;
    for (int p = 0; p < a.parts; p++) m = fmaxf(m, parts[p * (D + 2)]);
    float l = 0.0f;
    for (int p = 0; p < a.parts; p++)
        if (parts[p * (D + 2) + 1] > 0.0f) l += parts[p * (D + 2) + 1] * expf(parts[p * (D + 2)] - m);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    T *orow = out + (t * a.heads + h) * D;
    for (int d = threadIdx.x; d < D; d += VAR_THREADS) {
        float o = 0.0f;
        for (int p = 0; p < a.parts; p++)
            if (parts[p * (D + 2) + 1] > 0.0f) o += parts[p * (D + 2) + 2 + d] * expf(parts[p * (D + 2)] - m);
        orow[d] = from_float<T>(o * inv);
    }
}

template <typename T, int KIND>
static cudaError_t launch_variant(void *out, const void *q, const void *k_cache, const void *v_cache,
                                  const variant_args &a, int32_t tokens, cudaStream_t stream) {
    typedef typename kv_element<T, KIND>::type C;
    const int parts = a.parts > 1 ? a.parts : 1;
    dim3 grid((unsigned)tokens, (unsigned)a.heads, (unsigned)parts);
    attention_variant_kernel<T, KIND><<<grid, VAR_THREADS, 0, stream>>>((T *)out, (const T *)q, (const C *)k_cache,
                                                                        (const C *)v_cache, a);
    if (parts > 1)
        variant_merge_kernel<T><<<dim3((unsigned)tokens, (unsigned)a.heads), VAR_THREADS, 0, stream>>>((T *)out, a);
    return cudaGetLastError();
}

template <int KIND>
static cudaError_t dispatch_variant(void *out, const void *q, const void *k_cache, const void *v_cache,
                                    llmrt_dtype type, const variant_args &a, int32_t tokens, cudaStream_t stream) {
    switch (type) {
    case LLMRT_DTYPE_F16: return launch_variant<__half, KIND>(out, q, k_cache, v_cache, a, tokens, stream);
    case LLMRT_DTYPE_BF16: return launch_variant<__nv_bfloat16, KIND>(out, q, k_cache, v_cache, a, tokens, stream);
    case LLMRT_DTYPE_F32: return launch_variant<float, KIND>(out, q, k_cache, v_cache, a, tokens, stream);
    default: return cudaErrorInvalidValue;
    }
}

static variant_args make_args(const cuda_attention_batch *batch, int32_t heads, int32_t kv_heads, int32_t head_dim,
                              float scale, const cuda_attention_variant_params *variant) {
    variant_args a;
    a.positions = batch->positions;
    a.token_seq = batch->token_seq;
    a.block_tables = batch->block_tables;
    a.block_table_stride = batch->block_table_stride;
    a.block_size = batch->block_size;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.head_dim = head_dim;
    a.scale = scale;
    a.window = variant->sliding_window;
    a.softcap = variant->logit_softcap;
    a.alibi_max_bias = variant->alibi_max_bias;
    a.alibi_first_head = variant->alibi_first_head;
    a.alibi_total_heads = variant->alibi_total_heads > 0 ? variant->alibi_total_heads : heads;
    a.k_scales = a.v_scales = nullptr;
    a.parts = 1;
    a.partials = nullptr;
    return a;
}

static bool shape_ok(const cuda_attention_batch *batch, int32_t heads, int32_t kv_heads, int32_t head_dim) {
    return kv_heads > 0 && heads % kv_heads == 0 && head_dim >= 1 && head_dim <= CUDA_MAX_HEAD_DIM &&
           !batch->token_index;
}

extern "C" cudaError_t cuda_attention_variant(void *out, const void *q, const void *k_cache, const void *v_cache,
                                              llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads,
                                              int32_t kv_heads, int32_t head_dim, float scale,
                                              const cuda_attention_variant_params *variant, cudaStream_t stream) {
    if (batch->num_tokens <= 0) return cudaSuccess;
    if (!shape_ok(batch, heads, kv_heads, head_dim)) return cudaErrorInvalidValue;
    const variant_args a = make_args(batch, heads, kv_heads, head_dim, scale, variant);
    return dispatch_variant<KV_PLAIN>(out, q, k_cache, v_cache, type, a, batch->num_tokens, stream);
}

extern "C" cudaError_t cuda_attention_kv8(void *out, const void *q, const cuda_kv8_layer *cache, llmrt_dtype type,
                                          const cuda_attention_batch *batch, int32_t heads, int32_t kv_heads,
                                          int32_t head_dim, float scale, const cuda_attention_variant_params *variant,
                                          int32_t partitions, float *workspace, cudaStream_t stream) {
    if (batch->num_tokens <= 0) return cudaSuccess;
    if (!shape_ok(batch, heads, kv_heads, head_dim) || partitions < 1 || partitions > 65535 ||
        (partitions > 1 && !workspace))
        return cudaErrorInvalidValue;
    variant_args a = make_args(batch, heads, kv_heads, head_dim, scale, variant);
    a.k_scales = cache->k_scales;
    a.v_scales = cache->v_scales;
    a.parts = partitions;
    a.partials = workspace;
    if (cache->kind == CUDA_KV8_FP8)
        return dispatch_variant<KV_FP8>(out, q, cache->k_codes, cache->v_codes, type, a, batch->num_tokens, stream);
    if (cache->kind == CUDA_KV8_INT8)
        return dispatch_variant<KV_INT8>(out, q, cache->k_codes, cache->v_codes, type, a, batch->num_tokens, stream);
    return cudaErrorInvalidValue;
}
