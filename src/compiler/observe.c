/* The calibration compile's one rewrite: an OBSERVE node (graph/ops.h) on
 * the input x of every LINEAR but the plan's output (the LM head, which no
 * quantization mode touches), so a run over calibration text leaves
 * max |x[:, k]| per input of each LINEAR in the backend.
 *
 * One OBSERVE per distinct x (q/k/v share one), placed just before the
 * first LINEAR that reads it: x is live there anyway, so the arena does not
 * grow, and the LINEARs of one x stay adjacent (the backends' grouped GEMVs
 * still see them). OBSERVE has no readers, so this runs after the last
 * dead-code pass. The weight node names are the ones the quantize pass
 * sees: the rewrite renames nothing. */
#include <stdlib.h>

#include "compiler/passes.h"

llmrt_status llmrt_pass_observe_linear_inputs(llmrt_graph *g, llmrt_pass_context *ctx) {
    if (!ctx->observe) return LLMRT_OK;
    const int32_t n = g->num_nodes;
    /* observe_before[i]: the x to observe before node i, or -1 */
    llmrt_value *observe_before = malloc(((size_t)n + 1) * sizeof *observe_before);
    uint8_t *seen = calloc((size_t)n + 1, 1);
    llmrt_value *remap = malloc(((size_t)n + 1) * sizeof *remap);
    if (!observe_before || !seen || !remap) {
        free(observe_before), free(seen), free(remap);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "observe pass: out of memory");
    }
    int32_t added = 0;
    for (int32_t i = 0; i < n; i++) {
        const llmrt_node *node = &g->nodes[i];
        observe_before[i] = LLMRT_NO_VALUE;
        if (node->op != LLMRT_OP_LINEAR || node->is_output) continue;
        const llmrt_value x = node->inputs[0];
        const llmrt_node *w = &g->nodes[node->inputs[1]], *xn = &g->nodes[x];
        if (w->op != LLMRT_OP_WEIGHT || w->ndim != 2 || seen[x] || xn->ndim < 1 || xn->dims[xn->ndim - 1] <= 0)
            continue;
        seen[x] = 1;
        observe_before[i] = x;
        added++;
    }
    llmrt_node *nodes = calloc((size_t)(n + added) + 1, sizeof *nodes);
    if (!nodes) {
        free(observe_before), free(seen), free(remap);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "observe pass: out of memory");
    }
    /* Nodes keep their old ids as inputs until every node has its new one. */
    int32_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        if (observe_before[i] != LLMRT_NO_VALUE) {
            const llmrt_node *x = &g->nodes[observe_before[i]];
            llmrt_node *o = &nodes[at++];
            o->op = LLMRT_OP_OBSERVE;
            o->dtype = LLMRT_DTYPE_F32;
            o->ndim = 1;
            o->dims[0] = x->dims[x->ndim - 1];
            o->num_inputs = 1;
            for (int32_t k = 0; k < LLMRT_GRAPH_MAX_INPUTS; k++) o->inputs[k] = LLMRT_NO_VALUE;
            o->inputs[0] = observe_before[i];
            o->alias_of = LLMRT_NO_VALUE;
            o->arena_offset = -1;
            o->weight_slot = -1;
        }
        remap[i] = at;
        nodes[at++] = g->nodes[i];
    }
    for (int32_t i = 0; i < at; i++) {
        llmrt_node *node = &nodes[i];
        for (int32_t k = 0; k < node->num_inputs; k++)
            if (node->inputs[k] >= 0) node->inputs[k] = remap[node->inputs[k]];
        if (node->alias_of >= 0) node->alias_of = remap[node->alias_of];
    }
    free(g->nodes);
    g->nodes = nodes;
    g->num_nodes = at;
    g->capacity = n + added + 1;
    ctx->rewrites += added;
    free(observe_before), free(seen), free(remap);
    return LLMRT_OK;
}
