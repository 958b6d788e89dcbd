/* Shape inference and constant folding over every node of the ONNX graph,
 * in topological order. Shapes carry the symbols of onnx_internal.h; small
 * tensors whose inputs are all known (shape arithmetic, masks' constants) are
 * evaluated. A node whose shape cannot be derived leaves its outputs
 * unknown: that is an error only if lowering needs them. Shapes that
 * certainly disagree (a MatMul's inner dims, a broadcast) are errors here,
 * naming the node. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "import/onnx_internal.h"

static int is_int_type(llmrt_dtype t) {
    return t == LLMRT_DTYPE_I64 || t == LLMRT_DTYPE_I32 || t == LLMRT_DTYPE_I16 || t == LLMRT_DTYPE_I8 ||
           t == LLMRT_DTYPE_U8 || t == LLMRT_DTYPE_BOOL;
}

/* ---- symbolic dims ------------------------------------------------------- */

static int64_t sym_add(int64_t a, int64_t b) {
    if (!sym_is(a) && !sym_is(b)) return a + b;
    if (b == 0) return a;
    if (a == 0) return b;
    if ((a == SYM_P && b == SYM_T) || (a == SYM_T && b == SYM_P)) return SYM_TOTAL;
    return SYM_ANY;
}

static int64_t sym_sub(int64_t a, int64_t b) {
    if (!sym_is(a) && !sym_is(b)) return a - b;
    if (b == 0) return a;
    if (a == b) return 0;
    if (a == SYM_TOTAL && b == SYM_T) return SYM_P;
    if (a == SYM_TOTAL && b == SYM_P) return SYM_T;
    return SYM_ANY;
}

static int64_t sym_mul(int64_t a, int64_t b) {
    if (!sym_is(a) && !sym_is(b)) return a * b;
    if (a == 1) return b;
    if (b == 1) return a;
    if (a == 0 || b == 0) return 0;
    return SYM_ANY;
}

/* ---- helpers ---------------------------------------------------------- */

typedef struct node_io {
    onnx_ctx *c;
    int32_t n;
    const onnx_node *node;
    ival *in[8];
    int32_t num_in;
    ival *out;
} node_io;

static llmrt_status fail(node_io *io, const char *fmt, const char *detail) {
    char label[256];
    return llmrt_error(LLMRT_ERR_FORMAT, "%s: %s: %s%s", io->c->source,
                       onnx_node_label(io->c, io->n, label, sizeof label), fmt, detail ? detail : "");
}

static int set_ints(ival *v, int64_t count) {
    v->ints = calloc((size_t)count + 1, sizeof *v->ints);
    return v->ints != NULL;
}

static int set_floats(ival *v, int64_t count) {
    v->floats = calloc((size_t)count + 1, sizeof *v->floats);
    return v->floats != NULL;
}

static int foldable(const ival *v) {
    int64_t n = onnx_value_numel(v);
    return onnx_value_known(v) && n >= 0 && n <= FOLD_MAX_ELEMENTS;
}

static void shape_of(ival *out, int32_t ndim, const int64_t *dims) {
    out->ndim = ndim;
    for (int32_t d = 0; d < ndim; d++) out->dims[d] = dims[d];
}

/* numpy broadcast of a and b into out; -1 when a concrete pair disagrees */
static int broadcast(const ival *a, const ival *b, int32_t *ndim, int64_t *dims) {
    if (a->ndim < 0 || b->ndim < 0) return 0;
    int32_t n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int32_t i = 0; i < n; i++) {
        int32_t ai = a->ndim - n + i, bi = b->ndim - n + i;
        int64_t x = ai >= 0 ? a->dims[ai] : 1, y = bi >= 0 ? b->dims[bi] : 1;
        if (x == y || y == 1) dims[i] = x;
        else if (x == 1) dims[i] = y;
        else if (sym_is(x) || sym_is(y)) dims[i] = sym_is(x) ? x : y;
        else return -1;
    }
    *ndim = n;
    return 1;
}

/* flat index into v of the broadcast position `pos` of the output shape */
static int64_t bcast_index(const ival *v, int32_t ndim, const int64_t *dims, int64_t pos) {
    int64_t idx = 0, stride = 1;
    for (int32_t i = ndim - 1; i >= 0; i--) {
        int64_t coord = pos % dims[i];
        pos /= dims[i];
        int32_t vi = v->ndim - ndim + i;
        if (vi >= 0) {
            if (v->dims[vi] != 1) idx += coord * stride;
            stride *= v->dims[vi];
        }
    }
    return idx;
}

static double apply_binary(const char *op, double x, double y) {
    if (!strcmp(op, "Add")) return x + y;
    if (!strcmp(op, "Sub")) return x - y;
    if (!strcmp(op, "Mul")) return x * y;
    if (!strcmp(op, "Div")) return y == 0 ? (x == 0 ? NAN : x > 0 ? INFINITY : -INFINITY) : x / y;
    if (!strcmp(op, "Pow")) return pow(x, y);
    if (!strcmp(op, "Equal")) return x == y;
    if (!strcmp(op, "Less")) return x < y;
    if (!strcmp(op, "Greater")) return x > y;
    if (!strcmp(op, "LessOrEqual")) return x <= y;
    if (!strcmp(op, "GreaterOrEqual")) return x >= y;
    if (!strcmp(op, "And")) return x != 0 && y != 0;
    if (!strcmp(op, "Or")) return x != 0 || y != 0;
    if (!strcmp(op, "Max")) return x > y ? x : y;
    if (!strcmp(op, "Min")) return x < y ? x : y;
    return NAN;
}

static int is_compare(const char *op) {
    return !strcmp(op, "Equal") || !strcmp(op, "Less") || !strcmp(op, "Greater") || !strcmp(op, "LessOrEqual") ||
           !strcmp(op, "GreaterOrEqual") || !strcmp(op, "And") || !strcmp(op, "Or");
}

static llmrt_status infer_binary(node_io *io) {
    ival *a = io->in[0], *b = io->in[1], *out = io->out;
    const char *op = io->node->op_type;
    out->dtype = is_compare(op) ? LLMRT_DTYPE_BOOL : a->dtype != LLMRT_DTYPE_INVALID ? a->dtype : b->dtype;
    int32_t ndim;
    int64_t dims[ONNX_MAX_DIMS];
    int r = broadcast(a, b, &ndim, dims);
    if (r < 0) {
        char detail[160];
        snprintf(detail, sizeof detail, " (dims %lld and %lld)", (long long)(a->ndim ? a->dims[a->ndim - 1] : 1),
                 (long long)(b->ndim ? b->dims[b->ndim - 1] : 1));
        return fail(io, "input shapes disagree (they do not broadcast)", detail);
    }
    if (!r) return LLMRT_OK;
    shape_of(out, ndim, dims);
    if (!foldable(a) || !foldable(b) || onnx_value_numel(out) < 0 || onnx_value_numel(out) > FOLD_MAX_ELEMENTS)
        return LLMRT_OK;
    int64_t n = onnx_value_numel(out);
    if (is_int_type(out->dtype)) {
        if (!set_ints(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            int64_t x = onnx_value_int(a, bcast_index(a, ndim, dims, i));
            int64_t y = onnx_value_int(b, bcast_index(b, ndim, dims, i));
            if (!strcmp(op, "Add")) out->ints[i] = sym_add(x, y);
            else if (!strcmp(op, "Sub")) out->ints[i] = sym_sub(x, y);
            else if (!strcmp(op, "Mul")) out->ints[i] = sym_mul(x, y);
            else if (sym_is(x) || sym_is(y)) out->ints[i] = (!strcmp(op, "Equal") && x == y) ? 1 : SYM_ANY;
            else if (!strcmp(op, "Div")) out->ints[i] = y ? x / y : 0;
            else out->ints[i] = (int64_t)apply_binary(op, (double)x, (double)y);
            if (is_compare(op) && sym_is(out->ints[i])) { free(out->ints); out->ints = NULL; return LLMRT_OK; }
        }
    } else {
        if (!set_floats(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t i = 0; i < n; i++)
            out->floats[i] = (float)apply_binary(op, onnx_value_float(a, bcast_index(a, ndim, dims, i)),
                                                 onnx_value_float(b, bcast_index(b, ndim, dims, i)));
    }
    return LLMRT_OK;
}

static llmrt_status infer_unary(node_io *io) {
    ival *a = io->in[0], *out = io->out;
    const char *op = io->node->op_type;
    out->dtype = a->dtype;
    if (!strcmp(op, "Cast")) out->dtype = LLMRT_DTYPE_INVALID;
    if (!strcmp(op, "Cast")) {
        int64_t to = onnx_attr_int(io->node, "to", 1);
        static const llmrt_dtype map[17] = {0, LLMRT_DTYPE_F32, LLMRT_DTYPE_U8, LLMRT_DTYPE_I8, 0, LLMRT_DTYPE_I16,
                                            LLMRT_DTYPE_I32, LLMRT_DTYPE_I64, 0, LLMRT_DTYPE_BOOL, LLMRT_DTYPE_F16,
                                            LLMRT_DTYPE_F64, 0, 0, 0, 0, LLMRT_DTYPE_BF16};
        out->dtype = to >= 0 && to < 17 ? map[to] : LLMRT_DTYPE_INVALID;
        if (out->dtype == LLMRT_DTYPE_INVALID) return fail(io, "casts to an unsupported type", NULL);
    }
    if (a->ndim < 0) return LLMRT_OK;
    shape_of(out, a->ndim, a->dims);
    if (!foldable(a)) return LLMRT_OK;
    int64_t n = onnx_value_numel(a);
    if (is_int_type(out->dtype) && (!strcmp(op, "Cast") || !strcmp(op, "Identity") || !strcmp(op, "Neg") ||
                                    !strcmp(op, "Not") || !strcmp(op, "Abs"))) {
        if (!set_ints(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            int64_t x = onnx_value_int(a, i);
            out->ints[i] = !strcmp(op, "Neg") ? (sym_is(x) ? SYM_ANY : -x) : !strcmp(op, "Not") ? !x
                           : !strcmp(op, "Abs") ? (sym_is(x) ? x : x < 0 ? -x : x)
                           : out->dtype == LLMRT_DTYPE_BOOL && !sym_is(x) ? x != 0 : x;
        }
        return LLMRT_OK;
    }
    if (is_int_type(out->dtype)) return LLMRT_OK;
    if (!set_floats(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        double x = onnx_value_float(a, i), y = x;
        if (!strcmp(op, "Sqrt")) y = sqrt(x);
        else if (!strcmp(op, "Reciprocal")) y = 1.0 / x;
        else if (!strcmp(op, "Neg")) y = -x;
        else if (!strcmp(op, "Exp")) y = exp(x);
        else if (!strcmp(op, "Cos")) y = cos(x);
        else if (!strcmp(op, "Sin")) y = sin(x);
        else if (!strcmp(op, "Tanh")) y = tanh(x);
        else if (!strcmp(op, "Sigmoid")) y = 1.0 / (1.0 + exp(-x));
        else if (!strcmp(op, "Erf")) y = erf(x);
        else if (!strcmp(op, "Relu")) y = x > 0 ? x : 0;
        else if (!strcmp(op, "Abs")) y = fabs(x);
        out->floats[i] = (float)y;
    }
    return LLMRT_OK;
}

/* the axes of a node: the `axes` attribute, else its input k (opset 13 Unsqueeze/Squeeze) */
static int read_axes(node_io *io, int32_t k, int64_t *axes, int32_t *count) {
    const onnx_attr *a = onnx_node_attr(io->node, "axes");
    if (a && a->kind == ONNX_ATTR_INTS) {
        if (a->num_ints > ONNX_MAX_DIMS) return 0;
        for (int32_t i = 0; i < a->num_ints; i++) axes[i] = a->ints[i];
        *count = a->num_ints;
        return 1;
    }
    if (k < io->num_in && io->in[k] && foldable(io->in[k]) && onnx_value_numel(io->in[k]) <= ONNX_MAX_DIMS) {
        *count = (int32_t)onnx_value_numel(io->in[k]);
        for (int32_t i = 0; i < *count; i++) axes[i] = onnx_value_int(io->in[k], i);
        return 1;
    }
    return 0;
}

/* Copies the known contents of `a` into out (same elements, new shape). */
static llmrt_status copy_contents(const ival *a, ival *out) {
    if (!foldable(a)) return LLMRT_OK;
    int64_t n = onnx_value_numel(a);
    if (is_int_type(a->dtype) || a->ints) {
        if (!set_ints(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t i = 0; i < n; i++) out->ints[i] = onnx_value_int(a, i);
    } else {
        if (!set_floats(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t i = 0; i < n; i++) out->floats[i] = (float)onnx_value_float(a, i);
    }
    return LLMRT_OK;
}

static int norm_axis(int64_t axis, int32_t ndim, int32_t *out) {
    if (axis < 0) axis += ndim;
    if (axis < 0 || axis >= ndim) return 0;
    *out = (int32_t)axis;
    return 1;
}

static llmrt_status infer_shape_op(node_io *io) {
    ival *a = io->in[0], *out = io->out;
    out->dtype = LLMRT_DTYPE_I64;
    out->ndim = 1;
    if (a->ndim < 0) { out->dims[0] = SYM_ANY; return LLMRT_OK; }
    int64_t start = onnx_attr_int(io->node, "start", 0), end = onnx_attr_int(io->node, "end", a->ndim);
    if (start < 0) start += a->ndim;
    if (end < 0) end += a->ndim;
    if (start < 0) start = 0;
    if (end > a->ndim) end = a->ndim;
    if (end < start) end = start;
    out->dims[0] = end - start;
    if (!set_ints(out, end - start)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = start; i < end; i++) out->ints[i - start] = a->dims[i];
    return LLMRT_OK;
}

static llmrt_status infer_gather(node_io *io) {
    ival *a = io->in[0], *ix = io->in[1], *out = io->out;
    out->dtype = a->dtype;
    int32_t axis;
    if (a->ndim < 0 || ix->ndim < 0) return LLMRT_OK;
    if (!norm_axis(onnx_attr_int(io->node, "axis", 0), a->ndim, &axis)) return fail(io, "axis out of range", NULL);
    if (a->ndim + ix->ndim - 1 > ONNX_MAX_DIMS) return fail(io, "too many dims", NULL);
    int32_t n = 0;
    for (int32_t d = 0; d < axis; d++) out->dims[n++] = a->dims[d];
    for (int32_t d = 0; d < ix->ndim; d++) out->dims[n++] = ix->dims[d];
    for (int32_t d = axis + 1; d < a->ndim; d++) out->dims[n++] = a->dims[d];
    out->ndim = n;
    if (!foldable(a) || !foldable(ix) || onnx_value_numel(out) < 0) return LLMRT_OK;
    int64_t outer = 1, inner = 1, rows = a->dims[axis], count = onnx_value_numel(ix);
    for (int32_t d = 0; d < axis; d++) outer *= a->dims[d];
    for (int32_t d = axis + 1; d < a->ndim; d++) inner *= a->dims[d];
    int is_int = is_int_type(a->dtype) || a->ints;
    if (is_int ? !set_ints(out, outer * count * inner) : !set_floats(out, outer * count * inner))
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < count; k++) {
            int64_t r = onnx_value_int(ix, k);
            if (r < 0) r += rows;
            if (r < 0 || r >= rows) return fail(io, "index out of range", NULL);
            for (int64_t i = 0; i < inner; i++) {
                int64_t src = (o * rows + r) * inner + i, dst = (o * count + k) * inner + i;
                if (is_int) out->ints[dst] = onnx_value_int(a, src);
                else out->floats[dst] = (float)onnx_value_float(a, src);
            }
        }
    return LLMRT_OK;
}

static llmrt_status infer_unsqueeze(node_io *io, int squeeze) {
    ival *a = io->in[0], *out = io->out;
    out->dtype = a->dtype;
    if (a->ndim < 0) return LLMRT_OK;
    int64_t axes[ONNX_MAX_DIMS];
    int32_t count = 0;
    int have = read_axes(io, 1, axes, &count);
    if (!squeeze) {
        if (!have) return LLMRT_OK;
        int32_t ndim = a->ndim + count;
        if (ndim > ONNX_MAX_DIMS) return fail(io, "too many dims", NULL);
        int mark[ONNX_MAX_DIMS] = {0};
        for (int32_t i = 0; i < count; i++) {
            int32_t ax;
            if (!norm_axis(axes[i], ndim, &ax) || mark[ax]) return fail(io, "bad axes", NULL);
            mark[ax] = 1;
        }
        for (int32_t d = 0, s = 0; d < ndim; d++) out->dims[d] = mark[d] ? 1 : a->dims[s++];
        out->ndim = ndim;
    } else {
        int mark[ONNX_MAX_DIMS] = {0};
        for (int32_t i = 0; i < count; i++) {
            int32_t ax;
            if (!norm_axis(axes[i], a->ndim, &ax) || (a->dims[ax] != 1 && !sym_is(a->dims[ax])))
                return fail(io, "squeezes an axis whose size is not 1", NULL);
            mark[ax] = 1;
        }
        int32_t n = 0;
        for (int32_t d = 0; d < a->ndim; d++)
            if (!(have ? mark[d] : a->dims[d] == 1)) out->dims[n++] = a->dims[d];
        out->ndim = n;
    }
    return copy_contents(a, out);
}

static llmrt_status infer_concat(node_io *io) {
    ival *first = io->in[0], *out = io->out;
    out->dtype = first->dtype;
    for (int32_t i = 0; i < io->num_in; i++)
        if (!io->in[i] || io->in[i]->ndim < 0) return LLMRT_OK;
    int32_t axis;
    if (!norm_axis(onnx_attr_int(io->node, "axis", 0), first->ndim, &axis)) return fail(io, "axis out of range", NULL);
    shape_of(out, first->ndim, first->dims);
    out->dims[axis] = 0;
    for (int32_t i = 0; i < io->num_in; i++) {
        if (io->in[i]->ndim != first->ndim) return fail(io, "inputs of different ranks", NULL);
        for (int32_t d = 0; d < first->ndim; d++)
            if (d != axis && io->in[i]->dims[d] != first->dims[d] && !sym_is(io->in[i]->dims[d]) &&
                !sym_is(first->dims[d]))
                return fail(io, "input shapes disagree off the concatenation axis", NULL);
        out->dims[axis] = sym_add(out->dims[axis], io->in[i]->dims[axis]);
    }
    int all = 1;
    for (int32_t i = 0; i < io->num_in; i++) all = all && foldable(io->in[i]);
    if (!all || axis != 0 || first->ndim != 1) return LLMRT_OK; /* shape vectors are what needs folding */
    int is_int = is_int_type(first->dtype);
    int64_t n = 0;
    if (is_int ? !set_ints(out, out->dims[0] < 0 ? 0 : out->dims[0]) : !set_floats(out, out->dims[0] < 0 ? 0 : out->dims[0]))
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t i = 0; i < io->num_in; i++)
        for (int64_t k = 0; k < io->in[i]->dims[0]; k++, n++) {
            if (is_int) out->ints[n] = onnx_value_int(io->in[i], k);
            else out->floats[n] = (float)onnx_value_float(io->in[i], k);
        }
    return LLMRT_OK;
}

static llmrt_status infer_reshape(node_io *io) {
    ival *a = io->in[0], *shape = io->in[1], *out = io->out;
    out->dtype = a->dtype;
    if (!foldable(shape) || shape->ndim != 1 || shape->dims[0] > ONNX_MAX_DIMS) return LLMRT_OK;
    int32_t ndim = (int32_t)shape->dims[0], infer = -1;
    int64_t known = 1;
    for (int32_t d = 0; d < ndim; d++) {
        int64_t x = onnx_value_int(shape, d);
        if (x == 0 && !onnx_attr_int(io->node, "allowzero", 0)) {
            if (a->ndim <= d) return fail(io, "copies a dim the input does not have", NULL);
            x = a->dims[d];
        }
        if (x == -1) {
            if (infer >= 0) return fail(io, "has two -1 dims", NULL);
            infer = d;
        } else if (x < 0 && !sym_is(x)) return fail(io, "has a negative dim", NULL);
        out->dims[d] = x;
        if (x != -1) known = sym_mul(known, x);
    }
    out->ndim = ndim;
    if (infer >= 0) {
        int64_t total = a->ndim < 0 ? SYM_ANY : 1;
        for (int32_t d = 0; d < a->ndim; d++) total = sym_mul(total, a->dims[d]);
        if (!sym_is(total) && !sym_is(known)) {
            if (known == 0 || total % known) return fail(io, "cannot infer its -1 dim: element counts disagree", NULL);
            out->dims[infer] = total / known;
        } else {
            /* divide a symbolic product: [1, T, X] → [1, T, -1] */
            int64_t fixed = 1, sym = 0;
            int cancel = 1;
            for (int32_t d = 0; d < a->ndim; d++) {
                if (sym_is(a->dims[d])) sym = sym ? SYM_ANY : a->dims[d];
                else fixed *= a->dims[d];
            }
            int64_t kfixed = 1, ksym = 0;
            for (int32_t d = 0; d < ndim; d++) {
                if (d == infer) continue;
                if (sym_is(out->dims[d])) ksym = ksym ? SYM_ANY : out->dims[d];
                else kfixed *= out->dims[d];
            }
            if (sym == SYM_ANY || ksym == SYM_ANY || kfixed == 0 || fixed % kfixed) cancel = 0;
            out->dims[infer] = !cancel ? SYM_ANY : sym == ksym ? fixed / kfixed : ksym == 0 && fixed == kfixed ? sym
                                                                                                            : SYM_ANY;
        }
    } else if (a->ndim >= 0) {
        int64_t total = 1;
        for (int32_t d = 0; d < a->ndim; d++) total = sym_mul(total, a->dims[d]);
        if (!sym_is(total) && !sym_is(known) && total != known) {
            char detail[96];
            snprintf(detail, sizeof detail, " (%lld elements into %lld)", (long long)total, (long long)known);
            return fail(io, "the target shape's element count disagrees with the input's", detail);
        }
    }
    return copy_contents(a, out);
}

static llmrt_status infer_transpose(node_io *io) {
    ival *a = io->in[0], *out = io->out;
    out->dtype = a->dtype;
    if (a->ndim < 0) return LLMRT_OK;
    const onnx_attr *perm = onnx_node_attr(io->node, "perm");
    if (perm && (perm->kind != ONNX_ATTR_INTS || perm->num_ints != a->ndim)) return fail(io, "bad perm", NULL);
    int seen[ONNX_MAX_DIMS] = {0};
    for (int32_t d = 0; d < a->ndim; d++) {
        int64_t p = perm ? perm->ints[d] : a->ndim - 1 - d;
        if (p < 0 || p >= a->ndim || seen[p]) return fail(io, "perm is not a permutation", NULL);
        seen[p] = 1;
        out->dims[d] = a->dims[p];
    }
    out->ndim = a->ndim;
    if (a->ndim <= 1) return copy_contents(a, out);
    return LLMRT_OK;
}

/* Slice on known starts/ends: shapes always, contents for 1-D vectors. */
static llmrt_status infer_slice(node_io *io) {
    ival *a = io->in[0], *out = io->out;
    out->dtype = a->dtype;
    if (a->ndim < 0 || io->num_in < 3 || !foldable(io->in[1]) || !foldable(io->in[2])) return LLMRT_OK;
    int64_t count = onnx_value_numel(io->in[1]);
    if (count != onnx_value_numel(io->in[2]) || count > a->ndim) return fail(io, "starts and ends disagree", NULL);
    shape_of(out, a->ndim, a->dims);
    int64_t start0 = 0, step0 = 1;
    int32_t axis0 = -1;
    for (int64_t i = 0; i < count; i++) {
        int64_t ax = io->num_in > 3 && io->in[3] ? (foldable(io->in[3]) ? onnx_value_int(io->in[3], i) : SYM_ANY) : i;
        int64_t step = io->num_in > 4 && io->in[4] ? (foldable(io->in[4]) ? onnx_value_int(io->in[4], i) : 0) : 1;
        int32_t axis;
        if (sym_is(ax) || !norm_axis(ax, a->ndim, &axis) || step == 0) return fail(io, "bad axes or steps", NULL);
        int64_t dim = a->dims[axis], s = onnx_value_int(io->in[1], i), e = onnx_value_int(io->in[2], i);
        if (sym_is(dim) || sym_is(s) || sym_is(e)) {
            /* x[:, :, :, :k.shape[-2]] keeps a symbolic length */
            out->dims[axis] = s == 0 && step == 1 && (e == dim || e >= ((int64_t)1 << 31)) ? dim
                              : s == 0 && step == 1 && sym_is(e) ? e : SYM_ANY;
            continue;
        }
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            out->dims[axis] = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = s < 0 ? -1 : s >= dim ? dim - 1 : s;
            e = e < -1 ? -1 : e >= dim ? dim - 1 : e;
            out->dims[axis] = s > e ? (s - e - step - 1) / -step : 0;
        }
        start0 = s;
        step0 = step;
        axis0 = axis;
    }
    if (a->ndim == 1 && foldable(a) && axis0 == 0 && out->dims[0] >= 0) {
        int is_int = is_int_type(a->dtype) || a->ints;
        if (is_int ? !set_ints(out, out->dims[0]) : !set_floats(out, out->dims[0]))
            return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t i = 0; i < out->dims[0]; i++) {
            if (is_int) out->ints[i] = onnx_value_int(a, start0 + i * step0);
            else out->floats[i] = (float)onnx_value_float(a, start0 + i * step0);
        }
    }
    return LLMRT_OK;
}

static llmrt_status infer_matmul(node_io *io) {
    ival *a = io->in[0], *b = io->in[1], *out = io->out;
    out->dtype = a->dtype;
    if (a->ndim < 1 || b->ndim < 1) return LLMRT_OK;
    if (a->ndim < 2 || b->ndim < 2) return fail(io, "1-D operands are not supported", NULL);
    int64_t k = a->dims[a->ndim - 1], kb = b->dims[b->ndim - 2];
    if (k != kb && !sym_is(k) && !sym_is(kb)) {
        char detail[96];
        snprintf(detail, sizeof detail, " (%lld and %lld)", (long long)k, (long long)kb);
        return fail(io, "inner dims disagree", detail);
    }
    ival ba = *a, bb = *b;
    ba.ndim -= 2;
    bb.ndim -= 2;
    int32_t ndim;
    int64_t dims[ONNX_MAX_DIMS];
    if (broadcast(&ba, &bb, &ndim, dims) < 0) return fail(io, "batch dims disagree", NULL);
    if (ndim + 2 > ONNX_MAX_DIMS) return fail(io, "too many dims", NULL);
    dims[ndim] = a->dims[a->ndim - 2];
    dims[ndim + 1] = b->dims[b->ndim - 1];
    shape_of(out, ndim + 2, dims);
    return LLMRT_OK;
}

static llmrt_status infer_expand(node_io *io) {
    ival *a = io->in[0], *shape = io->in[1], *out = io->out;
    out->dtype = a->dtype;
    if (!foldable(shape) || shape->ndim != 1 || shape->dims[0] > ONNX_MAX_DIMS) return LLMRT_OK;
    ival target = {0};
    target.ndim = (int32_t)shape->dims[0];
    for (int32_t d = 0; d < target.ndim; d++) target.dims[d] = onnx_value_int(shape, d);
    int32_t ndim;
    int64_t dims[ONNX_MAX_DIMS];
    if (broadcast(a, &target, &ndim, dims) < 0) return fail(io, "shape does not broadcast", NULL);
    if (a->ndim < 0) return LLMRT_OK;
    shape_of(out, ndim, dims);
    int64_t n = onnx_value_numel(out);
    if (!foldable(a) || n < 0 || n > FOLD_MAX_ELEMENTS) return LLMRT_OK;
    int is_int = is_int_type(a->dtype) || a->ints;
    if (is_int ? !set_ints(out, n) : !set_floats(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        int64_t src = bcast_index(a, ndim, dims, i);
        if (is_int) out->ints[i] = onnx_value_int(a, src);
        else out->floats[i] = (float)onnx_value_float(a, src);
    }
    return LLMRT_OK;
}

static llmrt_status infer_constant_of_shape(node_io *io) {
    ival *shape = io->in[0], *out = io->out;
    const onnx_attr *value = onnx_node_attr(io->node, "value");
    out->dtype = value && value->kind == ONNX_ATTR_TENSOR ? value->tensor.dtype : LLMRT_DTYPE_F32;
    if (!foldable(shape) || shape->ndim != 1 || shape->dims[0] > ONNX_MAX_DIMS) return LLMRT_OK;
    out->ndim = (int32_t)shape->dims[0];
    for (int32_t d = 0; d < out->ndim; d++) out->dims[d] = onnx_value_int(shape, d);
    int64_t n = onnx_value_numel(out);
    if (n < 0 || n > FOLD_MAX_ELEMENTS) return LLMRT_OK;
    ival v = {0};
    v.init = value && value->kind == ONNX_ATTR_TENSOR && onnx_tensor_numel(&value->tensor) == 1 ? &value->tensor : NULL;
    v.dtype = out->dtype;
    double x = v.init ? onnx_value_float(&v, 0) : 0.0;
    if (is_int_type(out->dtype) ? !set_ints(out, n) : !set_floats(out, n))
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (out->ints) out->ints[i] = (int64_t)x;
        else out->floats[i] = (float)x;
    }
    return LLMRT_OK;
}

static llmrt_status infer_range(node_io *io) {
    ival *out = io->out;
    out->dtype = io->in[0]->dtype;
    out->ndim = 1;
    out->dims[0] = SYM_ANY;
    double s, l, d;
    if (!onnx_scalar(io->in[0], &s) || !onnx_scalar(io->in[2], &d)) return LLMRT_OK;
    if (!onnx_scalar(io->in[1], &l) || sym_is(onnx_value_int(io->in[1], 0))) {
        int64_t limit = onnx_value_known(io->in[1]) && onnx_value_numel(io->in[1]) == 1 ? onnx_value_int(io->in[1], 0) : SYM_ANY;
        if (s == 0 && d == 1 && sym_is(limit)) out->dims[0] = limit;
        return LLMRT_OK;
    }
    if (d == 0) return fail(io, "delta is 0", NULL);
    double count = ceil((l - s) / d);
    int64_t n = count > 0 ? (int64_t)count : 0;
    out->dims[0] = n;
    if (n > FOLD_MAX_ELEMENTS) return LLMRT_OK;
    int is_int = is_int_type(out->dtype);
    if (is_int ? !set_ints(out, n) : !set_floats(out, n)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (is_int) out->ints[i] = (int64_t)(s + (double)i * d);
        else out->floats[i] = (float)(s + (double)i * d);
    }
    return LLMRT_OK;
}

static llmrt_status infer_where(node_io *io) {
    ival *cond = io->in[0], *x = io->in[1], *y = io->in[2], *out = io->out;
    out->dtype = x->dtype;
    int32_t n1, n2;
    int64_t d1[ONNX_MAX_DIMS], d2[ONNX_MAX_DIMS];
    int r = broadcast(cond, x, &n1, d1);
    if (r < 0) return fail(io, "input shapes disagree", NULL);
    if (!r) return LLMRT_OK;
    ival tmp = {0};
    shape_of(&tmp, n1, d1);
    r = broadcast(&tmp, y, &n2, d2);
    if (r < 0) return fail(io, "input shapes disagree", NULL);
    if (r) shape_of(out, n2, d2);
    return LLMRT_OK;
}

static llmrt_status infer_reduce(node_io *io) {
    ival *a = io->in[0], *out = io->out;
    out->dtype = a->dtype;
    if (a->ndim < 0) return LLMRT_OK;
    int64_t axes[ONNX_MAX_DIMS];
    int32_t count = 0;
    if (!read_axes(io, 1, axes, &count)) return LLMRT_OK;
    int keep = (int)onnx_attr_int(io->node, "keepdims", 1), mark[ONNX_MAX_DIMS] = {0};
    for (int32_t i = 0; i < count; i++) {
        int32_t ax;
        if (!norm_axis(axes[i], a->ndim, &ax)) return fail(io, "axis out of range", NULL);
        mark[ax] = 1;
    }
    int32_t n = 0;
    for (int32_t d = 0; d < a->ndim; d++) {
        if (!mark[d]) out->dims[n++] = a->dims[d];
        else if (keep) out->dims[n++] = 1;
    }
    out->ndim = n;
    return LLMRT_OK;
}

static llmrt_status infer_flatten(node_io *io) {
    ival *a = io->in[0], *out = io->out;
    out->dtype = a->dtype;
    int32_t axis;
    if (a->ndim < 0) return LLMRT_OK;
    int64_t at = onnx_attr_int(io->node, "axis", 1);
    if (at == a->ndim) axis = a->ndim;
    else if (!norm_axis(at, a->ndim, &axis)) return fail(io, "axis out of range", NULL);
    int64_t outer = 1, inner = 1;
    for (int32_t d = 0; d < a->ndim; d++) {
        if (d < axis) outer = sym_mul(outer, a->dims[d]);
        else inner = sym_mul(inner, a->dims[d]);
    }
    int64_t dims[2] = {outer, inner};
    shape_of(out, 2, dims);
    return copy_contents(a, out);
}

static llmrt_status infer_split(node_io *io) {
    ival *a = io->in[0];
    int32_t axis;
    for (int32_t k = 0; k < io->node->num_outputs; k++) io->out[k].dtype = a->dtype;
    if (a->ndim < 0 || !norm_axis(onnx_attr_int(io->node, "axis", 0), a->ndim, &axis)) return LLMRT_OK;
    int64_t dim = a->dims[axis];
    int32_t parts = io->node->num_outputs;
    for (int32_t k = 0; k < parts; k++) {
        shape_of(&io->out[k], a->ndim, a->dims);
        int64_t size = SYM_ANY;
        const onnx_attr *split = onnx_node_attr(io->node, "split");
        if (split && split->kind == ONNX_ATTR_INTS && split->num_ints == parts) size = split->ints[k];
        else if (io->num_in > 1 && io->in[1] && foldable(io->in[1]) && onnx_value_numel(io->in[1]) == parts)
            size = onnx_value_int(io->in[1], k);
        else if (!sym_is(dim) && dim % parts == 0) size = dim / parts;
        io->out[k].dims[axis] = size;
    }
    return LLMRT_OK;
}

llmrt_status onnx_infer_shapes(onnx_ctx *c) {
    const onnx_model *m = c->model;
    for (int32_t n = 0; n < m->num_nodes; n++) {
        const onnx_node *node = &m->nodes[n];
        node_io io = {c, n, node, {0}, node->num_inputs < 8 ? node->num_inputs : 8, &c->values[node_output(c, n, 0)]};
        static ival absent = {.ndim = -1};
        for (int32_t k = 0; k < io.num_in; k++) {
            int32_t v = node_input(c, n, k);
            io.in[k] = v >= 0 ? &c->values[v] : &absent;
        }
        const char *op = node->op_type;
        if (node->num_outputs < 1) continue;
        int unary = !strcmp(op, "Sqrt") || !strcmp(op, "Reciprocal") || !strcmp(op, "Neg") || !strcmp(op, "Exp") ||
                    !strcmp(op, "Cos") || !strcmp(op, "Sin") || !strcmp(op, "Tanh") || !strcmp(op, "Erf") ||
                    !strcmp(op, "Sigmoid") || !strcmp(op, "Relu") || !strcmp(op, "Cast") || !strcmp(op, "Identity") ||
                    !strcmp(op, "Softmax") || !strcmp(op, "Not") || !strcmp(op, "Trilu") || !strcmp(op, "Dropout") ||
                    !strcmp(op, "LayerNormalization") || !strcmp(op, "SimplifiedLayerNormalization") ||
                    !strcmp(op, "Abs");
        int binary = !strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div") ||
                     !strcmp(op, "Pow") || is_compare(op) || !strcmp(op, "Max") || !strcmp(op, "Min");
        llmrt_status s = LLMRT_OK;
        int32_t need = binary ? 2 : !strcmp(op, "Where") || !strcmp(op, "Range") ? 3
                                : !strcmp(op, "Gather") || !strcmp(op, "Reshape") || !strcmp(op, "Expand") ||
                                  !strcmp(op, "MatMul") || !strcmp(op, "Gemm") ? 2 : !strcmp(op, "Constant") ? 0 : 1;
        if (node->num_inputs < need) {
            char detail[64];
            snprintf(detail, sizeof detail, " (%d, needs %d)", (int)node->num_inputs, (int)need);
            return fail(&io, "too few inputs", detail);
        }
        if (!strcmp(op, "Constant")) {
            const onnx_attr *value = onnx_node_attr(node, "value");
            if (!value || value->kind != ONNX_ATTR_TENSOR) {
                double f = onnx_attr_float(node, "value_float", NAN);
                const onnx_attr *vi = onnx_node_attr(node, "value_int");
                const onnx_attr *vis = onnx_node_attr(node, "value_ints");
                if (vi && vi->kind == ONNX_ATTR_INT) {
                    io.out->dtype = LLMRT_DTYPE_I64, io.out->ndim = 0;
                    if (!set_ints(io.out, 1)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
                    io.out->ints[0] = vi->i;
                } else if (vis && vis->kind == ONNX_ATTR_INTS) {
                    io.out->dtype = LLMRT_DTYPE_I64, io.out->ndim = 1, io.out->dims[0] = vis->num_ints;
                    if (!set_ints(io.out, vis->num_ints)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
                    for (int32_t i = 0; i < vis->num_ints; i++) io.out->ints[i] = vis->ints[i];
                } else if (!isnan(f)) {
                    io.out->dtype = LLMRT_DTYPE_F32, io.out->ndim = 0;
                    if (!set_floats(io.out, 1)) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
                    io.out->floats[0] = (float)f;
                } else return fail(&io, "has no value", NULL);
            } else {
                io.out->init = &value->tensor;
                io.out->dtype = value->tensor.dtype;
                shape_of(io.out, value->tensor.ndim, value->tensor.dims);
            }
        } else if (unary) s = infer_unary(&io);
        else if (binary) s = infer_binary(&io);
        else if (!strcmp(op, "Shape")) s = infer_shape_op(&io);
        else if (!strcmp(op, "Gather")) s = infer_gather(&io);
        else if (!strcmp(op, "Unsqueeze")) s = infer_unsqueeze(&io, 0);
        else if (!strcmp(op, "Squeeze")) s = infer_unsqueeze(&io, 1);
        else if (!strcmp(op, "Concat")) s = infer_concat(&io);
        else if (!strcmp(op, "Reshape")) s = infer_reshape(&io);
        else if (!strcmp(op, "Transpose")) s = infer_transpose(&io);
        else if (!strcmp(op, "Slice")) s = infer_slice(&io);
        else if (!strcmp(op, "MatMul")) s = infer_matmul(&io);
        else if (!strcmp(op, "Expand")) s = infer_expand(&io);
        else if (!strcmp(op, "ConstantOfShape")) s = infer_constant_of_shape(&io);
        else if (!strcmp(op, "Range")) s = infer_range(&io);
        else if (!strcmp(op, "Where")) s = infer_where(&io);
        else if (!strcmp(op, "ReduceMean") || !strcmp(op, "ReduceSum")) s = infer_reduce(&io);
        else if (!strcmp(op, "Split")) s = infer_split(&io);
        else if (!strcmp(op, "Flatten")) s = infer_flatten(&io);
        else if (!strcmp(op, "Gemm")) {
            ival *a = io.in[0], *b = io.in[1];
            io.out->dtype = a->dtype;
            if (a->ndim == 2 && b->ndim == 2) {
                int ta = (int)onnx_attr_int(node, "transA", 0), tb = (int)onnx_attr_int(node, "transB", 0);
                int64_t k = a->dims[ta ? 0 : 1], kb = b->dims[tb ? 1 : 0];
                if (k != kb && !sym_is(k) && !sym_is(kb)) return fail(&io, "inner dims disagree", NULL);
                int64_t dims[2] = {a->dims[ta ? 1 : 0], b->dims[tb ? 0 : 1]};
                shape_of(io.out, 2, dims);
            }
        }
        if (s != LLMRT_OK) return s;
        /* a Softmax or Dropout's extra outputs and the like stay unknown */
    }
    return LLMRT_OK;
}
