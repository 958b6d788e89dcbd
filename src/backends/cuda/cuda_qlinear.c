/* Quantized LINEARs on the GPU: a step of up to CUDA_QGEMV_MAX_M rows runs
 * the GEMV that dequantizes in registers (decode: bandwidth-bound, so the
 * 4× / 2× fewer bytes than bf16 are the gain); a larger one dequantizes W
 * into a 16-bit scratch matrix and runs the cuBLASLt GEMM (prefill:
 * compute-bound, the dequantization is one pass over N·K). The scratch is
 * allocated once at create, for the largest quantized weight. */
#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/cuda_quant.h"
#include "core/quant.h"

/* The host copy of the weight's header (the engine's own bytes, checked
 * against the plan when it was loaded). */
static const llmrt_qweight_header *header_of(const cuda_state *st, llmrt_value wv) {
    const llmrt_node *w = &st->graph->nodes[wv];
    return (const llmrt_qweight_header *)st->plan->weights[w->weight_slot].data;
}

llmrt_status cuda_qlinear_prepare(cuda_state *st) {
    size_t most = 0;
    const size_t elsize = llmrt_dtype_size(st->act_type);
    for (int32_t v = 0; v < st->graph->num_nodes; v++) {
        const llmrt_node *n = &st->graph->nodes[v];
        if (n->op != LLMRT_OP_WEIGHT || !llmrt_dtype_is_quantized(n->dtype)) continue;
        const size_t bytes = (size_t)n->dims[0] * (size_t)n->dims[1] * elsize;
        if (bytes > most) most = bytes;
    }
    if (!most) return LLMRT_OK;
    cudaError_t err = cudaMalloc(&st->qweight_scratch, most);
    if (err != cudaSuccess)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate %.1f MiB to dequantize weights into (%s)",
                           most / 1048576.0, cudaGetErrorString(err));
    st->qweight_scratch_bytes = most;
    return LLMRT_OK;
}

llmrt_status cuda_qlinear_run(cuda_state *st, llmrt_value v, llmrt_value xv, llmrt_value wv, llmrt_value bv) {
    const llmrt_node *n = &st->graph->nodes[v], *x = &st->graph->nodes[xv];
    const llmrt_qweight_header *h = header_of(st, wv);
    const int64_t K = cuda_value_dim(st, xv, x->ndim - 1), N = h->rows;
    const llmrt_dtype tx = cuda_value_type(st, xv), ty = cuda_value_type(st, v);
    if (K != h->cols || K <= 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: linear node %d \"%s\": x has %lld inputs, W %lld", (int)v,
                           n->name ? n->name : "", (long long)K, (long long)h->cols);
    if (bv >= 0 && cuda_value_type(st, bv) != LLMRT_DTYPE_F32)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cuda: linear node %d: a quantized weight takes an f32 bias", (int)v);
    const float *bias = bv >= 0 ? (const float *)st->node_ptr[bv] : NULL;
    const int64_t M = cuda_value_numel(st, xv) / K;
    const void *w = st->node_ptr[wv];
    cudaError_t err;
    if (M <= CUDA_QGEMV_MAX_M) {
        err = cuda_qgemv(st->node_ptr[v], ty, st->node_ptr[xv], tx, w, h, bias, M, st->pdl, st->stream);
        return err == cudaSuccess ? LLMRT_OK : llmrt_cuda_status(err, "quantized GEMV");
    }
    if ((size_t)N * (size_t)K * llmrt_dtype_size(tx) > st->qweight_scratch_bytes)
        return llmrt_error(LLMRT_ERR_INTERNAL, "cuda: linear node %d: no scratch to dequantize its weight", (int)v);
    err = cuda_qdequantize(st->qweight_scratch, tx, w, h, st->stream);
    if (err != cudaSuccess) return llmrt_cuda_status(err, "dequantize weights");
    llmrt_status s = cuda_gemm_run_out(st->gemm, st->node_ptr[v], ty, st->node_ptr[xv], st->qweight_scratch, tx, 1,
                                       bias, M, N, K, st->stream);
    if (s == LLMRT_ERR_UNSUPPORTED) {
        err = cuda_matmul_generic(st->node_ptr[v], ty, st->node_ptr[xv], tx, st->qweight_scratch, tx, 1, bias, M, N, K,
                                  st->stream);
        s = err == cudaSuccess ? LLMRT_OK : llmrt_cuda_status(err, "quantized GEMM");
    }
    return s;
}
