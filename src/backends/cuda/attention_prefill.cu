// Causal prefill attention on tensor cores, FlashAttention-2 style (Dao,
// 2023): a block owns TILE_M = 128 query rows of one sequence and one head
// (4 warps × 32 rows: each K and V fragment read from shared memory serves
// two 16-row mma tiles, which halves the shared-memory traffic per FLOP
// that bounded the 16-rows-a-warp kernel); keys and values stream from the
// paged cache in tiles
// of TILE_N = 64 rows through shared memory; scores S = Q·Kᵀ and
// probabilities P live only in registers (the mma.m16n8k16 accumulator
// layout is reused as the A operand of P·V), with the online softmax
// rescaling the running output. f16/bf16 operands, fp32 accumulation.
//
// Head sizes: 64/80/96/128 have exact instances with 16-byte loads; any
// other head_dim d ≤ 128 runs the instance of the next padded size
// D ∈ {16, 32, 64, 128} (mma needs multiples of 16) with element-wise loads:
// columns d..D of Q, K and V are zero in shared memory, so the scores are
// exact and the padded output columns are never stored.
//
// K/V tiles are double-buffered: the next tile's rows are in flight
// (cp.async, 16 bytes a copy) while the current tile's math runs. The
// query tile stays in shared memory and its fragments are reloaded (ldmatrix)
// per key tile, which leaves the registers to two row tiles' outputs.
// Blocks are launched heaviest first (the last query tiles of a sequence
// see the most keys), so the causal imbalance does not make a tail.
//
// Not yet done: wgmma on sm_90a.
#include "backends/cuda/cuda_device.cuh"

enum { TILE_M = CUDA_PREFILL_TILE_M, TILE_N = 64, PREFILL_THREADS = 128 };
static_assert(TILE_M == 32 * (PREFILL_THREADS / 32), "each warp owns 32 query rows");

template <typename T> struct mma_op;
template <> struct mma_op<__half> {
    static __device__ __forceinline__ void run(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
};
template <> struct mma_op<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
};

__device__ __forceinline__ uint32_t ld_shared_u32(const void *p) { return *reinterpret_cast<const uint32_t *>(p); }

struct prefill_args {
    const int32_t *positions, *token_seq, *block_tables, *tiles;
    int32_t block_table_stride, block_size;
    int heads, kv_heads;
    int head_dim; // d: the row length in q, out and the cache (≤ the instance's D)
    float scale_log2; // scale · log2(e): softmax in base 2
};

// Shared rows are D + 8 elements long: rows g = 0..7 of a fragment load then
// fall in distinct banks for D = 64/80/96/128, and row starts stay 16-byte
// aligned for ldmatrix.
template <int D> struct prefill_smem {
    static constexpr int STRIDE = D + 8;
    static constexpr size_t BYTES = (size_t)(TILE_M + 4 * TILE_N) * STRIDE * 2 + 2 * TILE_N * sizeof(int64_t);
};

template <typename T, int D, bool EXACT>
__global__ void __launch_bounds__(PREFILL_THREADS) attention_prefill_kernel(T *out, const T *q, const T *k_cache,
                                                                            const T *v_cache, prefill_args a) {
    constexpr int STRIDE = prefill_smem<D>::STRIDE, CH = D / 8; // 16-byte chunks per row
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *Qs = reinterpret_cast<T *>(smem_raw);
    T *Kb[2], *Vb[2];
    Kb[0] = Qs + TILE_M * STRIDE;
    Vb[0] = Kb[0] + TILE_N * STRIDE;
    Kb[1] = Vb[0] + TILE_N * STRIDE;
    Vb[1] = Kb[1] + TILE_N * STRIDE;
    int64_t *row_off = reinterpret_cast<int64_t *>(Vb[1] + TILE_N * STRIDE); // [2][TILE_N]

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tig = lane & 3;
    const int tile = (int)gridDim.y - 1 - (int)blockIdx.y; // heaviest first
    const int r0 = a.tiles[2 * tile], nr = a.tiles[2 * tile + 1];
    const int h = blockIdx.x, kvh = h / (a.heads / a.kv_heads);
    const int seq = a.token_seq[r0];
    const int d = EXACT ? D : a.head_dim;
    const int64_t q_stride = (int64_t)a.heads * d;
    int max_pos = 0;
    for (int i = 0; i < nr; i++) max_pos = max(max_pos, a.positions[r0 + i]);
    const int num_key_tiles = max_pos / TILE_N + 1;

    // Cache row offsets of key tile kb (threads < TILE_N), -1 past max_pos.
    auto tile_offsets = [&](int kb, int64_t *dst) {
        if (tid < TILE_N) {
            const int p = kb * TILE_N + tid;
            int64_t off = -1;
            if (p <= max_pos) {
                const int32_t block = a.block_tables[(int64_t)seq * a.block_table_stride + p / a.block_size];
                off = (((int64_t)block * a.block_size + p % a.block_size) * a.kv_heads + kvh) * d;
            }
            dst[tid] = off;
        }
    };
    // K and V rows of a tile into buffer `b`: cp.async when rows are
    // 16-byte aligned (exact instances), else through registers.
    auto issue_tile = [&](int b, const int64_t *offs) {
        for (int idx = tid; idx < TILE_N * CH; idx += PREFILL_THREADS) {
            const int j = idx / CH, c = idx % CH;
            const int64_t off = offs[j];
            T *kd = Kb[b] + j * STRIDE + c * 8, *vd = Vb[b] + j * STRIDE + c * 8;
            if (EXACT) {
                cp_async16(kd, off >= 0 ? k_cache + off + c * 8 : k_cache, off >= 0 ? 16 : 0);
                cp_async16(vd, off >= 0 ? v_cache + off + c * 8 : v_cache, off >= 0 ? 16 : 0);
            } else {
                uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
                if (off >= 0) {
                    kv = load16_masked<T, EXACT>(k_cache + off, c * 8, d);
                    vv = load16_masked<T, EXACT>(v_cache + off, c * 8, d);
                }
                *reinterpret_cast<uint4 *>(kd) = kv;
                *reinterpret_cast<uint4 *>(vd) = vv;
            }
        }
        cp_async_commit();
    };

    // The Q tile stays in shared memory (rows past the tile's end are zero);
    // its fragments are reloaded per key tile to leave registers for two
    // row tiles' outputs.
    tile_offsets(0, row_off);
    for (int idx = tid; idx < TILE_M * CH; idx += PREFILL_THREADS) {
        const int i = idx / CH, c = idx % CH;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (i < nr) v = load16_masked<T, EXACT>(q + (r0 + i) * q_stride + (int64_t)h * d, c * 8, d);
        *reinterpret_cast<uint4 *>(Qs + i * STRIDE + c * 8) = v;
    }
    // Each warp owns ROWS_PER_WARP = 32 query rows: row tiles mt = 0, 1 of
    // 16, rows g and g + 8 of each (the mma accumulator layout). Rows past
    // the end take row 0's position: finite softmax, never stored.
    int row[2][2], qp[2][2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int hb = 0; hb < 2; hb++) {
            row[mt][hb] = warp * 32 + mt * 16 + hb * 8 + g;
            qp[mt][hb] = a.positions[r0 + (row[mt][hb] < nr ? row[mt][hb] : 0)];
        }
    __syncthreads();
    issue_tile(0, row_off);

    float o[2][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
    float m[2][2], l[2][2];
#pragma unroll
    for (int mt = 0; mt < 2; mt++) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
    // ldmatrix lane addressing: A (Q) fragments of a 16×16 block, and two
    // 8-key groups of K (lanes 0-7 / 8-15 keys 0-7 at columns +0 / +8,
    // lanes 16-31 keys 8-15).
    const int qrow_l = (lane & 15), qcol_l = (lane >> 4) * 8;
    const int krow_l = (lane & 7) + ((lane >> 4) << 3), kcol_l = ((lane >> 3) & 1) * 8;

    for (int kb = 0; kb < num_key_tiles; kb++) {
        const int kstart = kb * TILE_N, cur = kb & 1, nxt = cur ^ 1;
        if (kb + 1 < num_key_tiles) tile_offsets(kb + 1, row_off + nxt * TILE_N);
        // Everyone is done with buffer nxt (tile kb - 1) and its offsets are in.
        __syncthreads();
        if (kb + 1 < num_key_tiles) issue_tile(nxt, row_off + nxt * TILE_N);
        else cp_async_commit(); // an empty group keeps the count
        cp_async_wait_one();    // tile kb has landed (this thread's copies)
        __syncthreads();        // and everyone's
        const T *Ks = Kb[cur], *Vs = Vb[cur];

        // S = Q · Kᵀ: 2 row tiles × 64 keys; each K fragment serves both.
        float s[2][TILE_N / 8][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < TILE_N / 8; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const uint32_t addr = (uint32_t)__cvta_generic_to_shared(
                    Qs + (warp * 32 + mt * 16 + qrow_l) * STRIDE + kk * 16 + qcol_l);
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                             : "=r"(qa[mt][0]), "=r"(qa[mt][1]), "=r"(qa[mt][2]), "=r"(qa[mt][3])
                             : "r"(addr));
            }
#pragma unroll
            for (int np = 0; np < TILE_N / 16; np++) {
                uint32_t b[4];
                const uint32_t addr =
                    (uint32_t)__cvta_generic_to_shared(Ks + (np * 16 + krow_l) * STRIDE + kk * 16 + kcol_l);
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                             : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
                             : "r"(addr));
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    mma_op<T>::run(s[mt][2 * np], qa[mt], b[0], b[1]);
                    mma_op<T>::run(s[mt][2 * np + 1], qa[mt], b[2], b[3]);
                }
            }
        }

        // Causal mask and online softmax (base 2), per row.
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nt = 0; nt < TILE_N / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int hb = e >> 1, p = kstart + nt * 8 + tig * 2 + (e & 1);
                    s[mt][nt][e] = p <= qp[mt][hb] ? s[mt][nt][e] * a.scale_log2 : -INFINITY;
                    mx[hb] = fmaxf(mx[hb], s[mt][nt][e]);
                }
#pragma unroll
            for (int hb = 0; hb < 2; hb++) {
#pragma unroll
                for (int o2 = 1; o2 <= 2; o2 <<= 1) mx[hb] = fmaxf(mx[hb], __shfl_xor_sync(0xffffffffu, mx[hb], o2));
            }
            // Key 0 is visible to every row, so after the first tile m is finite.
            float alpha[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
            for (int hb = 0; hb < 2; hb++) {
                const float mn = fmaxf(m[mt][hb], mx[hb]);
                alpha[hb] = exp2f(m[mt][hb] - mn);
                m[mt][hb] = mn;
            }
#pragma unroll
            for (int nt = 0; nt < TILE_N / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    s[mt][nt][e] = exp2f(s[mt][nt][e] - m[mt][e >> 1]);
                    rs[e >> 1] += s[mt][nt][e];
                }
#pragma unroll
            for (int hb = 0; hb < 2; hb++) l[mt][hb] = l[mt][hb] * alpha[hb] + rs[hb];
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                o[mt][dt][0] *= alpha[0];
                o[mt][dt][1] *= alpha[0];
                o[mt][dt][2] *= alpha[1];
                o[mt][dt][3] *= alpha[1];
            }
        }

        // O += P · V: P's accumulator fragments become A fragments directly;
        // each V fragment (ldmatrix.trans) serves both row tiles.
#pragma unroll
        for (int kk = 0; kk < TILE_N / 16; kk++) {
            uint32_t pa[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                pa[mt][0] = mma_op<T>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][1] = mma_op<T>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][2] = mma_op<T>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][3] = mma_op<T>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
            const T *vrow = Vs + (kk * 16 + (lane & 15)) * STRIDE;
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                uint32_t b0, b1;
                const uint32_t addr = (uint32_t)__cvta_generic_to_shared(vrow + dt * 8);
                asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                             : "=r"(b0), "=r"(b1)
                             : "r"(addr));
#pragma unroll
                for (int mt = 0; mt < 2; mt++) mma_op<T>::run(o[mt][dt], pa[mt], b0, b1);
            }
        }
    }

#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
        float inv[2];
#pragma unroll
        for (int hb = 0; hb < 2; hb++) {
            float sum = l[mt][hb];
#pragma unroll
            for (int o2 = 1; o2 <= 2; o2 <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o2);
            inv[hb] = 1.0f / sum;
        }
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
            const int col = dt * 8 + tig * 2;
#pragma unroll
            for (int hb = 0; hb < 2; hb++) {
                const int r = row[mt][hb];
                if (r >= nr) continue;
                T *dst = out + (r0 + r) * q_stride + (int64_t)h * d + col;
                const float x0 = o[mt][dt][2 * hb] * inv[hb], x1 = o[mt][dt][2 * hb + 1] * inv[hb];
                if (EXACT) {
                    *reinterpret_cast<uint32_t *>(dst) = mma_op<T>::pack(x0, x1);
                } else {
                    if (col < d) dst[0] = from_float<T>(x0);
                    if (col + 1 < d) dst[1] = from_float<T>(x1);
                }
            }
        }
    }
}

// Shared memory of the instance a head size runs (exact or padded).
static size_t prefill_smem_bytes(int32_t head_dim) {
    switch (head_dim) {
    case 64: return prefill_smem<64>::BYTES;
    case 80: return prefill_smem<80>::BYTES;
    case 96: return prefill_smem<96>::BYTES;
    case 128: return prefill_smem<128>::BYTES;
    default: break;
    }
    return head_dim <= 16   ? prefill_smem<16>::BYTES
           : head_dim <= 32 ? prefill_smem<32>::BYTES
           : head_dim <= 64 ? prefill_smem<64>::BYTES
                            : prefill_smem<128>::BYTES;
}

extern "C" int cuda_attention_prefill_supported(llmrt_dtype type, int32_t head_dim) {
    if (type != LLMRT_DTYPE_F16 && type != LLMRT_DTYPE_BF16) return 0;
    if (head_dim < 1 || head_dim > 128) return 0;
    // GPUs with less shared memory per block than a 128-row tile needs (some
    // consumer parts have 99 KB) take the split-K kernel instead.
    int device = 0, optin = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return prefill_smem_bytes(head_dim) <= (size_t)optin;
}

template <typename T, int D, bool EXACT>
static cudaError_t launch_prefill(T *out, const T *q, const T *kc, const T *vc, const prefill_args &a, int num_tiles,
                                  cudaStream_t stream) {
    const size_t smem = prefill_smem<D>::BYTES;
    // > 48 KB of dynamic shared memory needs an opt-in per kernel.
    static bool configured = false;
    if (!configured) {
        cudaError_t err = cudaFuncSetAttribute(attention_prefill_kernel<T, D, EXACT>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (err != cudaSuccess) return err;
        configured = true;
    }
    if (num_tiles > 65535) return cudaErrorInvalidValue;
    attention_prefill_kernel<T, D, EXACT><<<dim3((unsigned)a.heads, (unsigned)num_tiles), PREFILL_THREADS, smem, stream>>>(
        out, q, kc, vc, a);
    return cudaGetLastError();
}

// The exact instance for the common head sizes, else the padded generic one.
template <typename T>
static cudaError_t dispatch_prefill(T *o, const T *q, const T *kc, const T *vc, const prefill_args &a, int num_tiles,
                                    cudaStream_t stream) {
    switch (a.head_dim) {
    case 64: return launch_prefill<T, 64, true>(o, q, kc, vc, a, num_tiles, stream);
    case 80: return launch_prefill<T, 80, true>(o, q, kc, vc, a, num_tiles, stream);
    case 96: return launch_prefill<T, 96, true>(o, q, kc, vc, a, num_tiles, stream);
    case 128: return launch_prefill<T, 128, true>(o, q, kc, vc, a, num_tiles, stream);
    default: break;
    }
    if (a.head_dim <= 16) return launch_prefill<T, 16, false>(o, q, kc, vc, a, num_tiles, stream);
    if (a.head_dim <= 32) return launch_prefill<T, 32, false>(o, q, kc, vc, a, num_tiles, stream);
    if (a.head_dim <= 64) return launch_prefill<T, 64, false>(o, q, kc, vc, a, num_tiles, stream);
    return launch_prefill<T, 128, false>(o, q, kc, vc, a, num_tiles, stream);
}

extern "C" cudaError_t cuda_attention_prefill(void *out, const void *q, const void *k_cache, const void *v_cache,
                                              llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads,
                                              int32_t kv_heads, int32_t head_dim, float scale, cudaStream_t stream) {
    if (batch->num_tiles <= 0) return cudaSuccess;
    if (!cuda_attention_prefill_supported(type, head_dim) || kv_heads <= 0 || heads % kv_heads)
        return cudaErrorInvalidValue;
    prefill_args a;
    a.positions = batch->positions;
    a.token_seq = batch->token_seq;
    a.block_tables = batch->block_tables;
    a.tiles = batch->tiles;
    a.block_table_stride = batch->block_table_stride;
    a.block_size = batch->block_size;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.head_dim = head_dim;
    a.scale_log2 = scale * 1.4426950408889634f;
    if (type == LLMRT_DTYPE_F16)
        return dispatch_prefill<__half>((__half *)out, (const __half *)q, (const __half *)k_cache,
                                        (const __half *)v_cache, a, batch->num_tiles, stream);
    return dispatch_prefill<__nv_bfloat16>((__nv_bfloat16 *)out, (const __nv_bfloat16 *)q,
                                           (const __nv_bfloat16 *)k_cache, (const __nv_bfloat16 *)v_cache, a,
                                           batch->num_tiles, stream);
}
