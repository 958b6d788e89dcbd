/* llmrt_plugin_op: placing a registered plugin in a graph. The plugin's
 * own infer_shape decides the output; its name, version and parameter blob
 * ride on the node into the engine. */
#include "graph/plugin_op.h"

#include <stdlib.h>
#include <string.h>

#include "plugins/plugin_registry.h"

/* plugins see the graph's symbolic dims as they are */
_Static_assert(LLMRT_PLUGIN_DIM_TOKENS == LLMRT_DIM_TOKENS && LLMRT_PLUGIN_DIM_LOGITS == LLMRT_DIM_LOGITS,
               "plugin.h's dim symbols must match graph.h's");
_Static_assert(LLMRT_PLUGIN_MAX_DIMS == LLMRT_GRAPH_MAX_DIMS, "plugin shapes hold any graph shape");

llmrt_plugin_shape llmrt_plugin_shape_of(const llmrt_node *n) {
    llmrt_plugin_shape s = {.dtype = n->dtype, .ndim = n->ndim};
    for (int32_t i = 0; i < n->ndim; i++) s.dims[i] = n->dims[i];
    return s;
}

static int valid_shape(const llmrt_plugin_shape *s) {
    if (s->ndim < 0 || s->ndim > LLMRT_PLUGIN_MAX_DIMS || llmrt_dtype_size(s->dtype) == 0) return 0;
    for (int32_t i = 0; i < s->ndim; i++)
        if (s->dims[i] == 0 || s->dims[i] < LLMRT_DIM_LOGITS) return 0;
    return 1;
}

llmrt_status llmrt_plugin_node_infer(const llmrt_graph *g, const llmrt_node *n, const llmrt_plugin **plugin,
                                     llmrt_plugin_shape *out) {
    const char *name = n->name ? n->name : "";
    if (n->iattr[0] < 0 || n->iattr[0] > UINT32_MAX)
        return llmrt_error(LLMRT_ERR_FORMAT, "plugin '%s': bad version %lld", name, (long long)n->iattr[0]);
    LLMRT_TRY(llmrt_plugin_require(name, (uint32_t)n->iattr[0], plugin));
    llmrt_plugin_shape inputs[LLMRT_PLUGIN_MAX_INPUTS];
    for (int32_t i = 0; i < n->num_inputs; i++) inputs[i] = llmrt_plugin_shape_of(&g->nodes[n->inputs[i]]);
    memset(out, 0, sizeof *out);
    llmrt_status s = (*plugin)->infer_shape(n->plugin_params, (size_t)n->plugin_params_size, inputs, n->num_inputs,
                                            out);
    if (s != LLMRT_OK)
        return llmrt_error(s, "plugin '%s' rejects its inputs or params (%s)", name, llmrt_status_name(s));
    if (!valid_shape(out)) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "plugin '%s' infers a malformed shape", name);
    return LLMRT_OK;
}

llmrt_value llmrt_plugin_op(llmrt_graph *g, const char *name, const llmrt_value *inputs, int32_t num_inputs,
                            const void *params, size_t params_size) {
    if (g->status != LLMRT_OK) return LLMRT_NO_VALUE;
    if (!name) return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "plugin op: no name");
    if (num_inputs < 1 || num_inputs > LLMRT_PLUGIN_MAX_INPUTS || num_inputs > LLMRT_GRAPH_MAX_INPUTS)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "plugin %s: %d inputs (1..%d)", name, (int)num_inputs,
                                LLMRT_PLUGIN_MAX_INPUTS);
    if (params_size > LLMRT_PLUGIN_MAX_PARAMS_BYTES || (params_size && !params))
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "plugin %s: %zu bytes of params (at most %d)", name,
                                params_size, LLMRT_PLUGIN_MAX_PARAMS_BYTES);
    for (int32_t i = 0; i < num_inputs; i++)
        if (inputs[i] < 0 || inputs[i] >= g->num_nodes)
            return llmrt_graph_fail(g, LLMRT_ERR_INTERNAL, "plugin %s: invalid input value %d", name, (int)inputs[i]);
    const llmrt_plugin *plugin = llmrt_plugin_find(name);
    if (!plugin)
        return llmrt_graph_fail(g, LLMRT_ERR_NOT_FOUND, "plugin %s is not registered (llmrt_plugin_load)", name);
    llmrt_node n;
    memset(&n, 0, sizeof n);
    n.op = LLMRT_OP_PLUGIN;
    n.num_inputs = num_inputs;
    for (int32_t i = 0; i < LLMRT_GRAPH_MAX_INPUTS; i++) n.inputs[i] = i < num_inputs ? inputs[i] : LLMRT_NO_VALUE;
    n.iattr[0] = plugin->version;
    n.alias_of = LLMRT_NO_VALUE;
    n.arena_offset = -1;
    n.weight_slot = -1;
    n.name = strdup(name);
    n.plugin_params = params_size ? malloc(params_size) : NULL;
    n.plugin_params_size = (int64_t)params_size;
    if (!n.name || (params_size && !n.plugin_params)) {
        free(n.name);
        free(n.plugin_params);
        return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "graph: out of memory");
    }
    if (params_size) memcpy(n.plugin_params, params, params_size);
    llmrt_plugin_shape shape;
    llmrt_status s = llmrt_plugin_node_infer(g, &n, &plugin, &shape);
    if (s != LLMRT_OK) {
        free(n.name);
        free(n.plugin_params);
        return llmrt_graph_fail(g, s, "%s", llmrt_last_error());
    }
    n.dtype = shape.dtype;
    n.ndim = shape.ndim;
    for (int32_t i = 0; i < shape.ndim; i++) n.dims[i] = shape.dims[i];
    llmrt_value v = llmrt_graph_append(g, &n);
    if (v == LLMRT_NO_VALUE) {
        free(n.name);
        free(n.plugin_params);
    }
    return v;
}
