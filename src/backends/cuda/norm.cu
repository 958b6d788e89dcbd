// Row kernels over the last axis: sum/mean, softmax, RMSNorm, LayerNorm and
// the residual-fused add + RMSNorm. One block per row; the row is read from
// global memory once per pass (passes after the first hit L1/L2, rows are at
// most a few tens of KB).
#include "backends/cuda/cuda_device.cuh"
#include "graph/ops.h"

enum { ROW_THREADS = 256 };

__global__ void reduce_last_kernel(int mean, void *y, int y_type, const void *x, int x_type, int64_t dim) {
    __shared__ float scratch[32];
    const int64_t base = (int64_t)blockIdx.x * dim;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += load_as_float(x, x_type, base + i);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) store_from_float(y, y_type, blockIdx.x, mean ? s / (float)dim : s);
}

extern "C" cudaError_t cuda_reduce_last(int op, void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                                        int64_t rows, int64_t dim, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    reduce_last_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(op == LLMRT_OP_MEAN, y, y_type, x, x_type, dim);
    return cudaGetLastError();
}

__global__ void softmax_kernel(void *y, int y_type, const void *x, int x_type, int64_t dim) {
    __shared__ float scratch[32];
    const int64_t base = (int64_t)blockIdx.x * dim;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) m = fmaxf(m, load_as_float(x, x_type, base + i));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += expf(load_as_float(x, x_type, base + i) - m);
    s = block_sum(s, scratch);
    float inv = 1.0f / s;
    // In place is safe: every thread reads its own elements before writing them.
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
        store_from_float(y, y_type, base + i, expf(load_as_float(x, x_type, base + i) - m) * inv);
}

extern "C" cudaError_t cuda_softmax(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, int64_t rows,
                                    int64_t dim, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    softmax_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(y, y_type, x, x_type, dim);
    return cudaGetLastError();
}

// RMSNorm with an optional residual add in front: with b != NULL the row is
// sum = round(a + b) (written to `sum` when non-NULL) and y = rmsnorm(sum),
// exactly what the unfused ADD then RMSNORM compute.
template <typename T>
__global__ void rmsnorm_kernel(T *y, T *sum, const T *a, const T *b, const void *weight, int w_type, int64_t dim,
                               float eps, float w_offset) {
    __shared__ float scratch[32];
    pdl_trigger(); // the GEMV after a norm may start loading its weights
    pdl_wait();
    const int64_t base = (int64_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = to_float<T>(a[base + i]);
        if (b) {
            T r = from_float<T>(v + to_float<T>(b[base + i]));
            if (sum) sum[base + i] = r;
            v = to_float<T>(r);
        }
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / (float)dim + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float v;
        // `sum` may alias a (an in-place residual): read back what this
        // thread wrote rather than recomputing from a.
        if (sum) v = to_float<T>(sum[base + i]);
        else if (b) v = to_float<T>(from_float<T>(to_float<T>(a[base + i]) + to_float<T>(b[base + i])));
        else v = to_float<T>(a[base + i]);
        y[base + i] = from_float<T>(v * inv * (load_as_float(weight, w_type, i) + w_offset));
    }
}

// The 16-bit fast path: each thread owns 8 consecutive elements, loaded and
// stored as one 16-byte vector and kept in registers between the two passes,
// with as many threads as the row has 8-element groups (≤ 1024, so rows up to
// 8192). At batch 1 the row kernel above runs one 256-thread block walking
// the row 16 times, latency-bound at ~5 µs; this is one load per thread.
enum { RMS_VEC = 8, RMS_VEC_MAX_THREADS = 1024 };

template <typename T>
__global__ void __launch_bounds__(RMS_VEC_MAX_THREADS)
    rmsnorm_vec_kernel(T *y, T *sum, const T *a, const T *b, const float *weight, int64_t dim, float eps,
                       float w_offset) {
    __shared__ float scratch[32];
    pdl_trigger();
    pdl_wait();
    const int64_t base = (int64_t)blockIdx.x * dim;
    const int64_t i = (int64_t)threadIdx.x * RMS_VEC;
    const bool active = i < dim;
    float v[RMS_VEC];
    float ss = 0.0f;
    if (active) {
        uint4 raw_a = *reinterpret_cast<const uint4 *>(a + base + i);
        const T *pa = reinterpret_cast<const T *>(&raw_a);
        if (b) {
            uint4 raw_b = *reinterpret_cast<const uint4 *>(b + base + i), raw_s;
            const T *pb = reinterpret_cast<const T *>(&raw_b);
            T *ps = reinterpret_cast<T *>(&raw_s);
#pragma unroll
            for (int k = 0; k < RMS_VEC; k++) {
                ps[k] = from_float<T>(to_float<T>(pa[k]) + to_float<T>(pb[k])); // rounded like the stored sum
                v[k] = to_float<T>(ps[k]);
            }
            if (sum) *reinterpret_cast<uint4 *>(sum + base + i) = raw_s;
        } else {
#pragma unroll
            for (int k = 0; k < RMS_VEC; k++) v[k] = to_float<T>(pa[k]);
        }
#pragma unroll
        for (int k = 0; k < RMS_VEC; k++) ss += v[k] * v[k];
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / (float)dim + eps);
    if (!active) return;
    const float4 w0 = *reinterpret_cast<const float4 *>(weight + i);
    const float4 w1 = *reinterpret_cast<const float4 *>(weight + i + 4);
    const float w[RMS_VEC] = {w0.x + w_offset, w0.y + w_offset, w0.z + w_offset, w0.w + w_offset,
                              w1.x + w_offset, w1.y + w_offset, w1.z + w_offset, w1.w + w_offset};
    uint4 raw_y;
    T *py = reinterpret_cast<T *>(&raw_y);
#pragma unroll
    for (int k = 0; k < RMS_VEC; k++) py[k] = from_float<T>(v[k] * inv * w[k]);
    *reinterpret_cast<uint4 *>(y + base + i) = raw_y;
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// Launches the vector kernel when it applies (16-bit activations, f32 gain,
// dim a multiple of 8 up to 8192, 16-byte aligned buffers); false otherwise.
static bool rmsnorm_vec(void *y, void *sum, const void *a, const void *b, llmrt_dtype type, const void *weight,
                        llmrt_dtype w_type, int64_t rows, int64_t dim, float eps, float w_offset, int pdl,
                        cudaStream_t stream) {
    if ((type != LLMRT_DTYPE_BF16 && type != LLMRT_DTYPE_F16) || w_type != LLMRT_DTYPE_F32 || dim % RMS_VEC != 0 ||
        dim > (int64_t)RMS_VEC * RMS_VEC_MAX_THREADS || !aligned16(y) || !aligned16(a) || !aligned16(weight) ||
        (b && !aligned16(b)) || (sum && !aligned16(sum)))
        return false;
    const unsigned threads = (unsigned)((dim / RMS_VEC + 31) / 32 * 32);
    if (type == LLMRT_DTYPE_BF16)
        launch_pdl(rmsnorm_vec_kernel<__nv_bfloat16>, dim3((unsigned)rows), dim3(threads), pdl, stream,
            (__nv_bfloat16 *)y, (__nv_bfloat16 *)sum, (const __nv_bfloat16 *)a, (const __nv_bfloat16 *)b,
            (const float *)weight, dim, eps, w_offset);
    else
        launch_pdl(rmsnorm_vec_kernel<__half>, dim3((unsigned)rows), dim3(threads), pdl, stream,
            (__half *)y, (__half *)sum, (const __half *)a, (const __half *)b, (const float *)weight, dim, eps,
            w_offset);
    return true;
}

extern "C" cudaError_t cuda_rmsnorm_offset(void *y, const void *x, llmrt_dtype type, const void *weight,
                                           llmrt_dtype w_type, int64_t rows, int64_t dim, float eps, float w_offset,
                                           int pdl, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (rmsnorm_vec(y, nullptr, x, nullptr, type, weight, w_type, rows, dim, eps, w_offset, pdl, stream))
        return cudaGetLastError();
    DISPATCH_FLOAT_TYPES(type, T, {
        launch_pdl(rmsnorm_kernel<T>, dim3((unsigned)rows), dim3(ROW_THREADS), pdl, stream, (T *)y, (T *)nullptr,
                   (const T *)x, (const T *)nullptr, weight, (int)w_type, dim, eps, w_offset);
    });
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_rmsnorm(void *y, const void *x, llmrt_dtype type, const void *weight,
                                    llmrt_dtype w_type, int64_t rows, int64_t dim, float eps, int pdl,
                                    cudaStream_t stream) {
    return cuda_rmsnorm_offset(y, x, type, weight, w_type, rows, dim, eps, 0.0f, pdl, stream);
}

extern "C" cudaError_t cuda_add_rmsnorm(void *y, void *sum, const void *a, const void *b, llmrt_dtype type,
                                        const void *weight, llmrt_dtype w_type, int64_t rows, int64_t dim, float eps,
                                        int pdl, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (rmsnorm_vec(y, sum, a, b, type, weight, w_type, rows, dim, eps, 0.0f, pdl, stream)) return cudaGetLastError();
    DISPATCH_FLOAT_TYPES(type, T, {
        launch_pdl(rmsnorm_kernel<T>, dim3((unsigned)rows), dim3(ROW_THREADS), pdl, stream, (T *)y, (T *)sum,
                   (const T *)a, (const T *)b, weight, (int)w_type, dim, eps, 0.0f);
    });
    return cudaGetLastError();
}

template <typename T>
__global__ void layernorm_kernel(T *y, const T *x, const void *weight, const void *bias, int w_type, int64_t dim,
                                 float eps) {
    __shared__ float scratch[32];
    pdl_trigger();
    const int64_t base = (int64_t)blockIdx.x * dim;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += to_float<T>(x[base + i]);
    const float mean = block_sum(s, scratch) / (float)dim;
    // Two passes (mean, then squared deviations) as the CPU twin does: no
    // cancellation when |mean| ≫ std.
    float v = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float d = to_float<T>(x[base + i]) - mean;
        v += d * d;
    }
    const float inv = rsqrtf(block_sum(v, scratch) / (float)dim + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float r = (to_float<T>(x[base + i]) - mean) * inv * load_as_float(weight, w_type, i);
        if (bias) r += load_as_float(bias, w_type, i);
        y[base + i] = from_float<T>(r);
    }
}

extern "C" cudaError_t cuda_layernorm(void *y, const void *x, llmrt_dtype type, const void *weight, const void *bias,
                                      llmrt_dtype w_type, int64_t rows, int64_t dim, float eps, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    DISPATCH_FLOAT_TYPES(type, T, {
        layernorm_kernel<T><<<(unsigned)rows, ROW_THREADS, 0, stream>>>((T *)y, (const T *)x, weight, bias, w_type,
                                                                       dim, eps);
    });
    return cudaGetLastError();
}
