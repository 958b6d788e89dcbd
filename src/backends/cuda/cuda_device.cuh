// Device-side helpers shared by the .cu files: typed loads and stores by
// llmrt_dtype (fp32 math, one rounding on store), warp and block reductions,
// and launch-size helpers.
#ifndef LLMRT_BACKENDS_CUDA_DEVICE_CUH
#define LLMRT_BACKENDS_CUDA_DEVICE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "backends/cuda/cuda_kernels.h"

// Runtime-typed element access. The type is uniform across a launch, so the
// switch is a predictable branch; the hot kernels use the templated paths.
__device__ __forceinline__ float load_as_float(const void *p, int type, int64_t i) {
    switch (type) {
    case LLMRT_DTYPE_F16: return __half2float(((const __half *)p)[i]);
    case LLMRT_DTYPE_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case LLMRT_DTYPE_I32: return (float)((const int32_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}

__device__ __forceinline__ void store_from_float(void *p, int type, int64_t i, float v) {
    switch (type) {
    case LLMRT_DTYPE_F16: ((__half *)p)[i] = __float2half_rn(v); break;
    case LLMRT_DTYPE_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    case LLMRT_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    default: ((float *)p)[i] = v; break;
    }
}

// Compile-time-typed conversions for the templated kernels.
template <typename T> __device__ __forceinline__ float to_float(T v);
template <> __device__ __forceinline__ float to_float<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// 16 bytes of T, converted to/from VEC floats.
template <typename T> struct vec16 {
    static constexpr int N = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void load16_float(float *dst, const T *src) {
    uint4 raw = *reinterpret_cast<const uint4 *>(src);
    const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
    for (int i = 0; i < vec16<T>::N; i++) dst[i] = to_float<T>(e[i]);
}

template <typename T>
__device__ __forceinline__ void store16_float(T *dst, const float *src) {
    uint4 raw;
    T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
    for (int i = 0; i < vec16<T>::N; i++) e[i] = from_float<T>(src[i]);
    *reinterpret_cast<uint4 *>(dst) = raw;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum/max for blockDim.x a multiple of 32 (≤ 1024); every thread
// gets the result. `scratch` holds 32 floats; callable repeatedly.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float *scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

// 16 bytes of a row of T starting at element `col`: one vector load when
// the row is known 16-byte aligned and at least col + 16 bytes long
// (EXACT), else element-wise with zeros at and past d.
template <typename T, bool EXACT>
__device__ __forceinline__ uint4 load16_masked(const T *row, int col, int d) {
    if (EXACT) return *reinterpret_cast<const uint4 *>(row + col);
    uint4 raw = make_uint4(0, 0, 0, 0);
    T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
    for (int i = 0; i < (int)(16 / sizeof(T)); i++)
        if (col + i < d) e[i] = row[col + i];
    return raw;
}

// One RoPE pair (HF pairing): (x1, x2) → (x1·c − x2·s, x2·c + x1·s), with
// explicit roundings so that every kernel that rotates (the RoPE + KV-write
// kernel, the fused decode attention) gets the same bits whatever the
// compiler contracts.
__device__ __forceinline__ void rope_pair(float x1, float x2, float c, float s, float &o1, float &o2) {
    o1 = __fadd_rn(__fmul_rn(x1, c), -__fmul_rn(x2, s));
    o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

// RoPE's angle for position pos and frequency f: the fp32 product, as HF
// computes it; its sine and cosine in double (the build uses
// --use_fast_math, whose sinf/cosf lose accuracy for long contexts' angles).
__device__ __forceinline__ void rope_cos_sin(int32_t pos, float f, float &c, float &s) {
    const float angle = (float)pos * f;
    double sd, cd;
    sincos((double)angle, &sd, &cd);
    c = (float)cd;
    s = (float)sd;
}

// Programmatic dependent launch (Hopper): a kernel launched with the
// programmatic-serialization attribute may start while its predecessor is
// still running; it must call pdl_wait() before touching anything the
// predecessor writes or reads. pdl_trigger() lets the successor start
// (every block of this kernel has begun). Both are no-ops without PDL.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Flags between kernels that run at once (a producer and the PDL-launched
// consumer beside it): the producer publishes with a release add, the
// consumer polls with relaxed loads and acquires once it sees the value
// (block_wait_at_least); release is cumulative, so what the producer's
// block had made visible to its warp (a CTA-scope release before) is
// published too.
__device__ __forceinline__ void red_release_add(int32_t *p, int32_t v) {
    asm volatile("red.release.gpu.global.add.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ int32_t ld_relaxed(const int32_t *p) {
    int32_t v;
    asm volatile("ld.relaxed.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ int32_t ld_acquire(const int32_t *p) {
    int32_t v;
    asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// Thread 0 waits until *p ≥ target, then the block goes on (every thread
// may read what the publisher wrote). Relaxed polls (an acquire poll would
// invalidate the SM's L1 each time, under the kernel that shares the SM),
// then one acquire load of the flag: it synchronises with the release as a
// fence would, without a GPU-scope fence's wait for the thread's loads in
// flight (a GEMV's first weight batch: ~0.3-0.5 µs on the H200). A flag
// that never gets there (a bug) traps after ~2^26 polls (> 4 s), so the
// step fails with an error instead of hanging the GPU.
__device__ __forceinline__ void block_wait_at_least(const int32_t *p, int32_t target) {
    if (threadIdx.x == 0) {
        for (unsigned polls = 0; ld_relaxed(p) < target; polls++) {
            if (polls == 1u << 26) __trap();
            __nanosleep(64);
        }
        (void)ld_acquire(p);
    }
    __syncthreads();
}

// 16 bytes global → shared without registers (cp.async, sm_80+); src_bytes
// 0 writes zeros. A thread sees its own copies after cp_async_wait_*.
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
    const uint32_t dst = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// Launches `kernel` with programmatic dependent launch when `pdl` is 1 (the
// caller's: the backend's settings on a GPU that has it); the kernel must
// call pdl_wait() before its first access to memory that an earlier kernel
// writes or reads.
template <typename... KArgs, typename... Args>
static inline void launch_pdl_smem(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, int pdl,
                                   cudaStream_t stream, Args... args) {
    if (!pdl) {
        kernel<<<grid, block, smem, stream>>>(args...);
        return;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    cudaLaunchKernelEx(&cfg, kernel, args...);
}

template <typename... KArgs, typename... Args>
static inline void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, int pdl, cudaStream_t stream,
                              Args... args) {
    launch_pdl_smem(kernel, grid, block, 0, pdl, stream, args...);
}

// Grid size for a grid-stride loop over n items.
static inline unsigned grid_for(int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks > 65535LL * 16) blocks = 65535LL * 16;
    if (blocks < 1) blocks = 1;
    return (unsigned)blocks;
}

// Dispatch on an activation type to a templated body: DISPATCH_FLOAT_TYPES(type, T, { ... }).
#define DISPATCH_FLOAT_TYPES(type, T, ...)                                   \
    do {                                                                     \
        if ((type) == LLMRT_DTYPE_F16) {                                     \
            typedef __half T;                                                \
            __VA_ARGS__                                                      \
        } else if ((type) == LLMRT_DTYPE_BF16) {                             \
            typedef __nv_bfloat16 T;                                         \
            __VA_ARGS__                                                      \
        } else if ((type) == LLMRT_DTYPE_F32) {                              \
            typedef float T;                                                 \
            __VA_ARGS__                                                      \
        } else {                                                             \
            return cudaErrorInvalidValue;                                    \
        }                                                                    \
    } while (0)

#endif
