/* MOE nodes on the GPU: the workspace for the step's routing, grouped
 * tokens and expert outputs, sized at create for max_num_tokens (a step
 * allocates nothing), and the launch of moe.cu's kernels. */
#include <stdio.h>

#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_common.h"

llmrt_status cuda_moe_prepare(cuda_state *st) {
    size_t most = 0;
    for (int32_t v = 0; v < st->graph->num_nodes; v++) {
        const llmrt_node *n = &st->graph->nodes[v];
        if (n->op != LLMRT_OP_MOE) continue;
        const llmrt_node *w_gate = &st->graph->nodes[n->inputs[2]];
        const size_t bytes = cuda_moe_workspace_bytes(st->plan->max_num_tokens, n->dims[1], w_gate->dims[1],
                                                      n->iattr[0], n->iattr[1], cuda_value_type(st, v));
        if (bytes > most) most = bytes;
    }
    if (!most) return LLMRT_OK;
    cudaError_t err = cudaMalloc(&st->moe_ws, most);
    if (err != cudaSuccess)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate the %.1f MiB mixture-of-experts workspace (%s)",
                           most / 1048576.0, cudaGetErrorString(err));
    st->moe_ws_bytes = most;
    return LLMRT_OK;
}

llmrt_status cuda_moe_run(cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    const llmrt_value x = n->inputs[0], logits = n->inputs[1], w_gate = n->inputs[2];
    const llmrt_dtype t = cuda_value_type(st, v);
    if (cuda_value_type(st, x) != t || cuda_value_type(st, w_gate) != t || cuda_value_type(st, n->inputs[3]) != t ||
        cuda_value_type(st, n->inputs[4]) != t)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cuda: moe (node %d): x, experts and output must share one dtype "
                           "(x %s, experts %s, output %s)", (int)v, llmrt_dtype_name(cuda_value_type(st, x)),
                           llmrt_dtype_name(cuda_value_type(st, w_gate)), llmrt_dtype_name(t));
    const int64_t H = cuda_value_dim(st, v, 1), I = st->graph->nodes[w_gate].dims[1];
    cudaError_t err = cuda_moe(st->node_ptr[v], st->node_ptr[x], st->node_ptr[logits], cuda_value_type(st, logits),
                               st->node_ptr[w_gate], st->node_ptr[n->inputs[3]], st->node_ptr[n->inputs[4]], t, st->T,
                               H, I, n->iattr[0], n->iattr[1], st->moe_ws, st->pdl, st->stream);
    if (err != cudaSuccess) {
        char what[64];
        snprintf(what, sizeof what, "moe (node %d)", (int)v);
        return llmrt_cuda_status(err, what);
    }
    return LLMRT_OK;
}
