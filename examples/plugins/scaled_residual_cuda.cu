// The CUDA implementation of example.scaled_residual: y = x + alpha * f,
// elementwise over f32, f16 or bf16 (the engine's activation dtype).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <string.h>

#include <llmrt/plugin.h>

template <typename T>
__global__ void scaled_residual_kernel(T *y, const T *x, const T *f, float alpha, int64_t count) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = (T)((float)x[i] + alpha * (float)f[i]);
}

template <typename T>
static cudaError_t launch(const llmrt_plugin_call *call, float alpha, int64_t count, cudaStream_t stream) {
    const int threads = 256;
    const int64_t wanted = (count + threads - 1) / threads;
    const int blocks = (int)(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
    scaled_residual_kernel<T><<<blocks, threads, 0, stream>>>((T *)call->output.data, (const T *)call->inputs[0].data,
                                                            (const T *)call->inputs[1].data, alpha, count);
    return cudaGetLastError();
}

// x, f, y: [..., D] of one dtype; the launch is asynchronous on cuda_stream.
extern "C" llmrt_status scaled_residual_enqueue_cuda(const llmrt_plugin_call *call, void *cuda_stream) {
    float alpha;
    memcpy(&alpha, call->params, sizeof alpha);
    int64_t count = 1;
    for (int32_t i = 0; i < call->output.shape.ndim; i++) count *= call->output.shape.dims[i];
    if (count == 0) return LLMRT_OK;
    cudaStream_t stream = (cudaStream_t)cuda_stream;
    cudaError_t err;
    switch (call->output.shape.dtype) {
    case LLMRT_DTYPE_F32: err = launch<float>(call, alpha, count, stream); break;
    case LLMRT_DTYPE_F16: err = launch<__half>(call, alpha, count, stream); break;
    case LLMRT_DTYPE_BF16: err = launch<__nv_bfloat16>(call, alpha, count, stream); break;
    default: return LLMRT_ERR_UNSUPPORTED;
    }
    return err == cudaSuccess ? LLMRT_OK : LLMRT_ERR_BACKEND;
}
