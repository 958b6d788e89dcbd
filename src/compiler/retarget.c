/* Retargeting a compiled plan to another backend (retarget.h).
 *
 * Which values are activations is not recorded: a bf16 plan's f32 values
 * (weight vectors, constants, statistics computed from them) and an f32
 * plan's activations look alike. So the new dtypes are derived, not
 * substituted: every node is rebuilt through the graph API on a shadow
 * graph made for the new activation dtype, which applies the rules a fresh
 * build for that backend applies (an op follows its inputs, a gather from
 * a weight table gives the activation dtype, f32 constants and weight
 * vectors stay f32, step inputs stay i32). */
#include "compiler/retarget.h"

#include <stdlib.h>
#include <string.h>

#include "compiler/compiler.h"
#include "compiler/passes.h"
#include "plugins/plugin_registry.h"

int llmrt_target_known(const char *target) {
    return target && (strcmp(target, "cpu") == 0 || strcmp(target, "cuda") == 0);
}

llmrt_dtype llmrt_target_act_dtype(const char *target, llmrt_dtype weight_dtype) {
    return strcmp(target, "cpu") == 0 ? LLMRT_DTYPE_F32 : weight_dtype;
}

static int is_leaf(llmrt_op op) { return op == LLMRT_OP_INPUT || op == LLMRT_OP_WEIGHT || op == LLMRT_OP_CONSTANT; }

/* The dtype of every node of g when activations are `act`, into out[]. A
 * fused op (which the graph API does not build) follows its first input
 * when it did, as the functional root it replaced did; RECV and CAST name
 * a dtype of their own, which moves with the activations when it was
 * theirs. */
static llmrt_status retype(const llmrt_graph *g, llmrt_dtype act, llmrt_dtype *out) {
    llmrt_graph *shadow = llmrt_graph_create(act, g->weight_dtype);
    if (!shadow) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status status = LLMRT_OK;
    for (int32_t i = 0; i < g->num_nodes && status == LLMRT_OK; i++) {
        const llmrt_node *n = &g->nodes[i];
        llmrt_node probe = *n; /* what is replayed: n with its own dtype moved */
        if ((n->op == LLMRT_OP_RECV || n->op == LLMRT_OP_CAST) && n->dtype == g->act_dtype) probe.dtype = act;
        if (n->op >= LLMRT_OP_LINEAR && n->num_inputs > 0 && n->inputs[0] >= 0 && n->inputs[0] < i &&
            n->dtype == g->nodes[n->inputs[0]].dtype)
            probe.dtype = shadow->nodes[n->inputs[0]].dtype;
        llmrt_node kept = probe; /* what the shadow keeps: no owned buffers */
        kept.name = NULL;
        kept.const_data = NULL;
        kept.plugin_params = NULL;
        llmrt_value v;
        if (is_leaf(n->op) || n->op >= LLMRT_OP_LINEAR) {
            v = llmrt_graph_append(shadow, &kept);
        } else {
            v = llmrt_plan_replay_node(shadow, &probe);
            if (v == LLMRT_NO_VALUE) {
                status = llmrt_graph_status(shadow);
                llmrt_error_context(status, "plan node %d (%s) in %s", (int)i, llmrt_op_name(n->op),
                                    llmrt_dtype_name(act));
                break;
            }
            kept.dtype = shadow->nodes[v].dtype;
            free(shadow->nodes[v].name);
            free(shadow->nodes[v].plugin_params);
            shadow->nodes[v] = kept;
        }
        if (v != i) {
            status = v == LLMRT_NO_VALUE ? llmrt_graph_status(shadow)
                                         : llmrt_error(LLMRT_ERR_INTERNAL, "retarget: shadow graph out of step");
            break;
        }
        out[i] = shadow->nodes[i].dtype;
    }
    llmrt_graph_free(shadow);
    return status;
}

/* The storage dtypes both backends' kernels read weights in: float
 * matrices and vectors, and the four quantized blobs (core/quant.h,
 * core/quant8.h). */
static int reads_weight(llmrt_dtype dtype) {
    switch (dtype) {
    case LLMRT_DTYPE_F32: case LLMRT_DTYPE_F16: case LLMRT_DTYPE_BF16: case LLMRT_DTYPE_INT8_WO:
    case LLMRT_DTYPE_INT4_WO: case LLMRT_DTYPE_FP8_W8A8: case LLMRT_DTYPE_INT8_W8A8:
        return 1;
    default:
        return 0;
    }
}

/* What `target` lacks for the plan once its nodes have `dtypes`. Every op
 * kind has a kernel on both backends (graph/ops.h), with the dtypes both
 * mix; the exceptions are the CPU's casts and non-transposed matmuls
 * (f32 only there), plugins without the backend's enqueue, and activation
 * dtypes a backend does not compute in. The 8-bit KV caches (fp8, int8)
 * exist on both. */
static llmrt_status check(const llmrt_plan *plan, const char *target, llmrt_dtype act, const llmrt_dtype *dtypes) {
    const llmrt_graph *g = plan->graph;
    const int cpu = strcmp(target, "cpu") == 0;
    if (cpu ? act != LLMRT_DTYPE_F32
            : act != LLMRT_DTYPE_F32 && act != LLMRT_DTYPE_F16 && act != LLMRT_DTYPE_BF16)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "the %s backend computes in %s, not %s", target,
                           cpu ? "f32" : "f32, f16 or bf16", llmrt_dtype_name(act));
    for (int32_t i = 0; i < plan->num_weights; i++)
        if (!reads_weight(plan->weights[i].dtype))
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "the %s backend has no kernel reading weight '%s' stored as %s",
                               target, plan->weights[i].name, llmrt_dtype_name(plan->weights[i].dtype));
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op == LLMRT_OP_PLUGIN) {
            const llmrt_plugin *p;
            LLMRT_TRY(llmrt_plugin_require(n->name ? n->name : "", (uint32_t)n->iattr[0], &p));
            if (cpu ? !p->enqueue_cpu : !p->enqueue_cuda)
                return llmrt_error(LLMRT_ERR_UNSUPPORTED, "plugin '%s' version %u (node %d) has no %s implementation",
                                   p->name, p->version, (int)i, cpu ? "CPU" : "CUDA");
        } else if (cpu && n->op == LLMRT_OP_CAST) {
            const llmrt_dtype from = dtypes[n->inputs[0]];
            if (from != dtypes[i] && !(from == LLMRT_DTYPE_I32 && dtypes[i] == LLMRT_DTYPE_F32))
                return llmrt_error(LLMRT_ERR_UNSUPPORTED, "the cpu backend has no cast from %s to %s (node %d)",
                                   llmrt_dtype_name(from), llmrt_dtype_name(dtypes[i]), (int)i);
        } else if (cpu && n->op == LLMRT_OP_MATMUL && !n->iattr[0] && dtypes[n->inputs[1]] != LLMRT_DTYPE_F32) {
            return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                               "the cpu backend multiplies by a [K, N] right operand in f32 only, not %s (matmul "
                               "node %d)", llmrt_dtype_name(dtypes[n->inputs[1]]), (int)i);
        }
    }
    return LLMRT_OK;
}

/* The retyped dtypes of plan for target (malloc'd into *dtypes), checked. */
static llmrt_status retype_checked(const llmrt_plan *plan, const char *target, llmrt_dtype act,
                                   llmrt_dtype **dtypes) {
    *dtypes = NULL;
    if (!llmrt_target_known(target))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "unknown backend '%s' (cpu, cuda)", target ? target : "");
    llmrt_dtype *out = malloc(((size_t)plan->graph->num_nodes + 1) * sizeof *out);
    if (!out) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = retype(plan->graph, act, out);
    if (s == LLMRT_OK) s = check(plan, target, act, out);
    if (s != LLMRT_OK) {
        free(out);
        return s;
    }
    *dtypes = out;
    return LLMRT_OK;
}

llmrt_status llmrt_plan_check_target(const llmrt_plan *plan, const char *target) {
    llmrt_dtype *dtypes;
    const llmrt_dtype act = llmrt_target_known(target) ? llmrt_target_act_dtype(target, plan->graph->weight_dtype)
                                                       : LLMRT_DTYPE_INVALID;
    LLMRT_TRY(retype_checked(plan, target, act, &dtypes));
    free(dtypes);
    return LLMRT_OK;
}

llmrt_status llmrt_plan_retarget(llmrt_plan *plan, const char *target) {
    llmrt_graph *g = plan->graph;
    llmrt_dtype *dtypes;
    const llmrt_dtype act = llmrt_target_known(target) ? llmrt_target_act_dtype(target, g->weight_dtype)
                                                       : LLMRT_DTYPE_INVALID;
    LLMRT_TRY(retype_checked(plan, target, act, &dtypes));
    if (act == g->act_dtype) {
        free(dtypes);
        return LLMRT_OK;
    }
    for (int32_t i = 0; i < g->num_nodes; i++) g->nodes[i].dtype = dtypes[i];
    g->act_dtype = act;
    free(dtypes);
    llmrt_pass_context ctx = {.plan = plan, .target = target};
    LLMRT_TRY(llmrt_pass_plan_memory(g, &ctx));
    return llmrt_plan_verify(plan);
}
