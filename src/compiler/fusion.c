/* Pattern-matching fusion. Layers write plain functional ops; these passes
 * find the subgraphs that have a fused kernel and rewrite the root node in
 * place (same value id, new op and inputs). The bypassed intermediates lose
 * their last use and the dead-code pass removes them. A match requires every
 * intermediate to have a single use, so no value that something else reads
 * is folded away. */
#include <math.h>
#include <stdlib.h>

#include "compiler/passes.h"

typedef struct matcher {
    llmrt_graph *g;
    int32_t *uses;
} matcher;

static const llmrt_node *node_at(const matcher *m, llmrt_value v) {
    return v >= 0 && v < m->g->num_nodes ? &m->g->nodes[v] : NULL;
}

/* The node of value v if its op is `op` and (when single) it has one use. */
static const llmrt_node *match(const matcher *m, llmrt_value v, llmrt_op op, int single) {
    const llmrt_node *n = node_at(m, v);
    if (!n || n->op != op) return NULL;
    if (single && m->uses[v] != 1) return NULL;
    return n;
}

/* A scalar constant's value. */
static int scalar_value(const matcher *m, llmrt_value v, float *out) {
    const llmrt_node *n = node_at(m, v);
    if (!n || n->op != LLMRT_OP_CONSTANT || llmrt_node_numel(n, 0, 0) != 1) return 0;
    *out = n->const_data[0];
    return 1;
}

static int is_scalar(const matcher *m, llmrt_value v, float expected) {
    float value;
    return scalar_value(m, v, &value) && fabsf(value - expected) <= 1e-6f * fabsf(expected);
}

static int is_vector_weight(const matcher *m, llmrt_value v, int64_t dim) {
    const llmrt_node *n = node_at(m, v);
    return n && n->op == LLMRT_OP_WEIGHT && n->ndim == 1 && n->dims[0] == dim;
}

static void rewrite(llmrt_graph *g, llmrt_value root, llmrt_op op, const llmrt_value *inputs, int32_t count) {
    llmrt_node *n = &g->nodes[root];
    n->op = op;
    n->num_inputs = count;
    for (int32_t i = 0; i < LLMRT_GRAPH_MAX_INPUTS; i++) n->inputs[i] = i < count ? inputs[i] : LLMRT_NO_VALUE;
    for (int32_t i = 0; i < LLMRT_GRAPH_MAX_ATTRS; i++) {
        n->iattr[i] = 0;
        n->fattr[i] = 0;
    }
}

/* What a pattern found: the fused op that replaces the root, its inputs,
 * and its float attribute (eps for the norms; 0 otherwise). */
typedef struct fused_node {
    llmrt_op op;
    llmrt_value inputs[LLMRT_GRAPH_MAX_INPUTS];
    int32_t num_inputs;
    float fattr0;
} fused_node;

/* Returns 1 and fills *out when the subgraph ending at root matches. */
typedef int (*pattern_fn)(const matcher *m, const llmrt_node *root, fused_node *out);

/* The loop every fusion shares: each node whose op is root_op is offered to
 * the pattern and rewritten in place when it matches. Use counts are taken
 * once, before the first rewrite. */
static llmrt_status fuse_each(llmrt_graph *g, llmrt_pass_context *ctx, llmrt_op root_op, pattern_fn pattern) {
    matcher m = {g, llmrt_graph_use_counts(g)};
    if (!m.uses) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "fusion: out of memory");
    for (int32_t i = 0; i < g->num_nodes; i++) {
        fused_node f = {0};
        if (g->nodes[i].op != root_op || !pattern(&m, &g->nodes[i], &f)) continue;
        rewrite(g, i, f.op, f.inputs, f.num_inputs);
        g->nodes[i].fattr[0] = f.fattr0;
        ctx->rewrites++;
    }
    free(m.uses);
    return LLMRT_OK;
}

/* rsqrt(mean(pow(x, 2)) + eps) → (x, eps) */
static int match_inverse_rms(const matcher *m, llmrt_value v, llmrt_value *x, float *eps) {
    const llmrt_node *r = match(m, v, LLMRT_OP_RSQRT, 1);
    if (!r) return 0;
    const llmrt_node *add = match(m, r->inputs[0], LLMRT_OP_ADD, 1);
    if (!add) return 0;
    llmrt_value mean_v = add->inputs[0], eps_v = add->inputs[1];
    if (!scalar_value(m, eps_v, eps)) {
        mean_v = add->inputs[1];
        if (!scalar_value(m, add->inputs[0], eps)) return 0;
    }
    const llmrt_node *mean = match(m, mean_v, LLMRT_OP_MEAN, 1);
    if (!mean) return 0;
    const llmrt_node *sq = match(m, mean->inputs[0], LLMRT_OP_POW, 1);
    if (!sq || sq->fattr[0] != 2.0f) return 0;
    *x = sq->inputs[0];
    return 1;
}

/* The gain of a norm: a weight vector w, or add(w, c) with c a scalar
 * constant (Gemma's x̂·(1 + w)): *offset = c. */
static int norm_gain(const matcher *m, llmrt_value v, int64_t dim, llmrt_value *w, float *offset) {
    *w = v;
    *offset = 0.0f;
    if (is_vector_weight(m, v, dim)) return 1;
    const llmrt_node *shift = match(m, v, LLMRT_OP_ADD, 1);
    if (!shift) return 0;
    for (int side = 0; side < 2; side++)
        if (is_vector_weight(m, shift->inputs[side], dim) && scalar_value(m, shift->inputs[1 - side], offset)) {
            *w = shift->inputs[side];
            return 1;
        }
    return 0;
}

/* mul(mul(x, rsqrt(mean(x²) + eps)), w) → RMSNORM(x, w); with w = add(weight,
 * c) → RMSNORM(x, weight) and *offset = c (fattr[1]) */
static int match_rmsnorm_gain(const matcher *m, const llmrt_node *root, fused_node *out, float *gain_offset) {
    if (root->ndim < 1) return 0;
    int64_t dim = root->dims[root->ndim - 1];
    for (int side = 0; side < 2; side++) {
        llmrt_value w, normed_v = root->inputs[1 - side];
        float offset;
        if (!norm_gain(m, root->inputs[side], dim, &w, &offset)) continue;
        const llmrt_node *normed = match(m, normed_v, LLMRT_OP_MUL, 1);
        if (!normed) continue;
        llmrt_value x = LLMRT_NO_VALUE;
        float eps = 0;
        int found = 0;
        for (int s = 0; s < 2 && !found; s++) {
            llmrt_value cand_x;
            if (match_inverse_rms(m, normed->inputs[1 - s], &cand_x, &eps) && cand_x == normed->inputs[s]) {
                x = cand_x;
                found = 1;
            }
        }
        if (!found) continue;
        *out = (fused_node){LLMRT_OP_RMSNORM, {x, w}, 2, eps};
        *gain_offset = offset;
        return 1;
    }
    return 0;
}

static int match_rmsnorm(const matcher *m, const llmrt_node *root, fused_node *out) {
    float offset;
    return match_rmsnorm_gain(m, root, out, &offset) && offset == 0.0f;
}

/* Gemma's x̂·(1 + w): the same fusion, the offset kept in fattr[1]. */
static llmrt_status fuse_rmsnorm_offset(llmrt_graph *g, llmrt_pass_context *ctx) {
    matcher m = {g, llmrt_graph_use_counts(g)};
    if (!m.uses) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "fusion: out of memory");
    for (int32_t i = 0; i < g->num_nodes; i++) {
        fused_node f = {0};
        float offset = 0.0f;
        if (g->nodes[i].op != LLMRT_OP_MUL || !match_rmsnorm_gain(&m, &g->nodes[i], &f, &offset) || offset == 0.0f)
            continue;
        rewrite(g, i, f.op, f.inputs, f.num_inputs);
        g->nodes[i].fattr[0] = f.fattr0;
        g->nodes[i].fattr[1] = offset;
        ctx->rewrites++;
    }
    free(m.uses);
    return LLMRT_OK;
}

llmrt_status llmrt_pass_fuse_rmsnorm(llmrt_graph *g, llmrt_pass_context *ctx) {
    LLMRT_TRY(fuse_each(g, ctx, LLMRT_OP_MUL, match_rmsnorm));
    return fuse_rmsnorm_offset(g, ctx);
}

/* add(mul(mul(c, rsqrt(mean(c²) + eps)), w), b), c = sub(x, mean(x)) → LAYERNORM(x, w, b) */
static int match_layernorm(const matcher *m, const llmrt_node *root, fused_node *out) {
    if (root->ndim < 1) return 0;
    int64_t dim = root->dims[root->ndim - 1];
    for (int side = 0; side < 2; side++) {
        llmrt_value b = root->inputs[side];
        if (!is_vector_weight(m, b, dim)) continue;
        const llmrt_node *scaled = match(m, root->inputs[1 - side], LLMRT_OP_MUL, 1);
        if (!scaled) continue;
        llmrt_value w = scaled->inputs[1], normed_v = scaled->inputs[0];
        if (!is_vector_weight(m, w, dim)) {
            w = scaled->inputs[0];
            normed_v = scaled->inputs[1];
            if (!is_vector_weight(m, w, dim)) continue;
        }
        const llmrt_node *normed = match(m, normed_v, LLMRT_OP_MUL, 1);
        if (!normed) continue;
        llmrt_value c_v = LLMRT_NO_VALUE, cand;
        float eps = 0;
        for (int s = 0; s < 2; s++)
            if (match_inverse_rms(m, normed->inputs[1 - s], &cand, &eps) && cand == normed->inputs[s]) c_v = cand;
        if (c_v == LLMRT_NO_VALUE) continue;
        /* c is read twice: by the square and by the product */
        const llmrt_node *centered = match(m, c_v, LLMRT_OP_SUB, 0);
        if (!centered || m->uses[c_v] != 2) continue;
        const llmrt_node *mean = match(m, centered->inputs[1], LLMRT_OP_MEAN, 1);
        if (!mean || mean->inputs[0] != centered->inputs[0]) continue;
        *out = (fused_node){LLMRT_OP_LAYERNORM, {centered->inputs[0], w, b}, 3, eps};
        return 1;
    }
    return 0;
}

llmrt_status llmrt_pass_fuse_layernorm(llmrt_graph *g, llmrt_pass_context *ctx) {
    return fuse_each(g, ctx, LLMRT_OP_ADD, match_layernorm);
}

static int match_gelu_tanh(const matcher *m, const llmrt_node *root, llmrt_value *x_out) {
    /* mul(mul(x, 0.5), add(tanh(mul(add(x, mul(pow(x, 3), 0.044715)), √(2/π))), 1)) */
    for (int side = 0; side < 2; side++) {
        const llmrt_node *half = match(m, root->inputs[side], LLMRT_OP_MUL, 1);
        const llmrt_node *one_plus = match(m, root->inputs[1 - side], LLMRT_OP_ADD, 1);
        if (!half || !one_plus) continue;
        llmrt_value x = half->inputs[0];
        if (!is_scalar(m, half->inputs[1], 0.5f)) continue;
        llmrt_value t_v = one_plus->inputs[0];
        if (!is_scalar(m, one_plus->inputs[1], 1.0f)) continue;
        const llmrt_node *t = match(m, t_v, LLMRT_OP_TANH, 1);
        if (!t) continue;
        const llmrt_node *scaled = match(m, t->inputs[0], LLMRT_OP_MUL, 1);
        if (!scaled || !is_scalar(m, scaled->inputs[1], 0.7978845608028654f)) continue;
        const llmrt_node *inner = match(m, scaled->inputs[0], LLMRT_OP_ADD, 1);
        if (!inner || inner->inputs[0] != x) continue;
        const llmrt_node *cube_scaled = match(m, inner->inputs[1], LLMRT_OP_MUL, 1);
        if (!cube_scaled || !is_scalar(m, cube_scaled->inputs[1], 0.044715f)) continue;
        const llmrt_node *cube = match(m, cube_scaled->inputs[0], LLMRT_OP_POW, 1);
        if (!cube || cube->fattr[0] != 3.0f || cube->inputs[0] != x) continue;
        *x_out = x;
        return 1;
    }
    return 0;
}

/* x·sigmoid(x) → SILU(x); the tanh-form GELU chain → GELU_TANH(x). */
static int match_activation(const matcher *m, const llmrt_node *root, fused_node *out) {
    llmrt_value x;
    if (match_gelu_tanh(m, root, &x)) {
        *out = (fused_node){LLMRT_OP_GELU_TANH, {x}, 1, 0};
        return 1;
    }
    for (int side = 0; side < 2; side++) {
        const llmrt_node *s = match(m, root->inputs[side], LLMRT_OP_SIGMOID, 1);
        if (s && s->inputs[0] == root->inputs[1 - side]) {
            *out = (fused_node){LLMRT_OP_SILU, {s->inputs[0]}, 1, 0};
            return 1;
        }
    }
    return 0;
}

llmrt_status llmrt_pass_fuse_activations(llmrt_graph *g, llmrt_pass_context *ctx) {
    return fuse_each(g, ctx, LLMRT_OP_MUL, match_activation);
}

/* mul(silu(gate), up) → SILU_MUL(gate, up) */
static int match_silu_mul(const matcher *m, const llmrt_node *root, fused_node *out) {
    for (int side = 0; side < 2; side++) {
        const llmrt_node *s = match(m, root->inputs[side], LLMRT_OP_SILU, 1);
        const llmrt_node *up = node_at(m, root->inputs[1 - side]);
        if (!s || !up || up->ndim != root->ndim || up->dims[up->ndim - 1] != root->dims[root->ndim - 1]) continue;
        const llmrt_node *gate = node_at(m, s->inputs[0]);
        if (gate->ndim != root->ndim || gate->dims[gate->ndim - 1] != root->dims[root->ndim - 1]) continue;
        *out = (fused_node){LLMRT_OP_SILU_MUL, {s->inputs[0], root->inputs[1 - side]}, 2, 0};
        return 1;
    }
    return 0;
}

llmrt_status llmrt_pass_fuse_silu_mul(llmrt_graph *g, llmrt_pass_context *ctx) {
    return fuse_each(g, ctx, LLMRT_OP_MUL, match_silu_mul);
}

/* add(LINEAR(x, W), b) with b a vector weight → LINEAR(x, W, b) */
static int match_linear_bias(const matcher *m, const llmrt_node *root, fused_node *out) {
    if (root->ndim < 1) return 0;
    int64_t dim = root->dims[root->ndim - 1];
    for (int side = 0; side < 2; side++) {
        const llmrt_node *lin = match(m, root->inputs[side], LLMRT_OP_LINEAR, 1);
        llmrt_value b = root->inputs[1 - side];
        if (!lin || lin->num_inputs != 2 || !is_vector_weight(m, b, dim)) continue;
        if (lin->ndim != root->ndim) continue;
        *out = (fused_node){LLMRT_OP_LINEAR, {lin->inputs[0], lin->inputs[1], b}, 3, 0};
        return 1;
    }
    return 0;
}

/* matmul(x, W) with W a weight → LINEAR(x, W); then the bias add joins it. */
llmrt_status llmrt_pass_fuse_linear(llmrt_graph *g, llmrt_pass_context *ctx) {
    for (int32_t i = 0; i < g->num_nodes; i++) {
        llmrt_node *n = &g->nodes[i];
        if (n->op == LLMRT_OP_MATMUL && n->iattr[0] == 1 && g->nodes[n->inputs[1]].op == LLMRT_OP_WEIGHT) {
            llmrt_value inputs[2] = {n->inputs[0], n->inputs[1]};
            rewrite(g, i, LLMRT_OP_LINEAR, inputs, 2);
            ctx->rewrites++;
        }
    }
    return fuse_each(g, ctx, LLMRT_OP_ADD, match_linear_bias);
}
