/* Runtime fusions of the CPU backend.
 *
 * A decode step of a small model does a few microseconds of work per node,
 * and each node's parallel job costs ~1.5 µs to start and join, while a
 * serial elementwise op makes the other core wait (and reads what that core
 * just wrote). So, as the CUDA backend does, adjacent nodes are run as one:
 *  - a residual ADD and the RMSNORM of its sum (one pass, no region);
 *  - two or three LINEARs of one x (q/k/v, gate/up) in one region, and a
 *    SILU_MUL of gate and up on the columns each thread computed.
 * Each output is the same bits as unfused. Only nodes adjacent among those
 * that compute are fused, so nothing runs before its inputs exist; a fused
 * output must not partly overlap a buffer the fused run still reads (the
 * planner may reuse a dead input's buffer for it). LLMRT_CPU_FUSE=0 turns
 * the fusions off (tests compare). */
#include "backends/cpu/cpu_fusion_plan.h"

#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/log.h"

static int is_arena_value(const llmrt_node *n) {
    return n->op != LLMRT_OP_WEIGHT && n->op != LLMRT_OP_CONSTANT && n->arena_offset >= 0;
}

static size_t max_value_bytes(const llmrt_plan *plan, const llmrt_node *n) {
    size_t count = 1;
    for (int32_t i = 0; i < n->ndim; i++)
        count *= (size_t)(n->dims[i] == LLMRT_DIM_TOKENS || n->dims[i] == LLMRT_DIM_LOGITS ? plan->max_num_tokens
                                                                                            : n->dims[i]);
    return count * llmrt_dtype_size(n->dtype);
}

/* 0: the buffers are disjoint (or either is not in the arena); 1: they
 * start at the same byte; 2: they partly overlap. */
static int overlap(const llmrt_plan *plan, llmrt_value a, llmrt_value b) {
    const llmrt_node *na = &plan->graph->nodes[a], *nb = &plan->graph->nodes[b];
    if (!is_arena_value(na) || !is_arena_value(nb)) return 0;
    size_t pa = (size_t)na->arena_offset, pb = (size_t)nb->arena_offset;
    if (pa >= pb + max_value_bytes(plan, nb) || pb >= pa + max_value_bytes(plan, na)) return 0;
    return pa == pb ? 1 : 2;
}

static int same_shape(const llmrt_node *a, const llmrt_node *b) {
    if (a->ndim != b->ndim || a->dtype != b->dtype) return 0;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

static int fusable_add_norm(const llmrt_plan *plan, llmrt_value add, llmrt_value norm) {
    const llmrt_node *a = &plan->graph->nodes[add], *r = &plan->graph->nodes[norm];
    if (a->op != LLMRT_OP_ADD || r->op != LLMRT_OP_RMSNORM || r->fattr[1] != 0.0f || r->inputs[0] != add ||
        a->dtype != LLMRT_DTYPE_F32 ||
        !same_shape(a, r))
        return 0;
    for (int i = 0; i < 2; i++) {
        const llmrt_node *in = &plan->graph->nodes[a->inputs[i]];
        if (!is_arena_value(in) || !same_shape(in, a) || overlap(plan, norm, a->inputs[i]) == 2) return 0;
    }
    return overlap(plan, norm, add) == 0;
}

/* How many LINEARs from exec position p read the same x (0 if under 2). */
static int linear_group_at(const llmrt_plan *plan, const int32_t *exec, int32_t num_exec, int32_t p) {
    const llmrt_graph *g = plan->graph;
    const llmrt_node *first = &g->nodes[exec[p]];
    if (first->op != LLMRT_OP_LINEAR || g->nodes[first->inputs[1]].ndim != 2) return 0;
    int count = 1;
    while (count < 3 && p + count < num_exec) {
        const llmrt_node *n = &g->nodes[exec[p + count]];
        if (n->op != LLMRT_OP_LINEAR || n->inputs[0] != first->inputs[0] || g->nodes[n->inputs[1]].ndim != 2 ||
            g->nodes[n->inputs[1]].dims[1] != g->nodes[first->inputs[1]].dims[1])
            break;
        count++;
    }
    for (int i = 0; i < count; i++)
        if (overlap(plan, exec[p + i], first->inputs[0])) return 0;
    return count >= 2 ? count : 0;
}

static int gated_after(const llmrt_plan *plan, const int32_t *uses, llmrt_value gate, llmrt_value up,
                       llmrt_value s) {
    const llmrt_node *n = &plan->graph->nodes[s], *gn = &plan->graph->nodes[gate];
    if (n->op != LLMRT_OP_SILU_MUL || n->inputs[0] != gate || n->inputs[1] != up || uses[gate] != 1 ||
        uses[up] != 1 || !same_shape(n, gn) || !same_shape(n, &plan->graph->nodes[up]) ||
        gn->dtype != LLMRT_DTYPE_F32)
        return 0;
    return overlap(plan, s, gn->inputs[0]) == 0 && overlap(plan, s, gate) != 2 && overlap(plan, s, up) != 2;
}

int cpu_plan_fusions(const llmrt_plan *plan, unsigned char **run_out, int32_t **next_out) {
    const llmrt_graph *g = plan->graph;
    unsigned char *run = *run_out = calloc((size_t)g->num_nodes + 1, 1);
    int32_t *next_exec = *next_out = malloc(((size_t)g->num_nodes + 1) * sizeof *next_exec);
    int32_t *exec = malloc(((size_t)g->num_nodes + 1) * sizeof *exec);
    int32_t *uses = calloc((size_t)g->num_nodes + 1, sizeof *uses);
    if (!run || !next_exec || !exec || !uses) {
        free(exec), free(uses);
        return 0;
    }
    int32_t num_exec = 0;
    for (int32_t v = 0; v < g->num_nodes; v++) {
        const llmrt_op op = g->nodes[v].op;
        next_exec[v] = -1;
        for (int i = 0; i < g->nodes[v].num_inputs; i++)
            if (g->nodes[v].inputs[i] >= 0) uses[g->nodes[v].inputs[i]]++;
        if (op == LLMRT_OP_INPUT || op == LLMRT_OP_WEIGHT || op == LLMRT_OP_CONSTANT || op == LLMRT_OP_VIEW) continue;
        if (num_exec > 0) next_exec[exec[num_exec - 1]] = v;
        exec[num_exec++] = v;
    }
    const char *env = getenv("LLMRT_CPU_FUSE");
    for (int32_t p = 0; p < num_exec && !(env && strcmp(env, "0") == 0); p++) {
        const int32_t v = exec[p];
        if (p + 1 < num_exec && fusable_add_norm(plan, v, exec[p + 1])) {
            run[v] = RUN_ADD_NORM, run[exec[p + 1]] = RUN_SKIP;
            p++;
            continue;
        }
        const int count = linear_group_at(plan, exec, num_exec, p);
        if (count == 0) continue;
        const int gated = count == 2 && p + 2 < num_exec && gated_after(plan, uses, v, exec[p + 1], exec[p + 2]);
        run[v] = gated ? RUN_GROUP2_GATED : count == 3 ? RUN_GROUP3 : RUN_GROUP2;
        for (int i = 1; i < count + gated; i++) run[exec[p + i]] = RUN_SKIP;
        p += count + gated - 1;
    }
    int fused[RUN_GROUP2_GATED + 1] = {0};
    for (int32_t v = 0; v < g->num_nodes; v++) fused[run[v]]++;
    LLMRT_DEBUG("cpu backend: %d nodes compute; fused: %d add+norm, %d linear pairs, %d triples, %d gated pairs",
                (int)num_exec, fused[RUN_ADD_NORM], fused[RUN_GROUP2], fused[RUN_GROUP3], fused[RUN_GROUP2_GATED]);
    free(exec), free(uses);
    return 1;
}

/* Memory the system can give without swapping (MemAvailable), else free pages. */
