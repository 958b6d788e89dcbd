// Kernels of the 8-bit weight-and-activation LINEAR (cuda_q8.h, core/quant8.h):
//
//   q8_quantize_kernel   x [M, K] → codes [M, K] + row scales [M], one block a
//                        row: the row's amax, then each code, bit for bit as
//                        llmrt_q8_quantize_activation makes it
//   q8_gemv_kernel       decode sizes (M ≤ 8): streams W's one-byte codes (half
//                        the bytes of bf16, the decode win) against the
//                        quantized rows of x
//   q8_gemv_fused_kernel the same with x quantized in each block (M ≤ 4,
//                        M · K codes in shared memory): one launch a LINEAR
//   q8_tiled_kernel      any shape (K not a multiple of 16, cuBLASLt refusing)
//   q8_epilogue_kernel   acc · sx[m] · sw[n] + bias[n] after an unscaled GEMM
//
// Exactness: the build uses --use_fast_math, so x / s is __fdiv_rn (IEEE
// division, as the C reference divides) and E4M3 codes come from
// __nv_cvt_float_to_fp8(.., __NV_SATFINITE, __NV_E4M3): round to nearest
// even, saturating to ±448, as llmrt_fp8_e4m3_encode. (Fast math also
// flushes f32 subnormals; an x / s below 2^-126 encodes to a signed zero
// either way, so the codes still match.) Products of two E4M3 values are
// exact in f32; int8 products sum exactly in int32. Every path ends as the
// reference does: (float)((double)acc · sx · sw) + bias.
#include <cuda_fp8.h>

#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/cuda_q8.h"

enum {
    Q8_QUANT_THREADS = 256,
    Q8_GEMV_WARPS = 8,  // a block: 8 warps ...
    Q8_GEMV_ROWS = 2,   // ... of 2 weight rows each
    Q8_GEMV_UNROLL = 4, // 16-byte chunks a lane loads per batch and row
    Q8_TILE = 32,       // the tiled kernel's output tile (32 × 32) ...
    Q8_TILE_K = 32,     // ... and inputs per shared-memory step
    Q8_EPILOGUE_THREADS = 256,
};

template <int KIND> struct q8_traits;
template <> struct q8_traits<LLMRT_Q8_FP8> {
    typedef float acc;
};
template <> struct q8_traits<LLMRT_Q8_INT8> {
    typedef int32_t acc;
};

template <int KIND> __device__ __forceinline__ uint8_t q8_encode(float v);
template <> __device__ __forceinline__ uint8_t q8_encode<LLMRT_Q8_FP8>(float v) {
    return (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
}
template <> __device__ __forceinline__ uint8_t q8_encode<LLMRT_Q8_INT8>(float v) {
    const int r = __float2int_rn(v); // NaN → 0, as llmrt_int8_encode
    return (uint8_t)(int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
}

template <int KIND> __device__ __forceinline__ typename q8_traits<KIND>::acc q8_decode(uint8_t code);
template <> __device__ __forceinline__ float q8_decode<LLMRT_Q8_FP8>(uint8_t code) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));
}
template <> __device__ __forceinline__ int32_t q8_decode<LLMRT_Q8_INT8>(uint8_t code) { return (int8_t)code; }

// 16 E4M3 codes (byte i = element i) → 16 floats.
__device__ __forceinline__ void fp8x16_decode(float (&f)[16], const uint4 &v) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(w[i] >> (16 * h)), __NV_E4M3);
            const float2 p = __half22float2(__half2(r)); // .x: the lower byte
            f[i * 4 + h * 2] = p.x;
            f[i * 4 + h * 2 + 1] = p.y;
        }
}

__device__ __forceinline__ int32_t warp_sum_i32(int32_t v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The reference's last line: (float)(acc · sx · sw) in double, + bias.
__device__ __forceinline__ void q8_store(void *y, int y_type, int64_t i, double acc, float sx, float sw,
                                         const float *bias, int64_t n) {
    store_from_float(y, y_type, i, (float)(acc * sx * sw) + (bias ? bias[n] : 0.0f));
}

// ---------------------------------------------------------------------------
// Activation quantization: block m quantizes row m, V elements a step (8:
// 16-byte loads of 16-bit x, 8-byte stores of codes; 1 where K % 8 ≠ 0 or
// x is not 16-byte aligned).

template <typename T, int V> __device__ __forceinline__ void load_v(float (&f)[V], const T *p) {
    if constexpr (V == 1) f[0] = to_float<T>(p[0]);
    else if constexpr (sizeof(T) == 4) load16_float(f, p), load16_float(f + 4, p + 4);
    else load16_float(f, p);
}

// V codes of f / s, stored at out.
template <int KIND, int V> __device__ __forceinline__ void encode_store_v(uint8_t *out, const float (&f)[V], float s) {
    if constexpr (V == 1) {
        out[0] = q8_encode<KIND>(__fdiv_rn(f[0], s));
    } else {
        uint32_t w[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            float q[4];
#pragma unroll
            for (int j = 0; j < 4; j++) q[j] = __fdiv_rn(f[4 * i + j], s);
            if constexpr (KIND == LLMRT_Q8_FP8) {
                // one instruction per pair, each element rounded as alone; .x → the lower byte
                const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(q[0], q[1]), __NV_SATFINITE, __NV_E4M3);
                const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(q[2], q[3]), __NV_SATFINITE, __NV_E4M3);
                w[i] = lo | hi << 16;
            } else {
                w[i] = (uint32_t)q8_encode<KIND>(q[0]) | (uint32_t)q8_encode<KIND>(q[1]) << 8 |
                       (uint32_t)q8_encode<KIND>(q[2]) << 16 | (uint32_t)q8_encode<KIND>(q[3]) << 24;
            }
        }
        *reinterpret_cast<uint2 *>(out) = make_uint2(w[0], w[1]);
    }
}

// Row m of x quantized by the whole block into out (K codes); returns its
// scale (every thread). Shared by the quantize kernel and the fused GEMV so
// both make the same codes.
template <typename T, int KIND, int V>
__device__ __forceinline__ float q8_quantize_row(uint8_t *out, const T *row, int64_t K, float static_scale,
                                                 float *scratch) {
    const int64_t steps = K / V;
    float s = static_scale;
    if (!(s > 0.0f)) {
        float amax = 0.0f;
        for (int64_t i = threadIdx.x; i < steps; i += blockDim.x) {
            float f[V];
            load_v<T, V>(f, row + i * V);
#pragma unroll
            for (int j = 0; j < V; j++) amax = fmaxf(amax, fabsf(f[j]));
        }
        amax = block_max(amax, scratch);
        s = __fdiv_rn(amax, KIND == LLMRT_Q8_FP8 ? LLMRT_FP8_E4M3_MAX : LLMRT_INT8_QMAX);
        if (!(s > 0.0f) || !isfinite(s)) s = 1.0f;
    }
    for (int64_t i = threadIdx.x; i < steps; i += blockDim.x) {
        float f[V];
        load_v<T, V>(f, row + i * V);
        encode_store_v<KIND, V>(out + i * V, f, s);
    }
    return s;
}

template <typename T, int KIND, int V>
__global__ void __launch_bounds__(Q8_QUANT_THREADS)
    q8_quantize_kernel(uint8_t *codes, float *scales, const T *x, int64_t K, float static_scale) {
    __shared__ float scratch[32];
    pdl_wait();
    pdl_trigger();
    const int64_t m = blockIdx.x;
    const float s = q8_quantize_row<T, KIND, V>(codes + m * K, x + m * K, K, static_scale, scratch);
    if (threadIdx.x == 0) scales[m] = s;
}

// ---------------------------------------------------------------------------
// GEMV: a warp streams Q8_GEMV_ROWS rows of W in 16-byte chunks (16 codes),
// lanes strided over K, Q8_GEMV_UNROLL chunks a row per batch with the next
// batch in flight while this one is used; W is read once with an
// evict-first hint, x's codes (M · K bytes) stay in L1/L2. The first batch
// goes out before pdl_wait: W does not depend on the kernel before.

// acc[r][m] += W chunk c of row r · x chunk c of row m.
template <int KIND, int M, int R>
__device__ __forceinline__ void q8_chunk_fma(typename q8_traits<KIND>::acc (&acc)[R][M], const uint4 (&w)[R],
                                             const uint8_t *xq, int64_t c, int64_t K) {
    if constexpr (KIND == LLMRT_Q8_FP8) {
        float wf[R][16];
#pragma unroll
        for (int r = 0; r < R; r++) fp8x16_decode(wf[r], w[r]);
#pragma unroll
        for (int m = 0; m < M; m++) {
            float xf[16];
            fp8x16_decode(xf, reinterpret_cast<const uint4 *>(xq + m * K)[c]);
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int j = 0; j < 16; j++) acc[r][m] = fmaf(xf[j], wf[r][j], acc[r][m]);
        }
    } else {
#pragma unroll
        for (int m = 0; m < M; m++) {
            const uint4 xv = reinterpret_cast<const uint4 *>(xq + m * K)[c];
#pragma unroll
            for (int r = 0; r < R; r++) {
                acc[r][m] = __dp4a((int)w[r].x, (int)xv.x, acc[r][m]);
                acc[r][m] = __dp4a((int)w[r].y, (int)xv.y, acc[r][m]);
                acc[r][m] = __dp4a((int)w[r].z, (int)xv.z, acc[r][m]);
                acc[r][m] = __dp4a((int)w[r].w, (int)xv.w, acc[r][m]);
            }
        }
    }
}

template <int R, int U>
__device__ __forceinline__ void q8_load_batch(uint4 (&wv)[R][U], const uint4 *const (&wrow)[R], int64_t c0,
                                              int64_t chunks) {
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int64_t c = c0 + (int64_t)u * 32;
            wv[r][u] = c < chunks ? __ldcs(wrow[r] + c) : make_uint4(0, 0, 0, 0);
        }
}

// W's rows of this warp, and its first batch of chunks: loaded before
// pdl_wait, since W does not depend on the kernel before.
template <int R, int U>
__device__ __forceinline__ void q8_gemv_start(const uint4 *(&wrow)[R], uint4 (&wv)[R][U], const uint8_t *wq,
                                              int64_t n0, int64_t N, int64_t K) {
#pragma unroll
    for (int r = 0; r < R; r++) // rows past N re-read the last row; their sums are not stored
        wrow[r] = reinterpret_cast<const uint4 *>(wq + (n0 + r < N ? n0 + r : N - 1) * K);
    q8_load_batch<R, U>(wv, wrow, threadIdx.x & 31, K / 16);
}

// The rest of the warp's rows: every chunk against x's codes (global or
// shared memory), then the sums through the reference's last line.
template <int KIND, int M, int R, int U>
__device__ __forceinline__ void q8_gemv_finish(void *y, int y_type, const uint8_t *xq, const float *sx,
                                               const uint4 *const (&wrow)[R], uint4 (&wv)[R][U], const float *sw,
                                               const float *bias, int64_t n0, int64_t N, int64_t K) {
    typedef typename q8_traits<KIND>::acc acc_t;
    const int lane = threadIdx.x & 31;
    const int64_t chunks = K / 16;
    acc_t acc[R][M];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0;
    for (int64_t c0 = lane; c0 < chunks; c0 += 32 * U) {
        uint4 cur[R][U];
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++) cur[r][u] = wv[r][u];
        if (c0 + 32 * U < chunks) q8_load_batch<R, U>(wv, wrow, c0 + 32 * U, chunks);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = c0 + (int64_t)u * 32;
            if (c >= chunks) break;
            uint4 w[R];
#pragma unroll
            for (int r = 0; r < R; r++) w[r] = cur[r][u];
            q8_chunk_fma<KIND, M, R>(acc, w, xq, c, K);
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < M; m++) {
            double total;
            if constexpr (KIND == LLMRT_Q8_FP8) total = warp_sum(acc[r][m]);
            else total = warp_sum_i32(acc[r][m]);
            const int64_t n = n0 + r;
            if (lane == 0 && n < N) q8_store(y, y_type, m * N + n, total, sx[m], sw[n], bias, n);
        }
}

template <int KIND, int M>
__global__ void __launch_bounds__(Q8_GEMV_WARPS * 32)
    q8_gemv_kernel(void *y, int y_type, const uint8_t *xq, const float *sx, const uint8_t *wq, const float *sw,
                   const float *bias, int64_t N, int64_t K) {
    constexpr int R = Q8_GEMV_ROWS, U = Q8_GEMV_UNROLL;
    const int64_t n0 = ((int64_t)blockIdx.x * Q8_GEMV_WARPS + (threadIdx.x >> 5)) * R;
    const uint4 *wrow[R];
    uint4 wv[R][U];
    q8_gemv_start<R, U>(wrow, wv, wq, n0, N, K);
    pdl_wait();
    pdl_trigger();
    q8_gemv_finish<KIND, M, R, U>(y, y_type, xq, sx, wrow, wv, sw, bias, n0, N, K);
}

// The GEMV with the activation quantization fused in (decode steps, where
// a second launch per LINEAR costs more than the work): every block
// quantizes x's M rows into shared memory with q8_quantize_row — the same
// codes and scales as the quantize kernel — while its first W batch is in
// flight. Dynamic shared memory: M floats of scales (64 bytes), then M · K
// codes.
template <typename T, int KIND, int M>
__global__ void __launch_bounds__(Q8_GEMV_WARPS * 32)
    q8_gemv_fused_kernel(void *y, int y_type, const T *x, float static_scale, const uint8_t *wq, const float *sw,
                         const float *bias, int64_t N, int64_t K) {
    constexpr int R = Q8_GEMV_ROWS, U = Q8_GEMV_UNROLL;
    extern __shared__ __align__(16) uint8_t q8_smem[];
    __shared__ float scratch[32];
    float *scales = reinterpret_cast<float *>(q8_smem);
    uint8_t *codes = q8_smem + 64;
    const int64_t n0 = ((int64_t)blockIdx.x * Q8_GEMV_WARPS + (threadIdx.x >> 5)) * R;
    const uint4 *wrow[R];
    uint4 wv[R][U];
    q8_gemv_start<R, U>(wrow, wv, wq, n0, N, K);
    pdl_wait();
    pdl_trigger();
#pragma unroll 1
    for (int m = 0; m < M; m++) {
        const float s = q8_quantize_row<T, KIND, 8>(codes + m * K, x + m * K, K, static_scale, scratch);
        if (threadIdx.x == 0) scales[m] = s;
    }
    __syncthreads();
    q8_gemv_finish<KIND, M, R, U>(y, y_type, codes, scales, wrow, wv, sw, bias, n0, N, K);
}

// ---------------------------------------------------------------------------
// Tiled product (the fallback): a 32 × 32 output tile a block of 256
// threads, each 2 × 2 outputs; codes decoded once into shared memory.
template <int KIND>
__global__ void __launch_bounds__(256)
    q8_tiled_kernel(void *y, int y_type, const uint8_t *xq, const float *sx, const uint8_t *wq, const float *sw,
                    const float *bias, int64_t M, int64_t N, int64_t K) {
    typedef typename q8_traits<KIND>::acc acc_t;
    __shared__ acc_t xs[Q8_TILE][Q8_TILE_K + 1], ws[Q8_TILE][Q8_TILE_K + 1];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t m0 = (int64_t)blockIdx.y * Q8_TILE, n0 = (int64_t)blockIdx.x * Q8_TILE;
    acc_t acc[2][2] = {{0, 0}, {0, 0}};
    for (int64_t k0 = 0; k0 < K; k0 += Q8_TILE_K) {
        for (int i = threadIdx.x; i < Q8_TILE * Q8_TILE_K; i += blockDim.x) {
            const int r = i / Q8_TILE_K, k = i % Q8_TILE_K;
            const bool in_k = k0 + k < K;
            xs[r][k] = in_k && m0 + r < M ? q8_decode<KIND>(xq[(m0 + r) * K + k0 + k]) : 0;
            ws[r][k] = in_k && n0 + r < N ? q8_decode<KIND>(wq[(n0 + r) * K + k0 + k]) : 0;
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < Q8_TILE_K; k++)
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) acc[i][j] += xs[ty + 16 * i][k] * ws[tx + 16 * j][k];
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) q8_store(y, y_type, m * N + n, (double)acc[i][j], sx[m], sw[n], bias, n);
        }
}

// ---------------------------------------------------------------------------
template <typename A>
__global__ void __launch_bounds__(Q8_EPILOGUE_THREADS)
    q8_epilogue_kernel(void *y, int y_type, const A *acc, const float *sx, const float *sw, const float *bias,
                       int64_t M, int64_t N) {
    const int64_t total = M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / N, n = i % N;
        q8_store(y, y_type, i, (double)acc[i], sx ? sx[m] : 1.0f, sw ? sw[n] : 1.0f, bias, n);
    }
}

// ---------------------------------------------------------------------------
static bool float_type(llmrt_dtype t) {
    return t == LLMRT_DTYPE_F32 || t == LLMRT_DTYPE_F16 || t == LLMRT_DTYPE_BF16;
}

static bool valid_kind(int kind) { return kind == LLMRT_Q8_FP8 || kind == LLMRT_Q8_INT8; }

template <typename T, int KIND>
static void launch_q8_quantize(uint8_t *codes, float *scales, const T *x, int64_t M, int64_t K, float static_scale,
                               bool vec, int pdl, cudaStream_t stream) {
    if (vec)
        launch_pdl(q8_quantize_kernel<T, KIND, 8>, dim3((unsigned)M), dim3(Q8_QUANT_THREADS), pdl, stream, codes,
                   scales, x, K, static_scale);
    else
        launch_pdl(q8_quantize_kernel<T, KIND, 1>, dim3((unsigned)M), dim3(Q8_QUANT_THREADS), pdl, stream, codes,
                   scales, x, K, static_scale);
}

extern "C" cudaError_t cuda_q8_quantize(uint8_t *codes, float *scales, const void *x, llmrt_dtype x_type, int64_t M,
                                        int64_t K, int kind, float static_scale, int pdl, cudaStream_t stream) {
    if (M <= 0 || K <= 0 || !valid_kind(kind) || M > 0x7fffffff) return M == 0 ? cudaSuccess : cudaErrorInvalidValue;
    const bool vec = K % 8 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)codes % 8 == 0;
    DISPATCH_FLOAT_TYPES(x_type, T, {
        if (kind == LLMRT_Q8_FP8) launch_q8_quantize<T, LLMRT_Q8_FP8>(codes, scales, (const T *)x, M, K, static_scale,
                                                                     vec, pdl, stream);
        else launch_q8_quantize<T, LLMRT_Q8_INT8>(codes, scales, (const T *)x, M, K, static_scale, vec, pdl, stream);
    });
    return cudaGetLastError();
}

extern "C" int cuda_q8_gemv_supported(int64_t M, int64_t K, const void *xq, const void *wq) {
    return M >= 1 && M <= CUDA_Q8_GEMV_MAX_M && K % 16 == 0 && ((uintptr_t)xq % 16) == 0 && ((uintptr_t)wq % 16) == 0;
}

template <int KIND, int M>
static void launch_q8_gemv(void *y, llmrt_dtype y_type, const uint8_t *xq, const float *sx, const uint8_t *wq,
                           const float *sw, const float *bias, int64_t N, int64_t K, int pdl, cudaStream_t stream) {
    const int64_t per_block = Q8_GEMV_WARPS * Q8_GEMV_ROWS;
    launch_pdl(q8_gemv_kernel<KIND, M>, dim3((unsigned)((N + per_block - 1) / per_block)), dim3(Q8_GEMV_WARPS * 32),
               pdl, stream, y, (int)y_type, xq, sx, wq, sw, bias, N, K);
}

template <int KIND>
static void launch_q8_gemv_m(void *y, llmrt_dtype y_type, const uint8_t *xq, const float *sx, const uint8_t *wq,
                             const float *sw, const float *bias, int64_t M, int64_t N, int64_t K, int pdl,
                             cudaStream_t stream) {
    switch (M) {
    case 1: launch_q8_gemv<KIND, 1>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    case 2: launch_q8_gemv<KIND, 2>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    case 3: launch_q8_gemv<KIND, 3>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    case 4: launch_q8_gemv<KIND, 4>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    case 5: launch_q8_gemv<KIND, 5>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    case 6: launch_q8_gemv<KIND, 6>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    case 7: launch_q8_gemv<KIND, 7>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    default: launch_q8_gemv<KIND, 8>(y, y_type, xq, sx, wq, sw, bias, N, K, pdl, stream); break;
    }
}

extern "C" cudaError_t cuda_q8_gemv(void *y, llmrt_dtype y_type, const uint8_t *xq, const float *sx, const uint8_t *wq,
                                    const float *sw, const float *bias, int kind, int64_t M, int64_t N, int64_t K,
                                    int pdl, cudaStream_t stream) {
    if (!cuda_q8_gemv_supported(M, K, xq, wq) || N <= 0 || !valid_kind(kind) || !float_type(y_type))
        return cudaErrorInvalidValue;
    if (kind == LLMRT_Q8_FP8) launch_q8_gemv_m<LLMRT_Q8_FP8>(y, y_type, xq, sx, wq, sw, bias, M, N, K, pdl, stream);
    else launch_q8_gemv_m<LLMRT_Q8_INT8>(y, y_type, xq, sx, wq, sw, bias, M, N, K, pdl, stream);
    return cudaGetLastError();
}

template <typename T, int KIND, int M>
static void launch_q8_gemv_fused(void *y, llmrt_dtype y_type, const T *x, float static_scale, const uint8_t *wq,
                                 const float *sw, const float *bias, int64_t N, int64_t K, int pdl,
                                 cudaStream_t stream) {
    const int64_t per_block = Q8_GEMV_WARPS * Q8_GEMV_ROWS;
    launch_pdl_smem(q8_gemv_fused_kernel<T, KIND, M>, dim3((unsigned)((N + per_block - 1) / per_block)),
                    dim3(Q8_GEMV_WARPS * 32), (size_t)(64 + M * K), pdl, stream, y, (int)y_type, x, static_scale,
                    wq, sw, bias, N, K);
}

template <typename T, int KIND>
static void launch_q8_gemv_fused_m(void *y, llmrt_dtype y_type, const T *x, float static_scale, const uint8_t *wq,
                                   const float *sw, const float *bias, int64_t M, int64_t N, int64_t K, int pdl,
                                   cudaStream_t stream) {
    switch (M) {
    case 1: launch_q8_gemv_fused<T, KIND, 1>(y, y_type, x, static_scale, wq, sw, bias, N, K, pdl, stream); break;
    case 2: launch_q8_gemv_fused<T, KIND, 2>(y, y_type, x, static_scale, wq, sw, bias, N, K, pdl, stream); break;
    case 3: launch_q8_gemv_fused<T, KIND, 3>(y, y_type, x, static_scale, wq, sw, bias, N, K, pdl, stream); break;
    default: launch_q8_gemv_fused<T, KIND, 4>(y, y_type, x, static_scale, wq, sw, bias, N, K, pdl, stream); break;
    }
}

extern "C" int cuda_q8_gemv_fused_supported(int64_t M, int64_t K, const void *x, const void *wq) {
    return M >= 1 && M <= CUDA_Q8_GEMV_FUSED_MAX_M && K % 16 == 0 && 64 + M * K <= CUDA_Q8_GEMV_FUSED_MAX_SMEM &&
           ((uintptr_t)x % 16) == 0 && ((uintptr_t)wq % 16) == 0;
}

extern "C" cudaError_t cuda_q8_gemv_fused(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                                          float static_scale, const uint8_t *wq, const float *sw, const float *bias,
                                          int kind, int64_t M, int64_t N, int64_t K, int pdl, cudaStream_t stream) {
    if (!cuda_q8_gemv_fused_supported(M, K, x, wq) || N <= 0 || !valid_kind(kind) || !float_type(y_type))
        return cudaErrorInvalidValue;
    DISPATCH_FLOAT_TYPES(x_type, T, {
        if (kind == LLMRT_Q8_FP8)
            launch_q8_gemv_fused_m<T, LLMRT_Q8_FP8>(y, y_type, (const T *)x, static_scale, wq, sw, bias, M, N, K,
                                                    pdl, stream);
        else
            launch_q8_gemv_fused_m<T, LLMRT_Q8_INT8>(y, y_type, (const T *)x, static_scale, wq, sw, bias, M, N, K,
                                                     pdl, stream);
    });
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_q8_matmul_tiled(void *y, llmrt_dtype y_type, const uint8_t *xq, const float *sx,
                                            const uint8_t *wq, const float *sw, const float *bias, int kind, int64_t M,
                                            int64_t N, int64_t K, cudaStream_t stream) {
    if (M <= 0 || N <= 0) return cudaSuccess;
    if (K <= 0 || !valid_kind(kind) || !float_type(y_type) || (M + Q8_TILE - 1) / Q8_TILE > 65535)
        return cudaErrorInvalidValue;
    const dim3 grid((unsigned)((N + Q8_TILE - 1) / Q8_TILE), (unsigned)((M + Q8_TILE - 1) / Q8_TILE));
    if (kind == LLMRT_Q8_FP8)
        q8_tiled_kernel<LLMRT_Q8_FP8><<<grid, 256, 0, stream>>>(y, (int)y_type, xq, sx, wq, sw, bias, M, N, K);
    else
        q8_tiled_kernel<LLMRT_Q8_INT8><<<grid, 256, 0, stream>>>(y, (int)y_type, xq, sx, wq, sw, bias, M, N, K);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_q8_epilogue(void *y, llmrt_dtype y_type, const void *acc, int acc_int, const float *sx,
                                        const float *sw, const float *bias, int64_t M, int64_t N,
                                        cudaStream_t stream) {
    if (M <= 0 || N <= 0) return cudaSuccess;
    if (!float_type(y_type)) return cudaErrorInvalidValue;
    const unsigned grid = grid_for(M * N, Q8_EPILOGUE_THREADS);
    if (acc_int)
        q8_epilogue_kernel<int32_t><<<grid, Q8_EPILOGUE_THREADS, 0, stream>>>(y, (int)y_type, (const int32_t *)acc, sx,
                                                                              sw, bias, M, N);
    else
        q8_epilogue_kernel<float><<<grid, Q8_EPILOGUE_THREADS, 0, stream>>>(y, (int)y_type, (const float *)acc, sx, sw,
                                                                            bias, M, N);
    return cudaGetLastError();
}
