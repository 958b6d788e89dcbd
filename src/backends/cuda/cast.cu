// Casts and strided copies: CAST, SLICE, CONCAT and PERMUTE all lower to
// these (a copy with per-dim strides on both sides, casting on the way).
#include "backends/cuda/cuda_device.cuh"

__global__ void cast_kernel(void *y, int y_type, const void *x, int x_type, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        if (x_type == LLMRT_DTYPE_I32 && y_type == LLMRT_DTYPE_I32)
            ((int32_t *)y)[i] = ((const int32_t *)x)[i]; // exact for large ids
        else
            store_from_float(y, y_type, i, load_as_float(x, x_type, i));
    }
}

extern "C" cudaError_t cuda_cast(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, int64_t n,
                                 cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    cast_kernel<<<grid_for(n, 256), 256, 0, stream>>>(y, y_type, x, x_type, n);
    return cudaGetLastError();
}

struct copy_args {
    int32_t ndim;
    int64_t dims[CUDA_MAX_DIMS];
    int64_t x_strides[CUDA_MAX_DIMS];
    int64_t y_strides[CUDA_MAX_DIMS];
    int64_t x_offset, y_offset;
};

__global__ void strided_copy_kernel(void *y, int y_type, const void *x, int x_type, copy_args c, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rest = i, ix = c.x_offset, iy = c.y_offset;
        for (int d = c.ndim - 1; d >= 0; d--) {
            int64_t coord = rest % c.dims[d];
            rest /= c.dims[d];
            ix += coord * c.x_strides[d];
            iy += coord * c.y_strides[d];
        }
        if (x_type == y_type && x_type == LLMRT_DTYPE_I32)
            ((int32_t *)y)[iy] = ((const int32_t *)x)[ix];
        else
            store_from_float(y, y_type, iy, load_as_float(x, x_type, ix));
    }
}

extern "C" cudaError_t cuda_strided_copy(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                                         const cuda_copy_desc *desc, cudaStream_t stream) {
    if (desc->ndim < 0 || desc->ndim > CUDA_MAX_DIMS) return cudaErrorInvalidValue;
    copy_args c;
    c.ndim = desc->ndim;
    int64_t n = 1;
    for (int d = 0; d < CUDA_MAX_DIMS; d++) {
        c.dims[d] = d < desc->ndim ? desc->dims[d] : 1;
        c.x_strides[d] = d < desc->ndim ? desc->x_strides[d] : 0;
        c.y_strides[d] = d < desc->ndim ? desc->y_strides[d] : 0;
        n *= c.dims[d];
    }
    c.x_offset = desc->x_offset;
    c.y_offset = desc->y_offset;
    if (n <= 0) return cudaSuccess;
    strided_copy_kernel<<<grid_for(n, 256), 256, 0, stream>>>(y, y_type, x, x_type, c, n);
    return cudaGetLastError();
}
