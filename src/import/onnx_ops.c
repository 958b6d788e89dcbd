/* Lowering of the ONNX nodes the logits depend on onto the graph API, in
 * topological order. A value whose ONNX shape is [1, T, ...] (batch fixed at
 * one, the sequence axis the step's tokens) is the graph value [T, ...];
 * initializers read by activations become weights bound by their ONNX names;
 * small folded tensors become constants. Attention sites are replaced by the
 * paged-attention op. Nodes with known contents are not lowered at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/onnx_internal.h"
#include "core/log.h"
#include "layers/layers.h"

typedef struct lower_ctx {
    onnx_ctx *c;
    int32_t n;
    const onnx_node *node;
    int32_t logits;   /* the value of the graph output */
    int32_t head;     /* the LM head's output: logits before casts and full slices */
    int32_t layer;    /* attention sites lowered so far */
    llmrt_value inv_freq;    /* the RoPE table made for an earlier site ... */
    int32_t inv_freq_source; /* ... from this value (-1: from the config) */
    int32_t inv_freq_dim;    /* ... for this head size */
} lower_ctx;

static llmrt_status node_fail(lower_ctx *l, llmrt_status status, const char *what) {
    char label[256];
    return llmrt_error(status, "%s: %s: %s", l->c->source, onnx_node_label(l->c, l->n, label, sizeof label), what);
}

/* The graph shape of an ONNX shape: a leading batch of 1 before T dropped,
 * T → LLMRT_DIM_TOKENS. 0 when some other symbol remains. */
static int graph_dims(const ival *v, int32_t *ndim, int64_t *dims, int32_t *dropped) {
    if (v->ndim < 0) return 0;
    int32_t first = v->ndim >= 2 && v->dims[0] == 1 && v->dims[1] == SYM_T ? 1 : 0;
    *dropped = first;
    *ndim = v->ndim - first;
    for (int32_t d = first; d < v->ndim; d++) {
        int64_t x = v->dims[d];
        if (x == SYM_T) dims[d - first] = LLMRT_DIM_TOKENS;
        else if (sym_is(x) || x < 0) return 0;
        else dims[d - first] = x;
    }
    return *ndim <= LLMRT_GRAPH_MAX_DIMS;
}

/* The graph value of an operand: lowered activations, weights for float
 * initializers, constants for small known tensors (leading 1s dropped so they
 * broadcast against [T, ...]). */
static llmrt_value operand(lower_ctx *l, int32_t v) {
    onnx_ctx *c = l->c;
    ival *iv = &c->values[v];
    if (iv->gv != LLMRT_NO_VALUE) return iv->gv;
    if (!onnx_value_known(iv)) return LLMRT_NO_VALUE;
    double scalar;
    if (onnx_scalar(iv, &scalar)) return iv->gv = llmrt_scalar(c->g, (float)scalar);
    int64_t numel = onnx_value_numel(iv);
    int32_t first = 0;
    while (first < iv->ndim - 1 && iv->dims[first] == 1) first++;
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    int32_t ndim = iv->ndim - first;
    if (ndim > LLMRT_GRAPH_MAX_DIMS) return LLMRT_NO_VALUE;
    for (int32_t d = 0; d < ndim; d++) dims[d] = iv->dims[first + d];
    int is_float = iv->dtype == LLMRT_DTYPE_F32 || iv->dtype == LLMRT_DTYPE_F16 || iv->dtype == LLMRT_DTYPE_BF16 ||
                   iv->dtype == LLMRT_DTYPE_F64;
    if (iv->init && iv->producer < 0 && is_float && first == 0 && (ndim == 1 || ndim == 2))
        return iv->gv = llmrt_weight(c->g, iv->name, ndim, dims);
    if (numel < 0 || numel > FOLD_MAX_ELEMENTS) return LLMRT_NO_VALUE;
    float *data = malloc((size_t)numel * sizeof *data + 1);
    if (!data) return llmrt_graph_fail(c->g, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < numel; i++) data[i] = (float)onnx_value_float(iv, i);
    iv->gv = llmrt_constant(c->g, iv->name, data, ndim, dims);
    free(data);
    return iv->gv;
}

static llmrt_value input_of(lower_ctx *l, int32_t k) {
    int32_t v = node_input(l->c, l->n, k);
    return v >= 0 ? operand(l, v) : LLMRT_NO_VALUE;
}

/* y = x viewed with the graph shape of out (a no-op when it already has it) */
static llmrt_value view_as(lower_ctx *l, llmrt_value x, const ival *out) {
    int32_t ndim, dropped;
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    if (x == LLMRT_NO_VALUE || !graph_dims(out, &ndim, dims, &dropped)) return LLMRT_NO_VALUE;
    const llmrt_node *xn = llmrt_graph_node(l->c->g, x);
    int same = xn->ndim == ndim;
    for (int32_t d = 0; same && d < ndim; d++) same = xn->dims[d] == dims[d];
    return same ? x : llmrt_view(l->c->g, x, ndim, dims);
}

/* the graph axis of ONNX axis `axis` of v, -1 if it is the batch or token axis */
static int32_t graph_axis(const ival *v, int64_t axis) {
    int32_t ndim, dropped;
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    if (!graph_dims(v, &ndim, dims, &dropped)) return -1;
    if (axis < 0) axis += v->ndim;
    if (axis < dropped || axis >= v->ndim) return -1;
    int32_t a = (int32_t)axis - dropped;
    return dims[a] == LLMRT_DIM_TOKENS ? -1 : a;
}

/* Every layer's inverse frequencies are usually one initializer, sometimes
 * a copy per layer: equal contents share one table. */
static int same_contents(const onnx_ctx *c, int32_t a, int32_t b) {
    int64_t n = onnx_value_numel(&c->values[a]);
    if (n != onnx_value_numel(&c->values[b])) return 0;
    for (int64_t i = 0; i < n; i++)
        if (onnx_value_float(&c->values[a], i) != onnx_value_float(&c->values[b], i)) return 0;
    return 1;
}

static llmrt_value lower_attention(lower_ctx *l, const attention_site *s) {
    onnx_ctx *c = l->c;
    llmrt_value q = operand(l, s->xq), k = operand(l, s->xk), v = operand(l, s->xv);
    llmrt_value inv_freq = LLMRT_NO_VALUE;
    int shared = l->inv_freq != LLMRT_NO_VALUE && l->inv_freq_dim == s->head_dim &&
                 (s->inv_freq < 0 ? l->inv_freq_source < 0
                                  : l->inv_freq_source >= 0 && same_contents(c, s->inv_freq, l->inv_freq_source));
    if (s->rope && shared) {
        inv_freq = l->inv_freq; /* one table for every layer, as a native build has */
    } else if (s->rope) {
        int64_t half = s->head_dim / 2;
        float *freq = malloc((size_t)half * sizeof *freq + 1);
        if (!freq) return llmrt_graph_fail(c->g, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        if (s->inv_freq >= 0) {
            for (int64_t i = 0; i < half; i++) freq[i] = (float)onnx_value_float(&c->values[s->inv_freq], i);
        } else {
            /* the graph holds only cos/sin tables: the config's (or LLaMA's default) theta */
            llmrt_rope_config rope = c->config->rope;
            rope.rotary_dim = s->head_dim;
            if (rope.theta <= 0) rope.theta = 10000.0f;
            llmrt_rope_inv_freq(&rope, freq);
        }
        inv_freq = llmrt_constant(c->g, "rope.inv_freq", freq, 1, &half);
        free(freq);
        l->inv_freq = inv_freq;
        l->inv_freq_source = s->inv_freq;
        l->inv_freq_dim = s->head_dim;
    }
    llmrt_attention_params p = {.layer = l->layer++, .num_heads = s->num_heads, .num_kv_heads = s->num_kv_heads,
                                .head_dim = s->head_dim, .rotary_dim = s->rope ? s->head_dim : 0,
                                .rope_neox = 1, .scale = s->scale};
    return llmrt_attention(c->g, q, k, v, inv_freq, &p);
}

static int op_is(const lower_ctx *l, const char *op) { return strcmp(l->node->op_type, op) == 0; }

/* rsqrt written as Reciprocal(Sqrt(v)) or Div(1, Sqrt(v)): the graph's rsqrt of v */
static llmrt_value rsqrt_of_sqrt(lower_ctx *l, int32_t sqrt_value) {
    int32_t s = onnx_producer_is(l->c, sqrt_value, "Sqrt");
    return s >= 0 ? llmrt_rsqrt(l->c->g, operand(l, node_input(l->c, s, 0))) : LLMRT_NO_VALUE;
}

static int is_scalar_input(lower_ctx *l, int32_t n, int32_t k, double want) {
    double x;
    return onnx_scalar(&l->c->values[node_input(l->c, n, k)], &x) && fabs(x - want) <= 1e-6 * fabs(want);
}

/* GELU as torch writes gelu(x) (exact): Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)
 * → the graph's erf GELU of x, or NO_VALUE. */
static llmrt_value gelu_erf(lower_ctx *l) {
    onnx_ctx *c = l->c;
    for (int side = 0; side < 2; side++) {
        if (!is_scalar_input(l, l->n, 1 - side, 0.5)) continue;
        int32_t inner = onnx_producer_is(c, node_input(c, l->n, side), "Mul");
        for (int s2 = 0; inner >= 0 && s2 < 2; s2++) {
            int32_t x = node_input(c, inner, s2), add = onnx_producer_is(c, node_input(c, inner, 1 - s2), "Add");
            for (int s3 = 0; add >= 0 && s3 < 2; s3++) {
                int32_t erf = onnx_producer_is(c, node_input(c, add, s3), "Erf");
                if (erf < 0 || !is_scalar_input(l, add, 1 - s3, 1.0)) continue;
                int32_t div = onnx_producer_is(c, node_input(c, erf, 0), "Div");
                if (div >= 0 && node_input(c, div, 0) == x && is_scalar_input(l, div, 1, sqrt(2.0)))
                    return llmrt_gelu(c->g, operand(l, x));
            }
        }
    }
    return LLMRT_NO_VALUE;
}

/* x·rsqrt(mean(x²) + eps), the form the norm fusions match */
static llmrt_value normalize(llmrt_graph *g, llmrt_value x, float eps) {
    llmrt_value variance = llmrt_mean(g, llmrt_pow(g, x, 2.0f));
    return llmrt_mul(g, x, llmrt_rsqrt(g, llmrt_add(g, variance, llmrt_scalar(g, eps))));
}

static llmrt_status lower_node(lower_ctx *l, llmrt_value *out) {
    onnx_ctx *c = l->c;
    llmrt_graph *g = c->g;
    ival *ov = &c->values[node_output(c, l->n, 0)];
    int32_t in0 = node_input(c, l->n, 0);
    llmrt_value a = input_of(l, 0);
    *out = LLMRT_NO_VALUE;
    if (a == LLMRT_NO_VALUE && !op_is(l, "Div"))
        return node_fail(l, LLMRT_ERR_UNSUPPORTED, "its first input is neither an activation nor a known tensor");
    if (op_is(l, "Identity") || op_is(l, "Dropout")) *out = a;
    else if (op_is(l, "Cast")) {
        llmrt_dtype to = ov->dtype;
        int float_to = to == LLMRT_DTYPE_F32 || to == LLMRT_DTYPE_F16 || to == LLMRT_DTYPE_BF16 || to == LLMRT_DTYPE_F64;
        int is_ids = llmrt_graph_node(g, a)->dtype == LLMRT_DTYPE_I32;
        if (float_to == is_ids) return node_fail(l, LLMRT_ERR_UNSUPPORTED, "casts activations between int and float");
        *out = a; /* activations keep the engine's dtype; ids stay i32 */
    } else if (op_is(l, "Add") || op_is(l, "Sub") || op_is(l, "Mul") || op_is(l, "Div")) {
        llmrt_value b = input_of(l, 1);
        double one;
        if (op_is(l, "Div") && onnx_scalar(&c->values[in0], &one) && one == 1.0) {
            *out = rsqrt_of_sqrt(l, node_input(c, l->n, 1));
            if (*out == LLMRT_NO_VALUE) *out = llmrt_div(g, llmrt_scalar(g, 1.0f), b);
        } else if (a == LLMRT_NO_VALUE || b == LLMRT_NO_VALUE) {
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "an input is neither an activation nor a known tensor");
        } else if (op_is(l, "Div") && onnx_producer_is(c, node_input(c, l->n, 1), "Sqrt") >= 0) {
            *out = llmrt_mul(g, a, rsqrt_of_sqrt(l, node_input(c, l->n, 1))); /* x / √v as the norms write it */
        } else if (op_is(l, "Mul") && (*out = gelu_erf(l)) != LLMRT_NO_VALUE) {
        } else {
            /* constants second, as torch writes `x * 0.5` and the fusions expect */
            int swap = (op_is(l, "Add") || op_is(l, "Mul")) && llmrt_graph_node(g, a)->op == LLMRT_OP_CONSTANT &&
                       llmrt_graph_node(g, b)->op != LLMRT_OP_CONSTANT;
            llmrt_value x = swap ? b : a, y = swap ? a : b;
            *out = op_is(l, "Add") ? llmrt_add(g, x, y) : op_is(l, "Sub") ? llmrt_sub(g, x, y)
                 : op_is(l, "Mul") ? llmrt_mul(g, x, y) : llmrt_div(g, x, y);
        }
    } else if (op_is(l, "Pow")) {
        double e;
        if (!onnx_scalar(&c->values[node_input(c, l->n, 1)], &e))
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "the exponent must be a known scalar");
        *out = llmrt_pow(g, a, (float)e);
    } else if (op_is(l, "Reciprocal")) {
        *out = rsqrt_of_sqrt(l, in0);
        if (*out == LLMRT_NO_VALUE) *out = llmrt_div(g, llmrt_scalar(g, 1.0f), a);
    } else if (op_is(l, "Sqrt")) *out = llmrt_sqrt(g, a);
    else if (op_is(l, "Neg")) *out = llmrt_neg(g, a);
    else if (op_is(l, "Exp")) *out = llmrt_exp(g, a);
    else if (op_is(l, "Tanh")) *out = llmrt_tanh(g, a);
    else if (op_is(l, "Erf")) *out = llmrt_erf(g, a);
    else if (op_is(l, "Sigmoid")) *out = llmrt_sigmoid(g, a);
    else if (op_is(l, "Relu")) *out = llmrt_relu(g, a);
    else if (op_is(l, "Softmax")) {
        if (graph_axis(&c->values[in0], onnx_attr_int(l->node, "axis", -1)) != llmrt_graph_node(g, a)->ndim - 1)
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "softmax over an axis other than the last");
        *out = llmrt_softmax(g, a);
    } else if (op_is(l, "ReduceMean") || op_is(l, "ReduceSum")) {
        const onnx_attr *axes = onnx_node_attr(l->node, "axes");
        int32_t last = llmrt_graph_node(g, a)->ndim - 1;
        int ok = onnx_attr_int(l->node, "keepdims", 1) == 1;
        if (axes && axes->kind == ONNX_ATTR_INTS) ok = ok && axes->num_ints == 1 &&
                                                       graph_axis(&c->values[in0], axes->ints[0]) == last;
        else if (node_input(c, l->n, 1) >= 0) {
            const ival *ax = &c->values[node_input(c, l->n, 1)];
            ok = ok && onnx_value_known(ax) && onnx_value_numel(ax) == 1 &&
                 graph_axis(&c->values[in0], onnx_value_int(ax, 0)) == last;
        } else ok = 0;
        if (!ok) return node_fail(l, LLMRT_ERR_UNSUPPORTED, "reduces over axes other than the last (keepdims)");
        *out = op_is(l, "ReduceMean") ? llmrt_mean(g, a) : llmrt_sum(g, a);
    } else if (op_is(l, "MatMul") || op_is(l, "Gemm")) {
        int32_t bv = node_input(c, l->n, 1);
        int transpose = op_is(l, "Gemm") && onnx_attr_int(l->node, "transB", 0);
        int32_t t = onnx_producer_is(c, bv, "Transpose");
        if (t >= 0 && c->values[bv].ndim == 2 && c->values[node_input(c, t, 0)].init) {
            bv = node_input(c, t, 0);
            transpose = !transpose;
        }
        if (op_is(l, "Gemm") && (onnx_attr_int(l->node, "transA", 0) || onnx_attr_float(l->node, "alpha", 1) != 1 ||
                                 onnx_attr_float(l->node, "beta", 1) != 1))
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "Gemm with transA, alpha or beta");
        const ival *wv = &c->values[bv];
        if (wv->init && wv->dtype != LLMRT_DTYPE_F32 && wv->dtype != LLMRT_DTYPE_F16 &&
            wv->dtype != LLMRT_DTYPE_BF16 && wv->dtype != LLMRT_DTYPE_F64) {
            char what[300];
            snprintf(what, sizeof what, "weight '%s' has type %s (expected a float type)", wv->name,
                     llmrt_dtype_name(wv->dtype));
            return node_fail(l, LLMRT_ERR_FORMAT, what);
        }
        llmrt_value w = operand(l, bv);
        if (w == LLMRT_NO_VALUE || llmrt_graph_node(g, w)->op != LLMRT_OP_WEIGHT)
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "multiplies two activations outside an attention subgraph");
        /* the LM head projects only the rows whose logits the step returns */
        if (node_output(c, l->n, 0) == l->head && llmrt_graph_node(g, a)->ndim == 2 &&
            llmrt_graph_node(g, a)->dims[0] == LLMRT_DIM_TOKENS)
            a = llmrt_gather(g, a, c->logits_indices);
        *out = llmrt_matmul(g, a, w, transpose);
        if (op_is(l, "Gemm") && node_input(c, l->n, 2) >= 0) *out = llmrt_add(g, *out, input_of(l, 2));
    } else if (op_is(l, "Gather")) {
        int32_t ids = node_input(c, l->n, 1);
        llmrt_value idx = operand(l, ids);
        if (onnx_attr_int(l->node, "axis", 0) != 0 || !c->values[in0].init || idx == LLMRT_NO_VALUE ||
            llmrt_graph_node(g, idx)->dtype != LLMRT_DTYPE_I32 || llmrt_graph_node(g, idx)->ndim != 1)
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "only an embedding lookup (rows of an initializer by ids) "
                                                       "is lowered");
        *out = llmrt_gather(g, a, idx);
    } else if (op_is(l, "Reshape") || op_is(l, "Unsqueeze") || op_is(l, "Squeeze") || op_is(l, "Flatten")) {
        *out = view_as(l, a, ov);
        if (*out == LLMRT_NO_VALUE)
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "reshapes across the batch or sequence axis");
    } else if (op_is(l, "Transpose")) {
        const onnx_attr *perm = onnx_node_attr(l->node, "perm");
        const ival *iv = &c->values[in0];
        int32_t ndim, dropped, gperm[LLMRT_GRAPH_MAX_DIMS], identity = 1;
        int64_t dims[LLMRT_GRAPH_MAX_DIMS];
        if (!perm || perm->kind != ONNX_ATTR_INTS || !graph_dims(iv, &ndim, dims, &dropped))
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "a transpose without perm");
        for (int32_t d = 0; d < iv->ndim; d++) {
            int32_t gd = d - dropped, from = (int32_t)perm->ints[d] - dropped;
            if (gd < 0 ? from != -1 : (from < 0 || (dims[gd] == LLMRT_DIM_TOKENS) != (dims[from] == LLMRT_DIM_TOKENS)))
                return node_fail(l, LLMRT_ERR_UNSUPPORTED, "moves the batch or sequence axis");
            if (gd >= 0) {
                gperm[gd] = from;
                identity = identity && from == gd;
            }
        }
        *out = identity ? a : llmrt_permute(g, a, gperm);
    } else if (op_is(l, "Slice") && onnx_same_shape(ov, &c->values[in0])) {
        *out = a; /* x[:, :] keeps everything */
    } else if (op_is(l, "Slice") || op_is(l, "Split")) {
        /* Split's outputs are lowered all at once; Slice is one output */
        const ival *iv = &c->values[in0];
        int64_t axis_attr = op_is(l, "Split") ? onnx_attr_int(l->node, "axis", 0) : -1;
        if (op_is(l, "Slice")) {
            int32_t axv = node_input(c, l->n, 3), stv = node_input(c, l->n, 4);
            if (axv >= 0 && (!onnx_value_known(&c->values[axv]) || onnx_value_numel(&c->values[axv]) != 1))
                return node_fail(l, LLMRT_ERR_UNSUPPORTED, "slices more than one axis of activations");
            if (stv >= 0 && (!onnx_value_known(&c->values[stv]) || onnx_value_int(&c->values[stv], 0) != 1))
                return node_fail(l, LLMRT_ERR_UNSUPPORTED, "slices activations with a step");
            axis_attr = axv >= 0 ? onnx_value_int(&c->values[axv], 0) : 0;
        }
        int32_t axis = graph_axis(iv, axis_attr);
        if (axis < 0) return node_fail(l, LLMRT_ERR_UNSUPPORTED, "slices the batch or sequence axis");
        int32_t ax = (int32_t)(axis_attr < 0 ? axis_attr + iv->ndim : axis_attr);
        int64_t start = 0;
        if (op_is(l, "Slice")) {
            const ival *st = &c->values[node_input(c, l->n, 1)];
            start = onnx_value_int(st, 0);
            if (start < 0) start += iv->dims[ax];
            if (start < 0) start = 0;
            if (ov->dims[ax] <= 0) return node_fail(l, LLMRT_ERR_UNSUPPORTED, "slices to an empty tensor");
            *out = llmrt_slice(g, a, axis, start, ov->dims[ax]);
        } else {
            for (int32_t k = 0; k < l->node->num_outputs; k++) {
                ival *part = &c->values[node_output(c, l->n, k)];
                if (part->ndim != iv->ndim || part->dims[ax] <= 0)
                    return node_fail(l, LLMRT_ERR_UNSUPPORTED, "splits into parts of unknown size");
                part->gv = llmrt_slice(g, a, axis, start, part->dims[ax]);
                start += part->dims[ax];
            }
            *out = c->values[node_output(c, l->n, 0)].gv;
        }
    } else if (op_is(l, "Concat")) {
        int32_t count = l->node->num_inputs;
        llmrt_value parts[LLMRT_GRAPH_MAX_INPUTS];
        int32_t axis = graph_axis(&c->values[in0], onnx_attr_int(l->node, "axis", 0));
        if (count > LLMRT_GRAPH_MAX_INPUTS || axis < 0)
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "concatenates activations along the batch or sequence axis");
        for (int32_t k = 0; k < count; k++) parts[k] = input_of(l, k);
        *out = llmrt_concat(g, parts, count, axis);
    } else if (op_is(l, "LayerNormalization") || op_is(l, "SimplifiedLayerNormalization")) {
        float eps = onnx_attr_float(l->node, "epsilon", 1e-5f);
        int64_t axis = onnx_attr_int(l->node, "axis", -1);
        if (graph_axis(&c->values[in0], axis) != llmrt_graph_node(g, a)->ndim - 1)
            return node_fail(l, LLMRT_ERR_UNSUPPORTED, "normalises over axes other than the last");
        llmrt_value x = op_is(l, "LayerNormalization") ? llmrt_sub(g, a, llmrt_mean(g, a)) : a;
        *out = llmrt_mul(g, normalize(g, x, eps), input_of(l, 1));
        if (node_input(c, l->n, 2) >= 0) *out = llmrt_add(g, *out, input_of(l, 2));
    } else {
        return node_fail(l, LLMRT_ERR_UNSUPPORTED, "this op is not lowered on activations (only in shape arithmetic)");
    }
    return LLMRT_OK;
}

/* Marks what the logits depend on, walking back from them; an attention
 * site's output depends on its three projections only. */
static llmrt_status mark_needed(onnx_ctx *c, int32_t logits) {
    int32_t cap = c->num_values + 1, top = 0;
    int32_t *stack = malloc((size_t)cap * sizeof *stack);
    if (!stack) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    stack[top++] = logits;
    c->values[logits].needed = 1;
    while (top > 0) {
        int32_t v = stack[--top];
        ival *iv = &c->values[v];
        int32_t deps[LLMRT_GRAPH_MAX_INPUTS * 11], count = 0;
        if (iv->attention) {
            const attention_site *s = &c->sites[iv->attention - 1];
            deps[count++] = s->xq, deps[count++] = s->xk, deps[count++] = s->xv;
        } else if (iv->producer >= 0 && !onnx_value_known(iv)) {
            for (int32_t k = 0; k < c->model->nodes[iv->producer].num_inputs && count < 64; k++)
                if (node_input(c, iv->producer, k) >= 0) deps[count++] = node_input(c, iv->producer, k);
        }
        for (int32_t k = 0; k < count; k++)
            if (!c->values[deps[k]].needed && top < cap) {
                c->values[deps[k]].needed = 1;
                stack[top++] = deps[k];
            }
    }
    free(stack);
    return LLMRT_OK;
}

/* Ops the importer does not know fail the build where the logits need them,
 * listed all at once; elsewhere (a mask built in some newer way) they are
 * never run, and a warning names them. */
static llmrt_status check_needed_ops(onnx_ctx *c) {
    char needed[1024] = "", other[1024] = "";
    size_t used_needed = 0, used_other = 0;
    int32_t count_needed = 0, count_other = 0;
    for (int32_t n = 0; n < c->model->num_nodes; n++) {
        if (onnx_op_known(c->model->nodes[n].op_type)) continue;
        int is_needed = 0;
        for (int32_t k = 0; k < c->model->nodes[n].num_outputs; k++)
            is_needed |= c->values[node_output(c, n, k)].needed && !onnx_value_known(&c->values[node_output(c, n, k)]);
        char label[256];
        char *list = is_needed ? needed : other;
        size_t *used = is_needed ? &used_needed : &used_other;
        int32_t *count = is_needed ? &count_needed : &count_other;
        if (*used < sizeof needed - 300)
            *used += (size_t)snprintf(list + *used, sizeof needed - *used, "%s%s", *count ? ", " : "",
                                      onnx_node_label(c, n, label, sizeof label));
        else if (*used < sizeof needed - 4)
            *used += (size_t)snprintf(list + *used, sizeof needed - *used, ", ...");
        (*count)++;
    }
    if (count_needed)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: %d nodes have op types llmrt does not import: %s", c->source,
                           (int)count_needed, needed);
    if (count_other)
        LLMRT_WARN("%s: %d nodes of op types llmrt does not import are outside what the logits need (the "
                   "attention's mask or the present K/V): %s", c->source, (int)count_other, other);
    return LLMRT_OK;
}

llmrt_status onnx_lower(onnx_ctx *c) {
    const onnx_model *m = c->model;
    int32_t logits = -1;
    for (int32_t i = 0; i < m->num_outputs && logits < 0; i++)
        if (!strcmp(m->outputs[i].name, "logits")) logits = onnx_find_value(c, m->outputs[i].name);
    if (logits < 0) logits = onnx_find_value(c, m->outputs[0].name);
    LLMRT_TRY(mark_needed(c, logits));
    LLMRT_TRY(check_needed_ops(c));
    lower_ctx l = {.c = c, .logits = logits, .head = logits, .inv_freq = LLMRT_NO_VALUE, .inv_freq_source = -1};
    for (int hops = 0; hops < 8; hops++) {
        int32_t n = c->values[l.head].producer;
        if (n < 0) break;
        const char *op = m->nodes[n].op_type;
        int32_t in = node_input(c, n, 0);
        if (strcmp(op, "Cast") && strcmp(op, "Identity") &&
            (strcmp(op, "Slice") || !onnx_same_shape(&c->values[l.head], &c->values[in])))
            break;
        l.head = in;
    }
    for (int32_t n = 0; n < m->num_nodes; n++) {
        int32_t first = node_output(c, n, 0);
        ival *ov = &c->values[first];
        int needed = 0;
        for (int32_t k = 0; k < m->nodes[n].num_outputs; k++) needed |= c->values[first + k].needed;
        if (!needed || onnx_value_known(ov)) {
            if (onnx_value_known(ov)) c->report->folded_nodes++;
            else c->report->skipped_nodes++;
            continue;
        }
        l.n = n;
        l.node = &m->nodes[n];
        /* an attention site's output is produced by the op that replaces it */
        for (int32_t k = 0; k < l.node->num_outputs; k++)
            if (c->values[first + k].attention) {
                c->values[first + k].gv = lower_attention(&l, &c->sites[c->values[first + k].attention - 1]);
                needed = 2;
            }
        if (needed == 2) {
            c->report->lowered_nodes++;
            continue;
        }
        if (ov->gv != LLMRT_NO_VALUE) continue; /* Split's later outputs */
        llmrt_value out;
        LLMRT_TRY(lower_node(&l, &out));
        if (out == LLMRT_NO_VALUE || llmrt_graph_status(c->g) != LLMRT_OK) {
            char label[256];
            llmrt_status s = llmrt_graph_status(c->g);
            return llmrt_error_context(s != LLMRT_OK ? s : LLMRT_ERR_UNSUPPORTED, "%s: lowering %s", c->source,
                                       onnx_node_label(c, n, label, sizeof label));
        }
        ov->gv = out;
        c->report->lowered_nodes++;
    }
    llmrt_value result = c->values[logits].gv;
    if (result == LLMRT_NO_VALUE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: the output '%s' does not depend on the input ids", c->source,
                           c->values[logits].name);
    const llmrt_node *rn = llmrt_graph_node(c->g, result);
    if (rn->ndim == 2 && rn->dims[0] == LLMRT_DIM_TOKENS) result = llmrt_gather(c->g, result, c->logits_indices);
    rn = llmrt_graph_node(c->g, result);
    if (rn->ndim != 2 || rn->dims[0] != LLMRT_DIM_LOGITS)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: the output '%s' is not [batch, sequence, vocab] logits",
                           c->source, c->values[logits].name);
    llmrt_graph_mark_output(c->g, result);
    return llmrt_graph_status(c->g);
}
