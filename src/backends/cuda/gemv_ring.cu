// The staged decode GEMV (batch 1; off by default, slower than the
// register-streaming kernels: docs/PERFORMANCE.md, twelfth session).
// Weights reach the SM through a ring of shared-memory stages filled by
// cp.async, not through registers. Why: a GEMV that streams through
// registers holds the SM's register file, so the next GEMV's blocks cannot
// be placed until its blocks exit, and HBM idles at every boundary while
// the next kernel waits for its predecessor and makes x (2.8-3.4 µs a
// GEMV -> GEMV boundary on the H200). A staged block takes few registers
// and a fixed share of shared memory, so the next GEMV's block sits beside
// it (PDL) and fills its own ring before its wait.
//
// One block an SM (grid = the SM count), 8 warps. Block b takes rows
// [N·b/G, N·(b+1)/G) of every part (so the q rows of q/k/v are done first
// everywhere, for the early attention's signal), in 16-row tiles; a stage
// is 16 rows × 512 columns, each thread copying 4 chunks of it (rows past
// the part and columns past K zero-filled), the chunks swizzled so that
// ldmatrix reads are free of bank conflicts. Warp w multiplies columns
// [64·w, 64·w + 64) of every stage on the tensor cores (m16n8k16, x in
// column 0 of B), so a 16 × 16 tile of weights costs one ldmatrix and one
// mma instead of ~40 CUDA-core instructions a 512 bytes; a tile's row sums
// go to partial[row][warp] and the epilogue adds the 8 partials in a fixed
// order (the result does not depend on timing).
#include <string.h>

#include <type_traits>

#include "backends/cuda/gemv_norm.cuh"
#include "backends/cuda/gemv_ring.cuh"
#include "backends/cuda/kernel_probe.cuh"

// A stage: 16 rows × 512 columns (16 KB of 16-bit weights); warp w takes
// columns [64·w, 64·w + 64) of it, four 16 × 16 tiles, one tensor-core
// product each.
enum {
    RING_WARPS = 8,
    RING_THREADS = RING_WARPS * 32,
    RING_ROWS = 16,
    RING_STAGE_K = 512,
    RING_STAGE = RING_ROWS * RING_STAGE_K * 2,
    RING_MAX_STAGES = 8,
};

// cuda_set_gemv_ring: stages (2..8; 0 off) and the kernels' shared-memory
// carveout preference (-1: the driver's choice; 0..100 percent).
static int ring_stages = 0, ring_carveout = -1, ring_launches = 0;
extern "C" int cuda_gemv_ring_launches(void) { return ring_launches; }
extern "C" void cuda_set_gemv_ring(int stages, int carveout) {
    ring_stages = stages < 2 ? 0 : stages > RING_MAX_STAGES ? RING_MAX_STAGES : stages;
    ring_carveout = carveout < 0 || carveout > 100 ? -1 : carveout;
}

struct ring_args {
    void *y[CUDA_GEMV_MAX_PARTS];
    const char *w[CUDA_GEMV_MAX_PARTS];
    const float *bias[CUDA_GEMV_MAX_PARTS];
    uint32_t n[CUDA_GEMV_MAX_PARTS];          // rows (n · gridDim.x < 2^32)
    uint32_t partial_at[CUDA_GEMV_MAX_PARTS]; // first partial row of each part
    int num_parts;                            // weights streamed (gated: 2, the same rows)
    uint32_t row_bytes;                       // K · sizeof(T)
    uint32_t stages;
    uint32_t x_bytes;  // the ring starts here (128-aligned)
    uint32_t partials; // floats, after the ring
    cuda_gemv_norm norm; // NORM instances
    int32_t *signal;     // part 0's rows [0, signal_rows) published here
    uint32_t signal_rows;
};

// Waits until at most n (< RING_MAX_STAGES) of this thread's groups are pending.
__device__ __forceinline__ void cp_async_wait_pending(uint32_t n) {
    switch (n) {
    case 0: asm volatile("cp.async.wait_group 0;" ::: "memory"); break;
    case 1: asm volatile("cp.async.wait_group 1;" ::: "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;" ::: "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;" ::: "memory"); break;
    case 4: asm volatile("cp.async.wait_group 4;" ::: "memory"); break;
    case 5: asm volatile("cp.async.wait_group 5;" ::: "memory"); break;
    case 6: asm volatile("cp.async.wait_group 6;" ::: "memory"); break;
    default: asm volatile("cp.async.wait_group 7;" ::: "memory"); break;
    }
}

// This block's rows of a part of n rows: [lo, hi).
__device__ __forceinline__ void ring_rows(uint32_t n, uint32_t &lo, uint32_t &hi) {
    lo = n * blockIdx.x / gridDim.x;
    hi = n * (blockIdx.x + 1) / gridDim.x;
}

// A walk over the block's stages: part p, its 16-row tile `tile` of
// `tiles`, columns from k0; the part's rows [lo, hi).
struct ring_cursor {
    int p;
    uint32_t tile, tiles, k0, lo, hi;
};

__device__ __forceinline__ void cursor_part(const ring_args &a, ring_cursor &c) {
    for (; c.p < a.num_parts; c.p++) {
        ring_rows(a.n[c.p], c.lo, c.hi);
        c.tiles = (c.hi - c.lo + RING_ROWS - 1) / RING_ROWS;
        c.tile = c.k0 = 0;
        if (c.tiles) return;
    }
}

// Where chunk c (16 bytes) of row r of a stage lives: rows 1 KB apart, the
// chunk's slot in its 128 bytes swizzled by the row, so that the 8 rows of
// an ldmatrix fall in 8 different bank groups.
__device__ __forceinline__ uint32_t stage_offset(uint32_t r, uint32_t c) { return r * 1024 + ((c ^ (r & 7)) << 4); }

// The thread's 4 chunks of the next stage into its slot, as one cp.async
// group (empty past the last stage, so that the group count stays
// uniform); rows past the part's and columns past K are zero-filled.
__device__ __forceinline__ void ring_issue(const ring_args &a, ring_cursor &c, uint32_t &slot, char *ring,
                                           uint64_t policy) {
    if (c.p < a.num_parts) {
        const uint32_t K = a.row_bytes / 2;
        const uint32_t dst = (uint32_t)__cvta_generic_to_shared(ring + (size_t)slot * RING_STAGE);
#pragma unroll
        for (int i = 0; i < RING_STAGE / 16 / RING_THREADS; i++) {
            const uint32_t q = threadIdx.x + i * RING_THREADS, r = q / (RING_STAGE_K / 8), ch = q % (RING_STAGE_K / 8);
            const uint32_t row = c.lo + c.tile * RING_ROWS + r, k = c.k0 + ch * 8;
            const bool live = row < c.hi && k < K;
            const char *src = a.w[c.p] + (live ? ((size_t)row * K + k) * 2 : 0);
            asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;" ::"r"(
                             dst + stage_offset(r, ch)),
                         "l"(src), "r"(live ? 16 : 0), "l"(policy)
                         : "memory");
        }
        slot = slot + 1 == a.stages ? 0 : slot + 1;
        c.k0 += RING_STAGE_K;
        if (c.k0 >= K) {
            c.k0 = 0;
            if (++c.tile == c.tiles) {
                c.p++;
                cursor_part(a, c);
            }
        }
    }
    cp_async_commit();
}

template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (sizeof(T) == 2 && std::is_same<T, __half>::value)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One part: for each 16-row tile, the warp's columns of every stage as
// tensor-core products (A: the weights by ldmatrix, B: x in column 0),
// the tile's row sums then written to partial[row][warp]; each consumed
// stage's slot refilled with the stage `stages` ahead. slot / load_slot:
// the stage to read and to fill, carried across parts.
template <typename T>
__device__ __forceinline__ void ring_consume_part(const ring_args &a, float *partial, const T *xs, char *ring,
                                                  ring_cursor &load, uint32_t &slot, uint32_t &load_slot,
                                                  uint64_t policy, uint32_t rows, uint32_t tiles) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const uint32_t K = a.row_bytes / 2;
    // ldmatrix.x4: lane l gives row (l / 8 odd: +8) + l % 8 of the tile, chunk +1 for l ≥ 16
    const uint32_t lr = ((lane >> 3) & 1) * 8 + (lane & 7), lc = lane >> 4;
    const uint32_t *x32 = reinterpret_cast<const uint32_t *>(xs);
    for (uint32_t tile = 0; tile < tiles; tile++) {
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (uint32_t k0 = 0; k0 < K; k0 += RING_STAGE_K) {
            cp_async_wait_pending(a.stages - 1); // this stage's group is in (the thread's own chunks)
            __syncthreads();                      // and every other thread's
            const uint32_t stage = (uint32_t)__cvta_generic_to_shared(ring + (size_t)slot * RING_STAGE);
#pragma unroll
            for (int kb = 0; kb < 4; kb++) {
                const uint32_t kk = warp * 64 + kb * 16; // in the stage
                if (k0 + kk >= K) break;
                uint32_t af[4];
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                             : "=r"(af[0]), "=r"(af[1]), "=r"(af[2]), "=r"(af[3])
                             : "r"(stage + stage_offset(lr, kk / 8 + lc)));
                // B: x in column 0 (lanes 0-3), zeros elsewhere
                uint32_t b0 = 0, b1 = 0;
                if (lane < 4) {
                    b0 = x32[(k0 + kk) / 2 + lane];
                    b1 = x32[(k0 + kk + 8) / 2 + lane];
                }
                mma_16816<T>(d, af, b0, b1);
            }
            __syncthreads(); // every warp has read the slot
            slot = slot + 1 == a.stages ? 0 : slot + 1;
            ring_issue(a, load, load_slot, ring, policy);
        }
        if ((lane & 3) == 0) { // column 0: rows lane / 4 and lane / 4 + 8
            const uint32_t r = tile * RING_ROWS + (lane >> 2);
            if (r < rows) partial[r * RING_WARPS + warp] = d[0];
            if (r + 8 < rows) partial[(r + 8) * RING_WARPS + warp] = d[2];
        }
    }
}

// Row r of part p: the partials in a fixed order.
__device__ __forceinline__ float ring_row_sum(const ring_args &a, const float *partial, int p, uint32_t r) {
    const float *q = partial + (a.partial_at[p] + r) * RING_WARPS;
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < RING_WARPS; w++) s += q[w];
    return s;
}

template <typename T, typename TO, bool GATED, bool NORM>
__global__ void __launch_bounds__(RING_THREADS, 2) gemv_ring_kernel(const T *x, ring_args a) {
    extern __shared__ __align__(16) unsigned char gemv_smem[];
    pdl_trigger();
    PROBE_BEGIN();
    const int tid = threadIdx.x;
    char *ring = reinterpret_cast<char *>(gemv_smem) + a.x_bytes;
    float *partial = reinterpret_cast<float *>(ring + (size_t)a.stages * RING_STAGE);
    uint64_t policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    ring_cursor load = {0, 0, 0, 0, 0, 0};
    cursor_part(a, load);
    uint32_t slot = 0, load_slot = 0;
    for (uint32_t s = 0; s < a.stages; s++) ring_issue(a, load, load_slot, ring, policy); // weights only
    for (uint32_t i = tid; i < a.partials; i += RING_THREADS) partial[i] = 0.0f;
    pdl_wait();
    const T *xs = reinterpret_cast<const T *>(gemv_smem);
    if constexpr (NORM) {
        xs = x_rmsnorm<T, 1, RING_WARPS>{a.norm, (int64_t)(a.row_bytes / sizeof(T))}(x);
    } else {
#pragma unroll 1
        for (uint32_t c = tid; c < a.row_bytes / 16; c += RING_THREADS)
            reinterpret_cast<uint4 *>(gemv_smem)[c] = reinterpret_cast<const uint4 *>(x)[c];
        __syncthreads();
    }
    PROBE_READY();
    for (int p = 0; p < a.num_parts; p++) {
        uint32_t lo, hi;
        ring_rows(a.n[p], lo, hi);
        ring_consume_part<T>(a, partial + a.partial_at[p] * RING_WARPS, xs, ring, load, slot, load_slot, policy,
                             hi - lo, (hi - lo + RING_ROWS - 1) / RING_ROWS);
        if (GATED && p == 0) continue;
        __syncthreads(); // every warp's partials of part p are in
        for (uint32_t r = tid; r < hi - lo; r += RING_THREADS) {
            const uint32_t row = lo + r;
            if (GATED) {
                // rounded like the unfused graph: gate and up to T, then silu·mul in fp32
                const float g =
                    to_float<T>(from_float<T>(ring_row_sum(a, partial, 0, r) + (a.bias[0] ? a.bias[0][row] : 0.0f)));
                const float u =
                    to_float<T>(from_float<T>(ring_row_sum(a, partial, 1, r) + (a.bias[1] ? a.bias[1][row] : 0.0f)));
                ((T *)a.y[0])[row] = from_float<T>(g / (1.0f + __expf(-g)) * u);
            } else {
                ((TO *)a.y[p])[row] =
                    from_float<TO>(ring_row_sum(a, partial, p, r) + (a.bias[p] ? a.bias[p][row] : 0.0f));
            }
        }
        if (!GATED && p == 0 && a.signal) {
            __syncthreads(); // part 0's rows of this block are stored
            const uint32_t end = min(hi, a.signal_rows);
            if (tid == 0 && end > lo) red_release_add(a.signal, (int32_t)(end - lo));
        }
    }
    cp_async_wait_all(); // the trailing empty groups
    PROBE_WARP_DONE(a.w[0]);
}

// The instance's dynamic shared memory limit, raised once per size it needs
// (and its carveout preference set) on the current device.
template <typename T, typename TO, bool GATED, bool NORM>
static cudaError_t ring_prepare(size_t smem, int device) {
    static size_t set_smem = 0;
    static int set_device = -1, set_carveout = -2;
    if (set_device == device && set_smem >= smem && set_carveout == ring_carveout) return cudaSuccess;
    auto kernel = gemv_ring_kernel<T, TO, GATED, NORM>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e == cudaSuccess)
        e = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, ring_carveout);
    if (e != cudaSuccess) return e;
    set_smem = smem;
    set_device = device;
    set_carveout = ring_carveout;
    return cudaSuccess;
}

template <typename T, typename TO, bool GATED, bool NORM>
static cudaError_t ring_launch(const T *x, const ring_args &a, unsigned grid, size_t smem, int device,
                               cudaStream_t stream) {
    const cudaError_t e = ring_prepare<T, TO, GATED, NORM>(smem, device);
    if (e != cudaSuccess) return e;
    launch_pdl_smem(gemv_ring_kernel<T, TO, GATED, NORM>, dim3(grid), dim3(RING_THREADS), smem, stream, x, a);
    ring_launches++;
    return cudaGetLastError();
}

template <typename T>
static cudaError_t ring_dispatch(const void *x, const ring_args &a, int gated, int norm, int f32_out, unsigned grid,
                                 size_t smem, int device, cudaStream_t stream) {
    const T *xt = (const T *)x;
    if (f32_out) return ring_launch<T, float, false, false>(xt, a, grid, smem, device, stream);
    if (gated) {
        if (norm) return ring_launch<T, T, true, true>(xt, a, grid, smem, device, stream);
        return ring_launch<T, T, true, false>(xt, a, grid, smem, device, stream);
    }
    if (norm) return ring_launch<T, T, false, true>(xt, a, grid, smem, device, stream);
    return ring_launch<T, T, false, false>(xt, a, grid, smem, device, stream);
}

cudaError_t cuda_gemv_ring(const cuda_gemv_part *parts, int num_parts, int gated, const void *x,
                           const cuda_gemv_norm *norm, const cuda_gemv_signal *signal, llmrt_dtype type,
                           llmrt_dtype y_type, int64_t M, int64_t K, cudaStream_t stream) {
    if (!ring_stages || M != 1 || K % 256 != 0 || K * 2 > CUDA_GEMV_NORM_MAX_BYTES) return cudaErrorNotSupported;
    if (y_type != type && (y_type != LLMRT_DTYPE_F32 || num_parts != 1 || gated || norm))
        return cudaErrorNotSupported;
    static int sms = 0, sms_device = -1, smem_optin = 0;
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return cudaErrorNotSupported;
    if (device != sms_device) {
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
            cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
            (void)cudaGetLastError();
            return cudaErrorNotSupported;
        }
        sms_device = device;
    }
    ring_args a;
    memset(&a, 0, sizeof a);
    a.num_parts = num_parts;
    a.row_bytes = (uint32_t)(K * 2);
    a.stages = (uint32_t)ring_stages;
    a.x_bytes = (uint32_t)((K * 2 + 127) / 128 * 128);
    uint32_t partial_rows = 0;
    for (int i = 0; i < num_parts; i++) {
        if ((uint64_t)parts[i].N * (uint64_t)sms >= ((uint64_t)1 << 32)) return cudaErrorNotSupported;
        a.y[i] = parts[i].y;
        a.w[i] = (const char *)parts[i].w;
        a.bias[i] = parts[i].bias;
        a.n[i] = (uint32_t)parts[i].N;
        a.partial_at[i] = partial_rows;
        partial_rows += (uint32_t)((parts[i].N + sms - 1) / sms);
    }
    a.partials = partial_rows * RING_WARPS;
    if (norm) a.norm = *norm;
    a.signal = signal ? signal->counter : NULL;
    a.signal_rows = signal ? (uint32_t)signal->rows : 0;
    const size_t smem = (size_t)a.x_bytes + (size_t)a.stages * RING_STAGE + (size_t)a.partials * sizeof(float);
    if (smem > (size_t)smem_optin) return cudaErrorNotSupported;
    const void *xin = norm ? norm->a : x;
    const int f32_out = y_type == LLMRT_DTYPE_F32;
    if (type == LLMRT_DTYPE_F16) return ring_dispatch<__half>(xin, a, gated, norm != NULL, f32_out, sms, smem, device, stream);
    return ring_dispatch<__nv_bfloat16>(xin, a, gated, norm != NULL, f32_out, sms, smem, device, stream);
}

PROBE_BIND(cuda_probe_bind_gemv_ring)
