// Matrix products not served by cuBLASLt: the decode GEMV (M ≤ 4, where a
// bandwidth-bound stream of W is all that matters) and a generic tiled
// product for mixed element types (correctness path, not a fast path).
#include <string.h>

#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/kernel_probe.cuh"

// Warps (= weight rows) a block, for the grouped and the plain kernel:
// fewer, larger blocks cost less (the grouped kernel's blocks each make x
// in the norm prologue). Measured end to end at batch 1, 128 / 2048 tokens
// of context: 4 warps 5.38 ms/token; 8: 5.02 / 5.48; 16: 4.98 / 5.41; 32
// for the plain kernel: 4.96 / 5.43, with spills at M ≥ 3 (64 registers).
// GEMV_UNROLL: 16-byte chunks a lane per batch (the plain kernel, the
// grouped one, the resident one's gated warps, which stream two rows);
// GEMV_RESIDENT_UNROLL: the resident kernel's one-row warps (see there).
enum { GEMV_WARPS = 16, GEMV_PLAIN_WARPS = 16, GEMV_UNROLL = 4, GEMV_RESIDENT_UNROLL = 6 };

// With programmatic dependent launch (pdl) the weight stream does not
// depend on the kernel before, so a GEMV's blocks start while it finishes
// and have their first loads in flight when it ends; only the x reads and
// the y writes wait (pdl_wait). The norms, RoPE and decode attention are
// launched the same way and wait at their first line: what they save is
// the launch gap.
template <typename... KArgs, typename... Args>
static void launch_gemv_kernel(void (*kernel)(KArgs...), unsigned blocks, unsigned warps, size_t smem, int pdl,
                               cudaStream_t stream, Args... args) {
    launch_pdl_smem(kernel, dim3(blocks), dim3(warps * 32), smem, pdl, stream, args...);
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

// The x of a grouped GEMV as it is: nothing to prepare.
struct x_as_is {
    template <typename T> __device__ __forceinline__ const T *operator()(const T *x) const { return x; }
};

// R weight rows against M rows of x, one warp: lanes stride over K in
// 16-byte chunks (8 elements), GEMV_UNROLL chunks a lane per batch, the
// next batch loaded before the current one is used (two in flight). W is
// read once with an evict-first hint (it is 10+ GB per token, L2 cannot
// hold it; x stays cached). The first batch goes out before pdl_wait;
// then `prepare` (called by every warp of the block, live or not) gives
// the x to use; a warp that is not `live` stops there. (Tried and
// dropped: two batches in flight before the wait, alternating buffers:
// 5.04 → 5.18 ms/token, even with the second batch loaded after the wait.)
template <typename T, int M, int R, typename Prepare>
__device__ __forceinline__ void gemv_rows(float (&acc)[R][M], const uint4 *const (&wrow)[R], const T *x, int64_t K,
                                          bool live, const Prepare &prepare) {
    const int lane = threadIdx.x & 31;
    const int64_t chunks = K / 8, step = 32 * GEMV_UNROLL;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
    uint4 wv[R][GEMV_UNROLL], next[R][GEMV_UNROLL];
    if (live) load_w_chunks<R>(wv, wrow, lane, chunks);
    pdl_wait();
    x = prepare(x);
    PROBE_READY();
    if (!live) return;
    for (int64_t c0 = lane; c0 < chunks; c0 += step) {
        if (c0 + step < chunks) load_w_chunks<R>(next, wrow, c0 + step, chunks);
        fma_w_chunks<T, M, R>(acc, wv, x, c0, chunks, K);
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
#pragma unroll
            for (int r = 0; r < R; r++) wv[r][u] = next[r][u];
    }
}

// One warp per output row n. x: [M, K], W: [N, K], y: [M, N] of TO: T, or
// float for the logits (the fp32 sum goes out without a 16-bit rounding).
// (Tried: two rows a warp, half the warps in flight: no change end to end,
// 5.02–5.03 ms/token either way; the GEMVs are not bound by x's loads.)
template <typename T, typename TO, int M>
__global__ void __launch_bounds__(GEMV_PLAIN_WARPS * 32) gemv_kernel(TO *y, const T *x, const T *w, const float *bias,
                                                                int64_t N, int64_t K) {
    pdl_trigger();
    PROBE_BEGIN();
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * GEMV_PLAIN_WARPS + (threadIdx.x >> 5);
    if (n >= N) {
        PROBE_WARP_DONE(w);
        return;
    }
    const uint4 *const wrow[1] = {reinterpret_cast<const uint4 *>(w + n * K)};
    float acc[1][M];
    gemv_rows<T, M, 1>(acc, wrow, x, K, true, x_as_is());
#pragma unroll
    for (int m = 0; m < M; m++) {
        float s = warp_sum(acc[0][m]);
        if (lane == 0) y[m * N + n] = from_float<TO>(s + (bias ? bias[n] : 0.0f));
    }
    PROBE_WARP_DONE(w);
}

extern "C" int cuda_gemv_supported(llmrt_dtype type, int64_t M, int64_t K, const void *y, const void *x,
                                   const void *w) {
    if (type != LLMRT_DTYPE_F16 && type != LLMRT_DTYPE_BF16) return 0;
    if (M < 1 || M > CUDA_GEMV_MAX_M || K % 8 != 0) return 0;
    return ((((uintptr_t)x | (uintptr_t)w) & 15) == 0 && ((uintptr_t)y & 1) == 0) ? 1 : 0;
}

template <typename T, typename TO>
static void launch_gemv(TO *y, const T *x, const T *w, const float *bias, int64_t M, int64_t N, int64_t K, int pdl,
                        cudaStream_t stream) {
    const unsigned blocks = (unsigned)((N + GEMV_PLAIN_WARPS - 1) / GEMV_PLAIN_WARPS);
    switch (M) {
    case 1: launch_gemv_kernel(gemv_kernel<T, TO, 1>, blocks, GEMV_PLAIN_WARPS, 0, pdl, stream, y, x, w, bias, N, K); break;
    case 2: launch_gemv_kernel(gemv_kernel<T, TO, 2>, blocks, GEMV_PLAIN_WARPS, 0, pdl, stream, y, x, w, bias, N, K); break;
    case 3: launch_gemv_kernel(gemv_kernel<T, TO, 3>, blocks, GEMV_PLAIN_WARPS, 0, pdl, stream, y, x, w, bias, N, K); break;
    default: launch_gemv_kernel(gemv_kernel<T, TO, 4>, blocks, GEMV_PLAIN_WARPS, 0, pdl, stream, y, x, w, bias, N, K); break;
    }
}

template <typename T>
static void launch_gemv_to(void *y, llmrt_dtype y_type, const void *x, const void *w, const float *bias, int64_t M,
                           int64_t N, int64_t K, int pdl, cudaStream_t stream) {
    if (y_type == LLMRT_DTYPE_F32)
        launch_gemv<T, float>((float *)y, (const T *)x, (const T *)w, bias, M, N, K, pdl, stream);
    else
        launch_gemv<T, T>((T *)y, (const T *)x, (const T *)w, bias, M, N, K, pdl, stream);
}

extern "C" cudaError_t cuda_gemv_out(void *y, llmrt_dtype y_type, const void *x, const void *w, llmrt_dtype type,
                                     const float *bias, int64_t M, int64_t N, int64_t K, int pdl,
                                     cudaStream_t stream) {
    if (!cuda_gemv_supported(type, M, K, y, x, w) || (y_type != type && y_type != LLMRT_DTYPE_F32) ||
        (y_type == LLMRT_DTYPE_F32 && ((uintptr_t)y & 3)))
        return cudaErrorInvalidValue;
    if (N <= 0) return cudaSuccess;
    if (type == LLMRT_DTYPE_F16) launch_gemv_to<__half>(y, y_type, x, w, bias, M, N, K, pdl, stream);
    else launch_gemv_to<__nv_bfloat16>(y, y_type, x, w, bias, M, N, K, pdl, stream);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_gemv(void *y, const void *x, const void *w, llmrt_dtype type, const float *bias,
                                 int64_t M, int64_t N, int64_t K, int pdl, cudaStream_t stream) {
    return cuda_gemv_out(y, type, x, w, type, bias, M, N, K, pdl, stream);
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
// GEMV_WARPS · 32 threads; the one-row instance at batch 1 (q/k/v) must
// leave the decode attention's blocks room beside it (≤ 88: 45 K of the
// SM's 64 K; it takes 86 with the signal).
static constexpr int resident_max_registers(int m, bool gated) {
    return m == 1 && !gated ? 88 : 65536 / (GEMV_WARPS * 32);
}

// The grouped GEMV with resident blocks (gridDim.x ≤ what the GPU holds at
// once): x (and its norm) is made once a block, not once a 16 rows, and a
// warp walks rows g, g + G, ... (g = warp · gridDim.x + block, G the warps
// of the grid: the last round's rows spread over every SM) as one stream of
// weight batches, the next batch in flight across row ends too.
//
// U chunks a lane per batch (one block an SM, so registers bound the bytes
// in flight): gated warps 4 of each of two rows; one-row warps (q/k/v) 6.
// Batch-1 decode on an H200, ms/token after 128 / 2048 tokens (mean of 3):
// 3.686 / 4.115 at 4, 3.676 / 4.090 at 6, 3.701 / 4.072 at 8; q/k/v per layer
// 26.99 µs at 4, 26.33 at 6, 25.42 at 8, but at 8 (98 registers) the
// decode attention's blocks no longer fit beside it before its wait, and
// it takes 9.2 µs instead of 7.3.
template <typename T, int M, bool GATED, bool NORM>
__global__ void __maxnreg__(resident_max_registers(M, GATED))
    gemv_multi_resident_kernel(const T *x, gemv_multi_args a, int64_t K) {
    constexpr int R = GATED ? 2 : 1, U = GATED ? GEMV_UNROLL : GEMV_RESIDENT_UNROLL;
    pdl_trigger();
    PROBE_BEGIN();
    const int lane = threadIdx.x & 31;
    const int64_t rows = a.row_start[a.num_parts], G = (int64_t)gridDim.x * GEMV_WARPS;
    const int64_t first = (int64_t)(threadIdx.x >> 5) * gridDim.x + blockIdx.x;
    const int64_t chunks = K / 8, step = 32 * U, iters = (chunks + step - 1) / step;
    // 32-bit divisions (rows < 2^31, checked at launch): a 64-bit one is
    // emulated, ~0.1 µs ahead of the block's first weight load
    const int64_t total =
        first < rows ? (int64_t)(((uint32_t)(rows - first) + (uint32_t)G - 1) / (uint32_t)G) * iters : 0;
    auto row_ptrs = [&](int64_t row, const uint4 *(&wr)[R], int &p, int64_t &n) {
        p = gemv_part_of(a, row, GATED);
        n = row - a.row_start[p];
#pragma unroll
        for (int r = 0; r < R; r++) wr[r] = reinterpret_cast<const uint4 *>((const T *)a.w[p + r] + n * K);
    };
    int64_t row = first, n = 0, j = 0;
    int p = 0;
    const uint4 *wr[R];
    uint4 wv[R][U], next[R][U];
    // The block's signalled rows: warp w's are w·gridDim + block, + G, ...,
    // so row r is block r mod gridDim's (G is a multiple of gridDim), and
    // one 32-bit division counts them (lim ≤ INT32_MAX). The sum over the
    // warps it replaced took 16 int64 divisions, emulated: ~1.6 µs of the
    // signalling warp, by which every block ended later (docs/PERFORMANCE.md).
    unsigned *warps_done = GATED ? nullptr : gemv_signal_init(a);
    auto block_rows = [](const gemv_multi_args &a) -> int64_t {
        const uint32_t lim = (uint32_t)min(a.signal_rows, a.row_start[a.num_parts]);
        return blockIdx.x < lim ? (lim - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
    };
    // the row after whose store this warp signals (-1: none, it signals now)
    int32_t sig_row = -1;
    if (!GATED && a.signal) {
        const int64_t lim = min(a.signal_rows, rows);
        if (first < lim) sig_row = (int32_t)(first + (int64_t)((uint32_t)(lim - first - 1) / (uint32_t)G) * G);
        else gemv_signal_warp(a, warps_done, block_rows);
    }
    if (total > 0) {
        row_ptrs(row, wr, p, n);
        load_w_chunks<R, U>(wv, wr, lane, chunks);
    }
    pdl_wait();
    if constexpr (NORM) x = x_rmsnorm<T, M>{a.norm, K}(x);
    PROBE_READY();
    float acc[R][M];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
    for (int64_t it = 0; it < total; it++) {
        // the batch after this one: the next chunks of this row, or the first of the next row
        int64_t nrow = row, nn = n, nj = j + 1;
        int np = p;
        const uint4 *nwr[R];
#pragma unroll
        for (int r = 0; r < R; r++) nwr[r] = wr[r];
        if (nj == iters) {
            nj = 0;
            nrow = row + G;
            if (it + 1 < total) row_ptrs(nrow, nwr, np, nn);
        }
        if (it + 1 < total) load_w_chunks<R, U>(next, nwr, lane + nj * step, chunks);
        fma_w_chunks<T, M, R, U>(acc, wv, x, lane + j * step, chunks, K);
        if (j == iters - 1) {
            gemv_multi_store<T, M, R, GATED>(a, acc, p, n);
            if (!GATED && row == sig_row) gemv_signal_warp(a, warps_done, block_rows);
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
        }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++) wv[r][u] = next[r][u];
#pragma unroll
        for (int r = 0; r < R; r++) wr[r] = nwr[r];
        row = nrow;
        n = nn;
        p = np;
        j = nj;
    }
    PROBE_WARP_DONE(a.w[0]);
}

template <typename T, int M, bool GATED, bool NORM>
__global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_multi_kernel(const T *x, gemv_multi_args a, int64_t K) {
    constexpr int R = GATED ? 2 : 1; // weight rows per warp
    pdl_trigger();
    PROBE_BEGIN();
    int64_t row = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    const bool live = row < a.row_start[a.num_parts];
    unsigned *warps_done = gemv_signal_init(a);
    auto block_rows = [](const gemv_multi_args &a) -> int64_t {
        const int64_t lim = min(a.signal_rows, a.row_start[a.num_parts]), b0 = (int64_t)blockIdx.x * GEMV_WARPS;
        return lim <= b0 ? 0 : lim - b0 < GEMV_WARPS ? lim - b0 : GEMV_WARPS;
    };
    const bool signalled = a.signal && live && row < a.signal_rows;
    if (a.signal && !signalled) gemv_signal_warp(a, warps_done, block_rows);
    if (!live) {
        if (!NORM) {
            PROBE_WARP_DONE(a.w[0]);
            return;
        }
        row = 0; // else the warp still helps make x
    }
    const int p = gemv_part_of(a, row, GATED);
    const int64_t n = row - a.row_start[p];
    const uint4 *wrow[R];
#pragma unroll
    for (int r = 0; r < R; r++) wrow[r] = reinterpret_cast<const uint4 *>((const T *)a.w[p + r] + n * K);
    float acc[R][M];
    if (NORM) gemv_rows<T, M, R>(acc, wrow, x, K, live, x_rmsnorm<T, M>{a.norm, K});
    else gemv_rows<T, M, R>(acc, wrow, x, K, true, x_as_is());
    if (live) gemv_multi_store<T, M, R, GATED>(a, acc, p, n);
    if (signalled) gemv_signal_warp(a, warps_done, block_rows);
    PROBE_WARP_DONE(a.w[0]);
}

// Blocks of resident kernel instance <T, M, GATED, NORM> the current GPU
// holds at once with `smem` bytes of x (cached per instance, recomputed
// when the device or the size changes).
template <typename T, int M, bool GATED, bool NORM> static int64_t resident_capacity(size_t smem) {
    static int64_t cached = -1;
    static size_t cached_smem = 0;
    static int cached_device = -1;
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    if (cached < 0 || cached_smem != smem || cached_device != device) {
        int per_sm = 0, sms = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_multi_resident_kernel<T, M, GATED, NORM>,
                                                          GEMV_WARPS * 32, smem) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
            (void)cudaGetLastError();
            per_sm = sms = 0;
        }
        cached = (int64_t)per_sm * sms;
        cached_smem = smem;
        cached_device = device;
    }
    return cached;
}

// The resident instance in as many blocks as fit (at most `blocks`, and at
// most `resident_blocks` when that is > 0); 0 where none fits.
template <typename T, int M, bool GATED, bool NORM>
static int launch_gemv_resident(const T *x, const gemv_multi_args &a, unsigned blocks, size_t smem, int64_t K,
                                int resident_blocks, int pdl, cudaStream_t stream) {
    int64_t cap = resident_capacity<T, M, GATED, NORM>(smem);
    if (resident_blocks > 0 && resident_blocks < cap) cap = resident_blocks;
    if (cap <= 0) return 0;
    launch_gemv_kernel(gemv_multi_resident_kernel<T, M, GATED, NORM>, (unsigned)(cap < blocks ? cap : blocks),
                       GEMV_WARPS, smem, pdl, stream, x, a, K);
    return 1;
}

template <typename T, int M, bool GATED, bool NORM>
static void launch_gemv_multi_m(const T *x, const gemv_multi_args &a, unsigned blocks, size_t smem, int64_t K,
                                int resident_blocks, int pdl, cudaStream_t stream) {
    if (resident_blocks != 0 &&
        launch_gemv_resident<T, M, GATED, NORM>(x, a, blocks, smem, K, resident_blocks, pdl, stream))
        return;
    launch_gemv_kernel(gemv_multi_kernel<T, M, GATED, NORM>, blocks, GEMV_WARPS, smem, pdl, stream, x, a, K);
}

template <typename T, bool GATED, bool NORM>
static void launch_gemv_multi(const T *x, const gemv_multi_args &a, int64_t M, int64_t K, int resident_blocks, int pdl,
                              cudaStream_t stream) {
    const int64_t rows = a.row_start[a.num_parts];
    const unsigned blocks = (unsigned)((rows + GEMV_WARPS - 1) / GEMV_WARPS);
    const size_t smem = NORM ? (size_t)M * K * sizeof(T) : 0;
    switch (M) {
    case 1: launch_gemv_multi_m<T, 1, GATED, NORM>(x, a, blocks, smem, K, resident_blocks, pdl, stream); break;
    case 2: launch_gemv_multi_m<T, 2, GATED, NORM>(x, a, blocks, smem, K, resident_blocks, pdl, stream); break;
    case 3: launch_gemv_multi_m<T, 3, GATED, NORM>(x, a, blocks, smem, K, resident_blocks, pdl, stream); break;
    default: launch_gemv_multi_m<T, 4, GATED, NORM>(x, a, blocks, smem, K, resident_blocks, pdl, stream); break;
    }
}

template <typename T, bool NORM>
static void launch_gemv_multi_gated(const T *x, const gemv_multi_args &a, int gated, int64_t M, int64_t K,
                                    int resident_blocks, int pdl, cudaStream_t stream) {
    if (gated) launch_gemv_multi<T, true, NORM>(x, a, M, K, resident_blocks, pdl, stream);
    else launch_gemv_multi<T, false, NORM>(x, a, M, K, resident_blocks, pdl, stream);
}

template <typename T>
static void launch_gemv_multi_any(const T *x, const gemv_multi_args &a, int gated, int norm, int64_t M, int64_t K,
                                  int resident_blocks, int pdl, cudaStream_t stream) {
    if (norm) launch_gemv_multi_gated<T, true>(x, a, gated, M, K, resident_blocks, pdl, stream);
    else launch_gemv_multi_gated<T, false>(x, a, gated, M, K, resident_blocks, pdl, stream);
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" cudaError_t cuda_gemv_multi(const cuda_gemv_part *parts, int num_parts, int gated, const void *x,
                                       const cuda_gemv_norm *norm, llmrt_dtype type, int64_t M, int64_t K,
                                       int resident_blocks, int pdl, cudaStream_t stream) {
    return cuda_gemv_multi_signal(parts, num_parts, gated, x, norm, NULL, type, M, K, resident_blocks, pdl, stream);
}

extern "C" cudaError_t cuda_gemv_multi_signal(const cuda_gemv_part *parts, int num_parts, int gated, const void *x,
                                              const cuda_gemv_norm *norm, const cuda_gemv_signal *signal,
                                              llmrt_dtype type, int64_t M, int64_t K, int resident_blocks, int pdl,
                                              cudaStream_t stream) {
    if (signal && (!signal->counter || M != 1 || gated || signal->rows < 1 || signal->rows > parts[0].N ||
                   signal->rows > INT32_MAX))
        return cudaErrorInvalidValue;
    if (num_parts < 1 || num_parts > CUDA_GEMV_MAX_PARTS || (gated && (num_parts != 2 || parts[0].N != parts[1].N)))
        return cudaErrorInvalidValue;
    if (norm && (!norm->a || !norm->w || !aligned16(norm->a) || !aligned16(norm->w) ||
                 (norm->b && !aligned16(norm->b)) || (norm->sum && !aligned16(norm->sum)) ||
                 M * K * 2 > CUDA_GEMV_NORM_MAX_BYTES)) /* f16/bf16 only (checked below) */
        return cudaErrorInvalidValue;
    if (norm) x = norm->a; // alignment and M/K checks below; x itself is made in the kernel
    gemv_multi_args a;
    memset(&a, 0, sizeof a);
    if (norm) a.norm = *norm;
    a.signal = signal ? signal->counter : NULL;
    a.signal_rows = signal ? signal->rows : 0;
    a.num_parts = gated ? 1 : num_parts; // gated: one row range, two weights
    a.row_start[0] = 0;
    for (int i = 0; i < num_parts; i++) {
        if (!cuda_gemv_supported(type, M, K, parts[i].y, x, parts[i].w) || parts[i].N <= 0)
            return cudaErrorInvalidValue;
        a.y[i] = parts[i].y;
        a.w[i] = parts[i].w;
        a.bias[i] = parts[i].bias;
        a.n[i] = parts[i].N;
        if (i < a.num_parts) a.row_start[i + 1] = a.row_start[i] + parts[i].N;
    }
    if (a.row_start[a.num_parts] > INT32_MAX) return cudaErrorInvalidValue; // the kernels count rows in 32 bits
    if (type == LLMRT_DTYPE_F16)
        launch_gemv_multi_any<__half>((const __half *)x, a, gated, norm != NULL, M, K, resident_blocks, pdl, stream);
    else
        launch_gemv_multi_any<__nv_bfloat16>((const __nv_bfloat16 *)x, a, gated, norm != NULL, M, K, resident_blocks,
                                             pdl, stream);
    return cudaGetLastError();
}

PROBE_BIND(cuda_probe_bind_gemv)

enum { MM_TILE = 16 };

// Classic shared-memory tiled product, fp32 accumulate, any element types.
__global__ void matmul_generic_kernel(void *y, int y_type, const void *x, int x_type, const void *w, int w_type,
                                      int transpose_b, const float *bias, int64_t M, int64_t N, int64_t K) {
    __shared__ float xs[MM_TILE][MM_TILE + 1];
    __shared__ float ws[MM_TILE][MM_TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t row = (int64_t)blockIdx.y * MM_TILE + ty, col = (int64_t)blockIdx.x * MM_TILE + tx;
    float acc = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += MM_TILE) {
        int64_t kx = k0 + tx, kw = k0 + ty;
        xs[ty][tx] = (row < M && kx < K) ? load_as_float(x, x_type, row * K + kx) : 0.0f;
        // ws[k][n] = W(n = col, k = kw)
        ws[ty][tx] = (col < N && kw < K)
                         ? load_as_float(w, w_type, transpose_b ? col * K + kw : kw * N + col)
                         : 0.0f;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < MM_TILE; k++) acc = fmaf(xs[ty][k], ws[k][tx], acc);
        __syncthreads();
    }
    if (row < M && col < N) store_from_float(y, y_type, row * N + col, acc + (bias ? bias[col] : 0.0f));
}

extern "C" cudaError_t cuda_matmul_generic(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                                           const void *w, llmrt_dtype w_type, int transpose_b, const float *bias,
                                           int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
    if (M <= 0 || N <= 0) return cudaSuccess;
    if ((M + MM_TILE - 1) / MM_TILE > 65535) return cudaErrorInvalidValue;
    dim3 grid((unsigned)((N + MM_TILE - 1) / MM_TILE), (unsigned)((M + MM_TILE - 1) / MM_TILE));
    matmul_generic_kernel<<<grid, dim3(MM_TILE, MM_TILE), 0, stream>>>(y, y_type, x, x_type, w, w_type, transpose_b,
                                                                      bias, M, N, K);
    return cudaGetLastError();
}
