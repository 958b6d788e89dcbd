/* Recognition of the attention subgraph in an ONNX decoder, as
 * torch.onnx.export writes transformers' eager attention:
 *
 *   q = Transpose(Reshape(x_q, [1, T, H, D]), [0, 2, 1, 3])     (k, v alike with KVH)
 *   q = q·cos + rotate_half(q)·sin,  rotate_half = Concat(-q[..., D/2:], q[..., :D/2])
 *   k = Concat(past_k, k, axis=2)                               (with a KV cache)
 *   k = Reshape(Expand(Unsqueeze(k)))                           (repeat_kv for GQA)
 *   p = Softmax(MatMul(q, Transpose(k)) / √D + mask)            (or · scale, or Where(mask, s, -inf))
 *   out = Reshape(Transpose(MatMul(p, v), [0, 2, 1, 3]), [1, T, H·D])
 *
 * Each match becomes an attention site: the projections x_q, x_k, x_v, the
 * head geometry, the scale and the RoPE inverse frequencies. The mask is not
 * evaluated: a decoder's additive mask is causal (plus padding, which a
 * packed step has none of), which is what the paged-attention op does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "import/onnx_internal.h"

/* Back through ops that leave values as they are: casts (the engine keeps
 * one float type), Identity, Dropout, a Slice that keeps everything (the
 * `x[:, :]` indexing torch writes), a Concat with an empty tensor. */
static int32_t through_casts(const onnx_ctx *c, int32_t v) {
    for (int hops = 0; v >= 0 && hops < 16; hops++) {
        int32_t n = c->values[v].producer;
        if (n < 0) break;
        const char *op = c->model->nodes[n].op_type;
        int32_t in = node_input(c, n, 0);
        if (!strcmp(op, "Cast") || !strcmp(op, "Identity") || !strcmp(op, "Dropout")) v = in;
        else if (!strcmp(op, "Slice") && onnx_same_shape(&c->values[v], &c->values[in])) v = in;
        else if (!strcmp(op, "Concat") && c->model->nodes[n].num_inputs == 2) {
            int32_t other = node_input(c, n, 1);
            if (onnx_value_numel(&c->values[in]) == 0) v = other;
            else if (onnx_value_numel(&c->values[other]) == 0) v = in;
            else break;
        } else break;
    }
    return v;
}

static int perm_is(const onnx_ctx *c, int32_t n, const int64_t *want, int32_t count) {
    const onnx_attr *p = onnx_node_attr(&c->model->nodes[n], "perm");
    if (!p || p->kind != ONNX_ATTR_INTS || p->num_ints != count) return 0;
    for (int32_t i = 0; i < count; i++)
        if (p->ints[i] != want[i]) return 0;
    return 1;
}

static const int64_t PERM_HEADS[4] = {0, 2, 1, 3}, PERM_KT[4] = {0, 1, 3, 2}, PERM_KT_FROM_X[4] = {0, 2, 3, 1};

/* Transpose(Reshape(x, [1, T, H, D]), [0, 2, 1, 3]) → x, H, D */
static int32_t through_casts(const onnx_ctx *c, int32_t v);

static int split_heads(const onnx_ctx *c, int32_t v, int32_t *x, int32_t *heads, int32_t *dim) {
    v = through_casts(c, v);
    int32_t t = onnx_producer_is(c, v, "Transpose");
    if (t < 0 || !perm_is(c, t, PERM_HEADS, 4)) return 0;
    int32_t r = onnx_producer_is(c, node_input(c, t, 0), "Reshape");
    if (r < 0) return 0;
    const ival *hv = &c->values[node_input(c, t, 0)];
    if (hv->ndim != 4 || hv->dims[2] <= 0 || hv->dims[3] <= 0) return 0;
    *x = node_input(c, r, 0);
    const ival *xv = &c->values[*x];
    if (xv->ndim != 3 || xv->dims[2] != hv->dims[2] * hv->dims[3]) return 0;
    *heads = (int32_t)hv->dims[2];
    *dim = (int32_t)hv->dims[3];
    return 1;
}

/* Slice(a, axis -1 (or 3)) → its [start, end) in dims of `dim` */
static int last_axis_slice(const onnx_ctx *c, int32_t v, int32_t a, int64_t dim, int64_t *start, int64_t *end) {
    int32_t s = onnx_producer_is(c, v, "Slice");
    if (s < 0 || node_input(c, s, 0) != a) return 0;
    const ival *st = &c->values[node_input(c, s, 1)], *en = &c->values[node_input(c, s, 2)];
    if (onnx_value_numel(st) != 1 || onnx_value_numel(en) != 1 || !onnx_value_known(st) || !onnx_value_known(en))
        return 0;
    int32_t ax = node_input(c, s, 3);
    if (ax >= 0) {
        if (!onnx_value_known(&c->values[ax]) || onnx_value_numel(&c->values[ax]) != 1) return 0;
        int64_t axis = onnx_value_int(&c->values[ax], 0);
        if (axis != -1 && axis != 3) return 0;
    }
    *start = onnx_value_int(st, 0);
    *end = onnx_value_int(en, 0);
    if (*end > dim) *end = dim;
    if (*start < 0) *start += dim;
    return 1;
}

/* Concat(Neg(a[..., D/2:]), a[..., :D/2]) of a */
static int is_rotate_half(const onnx_ctx *c, int32_t v, int32_t a, int64_t dim) {
    int32_t n = onnx_producer_is(c, v, "Concat");
    if (n < 0 || c->model->nodes[n].num_inputs != 2) return 0;
    int64_t axis = onnx_attr_int(&c->model->nodes[n], "axis", 0);
    if (axis != -1 && axis != 3) return 0;
    int32_t neg = onnx_producer_is(c, node_input(c, n, 0), "Neg");
    if (neg < 0) return 0;
    int64_t s1, e1, s2, e2;
    return last_axis_slice(c, node_input(c, neg, 0), a, dim, &s1, &e1) &&
           last_axis_slice(c, node_input(c, n, 1), a, dim, &s2, &e2) && s1 == dim / 2 && e1 == dim && s2 == 0 &&
           e2 == dim / 2;
}

/* a·cos + rotate_half(a)·sin → a (and cos) */
static int strip_rope(const onnx_ctx *c, int32_t v, int64_t dim, int32_t *a, int32_t *cos) {
    int32_t add = onnx_producer_is(c, v, "Add");
    if (add < 0) return 0;
    for (int side = 0; side < 2; side++) {
        int32_t m1 = onnx_producer_is(c, node_input(c, add, side), "Mul");
        int32_t m2 = onnx_producer_is(c, node_input(c, add, 1 - side), "Mul");
        if (m1 < 0 || m2 < 0) continue;
        for (int s1 = 0; s1 < 2; s1++)
            for (int s2 = 0; s2 < 2; s2++) {
                int32_t base = node_input(c, m1, s1);
                if (is_rotate_half(c, through_casts(c, node_input(c, m2, s2)), base, dim)) {
                    *a = base;
                    *cos = node_input(c, m1, 1 - s1);
                    return 1;
                }
            }
    }
    return 0;
}

/* Reshape(Expand(Unsqueeze(k))) (repeat_kv) → k */
static int32_t strip_repeat_kv(const onnx_ctx *c, int32_t v) {
    v = through_casts(c, v);
    int32_t r = onnx_producer_is(c, v, "Reshape");
    if (r < 0) return v;
    int32_t e = onnx_producer_is(c, through_casts(c, node_input(c, r, 0)), "Expand");
    if (e < 0) return v;
    int32_t into = through_casts(c, node_input(c, e, 0));
    int32_t u = onnx_producer_is(c, into, "Unsqueeze");
    if (u < 0) {
        /* some exports index with [:, :, None] → Unsqueeze folded into a Reshape */
        u = onnx_producer_is(c, into, "Reshape");
        if (u < 0) return v;
    }
    return through_casts(c, node_input(c, u, 0));
}

/* Concat(past, new, axis=2) with past a graph input → new (and past) */
static int32_t strip_past(const onnx_ctx *c, int32_t v, int32_t *past) {
    v = through_casts(c, v);
    int32_t n = onnx_producer_is(c, v, "Concat");
    *past = -1;
    int64_t axis = n >= 0 ? onnx_attr_int(&c->model->nodes[n], "axis", 0) : 0;
    if (n < 0 || c->model->nodes[n].num_inputs != 2 || (axis != 2 && axis != -2)) return v;
    int32_t p = through_casts(c, node_input(c, n, 0));
    if (c->values[p].producer >= 0 || c->values[p].init) return v;
    *past = p;
    return node_input(c, n, 1);
}

/* A head-layout k, v or q back to its projection (and RoPE, past). */
static int trace_head(const onnx_ctx *c, int32_t v, int kv, int32_t *x, int32_t *heads, int32_t *dim, int *rope,
                      int32_t *cos, int32_t *past) {
    *past = -1;
    *rope = 0;
    if (kv) {
        v = strip_repeat_kv(c, v);
        v = strip_past(c, v, past);
    }
    v = through_casts(c, v);
    const ival *hv = &c->values[v];
    int64_t d = hv->ndim == 4 ? hv->dims[3] : -1;
    int32_t base;
    if (d > 0 && strip_rope(c, v, d, &base, cos)) {
        *rope = 1;
        v = base;
    }
    return split_heads(c, v, x, heads, dim);
}

/* Looks upstream of the RoPE cos table for the inverse frequencies: a known
 * float vector of D/2 elements. */
static int32_t find_inv_freq(const onnx_ctx *c, int32_t cos, int32_t half) {
    int32_t stack[256], top = 0, seen = 0;
    stack[top++] = cos;
    while (top > 0 && seen++ < 512) {
        int32_t v = stack[--top];
        const ival *iv = &c->values[v];
        if (onnx_value_known(iv) && onnx_value_numel(iv) == half && iv->dtype != LLMRT_DTYPE_I64 &&
            iv->dtype != LLMRT_DTYPE_I32)
            return v;
        int32_t n = iv->producer;
        if (n < 0) continue;
        for (int32_t k = 0; k < c->model->nodes[n].num_inputs && top < 256; k++)
            if (node_input(c, n, k) >= 0) stack[top++] = node_input(c, n, k);
    }
    return -1;
}

/* scores = MatMul(q, kᵀ) · scale, in any of the forms exporters write */
static int split_scores(const onnx_ctx *c, int32_t v, int32_t *mm, float *scale) {
    *scale = 1.0f;
    v = through_casts(c, v);
    for (int hops = 0; hops < 2; hops++) {
        int32_t n = c->values[v].producer;
        if (n < 0) return 0;
        const char *op = c->model->nodes[n].op_type;
        double k;
        if (!strcmp(op, "Div") && onnx_scalar(&c->values[node_input(c, n, 1)], &k) && k != 0) {
            *scale /= (float)k;
            v = node_input(c, n, 0);
        } else if (!strcmp(op, "Mul") && onnx_scalar(&c->values[node_input(c, n, 1)], &k)) {
            *scale *= (float)k;
            v = node_input(c, n, 0);
        } else if (!strcmp(op, "Mul") && onnx_scalar(&c->values[node_input(c, n, 0)], &k)) {
            *scale *= (float)k;
            v = node_input(c, n, 1);
        } else break;
    }
    *mm = onnx_producer_is(c, v, "MatMul");
    return *mm >= 0;
}

/* Mul(x, scalar) → x, with the scalar folded into *scale (SDPA's √scale on q and k) */
static int32_t strip_scale(const onnx_ctx *c, int32_t v, float *scale) {
    int32_t n = onnx_producer_is(c, v, "Mul");
    double k;
    if (n >= 0 && onnx_scalar(&c->values[node_input(c, n, 1)], &k)) {
        *scale *= (float)k;
        return node_input(c, n, 0);
    }
    return v;
}

static llmrt_status match_site(onnx_ctx *c, int32_t softmax, attention_site *site, int *found) {
    *found = 0;
    char label[256];
    int64_t axis = onnx_attr_int(&c->model->nodes[softmax], "axis", -1);
    if (axis != -1 && axis != 3) return LLMRT_OK; /* attention normalises over the keys */
    int32_t in = through_casts(c, node_input(c, softmax, 0));
    int32_t n = c->values[in].producer;
    if (n < 0) return LLMRT_OK;
    const char *op = c->model->nodes[n].op_type;
    int32_t mm = -1;
    float scale = 1.0f;
    if (!strcmp(op, "Add")) {
        if (!split_scores(c, node_input(c, n, 0), &mm, &scale) && !split_scores(c, node_input(c, n, 1), &mm, &scale))
            return LLMRT_OK;
    } else if (!strcmp(op, "Where")) {
        if (!split_scores(c, node_input(c, n, 1), &mm, &scale) && !split_scores(c, node_input(c, n, 2), &mm, &scale))
            return LLMRT_OK;
    } else {
        return LLMRT_OK; /* a softmax with no mask is not a decoder's attention */
    }
    int32_t qh = strip_scale(c, node_input(c, mm, 0), &scale);
    int32_t kt = strip_scale(c, node_input(c, mm, 1), &scale);
    int32_t t = onnx_producer_is(c, through_casts(c, kt), "Transpose");
    if (t < 0) return LLMRT_OK;
    int32_t kh = node_input(c, t, 0);
    int32_t xq, xk, xv, hq, hk, hv, dq, dk, dv, past_v, cos_q = -1, cos_k = -1, unused;
    int rq, rk, rv;
    if (!trace_head(c, qh, 0, &xq, &hq, &dq, &rq, &cos_q, &unused)) return LLMRT_OK;
    int k_ok;
    if (perm_is(c, t, PERM_KT, 4)) {
        k_ok = trace_head(c, kh, 1, &xk, &hk, &dk, &rk, &cos_k, &site->past_k);
    } else if (perm_is(c, t, PERM_KT_FROM_X, 4)) { /* kᵀ straight from the reshape, no RoPE */
        int32_t r = onnx_producer_is(c, kh, "Reshape");
        const ival *kv4 = &c->values[kh];
        k_ok = r >= 0 && kv4->ndim == 4 && kv4->dims[2] > 0 && kv4->dims[3] > 0;
        if (k_ok) {
            xk = node_input(c, r, 0);
            hk = (int32_t)kv4->dims[2];
            dk = (int32_t)kv4->dims[3];
            rk = 0;
            site->past_k = -1;
        }
    } else k_ok = 0;
    if (!k_ok) return LLMRT_OK;
    /* the probabilities' reader: MatMul(p, v) */
    int32_t p = node_output(c, softmax, 0), pv = -1;
    for (int32_t i = softmax + 1; i < c->model->num_nodes && pv < 0; i++)
        if (!strcmp(c->model->nodes[i].op_type, "MatMul") && through_casts(c, node_input(c, i, 0)) == p) pv = i;
    if (pv < 0) return LLMRT_OK;
    if (!trace_head(c, node_input(c, pv, 1), 1, &xv, &hv, &dv, &rv, &unused, &past_v) || rv) return LLMRT_OK;
    /* out = Reshape(Transpose(pv, [0, 2, 1, 3]), [1, T, H·D]) */
    int32_t out_t = -1, out = -1;
    for (int32_t i = pv + 1; i < c->model->num_nodes && out_t < 0; i++)
        if (!strcmp(c->model->nodes[i].op_type, "Transpose") && node_input(c, i, 0) == node_output(c, pv, 0) &&
            perm_is(c, i, PERM_HEADS, 4))
            out_t = i;
    for (int32_t i = out_t + 1; out_t >= 0 && i < c->model->num_nodes && out < 0; i++)
        if (!strcmp(c->model->nodes[i].op_type, "Reshape") && node_input(c, i, 0) == node_output(c, out_t, 0))
            out = node_output(c, i, 0);
    if (out < 0) return LLMRT_OK;
    const char *what = onnx_node_label(c, softmax, label, sizeof label);
    if (rq != rk)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: attention at %s applies RoPE to only one of q and k", c->source,
                           what);
    if (dq != dk || dq != dv || hk != hv || hq % hk != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: attention at %s: q, k, v head shapes disagree (%d×%d, %d×%d, %d×%d)",
                           c->source, what, (int)hq, (int)dq, (int)hk, (int)dk, (int)hv, (int)dv);
    if ((site->past_k >= 0) != (past_v >= 0))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: attention at %s takes a past for only one of k and v", c->source, what);
    const ival *ov = &c->values[out];
    if (ov->ndim != 3 || ov->dims[2] != (int64_t)hq * dq)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: attention at %s: the heads merge to a shape other than [1, T, %d]",
                           c->source, what, (int)(hq * dq));
    site->output = out;
    site->xq = xq;
    site->xk = xk;
    site->xv = xv;
    site->softmax_node = softmax;
    site->num_heads = hq;
    site->num_kv_heads = hk;
    site->head_dim = dq;
    site->rope = rq;
    site->inv_freq = rq ? find_inv_freq(c, cos_q, dq / 2) : -1;
    site->past_v = past_v;
    site->scale = scale;
    *found = 1;
    return LLMRT_OK;
}

llmrt_status onnx_find_attention(onnx_ctx *c) {
    int32_t count = 0;
    for (int32_t n = 0; n < c->model->num_nodes; n++)
        if (!strcmp(c->model->nodes[n].op_type, "Softmax")) count++;
    c->sites = calloc((size_t)count + 1, sizeof *c->sites);
    if (!c->sites) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t n = 0; n < c->model->num_nodes; n++) {
        if (strcmp(c->model->nodes[n].op_type, "Softmax")) continue;
        attention_site *site = &c->sites[c->num_sites];
        int found;
        LLMRT_TRY(match_site(c, n, site, &found));
        if (!found) continue;
        if (c->values[site->output].attention)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: two attention subgraphs share an output", c->source);
        c->values[site->output].attention = ++c->num_sites;
    }
    return LLMRT_OK;
}
