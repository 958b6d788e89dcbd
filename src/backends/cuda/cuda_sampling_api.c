/* Greedy sampling of the last step's logits on the GPU (see
 * cuda_sampling_api.h): one argmax launch on the backend's stream, then a
 * copy of L token ids instead of L × vocab floats. */
#include "backends/cuda/cuda_sampling_api.h"

#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_common.h"

llmrt_status llmrt_cuda_argmax_last_logits(void *state, int32_t *out_ids) {
    cuda_state *st = state;
    if (!st || !out_ids) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda argmax: no state or output");
    const llmrt_plan *plan = st->plan;
    if (st->L <= 0 || plan->output_logits < 0 || !st->ids_dev)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda argmax: the last step produced no logits");
    /* f32 logits: logits_dev for f16/bf16 plans, the output node for f32 ones */
    const float *logits = st->logits_dev ? st->logits_dev : (const float *)st->node_ptr[plan->output_logits];
    LLMRT_CUDA_TRY(cuda_argmax(st->ids_dev, logits, st->L, plan->vocab_size, st->stream), "argmax launch");
    LLMRT_CUDA_TRY(cudaMemcpyAsync(out_ids, st->ids_dev, (size_t)st->L * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                   st->stream),
                   "token ids download");
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "argmax");
    return LLMRT_OK;
}
