// The MLP of a decode step in one launch: h = silu(x·Wg) ⊙ (x·Wu) (the
// gated grouped GEMV, x maybe made by the NORM prologue), then y = h·Wdᵀ,
// by the same resident blocks. There is no kernel boundary between the two
// products: a warp's last gate/up batch is followed in its stream of weight
// batches by its first down batch. A down row reads h in the order its
// rows were made, so it only waits for the rows it is about to read: h row
// r is made in round r / G of the gate/up pass (G the warps of the grid),
// each block adds its rows of a round to that round's counter once they
// are stored (a GPU release, as the early signal does), and a down warp
// acquires round k's counter before the batch that reads its first chunk.
//
// Measured slower than the two GEMVs on an H200 (LLaMA-2-7B shape, batch
// 1: 3.76 against 3.61 ms/token, and still 0.03-0.05 slower with every
// wait and signal taken out; docs/PERFORMANCE.md, thirteenth session), so
// LLMRT_CUDA_FUSE_MLP is off by default.
#include <string.h>

#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/gemv_device.cuh"
#include "backends/cuda/kernel_probe.cuh"

struct gemv_mlp_args {
    gemv_multi_args gu; // the gated pair: w[0] gate, w[1] up, y[0] = h [M, n[0]], norm
    const void *w_down; // [n_out, n[0]]
    const float *bias_down;
    void *y; // [M, n_out]
    int64_t n_out;
    int32_t *rounds; // [CUDA_GEMV_MLP_ROUNDS]: h rows stored, per round (zero at launch)
};

// Makes sure rounds [ready, need] of h are complete (round k holds
// min(G, N - k·G) rows): the lanes look at rounds ready + lane at once
// (relaxed), and those of the complete prefix acquire their counter
// (one round trip for all: done one at a time they cost a down row's first
// batches ~3 round trips each). Traps after ~2^26 polls (a counter that
// never gets there fails the step instead of hanging the GPU).
__device__ __forceinline__ void mlp_wait_rounds(const int32_t *rounds, uint32_t &ready, uint32_t need,
                                                uint32_t nrounds, uint32_t N, uint32_t G) {
    for (unsigned polls = 0; need >= ready; polls++) {
        const uint32_t k = ready + (threadIdx.x & 31);
        const bool done = k >= nrounds || ld_relaxed(rounds + k) >= (int32_t)min(G, N - k * G);
        const unsigned incomplete = __ballot_sync(~0u, !done);
        const uint32_t complete = incomplete ? (uint32_t)__ffs(incomplete) - 1 : 32;
        if (complete > 0) {
            if (k < ready + complete && k < nrounds) (void)ld_acquire(rounds + k);
            __syncwarp();
            ready = min(ready + complete, nrounds);
            continue;
        }
        if (polls == 1u << 26) __trap();
        __nanosleep(32);
    }
}

// This warp's h row of round k is stored (by lane 0): count it in the block
// (CTA scope); the block's last warp of the round publishes the block's rows
// with a GPU release, which is cumulative over the CTA-scope counts.
__device__ __forceinline__ void mlp_signal_round(int32_t *rounds, unsigned *warps_done, uint32_t k, uint32_t N,
                                                 uint32_t G) {
    if ((threadIdx.x & 31) != 0) return;
    // warps w < GEMV_WARPS of this block with a row in round k: w·grid + block + k·G < N
    const uint32_t rem = N - k * G - blockIdx.x; // > 0: this warp has one
    const uint32_t rows = min((uint32_t)GEMV_WARPS, (rem + gridDim.x - 1) / gridDim.x);
    __threadfence_block();
    if (atomicAdd(warps_done + k, 1u) != rows - 1) return;
    __threadfence_block();
    red_release_add(rounds + k, (int32_t)rows);
}

// W batch of a warp: U chunks of each of two row pointers, from chunk c0
// (lane strided), zero at and past lim[r].
template <int U>
__device__ __forceinline__ void mlp_load(uint4 (&wv)[2][U], const uint4 *const (&wr)[2], int64_t c0,
                                         const int64_t (&lim)[2]) {
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int64_t c = c0 + (int64_t)u * 32;
            wv[r][u] = c < lim[r] ? __ldcs(wr[r] + c) : make_uint4(0, 0, 0, 0);
        }
}

// A down batch: chunks c0 + u·32 (slot 0) and c0 + 32·U + u·32 (slot 1) of
// one row, against h; the two slots' sums are added at the row's end.
template <typename T, int M, int U>
__device__ __forceinline__ void mlp_fma_down(float (&acc)[2][M], const uint4 (&wv)[2][U], const T *h, int64_t c0,
                                             int64_t chunks, int64_t K) {
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = c0 + (int64_t)(r * U + u) * 32;
            if (c >= chunks) continue;
#pragma unroll
            for (int m = 0; m < M; m++) {
                float xf[8];
                load16_float(xf, h + m * K + c * 8);
                const T *we = reinterpret_cast<const T *>(&wv[r][u]);
#pragma unroll
                for (int j = 0; j < 8; j++) acc[r][m] = fmaf(to_float<T>(we[j]), xf[j], acc[r][m]);
            }
        }
}

// Warp g = warp · gridDim + block takes h rows g, g + G, ... (as the
// resident gated GEMV does), then down rows from a counter as it gets to
// them (the warps with one h row fewer take more), each row asked for one
// row ahead so the atomic's round trip is hidden. A down row is one warp's
// from start to end, so the sums do not depend on which warp takes it.
template <typename T, int M, bool NORM>
__global__ void __launch_bounds__(GEMV_WARPS * 32, 1) gemv_mlp_kernel(const T *x, gemv_mlp_args a, int64_t K) {
    constexpr int U = GEMV_UNROLL;
    __shared__ unsigned warps_done[CUDA_GEMV_MLP_ROUNDS];
    pdl_trigger();
    PROBE_BEGIN();
    for (int i = threadIdx.x; i < CUDA_GEMV_MLP_ROUNDS; i += blockDim.x) warps_done[i] = 0;
    __syncthreads();
    const int lane = threadIdx.x & 31;
    const uint32_t G = gridDim.x * GEMV_WARPS, N = (uint32_t)a.gu.n[0], NO = (uint32_t)a.n_out;
    const uint32_t g = (threadIdx.x >> 5) * gridDim.x + blockIdx.x, nrounds = (N + G - 1) / G;
    const int64_t chunks1 = K / 8, chunks2 = N / 8, step1 = 32 * U, step2 = 2 * step1;
    const int64_t iters1 = (chunks1 + step1 - 1) / step1, iters2 = (chunks2 + step2 - 1) / step2;
    const uint32_t chunks_a_round = G / 8; // G is a multiple of 16
    const T *h = (const T *)a.gu.y[0];
    T *y = (T *)a.y;
    unsigned *const next_down = (unsigned *)(a.rounds + CUDA_GEMV_MLP_ROUNDS - 1);
    auto grab = [&]() -> unsigned { return lane == 0 ? atomicAdd(next_down, 1u) : 0u; };
    auto take = [&](unsigned v) -> uint32_t { return __shfl_sync(~0u, v, 0); };

    // the position in the warp's stream: phase 0 gate/up rows, 1 down rows
    auto set_row = [&](int phase, uint32_t row, const uint4 *(&wr)[2], int64_t (&lim)[2]) {
        if (phase == 0) {
            wr[0] = reinterpret_cast<const uint4 *>((const T *)a.gu.w[0] + (int64_t)row * K);
            wr[1] = reinterpret_cast<const uint4 *>((const T *)a.gu.w[1] + (int64_t)row * K);
            lim[0] = lim[1] = chunks1;
        } else {
            wr[0] = reinterpret_cast<const uint4 *>((const T *)a.w_down + (int64_t)row * N);
            wr[1] = wr[0] + step1;
            lim[0] = chunks2;
            lim[1] = chunks2 - step1;
        }
    };
    int phase = g < N ? 0 : 1;
    uint32_t row = g, round = 0, ready = 0;
    unsigned pending = 0; // lane 0: the down row after this one (asked for, maybe not back yet)
    int64_t j = 0;
    const uint4 *wr[2];
    int64_t lim[2];
    uint4 wv[2][U], next[2][U];
    if (phase == 0) {
        set_row(phase, row, wr, lim);
        mlp_load<U>(wv, wr, lane, lim);
    }
    pdl_wait();
    if constexpr (NORM) x = x_rmsnorm<T, M>{a.gu.norm, K}(x);
    PROBE_READY();
    if (phase == 1) { // no h row: straight to the down rows
        row = take(grab());
        if (row < NO) {
            set_row(phase, row, wr, lim);
            mlp_load<U>(wv, wr, lane, lim);
        }
    }
    float acc[2][M];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
    while (phase == 0 || row < NO) {
        // the first batch of the last h row, or of a down row: ask for the next down row
        if (j == 0 && (phase == 1 || row + G >= N)) pending = grab();
        int nphase = phase;
        uint32_t nrow = row;
        int64_t nj = j + 1;
        const uint4 *nwr[2] = {wr[0], wr[1]};
        int64_t nlim[2] = {lim[0], lim[1]};
        if (nj == (phase == 0 ? iters1 : iters2)) {
            nj = 0;
            nrow = row + G;
            if (phase == 1 || nrow >= N) {
                nphase = 1;
                nrow = take(pending);
            }
            if (nphase == 0 || nrow < NO) set_row(nphase, nrow, nwr, nlim);
        }
        if (nphase == 0 || nrow < NO) mlp_load<U>(next, nwr, lane + nj * (nphase == 0 ? step1 : step2), nlim);
        if (phase == 0) {
            fma_w_chunks<T, M, 2, U>(acc, wv, x, lane + j * step1, chunks1, K);
            if (j == iters1 - 1) {
                gemv_multi_store<T, M, 2, true>(a.gu, acc, 0, row);
                mlp_signal_round(a.rounds, warps_done, round++, N, G);
#pragma unroll
                for (int r = 0; r < 2; r++)
#pragma unroll
                    for (int m = 0; m < M; m++) acc[r][m] = 0.0f;
            }
        } else {
            // the batch reads chunks up to j·step2 + step2 - 1 of h (every lane's, both slots)
            const int64_t last = min(j * step2 + step2, chunks2) - 1;
            mlp_wait_rounds(a.rounds, ready, (uint32_t)last / chunks_a_round, nrounds, N, G);
            mlp_fma_down<T, M, U>(acc, wv, h, lane + j * step2, chunks2, N);
            if (j == iters2 - 1) {
#pragma unroll
                for (int m = 0; m < M; m++) {
                    const float s = warp_sum(acc[0][m] + acc[1][m]);
                    if (lane == 0) y[(int64_t)m * NO + row] = from_float<T>(s + (a.bias_down ? a.bias_down[row] : 0.0f));
                    acc[0][m] = acc[1][m] = 0.0f;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < 2; r++) wv[r][u] = next[r][u];
        wr[0] = nwr[0];
        wr[1] = nwr[1];
        lim[0] = nlim[0];
        lim[1] = nlim[1];
        phase = nphase;
        row = nrow;
        j = nj;
    }
    PROBE_WARP_DONE(a.gu.w[0]);
}

// Blocks of instance <T, M, NORM> the current GPU holds at once with `smem`
// bytes of x; every block must be resident, since down warps wait on rows
// other blocks make.
template <typename T, int M, bool NORM> static int64_t mlp_capacity(size_t smem) {
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
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_mlp_kernel<T, M, NORM>, GEMV_WARPS * 32,
                                                          smem) != cudaSuccess ||
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

template <typename T, int M, bool NORM>
static cudaError_t launch_mlp_m(const T *x, const gemv_mlp_args &a, int64_t K, size_t smem, cudaStream_t stream) {
    int64_t blocks = mlp_capacity<T, M, NORM>(smem);
    const int setting = cuda_gemv_resident_setting();
    if (setting > 0 && setting < blocks) blocks = setting;
    const int64_t N = a.gu.n[0], most = (N > a.n_out ? N : a.n_out);
    if (blocks > (most + GEMV_WARPS - 1) / GEMV_WARPS) blocks = (most + GEMV_WARPS - 1) / GEMV_WARPS;
    const int64_t G = blocks * GEMV_WARPS;
    // the last counter is the next down row's
    if (blocks <= 0 || (N + G - 1) / G > CUDA_GEMV_MLP_ROUNDS - 1) return cudaErrorNotSupported;
    launch_gemv_kernel(gemv_mlp_kernel<T, M, NORM>, (unsigned)blocks, GEMV_WARPS, smem, stream, x, a, K);
    return cudaGetLastError();
}

template <typename T, bool NORM>
static cudaError_t launch_mlp(const T *x, const gemv_mlp_args &a, int64_t M, int64_t K, cudaStream_t stream) {
    const size_t smem = NORM ? (size_t)M * K * sizeof(T) : 0;
    switch (M) {
    case 1: return launch_mlp_m<T, 1, NORM>(x, a, K, smem, stream);
    case 2: return launch_mlp_m<T, 2, NORM>(x, a, K, smem, stream);
    case 3: return launch_mlp_m<T, 3, NORM>(x, a, K, smem, stream);
    default: return launch_mlp_m<T, 4, NORM>(x, a, K, smem, stream);
    }
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" cudaError_t cuda_gemv_mlp_run(const cuda_gemv_mlp *mlp, const void *x, const cuda_gemv_norm *norm,
                                         llmrt_dtype type, int64_t M, int64_t K, cudaStream_t stream) {
    if (cuda_gemv_resident_setting() == 0) return cudaErrorNotSupported;
    const int64_t N = mlp->N, NO = mlp->N_out;
    if ((type != LLMRT_DTYPE_F16 && type != LLMRT_DTYPE_BF16) || M < 1 || M > CUDA_GEMV_MAX_M || K <= 0 || K % 8 ||
        N <= 0 || N % 8 || NO <= 0 || N > INT32_MAX / 2 || NO > INT32_MAX / 2 || !mlp->rounds)
        return cudaErrorInvalidValue;
    if (norm && (!norm->a || !norm->w || !aligned16(norm->a) || !aligned16(norm->w) ||
                 (norm->b && !aligned16(norm->b)) || (norm->sum && !aligned16(norm->sum)) ||
                 M * K * 2 > CUDA_GEMV_NORM_MAX_BYTES))
        return cudaErrorInvalidValue;
    if (norm) x = norm->a;
    if (!x || !aligned16(x) || !aligned16(mlp->w_gate) || !aligned16(mlp->w_up) || !aligned16(mlp->h) ||
        !aligned16(mlp->w_down) || ((uintptr_t)mlp->y & 1))
        return cudaErrorInvalidValue;
    gemv_mlp_args a;
    memset(&a, 0, sizeof a);
    if (norm) a.gu.norm = *norm;
    a.gu.num_parts = 1;
    a.gu.y[0] = mlp->h;
    a.gu.w[0] = mlp->w_gate;
    a.gu.w[1] = mlp->w_up;
    a.gu.bias[0] = mlp->bias_gate;
    a.gu.bias[1] = mlp->bias_up;
    a.gu.n[0] = a.gu.n[1] = N;
    a.gu.row_start[1] = N;
    a.w_down = mlp->w_down;
    a.bias_down = mlp->bias_down;
    a.y = mlp->y;
    a.n_out = NO;
    a.rounds = mlp->rounds;
    if (type == LLMRT_DTYPE_F16)
        return norm ? launch_mlp<__half, true>((const __half *)x, a, M, K, stream)
                    : launch_mlp<__half, false>((const __half *)x, a, M, K, stream);
    return norm ? launch_mlp<__nv_bfloat16, true>((const __nv_bfloat16 *)x, a, M, K, stream)
                : launch_mlp<__nv_bfloat16, false>((const __nv_bfloat16 *)x, a, M, K, stream);
}

PROBE_BIND(cuda_probe_bind_gemv_mlp)
