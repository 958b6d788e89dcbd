/* Which plan nodes the CUDA backend runs together (decided once at
 * create, from the plan and the arena layout):
 *  - a residual ADD and the RMSNorm of its sum: one kernel (st->fused);
 *  - adjacent LINEARs that read one x (q/k/v, gate/up): one grouped GEMV at
 *    decode sizes, with the SiLU·mul after a gate/up pair (st->gemv_group);
 *  - at decode sizes (≤ CUDA_GEMV_MAX_M tokens), the (ADD +) RMSNorm in
 *    front of such a group goes into the GEMV's prologue (norm sites): two
 *    launches fewer per layer. Every value such a prologue reads or the sum
 *    it writes then lives in a small buffer of its own (redirects), because
 *    the planner lets a value's buffer be reused once its last reader has
 *    run, and here the readers are blocks of a kernel that is still
 *    writing its outputs. */
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_backend_internal.h"
#include "core/log.h"

/* Bytes of a value at the plan's largest step (what the planner sized). */
static size_t max_value_bytes(const cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    int64_t c = 1;
    for (int d = 0; d < n->ndim; d++)
        c *= n->dims[d] == LLMRT_DIM_TOKENS || n->dims[d] == LLMRT_DIM_LOGITS ? st->plan->max_num_tokens : n->dims[d];
    return (size_t)c * llmrt_dtype_size(cuda_value_type(st, v));
}

static int values_overlap(const cuda_state *st, llmrt_value a, llmrt_value b) {
    const unsigned char *pa = st->node_ptr[a], *pb = st->node_ptr[b];
    return pa < pb + max_value_bytes(st, b) && pb < pa + max_value_bytes(st, a);
}

static llmrt_status mark_add_norm(cuda_state *st) {
    const llmrt_graph *g = st->graph;
    for (int32_t p = 1; p < st->num_exec; p++) {
        const int32_t v = st->exec[p];
        const llmrt_node *r = &g->nodes[v], *a = &g->nodes[st->exec[p - 1]];
        if (r->op != LLMRT_OP_RMSNORM || a->op != LLMRT_OP_ADD || r->inputs[0] != st->exec[p - 1]) continue;
        if (r->fattr[1] != 0.0f) continue; /* a weight offset: the standalone kernel */
        if (r->dtype != a->dtype || !(a->dtype == LLMRT_DTYPE_F32 || a->dtype == LLMRT_DTYPE_F16 ||
                                      a->dtype == LLMRT_DTYPE_BF16))
            continue;
        int same = g->nodes[a->inputs[0]].ndim == a->ndim && g->nodes[a->inputs[1]].ndim == a->ndim &&
                   g->nodes[a->inputs[0]].dtype == a->dtype && g->nodes[a->inputs[1]].dtype == a->dtype &&
                   g->nodes[a->inputs[0]].op != LLMRT_OP_WEIGHT && g->nodes[a->inputs[1]].op != LLMRT_OP_WEIGHT &&
                   g->nodes[a->inputs[0]].op != LLMRT_OP_CONSTANT && g->nodes[a->inputs[1]].op != LLMRT_OP_CONSTANT;
        for (int d = 0; same && d < a->ndim; d++)
            same = g->nodes[a->inputs[0]].dims[d] == a->dims[d] && g->nodes[a->inputs[1]].dims[d] == a->dims[d];
        if (same) st->fused[v] = 1;
    }
    return LLMRT_OK;
}

/* Adjacent LINEARs reading the same x (LLaMA's q/k/v, gate/up) become one
 * grouped GEMV at decode sizes: one launch instead of three, and a grid as
 * long as the fused matrix. Only adjacent nodes, so running the later ones
 * early reorders nothing; a SILU_MUL right after gate/up that is their only
 * reader is folded in, provided its buffer does not overlap x (the planner
 * may reuse x's buffer for it, since x is dead by then). */
static llmrt_status find_gemv_groups(cuda_state *st, const int32_t *uses) {
    const llmrt_graph *g = st->graph;
    if (!st->settings.gemv_groups) return LLMRT_OK;
    const llmrt_value outputs[3] = {st->plan->output_logits, st->plan->input_token_ids, st->plan->input_positions};
    const int32_t *ex = st->exec;
    for (int32_t p = 0; p + 1 < st->num_exec; p++) {
        const int32_t v = ex[p];
        const llmrt_node *first = &g->nodes[v];
        if (first->op != LLMRT_OP_LINEAR) continue;
        int count = 1;
        while (count < CUDA_GEMV_MAX_PARTS && p + count < st->num_exec) {
            const llmrt_node *n = &g->nodes[ex[p + count]];
            if (n->op != LLMRT_OP_LINEAR || n->inputs[0] != first->inputs[0] || n->dtype != first->dtype ||
                g->nodes[n->inputs[1]].ndim != 2 ||
                g->nodes[n->inputs[1]].dims[1] != g->nodes[first->inputs[1]].dims[1])
                break;
            count++;
        }
        if (count < 2) continue;
        int gated = 0;
        const llmrt_value v1 = ex[p + 1], s = p + 2 < st->num_exec ? ex[p + 2] : -1;
        if (count == 2 && s >= 0 && g->nodes[s].op == LLMRT_OP_SILU_MUL && g->nodes[s].inputs[0] == v &&
            g->nodes[s].inputs[1] == v1 && uses[v] == 1 && uses[v1] == 1 && g->nodes[s].dtype == first->dtype &&
            g->nodes[v].ndim == g->nodes[s].ndim && g->nodes[v].dims[g->nodes[v].ndim - 1] ==
                                                        g->nodes[v1].dims[g->nodes[v1].ndim - 1]) {
            gated = !values_overlap(st, s, first->inputs[0]);
            for (int i = 0; i < 3; i++)
                if (outputs[i] == v || outputs[i] == v1) gated = 0;
        }
        int ok = 1;
        for (int i = 0; i < count; i++)
            if (values_overlap(st, ex[p + i], first->inputs[0])) ok = 0;
        if (!ok) continue;
        st->gemv_group[v] = (unsigned char)(count | (gated ? CUDA_GROUP_GATED : 0));
        p += count - 1;
    }
    return LLMRT_OK;
}



int cuda_gemv_part_types_ok(const cuda_state *st, llmrt_value v, llmrt_dtype t, int64_t K) {
    const llmrt_node *n = &st->graph->nodes[v];
    const llmrt_value wv = n->inputs[1], bv = n->num_inputs > 2 ? n->inputs[2] : LLMRT_NO_VALUE;
    return cuda_value_type(st, wv) == t && cuda_value_type(st, v) == t && st->graph->nodes[wv].ndim == 2 &&
           st->graph->nodes[wv].dims[1] == K && (bv < 0 || cuda_value_type(st, bv) == LLMRT_DTYPE_F32);
}

/* A value a norm site may move into a buffer of its own: an activation
 * [tokens, K] that no view aliases and the plan does not hand out. */
static int redirectable(const cuda_state *st, llmrt_value v, int64_t K) {
    const llmrt_graph *g = st->graph;
    const llmrt_node *n = &g->nodes[v];
    if (n->op == LLMRT_OP_INPUT || n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT || n->op == LLMRT_OP_VIEW ||
        n->alias_of >= 0 || n->is_output || n->ndim != 2 || n->dims[0] != LLMRT_DIM_TOKENS || n->dims[1] != K ||
        cuda_value_type(st, v) != st->act_type)
        return 0;
    for (int32_t u = 0; u < g->num_nodes; u++)
        if (g->nodes[u].alias_of == v || (g->nodes[u].op == LLMRT_OP_VIEW && g->nodes[u].inputs[0] == v)) return 0;
    return 1;
}

static int add_redirect(cuda_state *st, llmrt_value v) {
    for (int i = 0; i < st->num_redirects; i++)
        if (st->redirects[i].value == v) return 1;
    if (st->num_redirects >= st->redirect_capacity) return 0;
    st->redirects[st->num_redirects++].value = v;
    return 1;
}

/* A grouped (not gated-only) GEMV whose x is an RMSNORM read by the group
 * alone, right before it in exec order, maybe with its ADD before that. */
static llmrt_status find_norm_sites(cuda_state *st, const int32_t *uses) {
    const llmrt_graph *g = st->graph;
    const int32_t *ex = st->exec;
    const llmrt_dtype t = st->act_type;
    if (!st->settings.fuse_norm || (t != LLMRT_DTYPE_F16 && t != LLMRT_DTYPE_BF16)) return LLMRT_OK;
    for (int32_t p = 1; p < st->num_exec; p++) {
        const llmrt_value v = ex[p];
        if (!st->gemv_group[v]) continue;
        const int count = st->gemv_group[v] & ~CUDA_GROUP_GATED;
        const llmrt_value r = ex[p - 1];
        const llmrt_node *rn = &g->nodes[r], *first = &g->nodes[v];
        if (rn->op != LLMRT_OP_RMSNORM || rn->fattr[1] != 0.0f || first->inputs[0] != r || uses[r] != count ||
            rn->ndim != 2)
            continue;
        const int64_t K = rn->dims[1];
        if (K % 8 || K * CUDA_GEMV_MAX_M * (int64_t)llmrt_dtype_size(t) > CUDA_GEMV_NORM_MAX_BYTES ||
            cuda_value_type(st, rn->inputs[1]) != LLMRT_DTYPE_F32 || cuda_value_numel(st, rn->inputs[1]) != K ||
            cuda_value_type(st, r) != t)
            continue;
        /* the group must run as a GEMV whenever the site is active */
        int ok = 1;
        for (int i = 0; i < count; i++) ok = ok && cuda_gemv_part_types_ok(st, ex[p + i], t, K);
        const llmrt_value add = st->fused[r] && p >= 2 ? ex[p - 2] : LLMRT_NO_VALUE;
        llmrt_value want[3] = {add >= 0 ? g->nodes[add].inputs[0] : rn->inputs[0],
                               add >= 0 ? g->nodes[add].inputs[1] : LLMRT_NO_VALUE, add};
        for (int i = 0; i < 3; i++)
            if (want[i] >= 0) ok = ok && redirectable(st, want[i], K);
        if (!ok || st->num_norm_sites >= st->norm_site_capacity) continue;
        const int before = st->num_redirects;
        for (int i = 0; i < 3 && ok; i++)
            if (want[i] >= 0) ok = add_redirect(st, want[i]);
        if (!ok) {
            st->num_redirects = before;
            continue;
        }
        cuda_norm_site *site = &st->norm_sites[st->num_norm_sites++];
        site->add = add;
        site->norm = r;
        st->norm_site_of[v] = st->num_norm_sites; /* index + 1 */
        st->norm_skip[r] = 1;
        if (add >= 0) st->norm_skip[add] = 1;
    }
    if (st->num_redirects == 0) return LLMRT_OK;
    /* one buffer each, for CUDA_GEMV_MAX_M rows */
    size_t total = 0;
    for (int i = 0; i < st->num_redirects; i++) {
        const llmrt_value v = st->redirects[i].value;
        st->redirects[i].offset = total;
        total += ((size_t)CUDA_GEMV_MAX_M * g->nodes[v].dims[1] * llmrt_dtype_size(t) + 255) / 256 * 256;
    }
    cudaError_t err = cudaMalloc(&st->redirect_buf, total);
    if (err != cudaSuccess)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate %.1f KiB for the fused norms (%s)",
                           total / 1024.0, cudaGetErrorString(err));
    for (int i = 0; i < st->num_redirects; i++) {
        st->redirects[i].plan_ptr = st->node_ptr[st->redirects[i].value];
        st->redirects[i].own_ptr = (unsigned char *)st->redirect_buf + st->redirects[i].offset;
    }
    return LLMRT_OK;
}

llmrt_status cuda_find_fusions(cuda_state *st) {
    const llmrt_graph *g = st->graph;
    LLMRT_TRY(mark_add_norm(st));
    st->gemv_group = calloc((size_t)g->num_nodes, 1);
    st->norm_site_of = calloc((size_t)g->num_nodes, sizeof *st->norm_site_of);
    st->norm_skip = calloc((size_t)g->num_nodes, 1);
    st->norm_site_capacity = g->num_nodes / 2 + 1;
    st->norm_sites = calloc((size_t)st->norm_site_capacity, sizeof *st->norm_sites);
    st->redirect_capacity = 3 * st->norm_site_capacity;
    st->redirects = calloc((size_t)st->redirect_capacity, sizeof *st->redirects);
    int32_t *uses = calloc((size_t)g->num_nodes, sizeof *uses);
    if (!st->gemv_group || !st->norm_site_of || !st->norm_skip || !st->norm_sites || !st->redirects || !uses) {
        free(uses);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    }
    for (int32_t v = 0; v < g->num_nodes; v++)
        for (int i = 0; i < g->nodes[v].num_inputs; i++)
            if (g->nodes[v].inputs[i] >= 0) uses[g->nodes[v].inputs[i]]++;
    llmrt_status s = find_gemv_groups(st, uses);
    if (s == LLMRT_OK) s = find_norm_sites(st, uses);
    free(uses);
    if (s == LLMRT_OK && st->num_norm_sites)
        LLMRT_DEBUG("cuda: %d RMSNorms fold into their GEMV at decode sizes (%d values in own buffers)",
                    (int)st->num_norm_sites, (int)st->num_redirects);
    return s;
}

void cuda_fusion_select(cuda_state *st, int64_t tokens) {
    st->norm_active = st->num_norm_sites > 0 && st->settings.gemv && tokens <= CUDA_GEMV_MAX_M;
    for (int i = 0; i < st->num_redirects; i++)
        st->node_ptr[st->redirects[i].value] = st->norm_active ? st->redirects[i].own_ptr : st->redirects[i].plan_ptr;
}

void cuda_fusion_free(cuda_state *st) {
    free(st->fused);
    free(st->gemv_group);
    free(st->norm_site_of);
    free(st->norm_skip);
    free(st->norm_sites);
    free(st->redirects);
    cudaFree(st->redirect_buf);
}
