/* Plugin nodes on the CUDA backend: each resolved to its registered plugin
 * once at create (with one workspace for all, sized for the largest step),
 * then launched with device pointers on the step's stream. A plugin's
 * enqueue_cuda must not allocate or synchronise, so steps stay capturable
 * in CUDA graphs. */
#include <stdlib.h>

#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_common.h"
#include "graph/plugin_op.h"
#include "plugins/plugin_registry.h"

llmrt_status cuda_resolve_plugins(cuda_state *st) {
    const llmrt_graph *g = st->graph;
    LLMRT_TRY(llmrt_builtin_attention_plugin(&st->attention_plugin));
    if (!st->attention_plugin->enqueue_cuda)
        return llmrt_error(LLMRT_ERR_INTERNAL, "cuda: the attention plugin has no CUDA implementation");
    st->node_plugin = calloc((size_t)g->num_nodes + 1, sizeof *st->node_plugin);
    if (!st->node_plugin) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op != LLMRT_OP_PLUGIN) continue;
        llmrt_plugin_shape shape;
        LLMRT_TRY(llmrt_plugin_node_infer(g, n, &st->node_plugin[i], &shape));
        const llmrt_plugin *p = st->node_plugin[i];
        if (!p->enqueue_cuda)
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "plugin '%s' version %u has no CUDA implementation", p->name,
                               p->version);
        if (!p->workspace_size) continue;
        llmrt_plugin_shape inputs[LLMRT_PLUGIN_MAX_INPUTS];
        for (int32_t k = 0; k < n->num_inputs; k++) inputs[k] = llmrt_plugin_shape_of(&g->nodes[n->inputs[k]]);
        const size_t bytes = p->workspace_size(n->plugin_params, (size_t)n->plugin_params_size, inputs, n->num_inputs,
                                               st->plan->max_num_tokens);
        if (bytes > st->plugin_ws_bytes) st->plugin_ws_bytes = bytes;
    }
    if (st->plugin_ws_bytes) {
        const cudaError_t err = cudaMalloc(&st->plugin_ws, st->plugin_ws_bytes);
        if (err != cudaSuccess) return llmrt_cuda_status(err, "plugin workspace");
    }
    return LLMRT_OK;
}

static llmrt_plugin_tensor tensor_of(const cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    llmrt_plugin_tensor t = {.data = st->node_ptr[v], .shape = llmrt_plugin_shape_of(n)};
    t.shape.dtype = cuda_value_type(st, v);
    for (int32_t d = 0; d < n->ndim; d++) t.shape.dims[d] = cuda_value_dim(st, v, d);
    return t;
}

llmrt_status cuda_run_plugin(cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    const llmrt_plugin *p = st->node_plugin[v];
    llmrt_plugin_tensor inputs[LLMRT_PLUGIN_MAX_INPUTS];
    for (int32_t k = 0; k < n->num_inputs; k++) inputs[k] = tensor_of(st, n->inputs[k]);
    const llmrt_plugin_call call = {.params = n->plugin_params, .params_size = (size_t)n->plugin_params_size,
                                    .inputs = inputs, .num_inputs = n->num_inputs, .output = tensor_of(st, v),
                                    .workspace = st->plugin_ws, .workspace_size = st->plugin_ws_bytes};
    const llmrt_status status = p->enqueue_cuda(&call, st->stream);
    if (status != LLMRT_OK)
        return llmrt_error(status, "cuda: plugin '%s' (node %d) failed (%s)", p->name, (int)v,
                           llmrt_status_name(status));
    return LLMRT_OK;
}
