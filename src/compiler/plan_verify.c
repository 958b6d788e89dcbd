/* Plan verification by replay: each functional node is rebuilt on a shadow
 * graph through the graph API (so shape rules live in one place, graph.c)
 * and the result compared with the recorded node. Fused ops, whose rules are
 * few and simple, are checked here directly. */
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler.h"
#include "core/quant.h"
#include "core/quant8.h"
#include "graph/plugin_op.h"
#include "plugins/plugin_registry.h"

static llmrt_status mismatch(int32_t i, const llmrt_node *n, const char *why) {
    return llmrt_error(LLMRT_ERR_FORMAT, "plan node %d (%s): %s", (int)i, llmrt_op_name(n->op), why);
}

static int same_shape(const llmrt_node *a, const llmrt_node *b) {
    return a->ndim == b->ndim && memcmp(a->dims, b->dims, (size_t)a->ndim * sizeof a->dims[0]) == 0;
}

static int last_dim(const llmrt_node *n) { return n->ndim > 0 ? (int)n->dims[n->ndim - 1] : 0; }

/* Fused ops: output shape rules. */
static llmrt_status check_fused(const llmrt_graph *g, int32_t i) {
    const llmrt_node *n = &g->nodes[i];
    const llmrt_node *x = &g->nodes[n->inputs[0]];
    switch (n->op) {
    case LLMRT_OP_LINEAR: {
        if (n->num_inputs < 2 || n->num_inputs > 3) return mismatch(i, n, "needs x, W[, bias]");
        const llmrt_node *w = &g->nodes[n->inputs[1]];
        if (w->op != LLMRT_OP_WEIGHT || w->ndim != 2 || x->ndim < 1 || w->dims[1] != x->dims[x->ndim - 1] ||
            n->ndim != x->ndim || n->dims[n->ndim - 1] != w->dims[0])
            return mismatch(i, n, "shapes of x, W and output disagree");
        for (int32_t d = 0; d + 1 < x->ndim; d++)
            if (n->dims[d] != x->dims[d]) return mismatch(i, n, "leading dims differ from x");
        if (n->num_inputs == 3) {
            const llmrt_node *b = &g->nodes[n->inputs[2]];
            if (b->ndim != 1 || b->dims[0] != w->dims[0] || b->dtype != LLMRT_DTYPE_F32)
                return mismatch(i, n, "bias must be f32 [N]");
        }
        return LLMRT_OK;
    }
    case LLMRT_OP_RMSNORM:
    case LLMRT_OP_LAYERNORM: {
        int32_t want = n->op == LLMRT_OP_RMSNORM ? 2 : 3;
        if (n->num_inputs != want) return mismatch(i, n, "wrong number of inputs");
        if (!same_shape(n, x) || x->ndim < 1 || x->dims[x->ndim - 1] <= 0) return mismatch(i, n, "shape differs from x");
        for (int32_t k = 1; k < want; k++) {
            const llmrt_node *w = &g->nodes[n->inputs[k]];
            if (w->ndim != 1 || w->dims[0] != x->dims[x->ndim - 1] || w->dtype != LLMRT_DTYPE_F32)
                return mismatch(i, n, "gain/bias must be f32 [dim]");
        }
        return LLMRT_OK;
    }
    case LLMRT_OP_SILU:
    case LLMRT_OP_GELU_TANH:
        if (n->num_inputs != 1 || !same_shape(n, x)) return mismatch(i, n, "shape differs from x");
        return LLMRT_OK;
    case LLMRT_OP_SILU_MUL: {
        const llmrt_node *up = n->num_inputs == 2 ? &g->nodes[n->inputs[1]] : NULL;
        if (!up || !same_shape(n, x) || !same_shape(n, up)) return mismatch(i, n, "gate, up and output differ");
        return LLMRT_OK;
    }
    case LLMRT_OP_OBSERVE: return mismatch(i, n, "a calibration op has no place in an engine");
    default: return mismatch(i, n, "not a fused op");
    }
}

llmrt_value llmrt_plan_replay_node(llmrt_graph *s, const llmrt_node *n) {
    const llmrt_value *in = n->inputs;
    switch (n->op) {
    case LLMRT_OP_MATMUL: return llmrt_matmul(s, in[0], in[1], (int)n->iattr[0]);
    case LLMRT_OP_ADD: return llmrt_add(s, in[0], in[1]);
    case LLMRT_OP_SUB: return llmrt_sub(s, in[0], in[1]);
    case LLMRT_OP_MUL: return llmrt_mul(s, in[0], in[1]);
    case LLMRT_OP_DIV: return llmrt_div(s, in[0], in[1]);
    case LLMRT_OP_POW: return llmrt_pow(s, in[0], n->fattr[0]);
    case LLMRT_OP_NEG: return llmrt_neg(s, in[0]);
    case LLMRT_OP_EXP: return llmrt_exp(s, in[0]);
    case LLMRT_OP_SQRT: return llmrt_sqrt(s, in[0]);
    case LLMRT_OP_RSQRT: return llmrt_rsqrt(s, in[0]);
    case LLMRT_OP_TANH: return llmrt_tanh(s, in[0]);
    case LLMRT_OP_ERF: return llmrt_erf(s, in[0]);
    case LLMRT_OP_SIGMOID: return llmrt_sigmoid(s, in[0]);
    case LLMRT_OP_RELU: return llmrt_relu(s, in[0]);
    case LLMRT_OP_GELU: return llmrt_gelu(s, in[0]);
    case LLMRT_OP_SUM: return llmrt_sum(s, in[0]);
    case LLMRT_OP_MEAN: return llmrt_mean(s, in[0]);
    case LLMRT_OP_SOFTMAX: return llmrt_softmax(s, in[0]);
    case LLMRT_OP_GATHER: /* iattr[1]: a vocab shard from row iattr[0]; else an offset gather */
        return n->iattr[1] ? llmrt_gather_shard(s, in[0], in[1], n->iattr[0])
                           : llmrt_gather_offset(s, in[0], in[1], n->iattr[0]);
    case LLMRT_OP_CONCAT: return llmrt_concat(s, in, n->num_inputs, (int32_t)n->iattr[0]);
    case LLMRT_OP_SLICE: return llmrt_slice(s, in[0], (int32_t)n->iattr[0], n->iattr[1], n->iattr[2]);
    case LLMRT_OP_VIEW: return llmrt_view(s, in[0], n->ndim, n->dims);
    case LLMRT_OP_PERMUTE: {
        int32_t perm[LLMRT_GRAPH_MAX_DIMS];
        for (int32_t k = 0; k < LLMRT_GRAPH_MAX_DIMS; k++) perm[k] = (int32_t)n->iattr[k];
        return llmrt_permute(s, in[0], perm);
    }
    case LLMRT_OP_CAST: return llmrt_cast(s, in[0], n->dtype);
    case LLMRT_OP_ATTENTION: {
        llmrt_attention_params p = {
            .layer = (int32_t)n->iattr[0], .num_heads = (int32_t)n->iattr[1], .num_kv_heads = (int32_t)n->iattr[2],
            .head_dim = (int32_t)n->iattr[3], .rotary_dim = (int32_t)n->iattr[4], .rope_neox = (int32_t)n->iattr[5],
            .scale = n->fattr[0], .sliding_window = (int32_t)n->iattr[7], .logit_softcap = n->fattr[1],
            .alibi_max_bias = n->fattr[2], .alibi_first_head = (int32_t)n->fattr[3],
            .alibi_total_heads = (int32_t)n->fattr[4], .non_causal = (int32_t)n->iattr[LLMRT_ATTENTION_NON_CAUSAL]};
        if (n->num_inputs != (p.rotary_dim > 0 ? 4 : 3)) return llmrt_graph_fail(s, LLMRT_ERR_FORMAT, "inputs");
        return llmrt_attention(s, in[0], in[1], in[2], n->num_inputs > 3 ? in[3] : LLMRT_NO_VALUE, &p);
    }
    case LLMRT_OP_MOE:
        if (n->num_inputs != 5 || in[1] < 0 || n->iattr[0] != s->nodes[in[1]].dims[1])
            return llmrt_graph_fail(s, LLMRT_ERR_FORMAT, "inputs");
        return llmrt_moe(s, in[0], in[1], in[2], in[3], in[4], (int32_t)n->iattr[1]);
    case LLMRT_OP_PLUGIN: {
        /* the engine's plugin must be registered at the version it was built with */
        const llmrt_plugin *plugin;
        llmrt_status status = llmrt_plugin_require(n->name ? n->name : "", (uint32_t)n->iattr[0], &plugin);
        if (status != LLMRT_OK) return llmrt_graph_fail(s, status, "%s", llmrt_last_error());
        return llmrt_plugin_op(s, n->name, in, n->num_inputs, n->plugin_params, (size_t)n->plugin_params_size);
    }
    case LLMRT_OP_ALL_REDUCE: return llmrt_all_reduce(s, in[0], (int32_t)n->iattr[0]);
    case LLMRT_OP_ALL_GATHER: return llmrt_all_gather(s, in[0], (int32_t)n->iattr[0]);
    case LLMRT_OP_SEND: return llmrt_send(s, in[0], (int32_t)n->iattr[0], (int32_t)n->iattr[1]);
    case LLMRT_OP_RECV:
        return llmrt_recv(s, in[0], n->dtype, n->ndim, n->dims, (int32_t)n->iattr[0], (int32_t)n->iattr[1]);
    default: return llmrt_graph_fail(s, LLMRT_ERR_FORMAT, "unexpected op");
    }
}

llmrt_status llmrt_plan_verify(const llmrt_plan *plan) {
    const llmrt_graph *g = plan->graph;
    llmrt_graph *shadow = llmrt_graph_create(g->act_dtype, g->weight_dtype);
    if (!shadow) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status status = LLMRT_OK;
    for (int32_t i = 0; i < g->num_nodes && status == LLMRT_OK; i++) {
        const llmrt_node *n = &g->nodes[i];
        for (int32_t k = 0; k < n->num_inputs; k++)
            if (n->inputs[k] >= i) status = mismatch(i, n, "input does not precede the node");
        /* quantized weights: 2-D, a sane group, read by LINEARs only (iattr[0],
         * GPT-2's Conv1D transpose, says how binding read the checkpoint:
         * the blob is [N, K] either way) */
        if (llmrt_dtype_is_quantized(n->dtype) &&
            (n->op != LLMRT_OP_WEIGHT || n->ndim != 2 || n->iattr[1] < 1 || n->iattr[1] > n->dims[1] ||
             n->iattr[2] < 0 || n->iattr[2] > 1 || n->iattr[3] < 0 || n->iattr[3] > 1))
            status = mismatch(i, n, "a quantized value that is not a [N, K] weight of a valid group size");
        /* 8-bit weights: iattr[1] = 1 per tensor, fattr[0] = the static
         * input scale (0: per token); the blob's header is what kernels read */
        if (llmrt_dtype_is_q8(n->dtype) &&
            (n->op != LLMRT_OP_WEIGHT || n->ndim != 2 || n->iattr[1] < 0 || n->iattr[1] > 1 ||
             !(n->fattr[0] >= 0 && n->fattr[0] < 1e30f)))
            status = mismatch(i, n, "an 8-bit value that is not a [N, K] weight with a valid input scale");
        for (int32_t k = 0; k < n->num_inputs && status == LLMRT_OK; k++)
            if (n->inputs[k] >= 0 && llmrt_dtype_is_packed(g->nodes[n->inputs[k]].dtype) &&
                !(n->op == LLMRT_OP_LINEAR && k == 1))
                status = mismatch(i, n, "reads a quantized weight (only LINEAR may)");
        if (status != LLMRT_OK) break;
        llmrt_node copy = *n;
        copy.name = NULL;
        copy.const_data = NULL;
        copy.plugin_params = NULL;
        llmrt_value v;
        if (n->op == LLMRT_OP_INPUT || n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT) {
            if (n->op == LLMRT_OP_INPUT && n->dtype != LLMRT_DTYPE_I32) status = mismatch(i, n, "inputs are i32");
            v = llmrt_graph_append(shadow, &copy);
        } else if (n->op >= LLMRT_OP_LINEAR) {
            status = check_fused(g, i);
            v = llmrt_graph_append(shadow, &copy);
        } else {
            v = llmrt_plan_replay_node(shadow, n);
            if (v == LLMRT_NO_VALUE) {
                status = llmrt_graph_status(shadow);
                llmrt_error_context(status, "plan node %d (%s)", (int)i, llmrt_op_name(n->op));
                break;
            }
            const llmrt_node *r = &shadow->nodes[v];
            if (!same_shape(r, n) || r->dtype != n->dtype) status = mismatch(i, n, "recorded shape or dtype is wrong");
            /* keep the recorded node so later replays see the same inputs */
            free(shadow->nodes[v].name);
            free(shadow->nodes[v].plugin_params);
            shadow->nodes[v] = copy;
        }
        if (status == LLMRT_OK && v != i) status = mismatch(i, n, "shadow graph out of step");
        if (status == LLMRT_OK && n->op == LLMRT_OP_VIEW) {
            const llmrt_node *src = &g->nodes[n->inputs[0]];
            llmrt_value root = src->alias_of >= 0 ? src->alias_of : n->inputs[0];
            if (n->alias_of != root || n->arena_offset != g->nodes[root].arena_offset)
                status = mismatch(i, n, "view does not alias its source");
        } else if (status == LLMRT_OK && n->alias_of >= 0) {
            status = mismatch(i, n, "only views alias");
        }
        if (status == LLMRT_OK && n->op == LLMRT_OP_ATTENTION &&
            (n->iattr[0] >= plan->num_kv_layers || n->iattr[2] != plan->kv_heads || n->iattr[3] != plan->head_dim))
            status = mismatch(i, n, "KV geometry differs from the plan's");
        (void)last_dim;
    }
    llmrt_graph_free(shadow);
    return status;
}
