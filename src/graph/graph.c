/* Graph construction and shape inference for the functional ops. */
#include "graph/graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "core/quant8.h"

llmrt_graph *llmrt_graph_create(llmrt_dtype act_dtype, llmrt_dtype weight_dtype) {
    llmrt_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->act_dtype = act_dtype;
    g->weight_dtype = weight_dtype;
    return g;
}

void llmrt_graph_free(llmrt_graph *g) {
    if (!g) return;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].const_data);
        free(g->nodes[i].plugin_params);
    }
    free(g->nodes);
    free(g);
}

llmrt_status llmrt_graph_status(const llmrt_graph *g) {
    if (!g) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "graph: out of memory");
    if (g->status != LLMRT_OK) return llmrt_error(g->status, "%s", g->error);
    return LLMRT_OK;
}

llmrt_value llmrt_graph_fail(llmrt_graph *g, llmrt_status status, const char *fmt, ...) {
    if (g->status == LLMRT_OK) {
        g->status = status;
        va_list args;
        va_start(args, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, args);
        va_end(args);
    }
    return LLMRT_NO_VALUE;
}

llmrt_value llmrt_graph_append(llmrt_graph *g, const llmrt_node *node) {
    if (g->status != LLMRT_OK) return LLMRT_NO_VALUE;
    if (g->num_nodes == g->capacity) {
        int32_t capacity = g->capacity ? g->capacity * 2 : 256;
        llmrt_node *grown = realloc(g->nodes, (size_t)capacity * sizeof *grown);
        if (!grown) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "graph: out of memory");
        g->nodes = grown;
        g->capacity = capacity;
    }
    llmrt_node *n = &g->nodes[g->num_nodes];
    *n = *node;
    return g->num_nodes++;
}

int64_t llmrt_node_numel(const llmrt_node *node, int64_t tokens, int64_t logits) {
    int64_t n = 1;
    for (int32_t i = 0; i < node->ndim; i++) {
        int64_t d = node->dims[i];
        n *= d == LLMRT_DIM_TOKENS ? tokens : d == LLMRT_DIM_LOGITS ? logits : d;
    }
    return n;
}

size_t llmrt_node_bytes(const llmrt_node *node, int64_t tokens, int64_t logits) {
    if (llmrt_dtype_is_quantized(node->dtype))
        return node->ndim == 2 ? llmrt_qweight_bytes(node->dtype, node->dims[0], node->dims[1], node->iattr[1],
                                                     (int)node->iattr[3]) : 0;
    if (llmrt_dtype_is_q8(node->dtype))
        return node->ndim == 2 ? llmrt_q8weight_bytes(node->dtype, node->dims[0], node->dims[1]) : 0;
    return (size_t)llmrt_node_numel(node, tokens, logits) * llmrt_dtype_size(node->dtype);
}

/* ---- helpers ---------------------------------------------------------------- */

static void node_init(llmrt_node *n, llmrt_op op, llmrt_dtype dtype, int32_t ndim, const int64_t *dims) {
    memset(n, 0, sizeof *n);
    n->op = op;
    n->dtype = dtype;
    n->ndim = ndim;
    if (ndim > 0) memcpy(n->dims, dims, (size_t)ndim * sizeof *dims);
    n->alias_of = LLMRT_NO_VALUE;
    n->arena_offset = -1;
    n->weight_slot = -1;
}

static int valid_value(llmrt_graph *g, llmrt_value v, const char *op) {
    if (g->status != LLMRT_OK) return 0;
    if (v < 0 || v >= g->num_nodes) {
        llmrt_graph_fail(g, LLMRT_ERR_INTERNAL, "%s: invalid input value %d", op, (int)v);
        return 0;
    }
    return 1;
}

static void format_shape(const llmrt_node *n, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int32_t i = 0; i < n->ndim && used < size; i++) {
        int64_t d = n->dims[i];
        if (d == LLMRT_DIM_TOKENS) used += (size_t)snprintf(buf + used, size - used, "%sT", i ? ", " : "");
        else if (d == LLMRT_DIM_LOGITS) used += (size_t)snprintf(buf + used, size - used, "%sL", i ? ", " : "");
        else used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)d);
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

static llmrt_value add_node(llmrt_graph *g, llmrt_op op, llmrt_dtype dtype, int32_t ndim, const int64_t *dims,
                            const llmrt_value *inputs, int32_t num_inputs) {
    llmrt_node n;
    node_init(&n, op, dtype, ndim, dims);
    n.num_inputs = num_inputs;
    for (int32_t i = 0; i < num_inputs; i++) n.inputs[i] = inputs[i];
    return llmrt_graph_append(g, &n);
}

static llmrt_value leaf(llmrt_graph *g, llmrt_op op, const char *name, llmrt_dtype dtype, int32_t ndim,
                        const int64_t *dims) {
    if (g->status != LLMRT_OK) return LLMRT_NO_VALUE;
    if (ndim < 0 || ndim > LLMRT_GRAPH_MAX_DIMS)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "%s: rank %d out of range", name, (int)ndim);
    llmrt_node n;
    node_init(&n, op, dtype, ndim, dims);
    n.name = strdup(name ? name : "");
    if (!n.name) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "graph: out of memory");
    llmrt_value v = llmrt_graph_append(g, &n);
    if (v == LLMRT_NO_VALUE) free(n.name);
    return v;
}

/* ---- leaves ------------------------------------------------------------------- */

llmrt_value llmrt_input(llmrt_graph *g, const char *name, llmrt_dtype dtype, int32_t ndim, const int64_t *dims) {
    return leaf(g, LLMRT_OP_INPUT, name, dtype, ndim, dims);
}

llmrt_value llmrt_weight(llmrt_graph *g, const char *name, int32_t ndim, const int64_t *dims) {
    for (int32_t i = 0; i < ndim; i++)
        if (dims[i] <= 0)
            return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "weight %s: dim %d is %lld", name, (int)i,
                                    (long long)dims[i]);
    return leaf(g, LLMRT_OP_WEIGHT, name, ndim >= 2 ? g->weight_dtype : LLMRT_DTYPE_F32, ndim, dims);
}

llmrt_value llmrt_constant(llmrt_graph *g, const char *label, const float *data, int32_t ndim, const int64_t *dims) {
    llmrt_value v = leaf(g, LLMRT_OP_CONSTANT, label, LLMRT_DTYPE_F32, ndim, dims);
    if (v == LLMRT_NO_VALUE) return v;
    int64_t count = llmrt_node_numel(&g->nodes[v], 0, 0);
    if (count <= 0) return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "constant %s: empty", label);
    float *copy = malloc((size_t)count * sizeof *copy);
    if (!copy) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "graph: out of memory");
    memcpy(copy, data, (size_t)count * sizeof *copy);
    g->nodes[v].const_data = copy;
    return v;
}

llmrt_value llmrt_scalar(llmrt_graph *g, float value) {
    char label[48];
    snprintf(label, sizeof label, "scalar.%d", g->num_nodes);
    return llmrt_constant(g, label, &value, 0, NULL);
}

/* ---- elementwise ------------------------------------------------------------ */

static llmrt_value unary(llmrt_graph *g, llmrt_op op, llmrt_value a) {
    if (!valid_value(g, a, llmrt_op_name(op))) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a];
    llmrt_dtype dtype = x->dtype == LLMRT_DTYPE_F32 || x->op != LLMRT_OP_CONSTANT ? x->dtype : g->act_dtype;
    return add_node(g, op, dtype, x->ndim, x->dims, &a, 1);
}

/* Numpy broadcasting over trailing dims; symbols broadcast only with
 * themselves or 1. Constants adopt the other operand's dtype. */
static llmrt_value binary(llmrt_graph *g, llmrt_op op, llmrt_value a, llmrt_value b) {
    if (!valid_value(g, a, llmrt_op_name(op)) || !valid_value(g, b, llmrt_op_name(op))) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a], *y = &g->nodes[b];
    int32_t ndim = x->ndim > y->ndim ? x->ndim : y->ndim;
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    for (int32_t i = 0; i < ndim; i++) {
        int32_t xi = x->ndim - ndim + i, yi = y->ndim - ndim + i;
        int64_t dx = xi >= 0 ? x->dims[xi] : 1, dy = yi >= 0 ? y->dims[yi] : 1;
        if (dx == dy || dy == 1) dims[i] = dx;
        else if (dx == 1) dims[i] = dy;
        else {
            char sx[96], sy[96];
            format_shape(x, sx, sizeof sx);
            format_shape(y, sy, sizeof sy);
            return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "%s: shapes %s and %s do not broadcast",
                                    llmrt_op_name(op), sx, sy);
        }
    }
    int x_leaf = x->op == LLMRT_OP_CONSTANT || x->op == LLMRT_OP_WEIGHT;
    llmrt_dtype dtype = x_leaf ? y->dtype : x->dtype;
    if (dtype == LLMRT_DTYPE_F32 && (x_leaf && y->op == LLMRT_OP_CONSTANT)) dtype = g->act_dtype;
    llmrt_value inputs[2] = {a, b};
    return add_node(g, op, dtype, ndim, dims, inputs, 2);
}

llmrt_value llmrt_add(llmrt_graph *g, llmrt_value a, llmrt_value b) { return binary(g, LLMRT_OP_ADD, a, b); }
llmrt_value llmrt_sub(llmrt_graph *g, llmrt_value a, llmrt_value b) { return binary(g, LLMRT_OP_SUB, a, b); }
llmrt_value llmrt_mul(llmrt_graph *g, llmrt_value a, llmrt_value b) { return binary(g, LLMRT_OP_MUL, a, b); }
llmrt_value llmrt_div(llmrt_graph *g, llmrt_value a, llmrt_value b) { return binary(g, LLMRT_OP_DIV, a, b); }

llmrt_value llmrt_pow(llmrt_graph *g, llmrt_value a, float exponent) {
    llmrt_value v = unary(g, LLMRT_OP_POW, a);
    if (v != LLMRT_NO_VALUE) g->nodes[v].fattr[0] = exponent;
    return v;
}
llmrt_value llmrt_neg(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_NEG, a); }
llmrt_value llmrt_exp(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_EXP, a); }
llmrt_value llmrt_sqrt(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_SQRT, a); }
llmrt_value llmrt_rsqrt(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_RSQRT, a); }
llmrt_value llmrt_tanh(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_TANH, a); }
llmrt_value llmrt_erf(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_ERF, a); }
llmrt_value llmrt_sigmoid(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_SIGMOID, a); }
llmrt_value llmrt_relu(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_RELU, a); }
llmrt_value llmrt_gelu(llmrt_graph *g, llmrt_value a) { return unary(g, LLMRT_OP_GELU, a); }

/* ---- reductions ------------------------------------------------------------- */

static llmrt_value reduce_last(llmrt_graph *g, llmrt_op op, llmrt_value a, int keep_shape) {
    if (!valid_value(g, a, llmrt_op_name(op))) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a];
    if (x->ndim < 1) return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "%s: needs rank >= 1", llmrt_op_name(op));
    if (x->dims[x->ndim - 1] < 0)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "%s: last axis must be static", llmrt_op_name(op));
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    memcpy(dims, x->dims, sizeof dims);
    if (!keep_shape) dims[x->ndim - 1] = 1;
    return add_node(g, op, x->dtype, x->ndim, dims, &a, 1);
}

llmrt_value llmrt_sum(llmrt_graph *g, llmrt_value a) { return reduce_last(g, LLMRT_OP_SUM, a, 0); }
llmrt_value llmrt_mean(llmrt_graph *g, llmrt_value a) { return reduce_last(g, LLMRT_OP_MEAN, a, 0); }
llmrt_value llmrt_softmax(llmrt_graph *g, llmrt_value a) { return reduce_last(g, LLMRT_OP_SOFTMAX, a, 1); }

/* ---- structural ---------------------------------------------------------- */

llmrt_value llmrt_matmul(llmrt_graph *g, llmrt_value a, llmrt_value b, int transpose_b) {
    if (!valid_value(g, a, "matmul") || !valid_value(g, b, "matmul")) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a], *w = &g->nodes[b];
    if (x->ndim < 1 || w->ndim != 2)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "matmul: expects a [..., K] and a rank-2 b");
    int64_t k = x->dims[x->ndim - 1];
    int64_t wk = transpose_b ? w->dims[1] : w->dims[0];
    int64_t n = transpose_b ? w->dims[0] : w->dims[1];
    if (k != wk) {
        char sx[96], sw[96];
        format_shape(x, sx, sizeof sx);
        format_shape(w, sw, sizeof sw);
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "matmul: %s by %s%s: inner dims differ", sx, sw,
                                transpose_b ? "ᵀ" : "");
    }
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    memcpy(dims, x->dims, sizeof dims);
    dims[x->ndim - 1] = n;
    llmrt_value inputs[2] = {a, b};
    llmrt_value v = add_node(g, LLMRT_OP_MATMUL, x->dtype, x->ndim, dims, inputs, 2);
    if (v != LLMRT_NO_VALUE) g->nodes[v].iattr[0] = transpose_b ? 1 : 0;
    return v;
}

llmrt_value llmrt_gather(llmrt_graph *g, llmrt_value table, llmrt_value indices) {
    return llmrt_gather_offset(g, table, indices, 0);
}

llmrt_value llmrt_gather_offset(llmrt_graph *g, llmrt_value table, llmrt_value indices, int64_t offset) {
    if (!valid_value(g, table, "gather") || !valid_value(g, indices, "gather")) return LLMRT_NO_VALUE;
    const llmrt_node *t = &g->nodes[table], *ix = &g->nodes[indices];
    if (t->ndim != 2 || ix->ndim != 1 || ix->dtype != LLMRT_DTYPE_I32)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "gather: expects table [rows, D] and i32 indices [n]");
    if (offset < 0 || (t->dims[0] >= 0 && offset >= t->dims[0]))
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "gather: row offset %lld outside the table's %lld rows",
                                (long long)offset, (long long)t->dims[0]);
    int64_t dims[2] = {ix->dims[0], t->dims[1]};
    llmrt_value inputs[2] = {table, indices};
    llmrt_dtype dtype = t->op == LLMRT_OP_WEIGHT || t->op == LLMRT_OP_CONSTANT ? g->act_dtype : t->dtype;
    llmrt_value v = add_node(g, LLMRT_OP_GATHER, dtype, 2, dims, inputs, 2);
    if (v != LLMRT_NO_VALUE) g->nodes[v].iattr[0] = offset;
    return v;
}

llmrt_value llmrt_gather_shard(llmrt_graph *g, llmrt_value table, llmrt_value indices, int64_t first_row) {
    llmrt_value out = llmrt_gather(g, table, indices);
    if (out != LLMRT_NO_VALUE) {
        g->nodes[out].iattr[0] = first_row;
        g->nodes[out].iattr[1] = 1;
    }
    return out;
}

llmrt_value llmrt_concat(llmrt_graph *g, const llmrt_value *parts, int32_t count, int32_t axis) {
    if (count < 1 || count > LLMRT_GRAPH_MAX_INPUTS)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "concat: %d parts (1..%d)", (int)count,
                                LLMRT_GRAPH_MAX_INPUTS);
    for (int32_t i = 0; i < count; i++)
        if (!valid_value(g, parts[i], "concat")) return LLMRT_NO_VALUE;
    const llmrt_node *first = &g->nodes[parts[0]];
    if (axis < 0) axis += first->ndim;
    if (axis < 0 || axis >= first->ndim)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "concat: axis out of range");
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    memcpy(dims, first->dims, sizeof dims);
    if (dims[axis] < 0) return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "concat: axis must be static");
    for (int32_t i = 1; i < count; i++) {
        const llmrt_node *p = &g->nodes[parts[i]];
        int same = p->ndim == first->ndim && p->dtype == first->dtype;
        for (int32_t d = 0; same && d < p->ndim; d++)
            if (d != axis && p->dims[d] != first->dims[d]) same = 0;
        if (!same || p->dims[axis] < 0)
            return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "concat: part %d shape mismatch", (int)i);
        dims[axis] += p->dims[axis];
    }
    llmrt_value v = add_node(g, LLMRT_OP_CONCAT, first->dtype, first->ndim, dims, parts, count);
    if (v != LLMRT_NO_VALUE) g->nodes[v].iattr[0] = axis;
    return v;
}

llmrt_value llmrt_slice(llmrt_graph *g, llmrt_value a, int32_t axis, int64_t start, int64_t length) {
    if (!valid_value(g, a, "slice")) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a];
    if (axis < 0) axis += x->ndim;
    if (axis < 0 || axis >= x->ndim || x->dims[axis] < 0 || start < 0 || length <= 0 ||
        start + length > x->dims[axis])
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "slice: [%lld, +%lld) on axis %d out of range",
                                (long long)start, (long long)length, (int)axis);
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = length;
    llmrt_value v = add_node(g, LLMRT_OP_SLICE, x->dtype, x->ndim, dims, &a, 1);
    if (v != LLMRT_NO_VALUE) {
        g->nodes[v].iattr[0] = axis;
        g->nodes[v].iattr[1] = start;
        g->nodes[v].iattr[2] = length;
    }
    return v;
}

/* Element count as (static product, symbol multiset): views must preserve
 * both, so [T, 32, 128] ↔ [T, 4096] is fine and [T, 4096] → [4096, T] is not. */
static void symbolic_count(const int64_t *dims, int32_t ndim, int64_t *fixed, int *tokens, int *logits) {
    *fixed = 1;
    *tokens = *logits = 0;
    for (int32_t i = 0; i < ndim; i++) {
        if (dims[i] == LLMRT_DIM_TOKENS) (*tokens)++;
        else if (dims[i] == LLMRT_DIM_LOGITS) (*logits)++;
        else *fixed *= dims[i];
    }
}

llmrt_value llmrt_view(llmrt_graph *g, llmrt_value a, int32_t ndim, const int64_t *dims) {
    if (!valid_value(g, a, "view")) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a];
    if (ndim < 1 || ndim > LLMRT_GRAPH_MAX_DIMS)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "view: rank %d out of range", (int)ndim);
    int64_t fa, fb;
    int ta, tb, la, lb;
    symbolic_count(x->dims, x->ndim, &fa, &ta, &la);
    symbolic_count(dims, ndim, &fb, &tb, &lb);
    for (int32_t i = 0; i < ndim; i++)
        if (dims[i] == 0 || dims[i] < LLMRT_DIM_LOGITS)
            return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "view: bad dim %lld", (long long)dims[i]);
    if (fa != fb || ta != tb || la != lb)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "view: element counts differ");
    return add_node(g, LLMRT_OP_VIEW, x->dtype, ndim, dims, &a, 1);
}

llmrt_value llmrt_permute(llmrt_graph *g, llmrt_value a, const int32_t *perm) {
    if (!valid_value(g, a, "permute")) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a];
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    int seen[LLMRT_GRAPH_MAX_DIMS] = {0};
    for (int32_t i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]])
            return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "permute: not a permutation");
        seen[perm[i]] = 1;
        dims[i] = x->dims[perm[i]];
    }
    llmrt_value v = add_node(g, LLMRT_OP_PERMUTE, x->dtype, x->ndim, dims, &a, 1);
    if (v != LLMRT_NO_VALUE)
        for (int32_t i = 0; i < x->ndim; i++) g->nodes[v].iattr[i] = perm[i];
    return v;
}

llmrt_value llmrt_cast(llmrt_graph *g, llmrt_value a, llmrt_dtype dtype) {
    if (!valid_value(g, a, "cast")) return LLMRT_NO_VALUE;
    const llmrt_node *x = &g->nodes[a];
    if (llmrt_dtype_size(dtype) == 0) return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "cast: bad dtype");
    return add_node(g, LLMRT_OP_CAST, dtype, x->ndim, x->dims, &a, 1);
}

/* ---- plugin ops ------------------------------------------------------------- */

llmrt_value llmrt_attention(llmrt_graph *g, llmrt_value q, llmrt_value k, llmrt_value v, llmrt_value inv_freq,
                            const llmrt_attention_params *p) {
    if (!valid_value(g, q, "attention") || !valid_value(g, k, "attention") || !valid_value(g, v, "attention"))
        return LLMRT_NO_VALUE;
    if (p->num_heads <= 0 || p->num_kv_heads <= 0 || p->head_dim <= 0 || p->num_heads % p->num_kv_heads != 0 ||
        p->rotary_dim < 0 || p->rotary_dim > p->head_dim || p->rotary_dim % 2 != 0)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "attention: bad head configuration");
    if (p->alibi_first_head < 0 ||
        (p->alibi_total_heads != 0 && p->alibi_first_head + p->num_heads > p->alibi_total_heads))
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "attention: heads %d.. of %d ALiBi heads",
                                (int)p->alibi_first_head, (int)p->alibi_total_heads);
    if (p->sliding_window < 0 || !(p->logit_softcap >= 0.0f) || !(p->alibi_max_bias >= 0.0f))
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT,
                                "attention: sliding_window %d, logit_softcap %g, alibi_max_bias %g must be >= 0",
                                (int)p->sliding_window, (double)p->logit_softcap, (double)p->alibi_max_bias);
    const llmrt_node *nq = &g->nodes[q], *nk = &g->nodes[k], *nv = &g->nodes[v];
    int64_t qw = (int64_t)p->num_heads * p->head_dim, kw = (int64_t)p->num_kv_heads * p->head_dim;
    if (nq->ndim != 2 || nk->ndim != 2 || nv->ndim != 2 || nq->dims[0] != LLMRT_DIM_TOKENS ||
        nq->dims[1] != qw || nk->dims[1] != kw || nv->dims[1] != kw)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT,
                                "attention: expects q [T, %lld], k and v [T, %lld]", (long long)qw, (long long)kw);
    llmrt_value inputs[4] = {q, k, v, inv_freq};
    int32_t count = 3;
    if (p->rotary_dim > 0) {
        if (!valid_value(g, inv_freq, "attention")) return LLMRT_NO_VALUE;
        const llmrt_node *f = &g->nodes[inv_freq];
        if (f->ndim != 1 || f->dims[0] != p->rotary_dim / 2)
            return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "attention: inv_freq must be [%d]",
                                    (int)(p->rotary_dim / 2));
        count = 4;
    }
    llmrt_value out = add_node(g, LLMRT_OP_ATTENTION, nq->dtype, 2, nq->dims, inputs, count);
    if (out != LLMRT_NO_VALUE) {
        llmrt_node *n = &g->nodes[out];
        n->iattr[0] = p->layer;
        n->iattr[1] = p->num_heads;
        n->iattr[2] = p->num_kv_heads;
        n->iattr[3] = p->head_dim;
        n->iattr[4] = p->rotary_dim;
        n->iattr[5] = p->rope_neox;
        n->iattr[LLMRT_ATTENTION_NON_CAUSAL] = p->non_causal != 0;
        n->fattr[0] = p->scale;
        n->iattr[7] = p->sliding_window;
        n->fattr[1] = p->logit_softcap;
        n->fattr[2] = p->alibi_max_bias;
        n->fattr[3] = (float)p->alibi_first_head;
        n->fattr[4] = (float)p->alibi_total_heads;
    }
    return out;
}

llmrt_value llmrt_expert_weight(llmrt_graph *g, const char *pattern, int64_t count, int64_t rows, int64_t cols) {
    const char *star = strchr(pattern, '*');
    if (!star || strchr(star + 1, '*'))
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "expert weight %s: the name needs exactly one '*'",
                                pattern);
    int64_t dims[3] = {count, rows, cols};
    return llmrt_weight(g, pattern, 3, dims);
}

llmrt_value llmrt_moe(llmrt_graph *g, llmrt_value x, llmrt_value router_logits, llmrt_value w_gate, llmrt_value w_up,
                      llmrt_value w_down, int32_t top_k) {
    if (!valid_value(g, x, "moe") || !valid_value(g, router_logits, "moe") || !valid_value(g, w_gate, "moe") ||
        !valid_value(g, w_up, "moe") || !valid_value(g, w_down, "moe"))
        return LLMRT_NO_VALUE;
    const llmrt_node *nx = &g->nodes[x], *nr = &g->nodes[router_logits];
    const llmrt_node *wg = &g->nodes[w_gate], *wu = &g->nodes[w_up], *wd = &g->nodes[w_down];
    if (nx->ndim != 2 || nx->dims[1] <= 0 || nr->ndim != 2 || nr->dims[0] != nx->dims[0] || nr->dims[1] <= 0)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "moe: expects x [T, H] and router logits [T, E]");
    int64_t experts = nr->dims[1], hidden = nx->dims[1];
    if (wg->ndim != 3 || wu->ndim != 3 || wd->ndim != 3 || wg->dims[0] != experts || wu->dims[0] != experts ||
        wd->dims[0] != experts || wg->dims[2] != hidden || wu->dims[2] != hidden || wu->dims[1] != wg->dims[1] ||
        wd->dims[1] != hidden || wd->dims[2] != wg->dims[1] || wg->dtype != wu->dtype || wg->dtype != wd->dtype ||
        llmrt_dtype_is_packed(wg->dtype))
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT,
                                "moe: expects gate and up [%lld, I, %lld] and down [%lld, %lld, I] of one float dtype",
                                (long long)experts, (long long)hidden, (long long)experts, (long long)hidden);
    if (top_k < 1 || top_k > experts)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "moe: top_k %d outside 1..%lld experts", (int)top_k,
                                (long long)experts);
    llmrt_value inputs[5] = {x, router_logits, w_gate, w_up, w_down};
    llmrt_value out = add_node(g, LLMRT_OP_MOE, nx->dtype, 2, nx->dims, inputs, 5);
    if (out != LLMRT_NO_VALUE) {
        g->nodes[out].iattr[0] = experts;
        g->nodes[out].iattr[1] = top_k;
    }
    return out;
}

void llmrt_graph_mark_output(llmrt_graph *g, llmrt_value v) {
    if (valid_value(g, v, "output")) g->nodes[v].is_output = 1;
}

/* ---- collective ops (tensor parallelism) ---------------------------------- */

llmrt_value llmrt_all_reduce(llmrt_graph *g, llmrt_value x, int32_t ranks) {
    if (!valid_value(g, x, "all_reduce")) return LLMRT_NO_VALUE;
    if (ranks < 1) return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "all_reduce: %d ranks", (int)ranks);
    const llmrt_node *n = &g->nodes[x];
    llmrt_value out = add_node(g, LLMRT_OP_ALL_REDUCE, n->dtype, n->ndim, n->dims, &x, 1);
    if (out != LLMRT_NO_VALUE) g->nodes[out].iattr[0] = ranks;
    return out;
}

llmrt_value llmrt_all_gather(llmrt_graph *g, llmrt_value x, int32_t ranks) {
    if (!valid_value(g, x, "all_gather")) return LLMRT_NO_VALUE;
    const llmrt_node *n = &g->nodes[x];
    if (ranks < 1 || n->ndim >= LLMRT_GRAPH_MAX_DIMS)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "all_gather: %d ranks of a rank-%d tensor", (int)ranks,
                                (int)n->ndim);
    int64_t dims[LLMRT_GRAPH_MAX_DIMS] = {ranks};
    memcpy(dims + 1, n->dims, (size_t)n->ndim * sizeof *dims);
    llmrt_value out = add_node(g, LLMRT_OP_ALL_GATHER, n->dtype, n->ndim + 1, dims, &x, 1);
    if (out != LLMRT_NO_VALUE) g->nodes[out].iattr[0] = ranks;
    return out;
}

llmrt_value llmrt_weight_shard(llmrt_graph *g, const char *name, int32_t ndim, const int64_t *full_dims,
                               int32_t axis, int32_t index, int32_t count) {
    if (g->status != LLMRT_OK) return LLMRT_NO_VALUE;
    if (ndim < 1 || ndim > 3 || axis < 0 || axis >= ndim || count < 1 || index < 0 || index >= count ||
        full_dims[axis] % count != 0)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT,
                                "weight %s: cannot split axis %d (size %lld) into %d tensor-parallel parts", name,
                                (int)axis, (long long)(axis >= 0 && axis < ndim ? full_dims[axis] : 0), (int)count);
    int64_t dims[3] = {0, 0, 0};
    for (int32_t d = 0; d < ndim; d++) dims[d] = full_dims[d];
    dims[axis] /= count;
    llmrt_value w = llmrt_weight(g, name, ndim, dims);
    if (w != LLMRT_NO_VALUE && count > 1) {
        /* iattr[0..3] belong to layout and quantization (passes.c, quantize.c) */
        g->nodes[w].iattr[4] = axis + 1;
        g->nodes[w].iattr[5] = index;
        g->nodes[w].iattr[6] = count;
    }
    return w;
}

llmrt_value llmrt_weight_segments(llmrt_graph *g, const char *name, int32_t ndim, const int64_t *full_dims,
                                  int32_t axis, const int64_t (*segments)[2], int32_t num_segments, int32_t rank,
                                  int32_t ranks) {
    if (g->status != LLMRT_OK) return LLMRT_NO_VALUE;
    int64_t width = 0;
    int ok = ndim >= 1 && ndim <= 2 && axis >= 0 && axis < ndim && num_segments >= 1 &&
             num_segments <= LLMRT_GRAPH_MAX_SEGMENTS && ranks > 1 && rank >= 0 && rank < ranks;
    for (int32_t i = 0; ok && i < num_segments; i++) {
        ok = segments[i][0] >= 0 && segments[i][1] > 0 && segments[i][0] + segments[i][1] <= full_dims[axis];
        width += segments[i][1];
    }
    if (!ok)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT,
                                "weight %s: %d pieces along axis %d are not a tensor-parallel shard of rank %d of %d",
                                name, (int)num_segments, (int)axis, (int)rank, (int)ranks);
    int64_t dims[2] = {full_dims[0], ndim == 2 ? full_dims[1] : 0};
    dims[axis] = width;
    llmrt_value w = llmrt_weight(g, name, ndim, dims);
    if (w != LLMRT_NO_VALUE) {
        llmrt_node *n = &g->nodes[w];
        n->iattr[4] = axis + 1; /* as llmrt_weight_shard's, so "a shard" reads alike */
        n->iattr[5] = rank;
        n->iattr[6] = ranks;
        n->iattr[7] = full_dims[axis];
        n->num_segments = num_segments;
        memcpy(n->segments, segments, (size_t)num_segments * sizeof *segments);
    }
    return w;
}

llmrt_value llmrt_send(llmrt_graph *g, llmrt_value x, int32_t peer, int32_t ranks) {
    if (!valid_value(g, x, "send")) return LLMRT_NO_VALUE;
    if (peer < 0 || peer >= ranks) return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "send: rank %d of %d", peer, ranks);
    const llmrt_node *n = &g->nodes[x];
    llmrt_value out = add_node(g, LLMRT_OP_SEND, n->dtype, n->ndim, n->dims, &x, 1);
    if (out != LLMRT_NO_VALUE) {
        g->nodes[out].iattr[0] = peer;
        g->nodes[out].iattr[1] = ranks;
    }
    return out;
}

llmrt_value llmrt_recv(llmrt_graph *g, llmrt_value after, llmrt_dtype dtype, int32_t ndim, const int64_t *dims,
                       int32_t peer, int32_t ranks) {
    if (!valid_value(g, after, "recv")) return LLMRT_NO_VALUE;
    if (peer < 0 || peer >= ranks || ndim < 1 || ndim > LLMRT_GRAPH_MAX_DIMS)
        return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "recv: rank %d of %d, rank-%d tensor", peer, ranks, ndim);
    for (int32_t i = 0; i < ndim; i++)
        if (dims[i] == 0 || dims[i] < LLMRT_DIM_LOGITS)
            return llmrt_graph_fail(g, LLMRT_ERR_INVALID_ARGUMENT, "recv: bad dim %lld", (long long)dims[i]);
    llmrt_value out = add_node(g, LLMRT_OP_RECV, dtype, ndim, dims, &after, 1);
    if (out != LLMRT_NO_VALUE) {
        g->nodes[out].iattr[0] = peer;
        g->nodes[out].iattr[1] = ranks;
    }
    return out;
}
