/* An example plugin: "example.scaled_residual", y = x + alpha · f, the
 * residual connection of a block whose branch is scaled (as in DeepNet or
 * layer-scale). Built as a shared library; `llmrt build|run --plugin
 * libscaled_residual.so` or llmrt_plugin_load() registers it.
 *
 * x, f: [..., D] of one dtype, the same shape → [..., D] of that dtype
 * (f32 on the CPU; f32, f16 or bf16 on CUDA, scaled_residual_cuda.cu)
 * params: one little-endian f32, alpha.
 *
 * It needs nothing but llmrt/plugin.h: llmrt hands it the register function. */
#include <llmrt/plugin.h>
#include <string.h>

/* A build of the same op at another version, to test that an engine built
 * with one refuses to load with the other. */
#ifndef SCALED_RESIDUAL_VERSION
#define SCALED_RESIDUAL_VERSION 1
#endif

static int same_shape(const llmrt_plugin_shape *a, const llmrt_plugin_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

static llmrt_status infer_shape(const void *params, size_t params_size, const llmrt_plugin_shape *inputs,
                                int32_t num_inputs, llmrt_plugin_shape *output) {
    if (params_size != sizeof(float) || num_inputs != 2) return LLMRT_ERR_INVALID_ARGUMENT;
    const llmrt_dtype t = inputs[0].dtype;
    if (t != inputs[1].dtype || (t != LLMRT_DTYPE_F32 && t != LLMRT_DTYPE_F16 && t != LLMRT_DTYPE_BF16))
        return LLMRT_ERR_UNSUPPORTED;
    if (!same_shape(&inputs[0], &inputs[1])) return LLMRT_ERR_INVALID_ARGUMENT;
    *output = inputs[0];
    return LLMRT_OK;
}

static llmrt_status enqueue_cpu(const llmrt_plugin_call *call) {
    if (call->output.shape.dtype != LLMRT_DTYPE_F32) return LLMRT_ERR_UNSUPPORTED; /* CPU activations are f32 */
    float alpha;
    memcpy(&alpha, call->params, sizeof alpha);
    const float *x = call->inputs[0].data, *f = call->inputs[1].data;
    float *y = call->output.data;
    int64_t count = 1;
    for (int32_t i = 0; i < call->output.shape.ndim; i++) count *= call->output.shape.dims[i];
    for (int64_t i = 0; i < count; i++) y[i] = x[i] + alpha * f[i];
    return LLMRT_OK;
}

#ifdef SCALED_RESIDUAL_CUDA
llmrt_status scaled_residual_enqueue_cuda(const llmrt_plugin_call *call, void *cuda_stream);
#endif

static const llmrt_plugin scaled_residual = {
    .abi_version = LLMRT_PLUGIN_ABI_VERSION,
    .name = "example.scaled_residual",
    .version = SCALED_RESIDUAL_VERSION,
    .infer_shape = infer_shape,
    .enqueue_cpu = enqueue_cpu,
#ifdef SCALED_RESIDUAL_CUDA
    .enqueue_cuda = scaled_residual_enqueue_cuda,
#endif
};

__attribute__((visibility("default"))) llmrt_status llmrt_plugin_init(llmrt_plugin_register_fn register_plugin) {
    return register_plugin(&scaled_residual);
}
