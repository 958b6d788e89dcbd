// The pieces the decode GEMV kernels share (gemv.cu: the plain, grouped
// and resident kernels; gemv_mlp.cu: the fused MLP): the warp's weight
// batches and their FMAs, the grouped GEMV's arguments, its early signal,
// its NORM prologue and its stores.
#ifndef LLMRT_CUDA_GEMV_DEVICE_CUH
#define LLMRT_CUDA_GEMV_DEVICE_CUH

#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/cuda_kernels.h"

// Warps (= weight rows) a block, for the grouped and the plain kernel:
// fewer, larger blocks cost less (the grouped kernel's blocks each make x
// in the norm prologue). Measured end to end at batch 1, 128 / 2048 tokens
// of context: 4 warps 5.38 ms/token; 8: 5.02 / 5.48; 16: 4.98 / 5.41; 32
// for the plain kernel: 4.96 / 5.43, with spills at M ≥ 3 (64 registers).
enum { GEMV_WARPS = 16, GEMV_PLAIN_WARPS = 16, GEMV_UNROLL = 4 };

// cuda_set_gemv_resident's setting (gemv.cu): 0 off, < 0 all that fit, > 0 at most that many.
int cuda_gemv_resident_setting();

template <typename... KArgs, typename... Args>
static void launch_gemv_kernel(void (*kernel)(KArgs...), unsigned blocks, unsigned warps, size_t smem,
                               cudaStream_t stream, Args... args) {
    launch_pdl_smem(kernel, dim3(blocks), dim3(warps * 32), smem, stream, args...);
}

// U 16-byte chunks of each of R weight rows, from chunk c0 on
// (lane strided); zero past the row.
template <int R, int U = GEMV_UNROLL>
__device__ __forceinline__ void load_w_chunks(uint4 (&wv)[R][U], const uint4 *const (&wrow)[R], int64_t c0,
                                              int64_t chunks) {
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int64_t c = c0 + (int64_t)u * 32;
            wv[r][u] = c < chunks ? __ldcs(wrow[r] + c) : make_uint4(0, 0, 0, 0);
        }
}

// acc[r][m] += W[r] chunks · x[m] chunks for the loaded batch at c0.
template <typename T, int M, int R, int U = GEMV_UNROLL>
__device__ __forceinline__ void fma_w_chunks(float (&acc)[R][M], const uint4 (&wv)[R][U], const T *x, int64_t c0,
                                             int64_t chunks, int64_t K) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int64_t c = c0 + (int64_t)u * 32;
        if (c >= chunks) break;
#pragma unroll
        for (int m = 0; m < M; m++) {
            float xf[8];
            load16_float(xf, x + m * K + c * 8);
#pragma unroll
            for (int r = 0; r < R; r++) {
                const T *we = reinterpret_cast<const T *>(&wv[r][u]);
#pragma unroll
                for (int j = 0; j < 8; j++) acc[r][m] = fmaf(to_float<T>(we[j]), xf[j], acc[r][m]);
            }
        }
    }
}

// Grouped GEMV: the products that share one x (q/k/v, gate/up) in one
// launch. Warp w takes global row w of the parts' rows laid end to end, so
// the grid is as long as the fused [ΣN, K] matrix without concatenating
// the weights. GATED: two parts of equal N; warp n streams row n of both
// and writes silu(x·W0[n]) · (x·W1[n]) to part 0's y (the SwiGLU
// intermediate never goes to memory and its kernel is gone).
struct gemv_multi_args {
    void *y[CUDA_GEMV_MAX_PARTS];
    const void *w[CUDA_GEMV_MAX_PARTS];
    const float *bias[CUDA_GEMV_MAX_PARTS];
    int64_t n[CUDA_GEMV_MAX_PARTS];
    int64_t row_start[CUDA_GEMV_MAX_PARTS + 1];
    int num_parts;
    cuda_gemv_norm norm; // NORM instances: x made from it
    int32_t *signal;     // NULL, or rows [0, signal_rows) are published here as they are stored
    int64_t signal_rows;
};

// The signalled rows (cuda_gemv_signal): each warp, once, after storing the
// last of them it owns (or at its start if it owns none), counts itself in
// the block after a CTA-scope fence; the block's last warp acquires the
// counts (CTA scope) and adds the block's rows to the counter with a GPU
// release, which is cumulative: a reader that sees the counter at
// signal_rows sees those rows. One atomic a block (same-address atomics
// from every warp queue behind each other).
__device__ __forceinline__ void gemv_signal_warp(const gemv_multi_args &a, unsigned *warps_done,
                                                 int64_t (*block_rows)(const gemv_multi_args &)) {
    if ((threadIdx.x & 31) != 0) return;
    __threadfence_block(); // this lane stored the warp's outputs
    if (atomicAdd(warps_done, 1u) != blockDim.x / 32 - 1) return;
    __threadfence_block(); // acquires the other warps' counts (and their stores, cumulatively)
    red_release_add(a.signal, (int32_t)block_rows(a));
}

__device__ __forceinline__ unsigned *gemv_signal_init(const gemv_multi_args &a) {
    __shared__ unsigned warps_done;
    if (a.signal) {
        if (threadIdx.x == 0) warps_done = 0;
        __syncthreads();
    }
    return &warps_done;
}

// The NORM prologue: x = RMSNorm(a (+ b)) for the M rows, into the block's
// shared memory, rounded as the add + RMSNorm kernel rounds (the sum to T,
// then T(v · inv · w)); block 0 also stores the sum. A thread normalises the
// chunks it summed, so only the final barrier is needed.
template <typename T, int M> struct x_rmsnorm {
    const cuda_gemv_norm &n;
    int64_t K;
    __device__ __forceinline__ const T *operator()(const T *) const {
        extern __shared__ __align__(16) unsigned char gemv_smem[];
        __shared__ float partial[M][GEMV_WARPS];
        T *xs = reinterpret_cast<T *>(gemv_smem);
        const T *a = (const T *)n.a, *b = (const T *)n.b;
        T *sum = blockIdx.x == 0 ? (T *)n.sum : nullptr;
        const int64_t chunks = K / 8;
        float ss[M];
#pragma unroll
        for (int m = 0; m < M; m++) {
            ss[m] = 0.0f;
            for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
                const int64_t at = m * K + c * 8;
                uint4 ra = *reinterpret_cast<const uint4 *>(a + at), rs = ra;
                if (b) {
                    const uint4 rb = *reinterpret_cast<const uint4 *>(b + at);
                    const T *pa = reinterpret_cast<const T *>(&ra), *pb = reinterpret_cast<const T *>(&rb);
                    T *ps = reinterpret_cast<T *>(&rs);
#pragma unroll
                    for (int i = 0; i < 8; i++) ps[i] = from_float<T>(to_float<T>(pa[i]) + to_float<T>(pb[i]));
                    if (sum) *reinterpret_cast<uint4 *>(sum + at) = rs;
                }
                const T *ps = reinterpret_cast<const T *>(&rs);
#pragma unroll
                for (int i = 0; i < 8; i++) ss[m] += to_float<T>(ps[i]) * to_float<T>(ps[i]);
                *reinterpret_cast<uint4 *>(xs + at) = rs;
            }
        }
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
        for (int m = 0; m < M; m++) {
            const float v = warp_sum(ss[m]);
            if (lane == 0) partial[m][warp] = v;
        }
        __syncthreads();
#pragma unroll
        for (int m = 0; m < M; m++) {
            float t = 0.0f;
#pragma unroll
            for (int w = 0; w < GEMV_WARPS; w++) t += partial[m][w];
            const float inv = rsqrtf(t / (float)K + n.eps);
            for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
                const int64_t at = m * K + c * 8;
                float v[8];
                load16_float(v, xs + at);
                const float4 w0 = *reinterpret_cast<const float4 *>(n.w + c * 8);
                const float4 w1 = *reinterpret_cast<const float4 *>(n.w + c * 8 + 4);
                const float g[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
                for (int i = 0; i < 8; i++) v[i] = v[i] * inv * g[i];
                store16_float(xs + at, v);
            }
        }
        __syncthreads();
        return xs;
    }
};

// Warp sums of acc for row n of part p, out as the grouped GEMV writes them.
template <typename T, int M, int R, bool GATED>
__device__ __forceinline__ void gemv_multi_store(const gemv_multi_args &a, const float (&acc)[R][M], int p, int64_t n) {
#pragma unroll
    for (int m = 0; m < M; m++) {
        float s[R];
#pragma unroll
        for (int r = 0; r < R; r++) s[r] = warp_sum(acc[r][m]) + (a.bias[p + r] ? a.bias[p + r][n] : 0.0f);
        if ((threadIdx.x & 31) != 0) continue;
        if (GATED) {
            // Rounded like the unfused graph: gate and up to T, then silu·mul in fp32.
            const float g = to_float<T>(from_float<T>(s[0])), u = to_float<T>(from_float<T>(s[R - 1]));
            ((T *)a.y[0])[m * a.n[0] + n] = from_float<T>(g / (1.0f + __expf(-g)) * u);
        } else {
            ((T *)a.y[p])[m * a.n[p] + n] = from_float<T>(s[0]);
        }
    }
}

// The part that global row `row` falls in (gated: always part 0).
__device__ __forceinline__ int gemv_part_of(const gemv_multi_args &a, int64_t row, bool gated) {
    int p = 0;
    if (!gated)
#pragma unroll
        for (int i = 1; i < CUDA_GEMV_MAX_PARTS; i++)
            if (i < a.num_parts && row >= a.row_start[i]) p = i;
    return p;
}

// Registers a thread of the resident kernel may take: its blocks have
// GEMV_WARPS · 32 threads; the one-row instance at unroll 6 and batch 1
// (q/k/v) must leave the decode attention's blocks room beside it (≤ 88:
// 45 K of the SM's 64 K; it takes 86 with the signal).
static constexpr int resident_max_registers(int m, bool gated, int u) {
    return m == 1 && !gated && u == 6 ? 88 : 65536 / (GEMV_WARPS * 32);
}

#endif
