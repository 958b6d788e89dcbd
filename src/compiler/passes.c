#include "compiler/passes.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int32_t *llmrt_graph_use_counts(const llmrt_graph *g) {
    int32_t *uses = calloc((size_t)g->num_nodes + 1, sizeof *uses);
    if (!uses) return NULL;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        for (int32_t j = 0; j < n->num_inputs; j++)
            if (n->inputs[j] >= 0) uses[n->inputs[j]]++;
        if (n->is_output) uses[i]++;
    }
    return uses;
}

llmrt_status llmrt_pass_dead_code(llmrt_graph *g, llmrt_pass_context *ctx) {
    int32_t n = g->num_nodes;
    uint8_t *live = calloc((size_t)n + 1, 1);
    int32_t *remap = malloc(((size_t)n + 1) * sizeof *remap);
    if (!live || !remap) {
        free(live);
        free(remap);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "dead-code pass: out of memory");
    }
    /* Inputs stay (the executor binds them by name) even when unused. */
    for (int32_t i = n - 1; i >= 0; i--) {
        const llmrt_node *node = &g->nodes[i];
        if (node->is_output || node->op == LLMRT_OP_INPUT) live[i] = 1;
        if (!live[i]) continue;
        for (int32_t j = 0; j < node->num_inputs; j++)
            if (node->inputs[j] >= 0) live[node->inputs[j]] = 1;
    }
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!live[i]) {
            free(g->nodes[i].name);
            free(g->nodes[i].const_data);
            free(g->nodes[i].plugin_params);
            remap[i] = LLMRT_NO_VALUE;
            ctx->rewrites++;
            continue;
        }
        remap[i] = kept;
        g->nodes[kept++] = g->nodes[i];
    }
    for (int32_t i = 0; i < kept; i++) {
        llmrt_node *node = &g->nodes[i];
        for (int32_t j = 0; j < node->num_inputs; j++)
            if (node->inputs[j] >= 0) node->inputs[j] = remap[node->inputs[j]];
        if (node->alias_of >= 0) node->alias_of = remap[node->alias_of];
    }
    g->num_nodes = kept;
    free(live);
    free(remap);
    return LLMRT_OK;
}

llmrt_status llmrt_pass_weight_layout(llmrt_graph *g, llmrt_pass_context *ctx) {
    for (int32_t i = 0; i < g->num_nodes; i++) {
        llmrt_node *n = &g->nodes[i];
        if (n->op != LLMRT_OP_MATMUL || n->iattr[0] != 0) continue;
        llmrt_node *w = &g->nodes[n->inputs[1]];
        if (w->op != LLMRT_OP_WEIGHT || w->ndim != 2) continue;
        /* iattr[0] on a weight: transpose the checkpoint tensor when binding. */
        w->iattr[0] = !w->iattr[0];
        int64_t rows = w->dims[0];
        w->dims[0] = w->dims[1];
        w->dims[1] = rows;
        /* a shard's split axis turns with it (iattr[4] = axis + 1) */
        if (w->iattr[4] > 0) w->iattr[4] = 3 - w->iattr[4];
        n->iattr[0] = 1;
        ctx->rewrites++;
    }
    return LLMRT_OK;
}

const llmrt_pass llmrt_default_passes[] = {
    {"dead_code", llmrt_pass_dead_code},
    {"weight_layout", llmrt_pass_weight_layout},
    /* LayerNorm first: its tail (centred · rsqrt(mean(centred²) + eps) · w)
     * is itself an RMSNorm of the centred input and would be matched as one */
    {"fuse_layernorm", llmrt_pass_fuse_layernorm},
    {"fuse_rmsnorm", llmrt_pass_fuse_rmsnorm},
    {"fuse_activations", llmrt_pass_fuse_activations},
    {"fuse_silu_mul", llmrt_pass_fuse_silu_mul},
    {"fuse_linear", llmrt_pass_fuse_linear},
    {"quantize_weights", llmrt_pass_quantize_weights},
    {"dead_code", llmrt_pass_dead_code},
    /* after the last dead_code: OBSERVE nodes have no readers */
    {"observe_linear_inputs", llmrt_pass_observe_linear_inputs},
    {"plan_memory", llmrt_pass_plan_memory},
};
const int32_t llmrt_default_pass_count = sizeof llmrt_default_passes / sizeof llmrt_default_passes[0];

static int name_in_list(const char *name, const char *list) {
    if (!list) return 0;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t item = comma ? (size_t)(comma - p) : strlen(p);
        if (item == len && strncmp(p, name, len) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* A misspelt name would leave the pass on while the user believes it off. */
static llmrt_status check_disabled(const char *list) {
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int known = 0;
        for (int32_t i = 0; i < llmrt_default_pass_count && !known; i++)
            known = strlen(llmrt_default_passes[i].name) == len && strncmp(p, llmrt_default_passes[i].name, len) == 0;
        if (!known)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                               "--disable-passes: unknown pass '%.*s' (weight_layout, fuse_layernorm, fuse_rmsnorm, "
                               "fuse_activations, fuse_silu_mul, fuse_linear, quantize_weights)",
                               (int)len, p);
        if (!comma) break;
        p = comma + 1;
    }
    return LLMRT_OK;
}

llmrt_status llmrt_run_passes(llmrt_graph *g, llmrt_pass_context *ctx, const char *disabled) {
    LLMRT_TRY(check_disabled(disabled));
    for (int32_t i = 0; i < llmrt_default_pass_count; i++) {
        const llmrt_pass *pass = &llmrt_default_passes[i];
        /* dead_code and plan_memory are needed for a runnable plan */
        int required = strcmp(pass->name, "plan_memory") == 0 || strcmp(pass->name, "dead_code") == 0 ||
                       strcmp(pass->name, "observe_linear_inputs") == 0; /* a no-op unless asked for */
        /* a pre-quantized checkpoint has no 16-bit weights to bind instead */
        if (ctx->prequantized && strcmp(pass->name, "quantize_weights") == 0) required = 1;
        if (!required && name_in_list(pass->name, disabled)) continue;
        ctx->rewrites = 0;
        int32_t before = g->num_nodes;
        llmrt_status s = pass->run(g, ctx);
        if (s != LLMRT_OK) return llmrt_error_context(s, "compiler pass %s", pass->name);
        LLMRT_DEBUG("pass %-16s %4d rewrites, %d → %d nodes", pass->name, ctx->rewrites, before, g->num_nodes);
    }
    return LLMRT_OK;
}
