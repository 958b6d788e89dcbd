// Elementwise kernels: the graph's unary ops, broadcasting binary ops, and the
// fused SwiGLU product. All compute in fp32 and round once on store, as the
// CPU twins (which run in f32) do up to that final rounding.
#include "backends/cuda/cuda_device.cuh"
#include "graph/ops.h"

// x^p. Integer exponents multiply out: this file is built with
// --use_fast_math, where powf is exp2(p·log2 x) and gives NaN for every
// x < 0, so GELU-tanh's unfused x³ turned GPT-2's logits into NaN.
// Non-integer exponents of negative x are NaN, as in torch.
__device__ __forceinline__ float pow_exact(float x, float p) {
    if (p == 2.0f) return x * x;
    if (p == 3.0f) return x * x * x;
    if (p == 1.0f) return x;
    if (p == 0.5f) return sqrtf(x);
    if (p == rintf(p) && fabsf(p) <= 64.0f) {
        int e = abs((int)p);
        float r = 1.0f, b = x;
        for (; e; e >>= 1, b *= b)
            if (e & 1) r *= b;
        return p < 0.0f ? 1.0f / r : r;
    }
    return powf(x, p);
}

__device__ __forceinline__ float apply_unary(int op, float x, float param) {
    switch (op) {
    case LLMRT_OP_POW: return pow_exact(x, param);
    case LLMRT_OP_NEG: return -x;
    case LLMRT_OP_EXP: return expf(x);
    case LLMRT_OP_SQRT: return sqrtf(x);
    case LLMRT_OP_RSQRT: return rsqrtf(x);
    case LLMRT_OP_TANH: return tanhf(x);
    case LLMRT_OP_ERF: return erff(x);
    case LLMRT_OP_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case LLMRT_OP_RELU: return fmaxf(x, 0.0f);
    case LLMRT_OP_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case LLMRT_OP_SILU: return x / (1.0f + expf(-x));
    case LLMRT_OP_GELU_TANH: {
        float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(inner));
    }
    default: return __int_as_float(0x7fc00000); // unknown op: NaN, caught by tests
    }
}

__global__ void unary_kernel(int op, void *y, int y_type, const void *x, int x_type, int64_t n, float param) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        store_from_float(y, y_type, i, apply_unary(op, load_as_float(x, x_type, i), param));
}

extern "C" cudaError_t cuda_unary(int op, void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                                  int64_t n, float param, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    unary_kernel<<<grid_for(n, 256), 256, 0, stream>>>(op, y, y_type, x, x_type, n, param);
    return cudaGetLastError();
}

__device__ __forceinline__ float apply_binary(int op, float a, float b) {
    switch (op) {
    case LLMRT_OP_ADD: return a + b;
    case LLMRT_OP_SUB: return a - b;
    case LLMRT_OP_MUL: return a * b;
    default: return a / b;
    }
}

// Same-shape operands of one type: 16-byte vectors (the residual add).
template <typename T>
__global__ void binary_same_vec_kernel(int op, T *y, const T *a, const T *b, int64_t nvec) {
    constexpr int V = vec16<T>::N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nvec; i += (int64_t)gridDim.x * blockDim.x) {
        float va[V], vb[V];
        load16_float(va, a + i * V);
        load16_float(vb, b + i * V);
#pragma unroll
        for (int j = 0; j < V; j++) va[j] = apply_binary(op, va[j], vb[j]);
        store16_float(y + i * V, va);
    }
}

struct broadcast_args {
    int32_t ndim;
    int64_t out_dims[CUDA_MAX_DIMS];
    int64_t a_strides[CUDA_MAX_DIMS];
    int64_t b_strides[CUDA_MAX_DIMS];
};

__global__ void binary_broadcast_kernel(int op, void *y, int y_type, const void *a, int a_type, const void *b,
                                        int b_type, broadcast_args bc, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rest = i, ia = 0, ib = 0;
        for (int d = bc.ndim - 1; d >= 0; d--) {
            int64_t coord = rest % bc.out_dims[d];
            rest /= bc.out_dims[d];
            ia += coord * bc.a_strides[d];
            ib += coord * bc.b_strides[d];
        }
        store_from_float(y, y_type, i, apply_binary(op, load_as_float(a, a_type, ia), load_as_float(b, b_type, ib)));
    }
}

extern "C" int cuda_broadcast_init(cuda_broadcast *bc, int32_t out_ndim, const int64_t *out_dims, int32_t a_ndim,
                                   const int64_t *a_dims, int32_t b_ndim, const int64_t *b_dims) {
    if (out_ndim > CUDA_MAX_DIMS || a_ndim > out_ndim || b_ndim > out_ndim) return -1;
    bc->ndim = out_ndim;
    int64_t sa = 1, sb = 1;
    for (int d = out_ndim - 1; d >= 0; d--) {
        int da = d - (out_ndim - a_ndim), db = d - (out_ndim - b_ndim);
        int64_t a_dim = da >= 0 ? a_dims[da] : 1, b_dim = db >= 0 ? b_dims[db] : 1;
        bc->out_dims[d] = out_dims[d];
        if (a_dim != out_dims[d] && a_dim != 1) return -1;
        if (b_dim != out_dims[d] && b_dim != 1) return -1;
        bc->a_strides[d] = a_dim == 1 ? 0 : sa;
        bc->b_strides[d] = b_dim == 1 ? 0 : sb;
        sa *= a_dim;
        sb *= b_dim;
    }
    return 0;
}

static bool is_contiguous_full(const cuda_broadcast *bc, const int64_t *strides) {
    int64_t s = 1;
    for (int d = bc->ndim - 1; d >= 0; d--) {
        if (bc->out_dims[d] != 1 && strides[d] != s) return false;
        s *= bc->out_dims[d];
    }
    return true;
}

extern "C" cudaError_t cuda_binary(int op, void *y, llmrt_dtype y_type, const void *a, llmrt_dtype a_type,
                                   const void *b, llmrt_dtype b_type, const cuda_broadcast *bc, cudaStream_t stream) {
    int64_t n = 1;
    for (int d = 0; d < bc->ndim; d++) n *= bc->out_dims[d];
    if (n <= 0) return cudaSuccess;
    bool same = y_type == a_type && y_type == b_type && y_type != LLMRT_DTYPE_I32 &&
                is_contiguous_full(bc, bc->a_strides) && is_contiguous_full(bc, bc->b_strides);
    if (same) {
        size_t es = y_type == LLMRT_DTYPE_F32 ? 4 : 2;
        int64_t per_vec = 16 / (int64_t)es;
        bool aligned = (((uintptr_t)y | (uintptr_t)a | (uintptr_t)b) & 15) == 0 && n % per_vec == 0;
        if (aligned) {
            int64_t nvec = n / per_vec;
            DISPATCH_FLOAT_TYPES(y_type, T, {
                binary_same_vec_kernel<T><<<grid_for(nvec, 256), 256, 0, stream>>>(op, (T *)y, (const T *)a,
                                                                                   (const T *)b, nvec);
            });
            return cudaGetLastError();
        }
    }
    broadcast_args args;
    args.ndim = bc->ndim;
    for (int d = 0; d < CUDA_MAX_DIMS; d++) {
        args.out_dims[d] = d < bc->ndim ? bc->out_dims[d] : 1;
        args.a_strides[d] = d < bc->ndim ? bc->a_strides[d] : 0;
        args.b_strides[d] = d < bc->ndim ? bc->b_strides[d] : 0;
    }
    binary_broadcast_kernel<<<grid_for(n, 256), 256, 0, stream>>>(op, y, y_type, a, a_type, b, b_type, args, n);
    return cudaGetLastError();
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

template <typename T>
__global__ void silu_mul_vec_kernel(T *y, const T *gate, const T *up, int64_t nvec) {
    constexpr int V = vec16<T>::N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nvec; i += (int64_t)gridDim.x * blockDim.x) {
        float g[V], u[V];
        load16_float(g, gate + i * V);
        load16_float(u, up + i * V);
#pragma unroll
        for (int j = 0; j < V; j++) g[j] = silu(g[j]) * u[j];
        store16_float(y + i * V, g);
    }
}

template <typename T>
__global__ void silu_mul_kernel(T *y, const T *gate, const T *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_float<T>(silu(to_float<T>(gate[i])) * to_float<T>(up[i]));
}

extern "C" cudaError_t cuda_silu_mul(void *y, const void *gate, const void *up, llmrt_dtype type, int64_t n,
                                     cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    DISPATCH_FLOAT_TYPES(type, T, {
        constexpr int V = vec16<T>::N;
        if (n % V == 0 && (((uintptr_t)y | (uintptr_t)gate | (uintptr_t)up) & 15) == 0)
            silu_mul_vec_kernel<T><<<grid_for(n / V, 256), 256, 0, stream>>>((T *)y, (const T *)gate,
                                                                           (const T *)up, n / V);
        else
            silu_mul_kernel<T><<<grid_for(n, 256), 256, 0, stream>>>((T *)y, (const T *)gate, (const T *)up, n);
    });
    return cudaGetLastError();
}
