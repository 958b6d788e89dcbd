/* Runs the plan's nodes on the GPU: one launcher call per node (two or three
 * for attention), in plan order, on one stream. Everything here is
 * capturable in a CUDA graph: no allocation, no synchronisation, no host
 * reads of device data. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_common.h"
#include "backends/cuda/cuda_observe.h"
#include "core/log.h"
#include "core/quant.h"
#include "core/quant8.h"

int64_t cuda_value_dim(const cuda_state *st, llmrt_value v, int d) {
    const int64_t x = st->graph->nodes[v].dims[d];
    if (x == LLMRT_DIM_TOKENS) return st->T;
    if (x == LLMRT_DIM_LOGITS) return st->L;
    return x;
}

int64_t cuda_value_numel(const cuda_state *st, llmrt_value v) {
    int64_t n = 1;
    for (int d = 0; d < st->graph->nodes[v].ndim; d++) n *= cuda_value_dim(st, v, d);
    return n;
}

llmrt_dtype cuda_value_type(const cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    if ((n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT) && n->weight_slot >= 0 &&
        n->weight_slot < st->plan->num_weights)
        return st->plan->weights[n->weight_slot].dtype;
    if (n->op == LLMRT_OP_CONSTANT) return LLMRT_DTYPE_F32;
    return n->dtype;
}

static int is_float_type(llmrt_dtype t) {
    return t == LLMRT_DTYPE_F32 || t == LLMRT_DTYPE_F16 || t == LLMRT_DTYPE_BF16;
}

static llmrt_status node_fail(const cuda_state *st, llmrt_value v, cudaError_t err) {
    const llmrt_node *n = &st->graph->nodes[v];
    char what[160];
    snprintf(what, sizeof what, "%s (node %d \"%s\")", llmrt_op_name(n->op), (int)v, n->name ? n->name : "");
    return llmrt_cuda_status(err, what);
}

static llmrt_status node_error(const cuda_state *st, llmrt_value v, llmrt_status status, const char *why) {
    const llmrt_node *n = &st->graph->nodes[v];
    return llmrt_error(status, "cuda: %s (node %d \"%s\"): %s", llmrt_op_name(n->op), (int)v, n->name ? n->name : "",
                       why);
}

#define LAUNCH(v, call)                                  \
    do {                                                 \
        cudaError_t launch_err_ = (call);                \
        if (launch_err_ != cudaSuccess) return node_fail(st, (v), launch_err_); \
    } while (0)

/* y = x · op(W) (+ bias): the decode GEMV for small M, cuBLASLt for matching
 * types, the generic kernel otherwise. The plan's output (the logits
 * product) writes st->logits_dev as f32 straight from the fp32
 * accumulators, so the logits skip one bf16/f16 rounding and the cast. */
static llmrt_status run_gemm(cuda_state *st, llmrt_value v, llmrt_value xv, llmrt_value wv, llmrt_value bv,
                             int transpose_b) {
    const llmrt_node *w = &st->graph->nodes[wv];
    const llmrt_node *x = &st->graph->nodes[xv];
    if (w->ndim != 2 || x->ndim < 1) return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "expects x [..., K] and a 2-D W");
    if (llmrt_dtype_is_q8(cuda_value_type(st, wv))) {
        if (!transpose_b) return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "an 8-bit W must be [N, K]");
        return cuda_q8linear_run(st, v, xv, wv, bv);
    }
    if (llmrt_dtype_is_quantized(w->dtype)) {
        if (!transpose_b) return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "a quantized W must be [N, K]");
        return cuda_qlinear_run(st, v, xv, wv, bv);
    }
    const int64_t K = cuda_value_dim(st, xv, x->ndim - 1);
    const int64_t N = transpose_b ? cuda_value_dim(st, wv, 0) : cuda_value_dim(st, wv, 1);
    const int64_t wk = transpose_b ? cuda_value_dim(st, wv, 1) : cuda_value_dim(st, wv, 0);
    if (wk != K || K <= 0) return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "inner dimensions differ");
    const int64_t M = cuda_value_numel(st, xv) / K;
    void *y = st->node_ptr[v];
    const void *xp = st->node_ptr[xv], *wp = st->node_ptr[wv];
    llmrt_dtype ty = cuda_value_type(st, v);
    const llmrt_dtype tx = cuda_value_type(st, xv), tw = cuda_value_type(st, wv);
    if (v == st->plan->output_logits && st->logits_dev && st->L > 0 && is_float_type(ty) &&
        M * N == st->L * (int64_t)st->plan->vocab_size) {
        y = st->logits_dev;
        ty = LLMRT_DTYPE_F32;
        st->logits_direct = 1;
    }
    const llmrt_dtype tb = bv >= 0 ? cuda_value_type(st, bv) : LLMRT_DTYPE_F32;
    if (!is_float_type(ty) || !is_float_type(tx) || !is_float_type(tw) || !is_float_type(tb))
        return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "matmul operands must be f32, f16 or bf16");
    const float *bias = bv >= 0 && tb == LLMRT_DTYPE_F32 ? (const float *)st->node_ptr[bv] : NULL;

    int done = 0;
    if (tx == tw && (ty == tx || ty == LLMRT_DTYPE_F32)) {
        if (transpose_b && st->settings.gemv && cuda_gemv_supported(tx, M, K, y, xp, wp)) {
            LAUNCH(v, cuda_gemv_out(y, ty, xp, wp, tx, bias, M, N, K, st->pdl, st->stream));
            done = 1;
        } else {
            llmrt_status s = cuda_gemm_run_out(st->gemm, y, ty, xp, wp, tx, transpose_b, bias, M, N, K, st->stream);
            if (s == LLMRT_OK) done = 1;
            else if (s != LLMRT_ERR_UNSUPPORTED) return llmrt_error_context(s, "cuda: node %d", (int)v);
        }
    }
    if (!done) LAUNCH(v, cuda_matmul_generic(y, ty, xp, tx, wp, tw, transpose_b, bias, M, N, K, st->stream));
    if (bv >= 0 && !bias) {
        cuda_broadcast bc;
        const int64_t dims[2] = {M, N}, bdims[1] = {N};
        cuda_broadcast_init(&bc, 2, dims, 2, dims, 1, bdims);
        LAUNCH(v, cuda_binary(LLMRT_OP_ADD, y, ty, y, ty, st->node_ptr[bv], tb, &bc, st->stream));
    }
    return LLMRT_OK;
}

static llmrt_value strip_views(const cuda_state *st, llmrt_value x) {
    while (x >= 0 && st->graph->nodes[x].op == LLMRT_OP_VIEW) x = st->graph->nodes[x].inputs[0];
    return x;
}

/* A sliding window, soft-cap or ALiBi (llmrt_attention_params): these run
 * on cuda_attention_variant. */
static int attention_has_variant(const llmrt_node *n) {
    return n->iattr[7] > 0 || n->fattr[1] > 0.0f || n->fattr[2] > 0.0f;
}

/* A decode step folds RoPE and the KV write into the attention kernel (one
 * launch fewer a layer) where q, k and v are 16-byte aligned; *inv_freq and
 * *rot say which rotation (NULL, 0: none). */
static int attention_fuses_rope(const cuda_state *st, llmrt_value v, const float **inv_freq, int32_t *rot) {
    const llmrt_node *n = &st->graph->nodes[v];
    const int32_t rotary_dim = (int32_t)n->iattr[4], head_dim = (int32_t)n->iattr[3];
    const llmrt_value fv = n->num_inputs > 3 ? n->inputs[3] : LLMRT_NO_VALUE;
    *inv_freq = (fv >= 0 && rotary_dim > 0) ? (const float *)st->node_ptr[fv] : NULL;
    *rot = *inv_freq ? rotary_dim : 0;
    if (attention_has_variant(n) || st->kv8_kind) return 0; /* those kernels take q rotated, the K/V written */
    uintptr_t bits = 0;
    for (int i = 0; i < 3; i++) bits |= (uintptr_t)st->node_ptr[n->inputs[i]];
    return st->decode_step && st->settings.fuse_rope && *rot <= head_dim && (bits & 15) == 0;
}

/* The attention node the grouped GEMV at exec[p] (count parts, not gated,
 * batch 1) may hand q to early (cuda_rope_fused.early): the next node but
 * views, reading part 0 as q, fusing RoPE with this step's table already
 * made (the table kernel would sit between them), in a launch the kernel
 * takes early. -1: none. The GEMV raises the flag only then, and the
 * attention then always takes it. */
static llmrt_value early_attention_for(const cuda_state *st, int32_t p, int count, int gated, int64_t M,
                                       int64_t q_rows) {
    if (!st->settings.attn_early || !st->attn_early || !st->pdl || gated || M != 1 || !st->decode_step ||
        st->batch.num_tokens != 1 || !st->batch.wide || st->attn_ws_tokens < 1 || !st->attn_counters)
        return -1;
    int32_t q = p + count;
    while (q < st->num_exec && st->graph->nodes[st->exec[q]].op == LLMRT_OP_VIEW) q++;
    if (q >= st->num_exec) return -1;
    const llmrt_value av = st->exec[q];
    const llmrt_node *a = &st->graph->nodes[av];
    if (a->op != LLMRT_OP_ATTENTION || a->num_inputs < 3 || strip_views(st, a->inputs[0]) != st->exec[p]) return -1;
    const int32_t heads = (int32_t)a->iattr[1], kv_heads = (int32_t)a->iattr[2], head_dim = (int32_t)a->iattr[3];
    if ((int64_t)heads * head_dim != q_rows || kv_heads != st->plan->kv_heads || head_dim != st->plan->head_dim ||
        !cuda_attention_early_supported(st->act_type, heads, kv_heads, head_dim, st->batch.num_tokens))
        return -1;
    const float *inv_freq;
    int32_t rot;
    if (!attention_fuses_rope(st, av, &inv_freq, &rot)) return -1;
    if (rot > 0 && (st->rope_table_freq != inv_freq || st->rope_table_dim != rot)) return -1;
    return av;
}

/* A grouped LINEAR (see find_gemv_groups): at decode sizes one grouped GEMV
 * computes all its parts (and the SILU_MUL after a gated pair); *consumed
 * says how many nodes that covered. Otherwise only the first LINEAR runs
 * here and the others follow as usual. */
static llmrt_status run_linear_group(cuda_state *st, int32_t p, int *consumed) {
    const llmrt_value v = st->exec[p];
    const int count = st->gemv_group[v] & ~CUDA_GROUP_GATED, gated = (st->gemv_group[v] & CUDA_GROUP_GATED) != 0;
    const llmrt_node *first = &st->graph->nodes[v];
    const llmrt_value xv = first->inputs[0];
    const llmrt_dtype t = cuda_value_type(st, v);
    const int64_t K = cuda_value_dim(st, xv, st->graph->nodes[xv].ndim - 1);
    const int64_t M = K > 0 ? cuda_value_numel(st, xv) / K : 0;
    int ok = st->settings.gemv && K > 0 && cuda_value_type(st, xv) == t;
    cuda_gemv_part parts[CUDA_GEMV_MAX_PARTS];
    for (int i = 0; ok && i < count; i++) {
        const llmrt_value vi = st->exec[p + i];
        const llmrt_node *n = &st->graph->nodes[vi];
        const llmrt_value wv = n->inputs[1], bv = n->num_inputs > 2 ? n->inputs[2] : LLMRT_NO_VALUE;
        parts[i].y = gated ? st->node_ptr[st->exec[p + 2]] : st->node_ptr[vi];
        parts[i].w = st->node_ptr[wv];
        parts[i].bias = bv >= 0 ? (const float *)st->node_ptr[bv] : NULL;
        parts[i].N = cuda_value_dim(st, wv, 0);
        ok = cuda_gemv_part_types_ok(st, vi, t, K) &&
             cuda_gemv_supported(t, M, K, parts[i].y, st->node_ptr[xv], parts[i].w);
    }
    const int site = st->norm_active ? st->norm_site_of[v] : 0;
    if (!ok) {
        /* the norm of an active site is not computed anywhere else */
        if (site) return node_error(st, v, LLMRT_ERR_INTERNAL, "a fused RMSNorm's GEMV cannot run this step");
        *consumed = 1;
        return run_gemm(st, v, xv, first->inputs[1], first->num_inputs > 2 ? first->inputs[2] : LLMRT_NO_VALUE, 1);
    }
    cuda_gemv_norm norm;
    if (site) { /* x = RMSNorm(a (+ b)) made in the GEMV's prologue */
        const cuda_norm_site *ns = &st->norm_sites[site - 1];
        const llmrt_node *r = &st->graph->nodes[ns->norm];
        const llmrt_node *add = ns->add >= 0 ? &st->graph->nodes[ns->add] : NULL;
        norm.a = st->node_ptr[add ? add->inputs[0] : r->inputs[0]];
        norm.b = add ? st->node_ptr[add->inputs[1]] : NULL;
        norm.sum = add ? st->node_ptr[ns->add] : NULL;
        norm.w = (const float *)st->node_ptr[r->inputs[1]];
        norm.eps = r->fattr[0];
    }
    const llmrt_value early = early_attention_for(st, p, count, gated, M, parts[0].N);
    const cuda_gemv_signal signal = {st->attn_early, parts[0].N};
    LAUNCH(v, cuda_gemv_multi_signal(parts, count, gated, site ? NULL : st->node_ptr[xv], site ? &norm : NULL,
                                     early >= 0 ? &signal : NULL, t, M, K, st->settings.gemv_resident ? -1 : 0,
                                     st->pdl, st->stream));
    st->early_attn = early;
    st->early_raised = early >= 0;
    *consumed = count + gated;
    return LLMRT_OK;
}

static void value_dims(const cuda_state *st, llmrt_value v, int64_t *dims) {
    for (int d = 0; d < st->graph->nodes[v].ndim; d++) dims[d] = cuda_value_dim(st, v, d);
}

static void contiguous_strides(const int64_t *dims, int ndim, int64_t *strides) {
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        strides[d] = s;
        s *= dims[d];
    }
}

static llmrt_status run_binary(cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    const llmrt_value a = n->inputs[0], b = n->inputs[1];
    int64_t od[LLMRT_GRAPH_MAX_DIMS], ad[LLMRT_GRAPH_MAX_DIMS], bd[LLMRT_GRAPH_MAX_DIMS];
    value_dims(st, v, od);
    value_dims(st, a, ad);
    value_dims(st, b, bd);
    cuda_broadcast bc;
    if (cuda_broadcast_init(&bc, n->ndim, od, st->graph->nodes[a].ndim, ad, st->graph->nodes[b].ndim, bd) != 0)
        return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "operands do not broadcast to the output shape");
    LAUNCH(v, cuda_binary(n->op, st->node_ptr[v], cuda_value_type(st, v), st->node_ptr[a], cuda_value_type(st, a),
                          st->node_ptr[b], cuda_value_type(st, b), &bc, st->stream));
    return LLMRT_OK;
}

static int norm_axis(int64_t axis, int ndim) { return (int)(axis < 0 ? axis + ndim : axis); }

static llmrt_status run_copy_op(cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    const llmrt_dtype ty = cuda_value_type(st, v);
    int64_t od[LLMRT_GRAPH_MAX_DIMS], os[LLMRT_GRAPH_MAX_DIMS];
    value_dims(st, v, od);
    contiguous_strides(od, n->ndim, os);
    cuda_copy_desc c;
    memset(&c, 0, sizeof c);
    c.ndim = n->ndim;
    if (n->op == LLMRT_OP_CONCAT) {
        const int axis = norm_axis(n->iattr[0], n->ndim);
        if (axis < 0 || axis >= n->ndim) return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "bad concat axis");
        int64_t at = 0;
        for (int i = 0; i < n->num_inputs; i++) {
            const llmrt_value p = n->inputs[i];
            value_dims(st, p, c.dims);
            contiguous_strides(c.dims, n->ndim, c.x_strides);
            memcpy(c.y_strides, os, sizeof os);
            c.x_offset = 0;
            c.y_offset = at * os[axis];
            LAUNCH(v, cuda_strided_copy(st->node_ptr[v], ty, st->node_ptr[p], cuda_value_type(st, p), &c, st->stream));
            at += c.dims[axis];
        }
        return LLMRT_OK;
    }
    const llmrt_value x = n->inputs[0];
    const int xnd = st->graph->nodes[x].ndim;
    int64_t xd[LLMRT_GRAPH_MAX_DIMS], xs[LLMRT_GRAPH_MAX_DIMS];
    value_dims(st, x, xd);
    contiguous_strides(xd, xnd, xs);
    memcpy(c.dims, od, sizeof od);
    memcpy(c.y_strides, os, sizeof os);
    if (n->op == LLMRT_OP_SLICE) {
        const int axis = norm_axis(n->iattr[0], n->ndim);
        if (axis < 0 || axis >= n->ndim || xnd != n->ndim)
            return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "bad slice axis");
        memcpy(c.x_strides, xs, sizeof xs);
        c.x_offset = n->iattr[1] * xs[axis];
    } else { /* PERMUTE: output dim i walks input dim perm[i] */
        if (xnd != n->ndim) return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "permute changes rank");
        for (int i = 0; i < n->ndim; i++) {
            const int p = (int)n->iattr[i];
            if (p < 0 || p >= xnd) return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "bad permutation");
            c.x_strides[i] = xs[p];
        }
    }
    LAUNCH(v, cuda_strided_copy(st->node_ptr[v], ty, st->node_ptr[x], cuda_value_type(st, x), &c, st->stream));
    return LLMRT_OK;
}

static llmrt_status run_attention(cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    const int32_t layer = (int32_t)n->iattr[0], heads = (int32_t)n->iattr[1], kv_heads = (int32_t)n->iattr[2];
    const int32_t head_dim = (int32_t)n->iattr[3], neox = (int32_t)n->iattr[5];
    const float scale = n->fattr[0];
    if (layer < 0 || layer >= st->plan->num_kv_layers || kv_heads != st->plan->kv_heads ||
        head_dim != st->plan->head_dim || kv_heads <= 0 || heads % kv_heads)
        return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "attention geometry disagrees with the plan's KV cache");
    const llmrt_dtype t = st->act_type;
    for (int i = 0; i < 3; i++)
        if (cuda_value_type(st, n->inputs[i]) != t)
            return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "q, k, v must have the KV cache's dtype");
    if (cuda_value_type(st, v) != t) return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "output must have the KV cache's dtype");
    if (!cuda_attention_head_dim_supported(head_dim))
        return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "head_dim must be between 1 and 256");
    const llmrt_value fv = n->num_inputs > 3 ? n->inputs[3] : LLMRT_NO_VALUE;
    const float *inv_freq;
    int32_t rot;
    const int fuse_rope = attention_fuses_rope(st, v, &inv_freq, &rot);
    if (inv_freq && cuda_value_type(st, fv) != LLMRT_DTYPE_F32)
        return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "inv_freq must be f32");
    /* the q/k/v GEMV before raises the early flag for this node: take it */
    const int early = st->early_attn == v;
    st->early_attn = -1;
    if (early && !fuse_rope)
        return node_error(st, v, LLMRT_ERR_INTERNAL, "the early attention lost its fused RoPE");

    if (st->kv8_kind) {
        /* an 8-bit cache: append codes, then the variant kernel over them
         * for every token of the step */
        const size_t layer_scales = st->kv_layer_elems / (size_t)head_dim;
        unsigned char *codes = (unsigned char *)st->kv + (size_t)layer * 2 * st->kv_layer_elems;
        float *scales = st->kv_scales + (size_t)layer * 2 * layer_scales;
        const cuda_kv8_layer cache = {codes, codes + st->kv_layer_elems, scales, scales + layer_scales, st->kv8_kind};
        void *out = st->node_ptr[v];
        LAUNCH(v, cuda_rope_kv8_write(out, st->node_ptr[n->inputs[0]], st->node_ptr[n->inputs[1]],
                                      st->node_ptr[n->inputs[2]], &cache, t, &st->batch, heads, kv_heads, head_dim,
                                      rot, inv_freq, neox, st->stream));
        cuda_attention_batch b = st->batch;
        if (n->iattr[LLMRT_ATTENTION_NON_CAUSAL]) b.positions = b.sequence_end_positions;
        b.token_index = NULL;
        const cuda_attention_variant_params variant = {(int32_t)n->iattr[7], n->fattr[1], n->fattr[2],
                                                       (int32_t)n->fattr[3], (int32_t)n->fattr[4]};
        /* a decode step of few tokens splits each token's keys over blocks
         * (a shape-only choice: graphs replay it at any context length) */
        const int32_t parts = st->decode_step && st->attn_ws && b.num_tokens <= st->attn_ws_tokens
                                  ? cuda_decode_partitions(b.num_tokens, heads, kv_heads) : 1;
        LAUNCH(v, cuda_attention_kv8(out, out, &cache, t, &b, heads, kv_heads, head_dim, scale, &variant, parts,
                                     st->attn_ws, st->stream));
        return LLMRT_OK;
    }
    const size_t elsize = llmrt_dtype_size(t);
    unsigned char *k_cache = (unsigned char *)st->kv + (size_t)layer * 2 * st->kv_layer_elems * elsize;
    unsigned char *v_cache = k_cache + st->kv_layer_elems * elsize;
    void *out = st->node_ptr[v];
    const void *q = out;
    const void *qkv[3] = {st->node_ptr[n->inputs[0]], st->node_ptr[n->inputs[1]], st->node_ptr[n->inputs[2]]};
    /* fused: the (cos, sin) table is made once per step */
    cuda_rope_fused rope = {qkv[1], qkv[2], NULL, rot, neox, NULL, 0};
    if (early) {
        rope.early = st->attn_early;
        rope.early_rows = heads * head_dim;
    }
    if (fuse_rope) {
        q = qkv[0];
        if (rot > 0 && (st->rope_table_freq != inv_freq || st->rope_table_dim != rot)) {
            LAUNCH(v, cuda_rope_table(st->rope_table, st->batch.positions, st->batch.num_tokens, inv_freq, rot,
                                      st->pdl, st->stream));
            st->rope_table_freq = inv_freq;
            st->rope_table_dim = rot;
        }
        rope.table = rot > 0 ? st->rope_table : NULL;
    } else {
        LAUNCH(v, cuda_rope_kv_write(out, qkv[0], qkv[1], qkv[2], k_cache, v_cache, t, &st->batch, heads, kv_heads,
                                     head_dim, rot, inv_freq, neox, st->pdl, st->stream));
    }
    cuda_attention_batch b = st->batch;
    /* the cache holds the whole step now: a non-causal mask reaches its end */
    if (n->iattr[LLMRT_ATTENTION_NON_CAUSAL]) b.positions = b.sequence_end_positions;
    if (attention_has_variant(n)) {
        const cuda_attention_variant_params variant = {(int32_t)n->iattr[7], n->fattr[1], n->fattr[2],
                                                       (int32_t)n->fattr[3], (int32_t)n->fattr[4]};
        b.token_index = NULL;
        LAUNCH(v, cuda_attention_variant(out, out, k_cache, v_cache, t, &b, heads, kv_heads, head_dim, scale, &variant,
                                         st->stream));
        return LLMRT_OK;
    }
    if (!st->decode_step && st->prefill_kernel) { /* checked against the plan's head size at create */
        /* a mixed step: chunks of two or more tokens on tensor cores, the
         * one-token sequences (decode tokens) through the split-K kernel */
        if (b.num_tiles > 0)
            LAUNCH(v, cuda_attention_prefill(out, out, k_cache, v_cache, t, &b, heads, kv_heads, head_dim, scale,
                                             st->stream));
        if (st->num_decode_list == 0) return LLMRT_OK;
        b.token_index = st->decode_list;
        b.num_tokens = st->num_decode_list;
    }
    /* Split-K kernel, in chunks of tokens that fit the partials workspace. */
    const int64_t chunk = st->attn_ws_tokens, total = b.num_tokens;
    const size_t row = (size_t)heads * head_dim * elsize, kv_row = (size_t)kv_heads * head_dim * elsize;
    for (int64_t t0 = 0; t0 < total; t0 += chunk) {
        cuda_attention_batch c = b;
        c.num_tokens = (int32_t)(total - t0 < chunk ? total - t0 : chunk);
        void *o = out;
        const void *qc = q;
        cuda_rope_fused rc = rope;
        if (c.token_index) {
            c.token_index += t0; /* rows stay step rows */
        } else {
            c.positions += t0;
            c.token_seq += t0;
            c.slot_mapping += t0;
            o = (unsigned char *)out + (size_t)t0 * row;
            qc = (const unsigned char *)q + (size_t)t0 * row;
            rc.k = (const unsigned char *)rope.k + (size_t)t0 * kv_row;
            rc.v = (const unsigned char *)rope.v + (size_t)t0 * kv_row;
            if (rc.table) rc.table += t0 * (rot / 2) * 2;
        }
        LAUNCH(v, cuda_attention_decode(o, qc, k_cache, v_cache, t, &c, heads, kv_heads, head_dim, scale,
                                        cuda_decode_partitions(c.num_tokens, heads, kv_heads), st->attn_ws,
                                        st->attn_counters, fuse_rope ? &rc : NULL, st->pdl, st->stream));
    }
    if (early) st->early_raised = 0; /* consumed: the kernel sets it back */
    return LLMRT_OK;
}

/* What the built-in attention plugin's CUDA enqueue finds in backend_context. */
typedef struct cuda_attention_context {
    cuda_state *st;
    llmrt_value v;
} cuda_attention_context;

llmrt_status llmrt_cuda_attention_enqueue(const llmrt_plugin_call *call, void *cuda_stream) {
    const cuda_attention_context *a = call->backend_context;
    return run_attention(a->st, a->v); /* on a->st->stream, which cuda_stream is */
}

static llmrt_status run_node(cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    const llmrt_dtype ty = cuda_value_type(st, v);
    void *y = st->node_ptr[v];
    switch (n->op) {
    case LLMRT_OP_INPUT: case LLMRT_OP_WEIGHT: case LLMRT_OP_CONSTANT: case LLMRT_OP_VIEW:
        return LLMRT_OK;
    case LLMRT_OP_MATMUL:
        return run_gemm(st, v, n->inputs[0], n->inputs[1], LLMRT_NO_VALUE, (int)n->iattr[0]);
    case LLMRT_OP_LINEAR:
        return run_gemm(st, v, n->inputs[0], n->inputs[1], n->num_inputs > 2 ? n->inputs[2] : LLMRT_NO_VALUE, 1);
    case LLMRT_OP_ADD:
        if (st->norm_active && st->norm_skip[v]) return LLMRT_OK; /* in the next GEMV's prologue */
        if (st->next_exec[v] >= 0 && st->fused[st->next_exec[v]]) {
            /* residual add + the RMSNorm that reads it, in one pass */
            const llmrt_value rv = st->next_exec[v];
            const llmrt_node *r = &st->graph->nodes[rv];
            const int64_t dim = cuda_value_dim(st, v, n->ndim - 1);
            LAUNCH(v, cuda_add_rmsnorm(st->node_ptr[rv], y, st->node_ptr[n->inputs[0]], st->node_ptr[n->inputs[1]], ty,
                                       st->node_ptr[r->inputs[1]], cuda_value_type(st, r->inputs[1]),
                                       cuda_value_numel(st, v) / dim, dim, r->fattr[0], st->pdl, st->stream));
            return LLMRT_OK;
        }
        return run_binary(st, v);
    case LLMRT_OP_SUB: case LLMRT_OP_MUL: case LLMRT_OP_DIV:
        return run_binary(st, v);
    case LLMRT_OP_POW: case LLMRT_OP_NEG: case LLMRT_OP_EXP: case LLMRT_OP_SQRT: case LLMRT_OP_RSQRT:
    case LLMRT_OP_TANH: case LLMRT_OP_ERF: case LLMRT_OP_SIGMOID: case LLMRT_OP_RELU: case LLMRT_OP_GELU:
    case LLMRT_OP_SILU: case LLMRT_OP_GELU_TANH:
        LAUNCH(v, cuda_unary(n->op, y, ty, st->node_ptr[n->inputs[0]], cuda_value_type(st, n->inputs[0]),
                             cuda_value_numel(st, v), n->fattr[0], st->stream));
        return LLMRT_OK;
    case LLMRT_OP_SUM: case LLMRT_OP_MEAN: case LLMRT_OP_SOFTMAX: {
        const llmrt_value x = n->inputs[0];
        const int xnd = st->graph->nodes[x].ndim;
        const int64_t dim = xnd ? cuda_value_dim(st, x, xnd - 1) : 1;
        const int64_t rows = dim ? cuda_value_numel(st, x) / dim : 0;
        if (n->op == LLMRT_OP_SOFTMAX)
            LAUNCH(v, cuda_softmax(y, ty, st->node_ptr[x], cuda_value_type(st, x), rows, dim, st->stream));
        else
            LAUNCH(v, cuda_reduce_last(n->op, y, ty, st->node_ptr[x], cuda_value_type(st, x), rows, dim, st->stream));
        return LLMRT_OK;
    }
    case LLMRT_OP_GATHER: {
        const llmrt_value table = n->inputs[0], idx = n->inputs[1];
        if (cuda_value_type(st, idx) != LLMRT_DTYPE_I32 || st->graph->nodes[table].ndim != 2)
            return node_error(st, v, LLMRT_ERR_INVALID_ARGUMENT, "expects table [rows, D] and i32 indices");
        if (n->iattr[1]) { /* a vocab shard (tensor parallelism): other ranks' ids give zeros */
            LAUNCH(v, cuda_embedding_shard(y, ty, st->node_ptr[table], cuda_value_type(st, table),
                                           cuda_value_dim(st, table, 0), cuda_value_dim(st, table, 1),
                                           st->node_ptr[idx], cuda_value_numel(st, idx), n->iattr[0], st->stream));
        } else {
            /* an offset gather reads the table from row iattr[0] on */
            const int64_t offset = n->iattr[0], dim = cuda_value_dim(st, table, 1);
            const uint8_t *rows = (const uint8_t *)st->node_ptr[table] +
                                  (size_t)(offset * dim) * llmrt_dtype_size(cuda_value_type(st, table));
            LAUNCH(v, cuda_embedding(y, ty, rows, cuda_value_type(st, table), cuda_value_dim(st, table, 0) - offset,
                                     dim, st->node_ptr[idx], cuda_value_numel(st, idx),
                                     st->out_dev /* the step's flag */, st->stream));
        }
        return LLMRT_OK;
    }
    case LLMRT_OP_CONCAT: case LLMRT_OP_SLICE: case LLMRT_OP_PERMUTE:
        return run_copy_op(st, v);
    case LLMRT_OP_CAST:
        LAUNCH(v, cuda_cast(y, ty, st->node_ptr[n->inputs[0]], cuda_value_type(st, n->inputs[0]), cuda_value_numel(st, v),
                            st->stream));
        return LLMRT_OK;
    case LLMRT_OP_MOE:
        return cuda_moe_run(st, v);
    case LLMRT_OP_ATTENTION: {
        const cuda_attention_context context = {.st = st, .v = v};
        const llmrt_plugin_call call = {.backend_context = (void *)&context};
        return st->attention_plugin->enqueue_cuda(&call, st->stream);
    }
    case LLMRT_OP_PLUGIN:
        return cuda_run_plugin(st, v);
    case LLMRT_OP_ALL_REDUCE: case LLMRT_OP_ALL_GATHER: case LLMRT_OP_SEND: case LLMRT_OP_RECV:
        return cuda_collective_run(st, v);
    case LLMRT_OP_RMSNORM: case LLMRT_OP_LAYERNORM: {
        if (st->fused[v] || (st->norm_active && st->norm_skip[v])) return LLMRT_OK;
        const llmrt_value x = n->inputs[0];
        if (cuda_value_type(st, x) != ty) return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "input and output dtypes differ");
        const int64_t dim = cuda_value_dim(st, v, n->ndim - 1);
        const int64_t rows = dim ? cuda_value_numel(st, v) / dim : 0;
        const llmrt_dtype tw = cuda_value_type(st, n->inputs[1]);
        if (n->op == LLMRT_OP_RMSNORM)
            LAUNCH(v, cuda_rmsnorm_offset(y, st->node_ptr[x], ty, st->node_ptr[n->inputs[1]], tw, rows, dim,
                                          n->fattr[0], n->fattr[1], st->pdl, st->stream));
        else
            LAUNCH(v, cuda_layernorm(y, st->node_ptr[x], ty, st->node_ptr[n->inputs[1]],
                                     n->num_inputs > 2 ? st->node_ptr[n->inputs[2]] : NULL, tw, rows, dim, n->fattr[0],
                                     st->stream));
        return LLMRT_OK;
    }
    case LLMRT_OP_OBSERVE: {
        const llmrt_value x = n->inputs[0];
        const int64_t K = n->dims[0];
        LAUNCH(v, cuda_column_amax(y, st->node_ptr[x], cuda_value_type(st, x), K ? cuda_value_numel(st, x) / K : 0, K,
                                   st->stream));
        return LLMRT_OK;
    }
    case LLMRT_OP_SILU_MUL: {
        const llmrt_value gate = n->inputs[0], up = n->inputs[1];
        const int64_t count = cuda_value_numel(st, v);
        if (cuda_value_type(st, gate) == ty && cuda_value_type(st, up) == ty && cuda_value_numel(st, gate) == count &&
            cuda_value_numel(st, up) == count) {
            LAUNCH(v, cuda_silu_mul(y, st->node_ptr[gate], st->node_ptr[up], ty, count, st->stream));
            return LLMRT_OK;
        }
        return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "gate and up must match the output's shape and dtype");
    }
    default:
        return node_error(st, v, LLMRT_ERR_UNSUPPORTED, "op not implemented by the CUDA backend");
    }
}

llmrt_status cuda_run_nodes(cuda_state *st) {
    st->logits_direct = 0;
    st->rope_table_freq = NULL; /* the step's positions are new */
    st->early_attn = -1;
    st->early_raised = 0;
    for (int32_t p = 0; p < st->num_exec; p++) {
        const llmrt_value v = st->exec[p];
        if (st->gemv_group && st->gemv_group[v]) {
            int consumed = 1;
            LLMRT_TRY(run_linear_group(st, p, &consumed));
            p += consumed - 1;
            continue;
        }
        const llmrt_status s = run_node(st, v);
        if (s != LLMRT_OK) {
            /* a q/k/v GEMV raised the early flag for an attention that did not run */
            if (st->early_raised) cudaMemsetAsync(st->attn_early, 0, 2 * sizeof(int32_t), st->stream);
            st->early_raised = 0;
            return s;
        }
    }
    if (st->L > 0 && st->logits_dev && !st->logits_direct) {
        const llmrt_value out = st->plan->output_logits;
        LAUNCH(out, cuda_cast(st->logits_dev, LLMRT_DTYPE_F32, st->node_ptr[out], cuda_value_type(st, out),
                              st->L * (int64_t)st->plan->vocab_size, st->stream));
    }
    return LLMRT_OK;
}
