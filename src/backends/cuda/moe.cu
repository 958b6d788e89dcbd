// Mixture of experts on the GPU, in five launches whatever the expert count
// (all capturable: the step's routing never leaves the device):
//   1. route:   per token, softmax over the router logits, top k (ties to the
//               lower index, as torch.topk), the k weights renormalised;
//   2. group:   the (token, expert) assignments ordered by expert, stably,
//               with each expert's first row (offsets) — the permutation;
//   3. gate/up: one grouped GEMM over (expert, row tile) pairs: h = silu(x·W1ᵀ)·(x·W3ᵀ)
//               for the rows routed to each expert, x gathered on the fly;
//   4. down:    the same grouped GEMM over h: o = h·W2ᵀ;
//   5. combine: y[t] = Σ_j w[t,j]·o[row(t,j)] (un-permutation with the weights).
// Blocks of experts no token chose exit before loading anything, so a
// decode step streams only the k active experts' weights. The grouped GEMM
// is warp-per-output-column with 16-byte weight loads (the decode GEMV's
// shape, reusing each weight across a tile of up to MOE_ROWS rows): bound
// by bandwidth at decode; large prefills would want tensor cores.
#include "backends/cuda/cuda_device.cuh"

namespace {

constexpr int MOE_ROWS = 8;       // rows of one expert a block computes together (prefill)
constexpr int MOE_ONE_ROW_TOKENS = 8; // steps of up to this many tokens use one-row tiles
constexpr int MOE_WARPS = 8;      // output columns per block (one per warp)
constexpr size_t MOE_ALIGN = 256;

size_t align_up(size_t n) { return (n + MOE_ALIGN - 1) / MOE_ALIGN * MOE_ALIGN; }

struct moe_workspace {
    float *weights;     // [A] routing weight of assignment t·k + j
    int32_t *experts;   // [A] its expert
    int32_t *slot_of;   // [A] its row in the grouped order
    int32_t *row_token; // [A] grouped row → token
    int32_t *offsets;   // [E + 1] first grouped row of each expert
    void *h;            // [A, I] act type: the experts' gated activations
    float *out;         // [A, H] the experts' outputs, grouped
};

moe_workspace carve(void *base, int64_t A, int64_t H, int64_t I, int64_t E, size_t type_size) {
    moe_workspace w;
    char *p = (char *)base;
    w.weights = (float *)p, p += align_up((size_t)A * sizeof(float));
    w.experts = (int32_t *)p, p += align_up((size_t)A * sizeof(int32_t));
    w.slot_of = (int32_t *)p, p += align_up((size_t)A * sizeof(int32_t));
    w.row_token = (int32_t *)p, p += align_up((size_t)A * sizeof(int32_t));
    w.offsets = (int32_t *)p, p += align_up((size_t)(E + 1) * sizeof(int32_t));
    w.h = p, p += align_up((size_t)(A * I) * type_size);
    w.out = (float *)p;
    return w;
}

// One warp per token. Experts are compared by logit (softmax is monotonic);
// a strictly greater logit displaces, so equals go to the lower index:
// torch.topk on the GPU (gatherTopK) fills the k-th value's ties in index
// order, so HF picks the same set.
template <typename L>
__global__ void moe_route_kernel(int32_t *experts, float *weights, const L *logits, int64_t T, int E, int k) {
    pdl_wait();
    pdl_trigger();
    const int lane = threadIdx.x & 31;
    const int64_t t = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (t >= T) return;
    const L *row = logits + t * E;
    float max = -INFINITY;
    for (int e = lane; e < E; e += 32) max = fmaxf(max, to_float<L>(row[e]));
    max = warp_max(max);
    float sum = 0.0f;
    for (int e = lane; e < E; e += 32) sum += expf(to_float<L>(row[e]) - max);
    sum = warp_sum(sum);
    int32_t *ids = experts + t * k;
    float *w = weights + t * k;
    float top = 0.0f;
    for (int j = 0; j < k; j++) {
        float best = -INFINITY;
        int best_e = E;
        for (int e = lane; e < E; e += 32) {
            bool taken = false;
            for (int i = 0; i < j; i++) taken |= ids[i] == e;
            const float v = to_float<L>(row[e]);
            if (!taken && (best_e == E || v > best)) best = v, best_e = e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, best, o);
            const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
            if (oe != E && (best_e == E || ov > best || (ov == best && oe < best_e))) best = ov, best_e = oe;
        }
        const float p = expf(best - max) / sum;
        if (lane == 0) ids[j] = best_e, w[j] = p;
        __syncwarp();
        top += p;
    }
    if (lane == 0)
        for (int j = 0; j < k; j++) w[j] /= top;
}

// One block: counts, offsets, then each expert's thread lists its
// assignments in token order (a stable grouping; O(A) per thread, small
// next to the GEMMs even for a full prefill).
__global__ void moe_group_kernel(int32_t *offsets, int32_t *slot_of, int32_t *row_token, const int32_t *experts,
                                 int64_t A, int E, int k) {
    extern __shared__ int32_t counts[]; // [E + 1]
    pdl_wait();
    pdl_trigger();
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int32_t n = 0;
        for (int64_t a = 0; a < A; a++) n += experts[a] == e;
        counts[e + 1] = n;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        counts[0] = 0;
        for (int e = 0; e < E; e++) counts[e + 1] += counts[e];
    }
    __syncthreads();
    for (int e = threadIdx.x; e <= E; e += blockDim.x) offsets[e] = counts[e];
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int32_t row = counts[e];
        for (int64_t a = 0; a < A; a++)
            if (experts[a] == e) {
                slot_of[a] = row;
                row_token[row++] = (int32_t)(a / k);
            }
    }
}

// Which (expert, first row, rows) the block's tile slot is: tiles of ROWS
// rows are numbered expert by expert; slots past the last tile find none.
template <int ROWS>
__device__ __forceinline__ bool moe_tile(const int32_t *offsets, int E, int slot, int &e, int &first, int &rows) {
    for (e = 0; e < E; e++) {
        const int n = offsets[e + 1] - offsets[e];
        const int tiles = (n + ROWS - 1) / ROWS;
        if (slot < tiles) {
            first = offsets[e] + slot * ROWS;
            rows = min(ROWS, n - slot * ROWS);
            return true;
        }
        slot -= tiles;
    }
    return false;
}

template <typename T, int V>
__device__ __forceinline__ void load_floats(float *dst, const T *src) {
    if constexpr (V == vec16<T>::N && V > 1) {
        load16_float<T>(dst, src);
    } else {
#pragma unroll
        for (int i = 0; i < V; i++) dst[i] = to_float<T>(src[i]);
    }
}

// Row r of the tile reads x row row_token[first + r] (GATHER) or first + r.
// GATED: h = silu(x·Aᵀ)·(x·Bᵀ) into T, rounding gate, silu and up to T as HF
// does in 16-bit; else out = x·Aᵀ (rounded through T) into f32.
// A, B: [E, N, K]; x: [.., K].
template <typename T, int V, int ROWS, bool GATED>
__global__ void __launch_bounds__(MOE_WARPS * 32)
moe_expert_gemm_kernel(void *out, const T *x, const int32_t *row_token, const T *w_a, const T *w_b,
                       const int32_t *offsets, int E, int N, int K) {
    pdl_wait();
    pdl_trigger();
    int e, first, rows;
    if (!moe_tile<ROWS>(offsets, E, blockIdx.x, e, first, rows)) return;
    const int lane = threadIdx.x & 31;
    const int n = blockIdx.y * MOE_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    const T *xr[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        const int row = first + (r < rows ? r : 0);
        xr[r] = x + (int64_t)(row_token ? row_token[row] : row) * K;
    }
    const T *a = w_a + ((int64_t)e * N + n) * K;
    const T *b = GATED ? w_b + ((int64_t)e * N + n) * K : nullptr;
    float acc_a[ROWS] = {}, acc_b[ROWS] = {};
    for (int k0 = lane * V; k0 < K; k0 += 32 * V) {
        float wa[V], wb[V], xv[V];
        load_floats<T, V>(wa, a + k0);
        if (GATED) load_floats<T, V>(wb, b + k0);
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            if (r >= rows) break;
            load_floats<T, V>(xv, xr[r] + k0);
#pragma unroll
            for (int i = 0; i < V; i++) {
                acc_a[r] = fmaf(wa[i], xv[i], acc_a[r]);
                if (GATED) acc_b[r] = fmaf(wb[i], xv[i], acc_b[r]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        if (r >= rows) break;
        const float sa = warp_sum(acc_a[r]);
        const float sb = GATED ? warp_sum(acc_b[r]) : 0.0f;
        if (lane != 0) continue;
        const int64_t at = (int64_t)(first + r) * N + n;
        if (GATED) {
            const float g = to_float<T>(from_float<T>(sa)), u = to_float<T>(from_float<T>(sb));
            const float s = to_float<T>(from_float<T>(g / (1.0f + expf(-g))));
            ((T *)out)[at] = from_float<T>(s * u);
        } else {
            ((float *)out)[at] = to_float<T>(from_float<T>(sa));
        }
    }
}

// y[t] = Σ_j w[t,j]·o[slot(t,j)], in ascending expert order (HF adds the
// experts' outputs expert by expert). One block per token.
template <typename T>
__global__ void moe_combine_kernel(T *y, const float *out, const float *weights, const int32_t *experts,
                                   const int32_t *slot_of, int64_t H, int k) {
    pdl_wait();
    pdl_trigger();
    const int64_t t = blockIdx.x;
    const int32_t *ids = experts + t * k;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
        float acc = 0.0f;
        int done = -1;
        for (int n = 0; n < k; n++) {
            int pick = -1;
            for (int j = 0; j < k; j++)
                if (ids[j] > done && (pick < 0 || ids[j] < ids[pick])) pick = j;
            done = ids[pick];
            acc += weights[t * k + pick] * out[(int64_t)slot_of[t * k + pick] * H + i];
        }
        y[t * H + i] = from_float<T>(acc);
    }
}

template <typename T, int ROWS, bool GATED>
cudaError_t launch_expert_gemm_rows(void *out, const T *x, const int32_t *row_token, const T *w_a, const T *w_b,
                                    const int32_t *offsets, int64_t A, int E, int N, int K, int pdl,
                                    cudaStream_t stream) {
    // Every expert's tiles fit in A / ROWS + E slots (exactly A for one-row
    // tiles: no block starts only to find no tile). Slots run fastest, so
    // the tiles that read the same weight rows run together and all but the
    // first find them in L2.
    const int64_t slots = ROWS == 1 ? A : A / ROWS + E;
    const dim3 grid((unsigned)slots, (unsigned)((N + MOE_WARPS - 1) / MOE_WARPS));
    constexpr int V = vec16<T>::N;
    const bool vec = K % V == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)w_a & 15) == 0 &&
                     (!GATED || ((uintptr_t)w_b & 15) == 0);
    if (vec)
        launch_pdl(moe_expert_gemm_kernel<T, V, ROWS, GATED>, grid, dim3(MOE_WARPS * 32), pdl, stream, out, x,
                   row_token, w_a, w_b, offsets, E, N, K);
    else
        launch_pdl(moe_expert_gemm_kernel<T, 1, ROWS, GATED>, grid, dim3(MOE_WARPS * 32), pdl, stream, out, x,
                   row_token, w_a, w_b, offsets, E, N, K);
    return cudaGetLastError();
}

// Decode steps have a row or two per active expert: one-row tiles keep the
// kernel at 32-35 registers (64 warps an SM streaming weights), launch no
// idle slots, and the rows an expert shares read its weights from L2.
template <typename T, bool GATED>
cudaError_t launch_expert_gemm(void *out, const T *x, const int32_t *row_token, const T *w_a, const T *w_b,
                               const int32_t *offsets, int64_t T_, int64_t A, int E, int N, int K, int pdl,
                               cudaStream_t stream) {
    if (T_ <= MOE_ONE_ROW_TOKENS)
        return launch_expert_gemm_rows<T, 1, GATED>(out, x, row_token, w_a, w_b, offsets, A, E, N, K, pdl, stream);
    return launch_expert_gemm_rows<T, MOE_ROWS, GATED>(out, x, row_token, w_a, w_b, offsets, A, E, N, K, pdl,
                                                       stream);
}

cudaError_t launch_route(int32_t *experts, float *weights, const void *logits, llmrt_dtype logits_type, int64_t T,
                         int64_t E, int64_t k, int pdl, cudaStream_t stream) {
    const int warps = 4;
    const unsigned blocks = (unsigned)((T + warps - 1) / warps);
    DISPATCH_FLOAT_TYPES(logits_type, L, {
        launch_pdl(moe_route_kernel<L>, dim3(blocks), dim3(warps * 32), pdl, stream, experts, weights,
                   (const L *)logits, T, (int)E, (int)k);
    });
    return cudaGetLastError();
}

} // namespace

extern "C" size_t cuda_moe_workspace_bytes(int64_t T, int64_t H, int64_t I, int64_t E, int64_t k,
                                           llmrt_dtype type) {
    const int64_t A = T * k;
    return 4 * align_up((size_t)A * 4) + align_up((size_t)(E + 1) * 4) +
           align_up((size_t)(A * I) * llmrt_dtype_size(type)) + align_up((size_t)(A * H) * sizeof(float));
}

extern "C" cudaError_t cuda_moe_route(int32_t *experts, float *weights, const void *logits, llmrt_dtype logits_type,
                                      int64_t T, int64_t E, int64_t k, cudaStream_t stream) {
    if (T <= 0) return cudaSuccess;
    if (E < 1 || k < 1 || k > E) return cudaErrorInvalidValue;
    return launch_route(experts, weights, logits, logits_type, T, E, k, 0, stream);
}

extern "C" cudaError_t cuda_moe(void *y, const void *x, const void *router_logits, llmrt_dtype logits_type,
                                const void *w_gate, const void *w_up, const void *w_down, llmrt_dtype type, int64_t T,
                                int64_t H, int64_t I, int64_t E, int64_t k, void *workspace, int pdl,
                                cudaStream_t stream) {
    if (T <= 0) return cudaSuccess;
    if (E < 1 || k < 1 || k > E || E > 1024 || T * k > INT32_MAX || (H + MOE_WARPS - 1) / MOE_WARPS > 65535 ||
        (I + MOE_WARPS - 1) / MOE_WARPS > 65535)
        return cudaErrorInvalidValue;
    const int64_t A = T * k;
    moe_workspace ws = carve(workspace, A, H, I, E, llmrt_dtype_size(type));
    cudaError_t err = launch_route(ws.experts, ws.weights, router_logits, logits_type, T, E, k, pdl, stream);
    if (err != cudaSuccess) return err;
    const int group_threads = E < 1024 ? (int)((E + 31) / 32 * 32) : 1024;
    launch_pdl_smem(moe_group_kernel, dim3(1), dim3(group_threads), (size_t)(E + 1) * sizeof(int32_t), pdl, stream,
                    ws.offsets, ws.slot_of, ws.row_token, (const int32_t *)ws.experts, A, (int)E, (int)k);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
    DISPATCH_FLOAT_TYPES(type, T_, {
        err = launch_expert_gemm<T_, true>(ws.h, (const T_ *)x, ws.row_token, (const T_ *)w_gate, (const T_ *)w_up,
                                           ws.offsets, T, A, (int)E, (int)I, (int)H, pdl, stream);
        if (err != cudaSuccess) return err;
        err = launch_expert_gemm<T_, false>(ws.out, (const T_ *)ws.h, nullptr, (const T_ *)w_down, nullptr,
                                            ws.offsets, T, A, (int)E, (int)H, (int)I, pdl, stream);
        if (err != cudaSuccess) return err;
        const int threads = H >= 256 ? 256 : (int)((H + 31) / 32 * 32);
        launch_pdl(moe_combine_kernel<T_>, dim3((unsigned)T), dim3(threads), pdl, stream, (T_ *)y,
                   (const float *)ws.out, (const float *)ws.weights, (const int32_t *)ws.experts,
                   (const int32_t *)ws.slot_of, H, (int)k);
    });
    return cudaGetLastError();
}
