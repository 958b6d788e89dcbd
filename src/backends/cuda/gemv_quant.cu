// Linears with int8-wo / int4-wo weights (core/quant.h): the decode GEMV,
// which dequantizes in registers, and the dequantization into a 16-bit
// matrix that a prefill GEMM (cuBLASLt) then reads.
//
// The blob's codes come in panels of 16 outputs, each a run of 64-byte
// steps of 4 (int8) or 8 (int4) inputs, 4 bytes per output. A thread loads
// 16 bytes: 4 outputs of one step. A warp's 32 loads are 8 whole steps,
// 512 contiguous bytes; a block of QGEMV_THREADS walks one panel, so the
// weights stream once, at 4× (int4) or 2× (int8) fewer bytes than bf16.
// Each thread keeps, per row of x and per output, Σ code·x of its steps,
// scaled as it goes by the step's group: s · (Σ code·x − z · Σ x). A
// permuted blob (GPTQ act-order) reads x through its perm; the
// dequantization writes each stored input back to its place in x's order.
#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/cuda_quant.h"

enum { QGEMV_THREADS = 256, QDEQUANT_THREADS = 256 };

// The blob's input order (stored input j is x's input perm[j]), or NULL.
__device__ __forceinline__ const int32_t *perm_of(const uint8_t *blob, const llmrt_qweight_header &h) {
    if (!(h.flags & LLMRT_QWEIGHT_PERMUTED)) return nullptr;
    return (const int32_t *)(blob + h.total_bytes - (((uint64_t)h.cols * 4 + 63) & ~(uint64_t)63));
}

template <int BITS>
__device__ __forceinline__ int code_at(uint32_t word, int j) {
    // word: 4 bytes of one output; int8: byte j is input j; int4: nibble j of
    // bytes 0..3 low then high (inputs 0..3 low nibbles, 4..7 high)
    if (BITS == 8) return (word >> (8 * j)) & 0xff;
    return j < 4 ? (word >> (8 * j)) & 0xf : (word >> (8 * (j - 4) + 4)) & 0xf;
}

// y[m, n] for the 16 outputs of panel blockIdx.x, m < M ≤ CUDA_QGEMV_MAX_M.
template <typename T, int BITS>
__global__ void __launch_bounds__(QGEMV_THREADS)
    qgemv_kernel(T *y, float *y32, const T *x, const uint8_t *blob, llmrt_qweight_header h, const float *bias, int M) {
    constexpr int PER_STEP = BITS == 8 ? 4 : 8;
    __shared__ float partial[QGEMV_THREADS / 32][CUDA_QGEMV_MAX_M][16];
    pdl_wait();
    pdl_trigger();
    const int64_t p = blockIdx.x, K = h.cols;
    const int quad = threadIdx.x & 3;  // which 4 outputs of the panel
    const uint8_t *codes = blob + LLMRT_QWEIGHT_HEADER_BYTES + p * h.panel_bytes;
    const __half *scales = (const __half *)(blob + h.scales_offset) + p * h.groups * 16;
    const uint8_t *zeros = blob + h.zeros_offset + p * h.groups * 16;
    const int32_t *perm = perm_of(blob, h);
    const int64_t steps = (K + PER_STEP - 1) / PER_STEP;
    float acc[CUDA_QGEMV_MAX_M][4];
#pragma unroll
    for (int m = 0; m < CUDA_QGEMV_MAX_M; m++)
#pragma unroll
        for (int r = 0; r < 4; r++) acc[m][r] = 0.0f;
    for (int64_t s = threadIdx.x >> 2; s < steps; s += QGEMV_THREADS / 4) {
        const uint4 words = *(const uint4 *)(codes + s * 64 + quad * 16);
        const uint32_t w[4] = {words.x, words.y, words.z, words.w};
        const int64_t k0 = s * PER_STEP, g = k0 / h.group_size;
        float sc[4], z[4];
#pragma unroll
        for (int r = 0; r < 4; r++) {
            sc[r] = __half2float(scales[g * 16 + quad * 4 + r]);
            z[r] = (float)zeros[g * 16 + quad * 4 + r];
        }
#pragma unroll
        for (int m = 0; m < CUDA_QGEMV_MAX_M; m++) {
            if (m >= M) break;
            float xv[PER_STEP], xsum = 0.0f;
#pragma unroll
            for (int j = 0; j < PER_STEP; j++) {
                xv[j] = k0 + j < K ? to_float<T>(x[m * K + (perm ? perm[k0 + j] : k0 + j)]) : 0.0f;
                xsum += xv[j];
            }
#pragma unroll
            for (int r = 0; r < 4; r++) {
                float dot = 0.0f;
#pragma unroll
                for (int j = 0; j < PER_STEP; j++) dot = fmaf((float)code_at<BITS>(w[r], j), xv[j], dot);
                acc[m][r] = fmaf(sc[r], dot - z[r] * xsum, acc[m][r]);
            }
        }
    }
    // lanes with the same quad hold the same outputs: fold lanes 4, 8, 16 apart
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int m = 0; m < CUDA_QGEMV_MAX_M; m++)
#pragma unroll
        for (int r = 0; r < 4; r++) {
            float v = acc[m][r];
            v += __shfl_xor_sync(0xffffffffu, v, 4);
            v += __shfl_xor_sync(0xffffffffu, v, 8);
            v += __shfl_xor_sync(0xffffffffu, v, 16);
            if (lane < 4) partial[warp][m][lane * 4 + r] = v;
        }
    __syncthreads();
    for (int e = threadIdx.x; e < M * 16; e += QGEMV_THREADS) {
        const int m = e / 16, o = e % 16;
        const int64_t n = p * 16 + o;
        if (n >= h.rows) continue;
        float v = bias ? bias[n] : 0.0f;
        for (int w = 0; w < QGEMV_THREADS / 32; w++) v += partial[w][m][o];
        if (y32) y32[m * h.rows + n] = v;
        else y[m * h.rows + n] = from_float<T>(v);
    }
}

// out[n, k] = s · (code − z), one thread per 16-byte load (4 outputs × one step).
template <typename T, int BITS>
__global__ void __launch_bounds__(QDEQUANT_THREADS)
    qdequantize_kernel(T *out, const uint8_t *blob, llmrt_qweight_header h) {
    constexpr int PER_STEP = BITS == 8 ? 4 : 8;
    const int64_t steps = (h.cols + PER_STEP - 1) / PER_STEP, panels = (h.rows + 15) / 16;
    const int64_t total = panels * steps * 4;
    const uint8_t *codes = blob + LLMRT_QWEIGHT_HEADER_BYTES;
    const __half *scales = (const __half *)(blob + h.scales_offset);
    const uint8_t *zeros = blob + h.zeros_offset;
    const int32_t *perm = perm_of(blob, h);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t p = i / (steps * 4), s = i / 4 % steps;
        const int quad = (int)(i % 4);
        const uint4 words = *(const uint4 *)(codes + p * h.panel_bytes + s * 64 + quad * 16);
        const uint32_t w[4] = {words.x, words.y, words.z, words.w};
        const int64_t k0 = s * PER_STEP, g = k0 / h.group_size;
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const int64_t n = p * 16 + quad * 4 + r;
            if (n >= h.rows) break;
            const float sc = __half2float(scales[(p * h.groups + g) * 16 + quad * 4 + r]);
            const float z = (float)zeros[(p * h.groups + g) * 16 + quad * 4 + r];
#pragma unroll
            for (int j = 0; j < PER_STEP; j++)
                if (k0 + j < h.cols)
                    out[n * h.cols + (perm ? perm[k0 + j] : k0 + j)] = from_float<T>(sc * ((float)code_at<BITS>(w[r], j) - z));
        }
    }
}

template <typename T>
static cudaError_t launch_qgemv(void *y, llmrt_dtype y_type, const void *x, const void *blob,
                                const llmrt_qweight_header *h, const float *bias, int64_t M, int pdl,
                                cudaStream_t stream) {
    float *y32 = y_type == LLMRT_DTYPE_F32 ? (float *)y : NULL;
    const dim3 grid((unsigned)((h->rows + 15) / 16));
    if (h->bits == 8)
        launch_pdl(qgemv_kernel<T, 8>, grid, dim3(QGEMV_THREADS), pdl, stream, (T *)y, y32, (const T *)x,
                   (const uint8_t *)blob, *h, bias, (int)M);
    else
        launch_pdl(qgemv_kernel<T, 4>, grid, dim3(QGEMV_THREADS), pdl, stream, (T *)y, y32, (const T *)x,
                   (const uint8_t *)blob, *h, bias, (int)M);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t launch_qdequantize(void *out, const void *blob, const llmrt_qweight_header *h,
                                      cudaStream_t stream) {
    const int64_t items = (h->rows + 15) / 16 * ((h->cols + 3) / 4) * 4;
    const unsigned grid = grid_for(items, QDEQUANT_THREADS);
    if (h->bits == 8)
        qdequantize_kernel<T, 8><<<grid, QDEQUANT_THREADS, 0, stream>>>((T *)out, (const uint8_t *)blob, *h);
    else
        qdequantize_kernel<T, 4><<<grid, QDEQUANT_THREADS, 0, stream>>>((T *)out, (const uint8_t *)blob, *h);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_qgemv(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, const void *blob,
                                  const llmrt_qweight_header *h, const float *bias, int64_t M, int pdl,
                                  cudaStream_t stream) {
    if (M < 1 || M > CUDA_QGEMV_MAX_M || (h->bits != 4 && h->bits != 8) || (y_type != x_type && y_type != LLMRT_DTYPE_F32))
        return cudaErrorInvalidValue;
    switch (x_type) {
    case LLMRT_DTYPE_F32: return launch_qgemv<float>(y, y_type, x, blob, h, bias, M, pdl, stream);
    case LLMRT_DTYPE_F16: return launch_qgemv<__half>(y, y_type, x, blob, h, bias, M, pdl, stream);
    case LLMRT_DTYPE_BF16: return launch_qgemv<__nv_bfloat16>(y, y_type, x, blob, h, bias, M, pdl, stream);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t cuda_qdequantize(void *out, llmrt_dtype out_type, const void *blob,
                                        const llmrt_qweight_header *h, cudaStream_t stream) {
    if (h->bits != 4 && h->bits != 8) return cudaErrorInvalidValue;
    switch (out_type) {
    case LLMRT_DTYPE_F32: return launch_qdequantize<float>(out, blob, h, stream);
    case LLMRT_DTYPE_F16: return launch_qdequantize<__half>(out, blob, h, stream);
    case LLMRT_DTYPE_BF16: return launch_qdequantize<__nv_bfloat16>(out, blob, h, stream);
    default: return cudaErrorInvalidValue;
    }
}
