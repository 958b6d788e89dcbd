// Decode attention over the paged KV cache, split-K across the sequence
// (flash-decoding): block (partition p, kv head g, token t) takes keys
// [p·PART, (p+1)·PART) ∩ [0, pos_t] of kv head g and serves up to
// DECODE_HEADS query heads of g at once, so each key and value row is read
// from memory once for its whole GQA group. A second kernel merges the
// partitions' (max, sum, unnormalised output) triples, for the tokens whose
// context spans more than one partition. Any dtype, any token
// mix; prefill uses the tensor-core kernel where it applies.
//
// Head sizes: the common ones (32/64/80/96/128/256) have exact instances
// with 16-byte loads. Any other head_dim d in 1..256 runs the instance of
// the next padded size D ∈ {32, 64, 128, 256} with element-wise loads
// masked at d (rows of d elements are not 16-byte aligned in general); the
// padded lanes hold zeros, so they add nothing to the dot products.
#include "backends/cuda/cuda_device.cuh"

enum { DECODE_THREADS = 128, DECODE_WARPS = DECODE_THREADS / 32, DECODE_HEADS = 8, DECODE_UNROLL = 4 };

static constexpr int pow2_at_least(int x) { return x <= 1 ? 1 : 2 * pow2_at_least((x + 1) / 2); }

template <typename T, int D> struct decode_shape {
    static constexpr int VEC = 16 / sizeof(T);                     // elements per 16-byte load
    static constexpr int CHUNKS = D / VEC;                          // 16-byte chunks per row
    static constexpr int TPK = pow2_at_least(CHUNKS) > 32 ? 32 : pow2_at_least(CHUNKS); // threads per key row
    static constexpr int CPT = (CHUNKS + TPK - 1) / TPK;            // chunks per thread
    static constexpr int KPB = DECODE_THREADS / TPK;                // keys per block pass
};

struct decode_args {
    const int32_t *positions, *token_seq, *block_tables;
    int32_t block_table_stride, block_size;
    int heads, kv_heads, group, head_chunks, num_partitions;
    int head_dim; // d: the row length in the cache, q and out (≤ the instance's D)
    int64_t token_offset;
    float scale;
};

__device__ __forceinline__ int64_t cache_row(const decode_args &a, int seq, int p, int g) {
    const int32_t block = a.block_tables[(int64_t)seq * a.block_table_stride + p / a.block_size];
    return ((int64_t)block * a.block_size + p % a.block_size) * a.kv_heads + g;
}

// 16 bytes (VEC elements) of a row starting at element `col`: one vector
// load when the instance is exact, else element-wise, zero past d.
template <typename T, bool EXACT>
__device__ __forceinline__ uint4 load_row_chunk(const T *row, int col, int d) {
    if (EXACT) return *reinterpret_cast<const uint4 *>(row + col);
    uint4 raw = make_uint4(0, 0, 0, 0);
    T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
    for (int i = 0; i < (int)(16 / sizeof(T)); i++)
        if (col + i < d) e[i] = row[col + i];
    return raw;
}

template <typename T, int D, bool EXACT>
__global__ void __launch_bounds__(DECODE_THREADS) attention_decode_kernel(T *out, const T *q, const T *k_cache,
                                                                          const T *v_cache, float *workspace,
                                                                          decode_args a) {
    using S = decode_shape<T, D>;
    constexpr int VEC = S::VEC, TPK = S::TPK, CPT = S::CPT, KPB = S::KPB, CHUNKS = S::CHUNKS;
    __shared__ __align__(16) float q_s[DECODE_HEADS][D];
    __shared__ float p_s[DECODE_HEADS][CUDA_DECODE_PARTITION];
    __shared__ __align__(16) float red[KPB][D];
    __shared__ float m_s[DECODE_HEADS], l_s[DECODE_HEADS];

    const int64_t t = a.token_offset + blockIdx.z;
    const int g = blockIdx.y / a.head_chunks, chunk = blockIdx.y % a.head_chunks;
    const int h0 = g * a.group + chunk * DECODE_HEADS;
    const int nh = min(DECODE_HEADS, a.group - chunk * DECODE_HEADS);
    const int ctx = a.positions[t] + 1;
    const int start = blockIdx.x * CUDA_DECODE_PARTITION;
    if (start >= ctx) return; // nothing here; the merge reads only live partitions
    const int nkeys = min(CUDA_DECODE_PARTITION, ctx - start);
    const int seq = a.token_seq[t];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int sub = threadIdx.x % TPK, kg = threadIdx.x / TPK;
    const int d = EXACT ? D : a.head_dim;

    for (int e = threadIdx.x; e < nh * D; e += DECODE_THREADS) {
        const int hh = e / D, c = e % D;
        q_s[hh][c] = c < d ? to_float<T>(q[(t * a.heads + h0 + hh) * d + c]) * a.scale : 0.0f;
    }
    __syncthreads();

    // Scores: TPK threads per key row, KPB rows per pass, DECODE_UNROLL
    // passes' loads issued before any is used.
    for (int j0 = 0; j0 < nkeys; j0 += KPB * DECODE_UNROLL) {
        uint4 kv[DECODE_UNROLL][CPT];
#pragma unroll
        for (int u = 0; u < DECODE_UNROLL; u++) {
            const int j = j0 + u * KPB + kg;
            const T *row = j < nkeys ? k_cache + cache_row(a, seq, start + j, g) * d : nullptr;
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                const int chunk_idx = sub + c * TPK;
                kv[u][c] = (row && chunk_idx < CHUNKS) ? load_row_chunk<T, EXACT>(row, chunk_idx * VEC, d)
                                                        : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < DECODE_UNROLL; u++) {
            const int j = j0 + u * KPB + kg;
            float dot[DECODE_HEADS];
#pragma unroll
            for (int h = 0; h < DECODE_HEADS; h++) dot[h] = 0.0f;
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                const int chunk_idx = sub + c * TPK;
                if (chunk_idx >= CHUNKS) continue;
                const T *e = reinterpret_cast<const T *>(&kv[u][c]);
#pragma unroll
                for (int h = 0; h < DECODE_HEADS; h++) {
                    if (h >= nh) break;
#pragma unroll
                    for (int i = 0; i < VEC; i++) dot[h] = fmaf(q_s[h][chunk_idx * VEC + i], to_float<T>(e[i]), dot[h]);
                }
            }
#pragma unroll
            for (int h = 0; h < DECODE_HEADS; h++) {
#pragma unroll
                for (int o = TPK / 2; o > 0; o >>= 1) dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], o);
            }
            if (sub == 0 && j < nkeys)
#pragma unroll
                for (int h = 0; h < DECODE_HEADS; h++)
                    if (h < nh) p_s[h][j] = dot[h];
        }
    }
    __syncthreads();

    // Softmax numerators per head: one warp per head.
    for (int h = warp; h < nh; h += DECODE_WARPS) {
        float m = -INFINITY;
        for (int j = lane; j < nkeys; j += 32) m = fmaxf(m, p_s[h][j]);
        m = warp_max(m);
        float l = 0.0f;
        for (int j = lane; j < nkeys; j += 32) {
            const float p = __expf(p_s[h][j] - m);
            p_s[h][j] = p;
            l += p;
        }
        l = warp_sum(l);
        if (lane == 0) {
            m_s[h] = m;
            l_s[h] = l;
        }
    }
    __syncthreads();

    // Values: the same row split as for keys; each key group accumulates
    // its rows, then the groups are summed through shared memory.
    float acc[DECODE_HEADS][CPT][VEC];
#pragma unroll
    for (int h = 0; h < DECODE_HEADS; h++)
#pragma unroll
        for (int c = 0; c < CPT; c++)
#pragma unroll
            for (int i = 0; i < VEC; i++) acc[h][c][i] = 0.0f;
    for (int j0 = 0; j0 < nkeys; j0 += KPB * DECODE_UNROLL) {
        uint4 vv[DECODE_UNROLL][CPT];
#pragma unroll
        for (int u = 0; u < DECODE_UNROLL; u++) {
            const int j = j0 + u * KPB + kg;
            const T *row = j < nkeys ? v_cache + cache_row(a, seq, start + j, g) * d : nullptr;
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                const int chunk_idx = sub + c * TPK;
                vv[u][c] = (row && chunk_idx < CHUNKS) ? load_row_chunk<T, EXACT>(row, chunk_idx * VEC, d)
                                                        : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < DECODE_UNROLL; u++) {
            const int j = j0 + u * KPB + kg;
            if (j >= nkeys) break;
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                const T *e = reinterpret_cast<const T *>(&vv[u][c]);
#pragma unroll
                for (int h = 0; h < DECODE_HEADS; h++) {
                    if (h >= nh) break;
                    const float p = p_s[h][j];
#pragma unroll
                    for (int i = 0; i < VEC; i++) acc[h][c][i] = fmaf(p, to_float<T>(e[i]), acc[h][c][i]);
                }
            }
        }
    }

    const int part = blockIdx.x;
    // One live partition (the context fits in one, whatever the grid was
    // sized for: a graph replays with max_seq_len's partitions): write the
    // output here; the merge kernel skips such tokens.
    const bool single = ctx <= CUDA_DECODE_PARTITION;
    // Unrolled so acc[h] keeps compile-time indices (registers, not local
    // memory); nh is uniform across the block, so the barriers are safe.
#pragma unroll
    for (int h = 0; h < DECODE_HEADS; h++) {
        if (h >= nh) continue;
        __syncthreads();
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int chunk_idx = sub + c * TPK;
            if (chunk_idx < CHUNKS)
#pragma unroll
                for (int i = 0; i < VEC; i++) red[kg][chunk_idx * VEC + i] = acc[h][c][i];
        }
        __syncthreads();
        const int64_t head = (int64_t)(blockIdx.z) * a.heads + h0 + h; // token relative to the chunk
        for (int c = threadIdx.x; c < d; c += DECODE_THREADS) {
            float s = 0.0f;
#pragma unroll
            for (int r = 0; r < KPB; r++) s += red[r][c];
            if (single) {
                out[(t * a.heads + h0 + h) * d + c] = from_float<T>(s / l_s[h]);
            } else {
                workspace[(head * a.num_partitions + part) * d + c] = s;
            }
        }
        if (!single && threadIdx.x == 0) {
            float *ml = workspace + (int64_t)gridDim.z * a.heads * a.num_partitions * d;
            ml[(head * a.num_partitions + part) * 2 + 0] = m_s[h];
            ml[(head * a.num_partitions + part) * 2 + 1] = l_s[h];
        }
    }
}

// Merges the live partitions of (token, head): out = Σ e^{m_p−M} acc_p / Σ e^{m_p−M} l_p.
template <typename T>
__global__ void attention_decode_merge_kernel(T *out, const float *workspace, decode_args a, int D) {
    const int64_t tl = blockIdx.x, t = a.token_offset + tl;
    const int h = blockIdx.y;
    const int nparts = (a.positions[t] + CUDA_DECODE_PARTITION) / CUDA_DECODE_PARTITION;
    if (nparts <= 1) return; // written by the attention kernel itself
    const int64_t head = tl * a.heads + h;
    const float *ml = workspace + (int64_t)gridDim.x * a.heads * a.num_partitions * D;
    float M = -INFINITY;
    for (int p = 0; p < nparts; p++) M = fmaxf(M, ml[(head * a.num_partitions + p) * 2]);
    float L = 0.0f;
    for (int p = 0; p < nparts; p++) {
        const float *e = ml + (head * a.num_partitions + p) * 2;
        L += __expf(e[0] - M) * e[1];
    }
    const float inv = 1.0f / L;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float s = 0.0f;
        for (int p = 0; p < nparts; p++)
            s += __expf(ml[(head * a.num_partitions + p) * 2] - M) * workspace[(head * a.num_partitions + p) * D + d];
        out[(t * a.heads + h) * D + d] = from_float<T>(s * inv);
    }
}

extern "C" int cuda_attention_head_dim_supported(int32_t head_dim) {
    return head_dim >= 1 && head_dim <= CUDA_MAX_HEAD_DIM;
}

extern "C" size_t cuda_decode_workspace_bytes(int64_t tokens, int32_t heads, int32_t head_dim,
                                              int32_t max_partitions) {
    return (size_t)tokens * heads * max_partitions * (head_dim + 2) * sizeof(float);
}

template <typename T, int D, bool EXACT>
static cudaError_t launch_decode(T *out, const T *q, const T *kc, const T *vc, float *ws, decode_args a,
                                 int64_t tokens, cudaStream_t stream) {
    dim3 grid((unsigned)a.num_partitions, (unsigned)(a.kv_heads * a.head_chunks), (unsigned)tokens);
    attention_decode_kernel<T, D, EXACT><<<grid, DECODE_THREADS, 0, stream>>>(out, q, kc, vc, ws, a);
    if (a.num_partitions > 1)
        attention_decode_merge_kernel<T><<<dim3((unsigned)tokens, (unsigned)a.heads), 128, 0, stream>>>(
            out, ws, a, a.head_dim);
    return cudaGetLastError();
}

// The exact instance for the common head sizes, else the padded generic one.
template <typename T>
static cudaError_t dispatch_decode(T *o, const T *q, const T *kc, const T *vc, float *ws, decode_args a, int64_t n,
                                   cudaStream_t stream) {
    switch (a.head_dim) {
    case 32: return launch_decode<T, 32, true>(o, q, kc, vc, ws, a, n, stream);
    case 64: return launch_decode<T, 64, true>(o, q, kc, vc, ws, a, n, stream);
    case 80: return launch_decode<T, 80, true>(o, q, kc, vc, ws, a, n, stream);
    case 96: return launch_decode<T, 96, true>(o, q, kc, vc, ws, a, n, stream);
    case 128: return launch_decode<T, 128, true>(o, q, kc, vc, ws, a, n, stream);
    case 256: return launch_decode<T, 256, true>(o, q, kc, vc, ws, a, n, stream);
    default: break;
    }
    if (a.head_dim <= 32) return launch_decode<T, 32, false>(o, q, kc, vc, ws, a, n, stream);
    if (a.head_dim <= 64) return launch_decode<T, 64, false>(o, q, kc, vc, ws, a, n, stream);
    if (a.head_dim <= 128) return launch_decode<T, 128, false>(o, q, kc, vc, ws, a, n, stream);
    return launch_decode<T, 256, false>(o, q, kc, vc, ws, a, n, stream);
}

extern "C" cudaError_t cuda_attention_decode(void *out, const void *q, const void *k_cache, const void *v_cache,
                                             llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads,
                                             int32_t kv_heads, int32_t head_dim, float scale,
                                             int32_t max_partitions, void *workspace, cudaStream_t stream) {
    if (batch->num_tokens <= 0) return cudaSuccess;
    if (kv_heads <= 0 || heads % kv_heads || max_partitions < 1 || !cuda_attention_head_dim_supported(head_dim))
        return cudaErrorInvalidValue;
    decode_args a;
    a.positions = batch->positions;
    a.token_seq = batch->token_seq;
    a.block_tables = batch->block_tables;
    a.block_table_stride = batch->block_table_stride;
    a.block_size = batch->block_size;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.group = heads / kv_heads;
    a.head_chunks = (a.group + DECODE_HEADS - 1) / DECODE_HEADS;
    a.num_partitions = max_partitions;
    a.scale = scale;
    a.head_dim = head_dim;
    if ((int64_t)kv_heads * a.head_chunks > 65535) return cudaErrorInvalidValue;
    // The workspace holds `batch->num_tokens` tokens' partials only when the
    // caller sized it so; the backend sizes it for its largest decode step
    // and passes prefill-sized batches through the tensor-core kernel.
    const int64_t per_launch = 65535;
    for (int64_t t0 = 0; t0 < batch->num_tokens; t0 += per_launch) {
        const int64_t n = batch->num_tokens - t0 < per_launch ? batch->num_tokens - t0 : per_launch;
        a.token_offset = t0;
        cudaError_t err = cudaSuccess;
        DISPATCH_FLOAT_TYPES(type, T, {
            err = dispatch_decode<T>((T *)out, (const T *)q, (const T *)k_cache, (const T *)v_cache,
                                     (float *)workspace, a, n, stream);
        });
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}
