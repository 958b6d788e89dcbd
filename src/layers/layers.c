#include "layers/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *join(char *buf, size_t size, const char *prefix, const char *suffix) {
    snprintf(buf, size, "%s.%s", prefix, suffix);
    return buf;
}

llmrt_value llmrt_linear_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                               int has_bias, int conv1d_layout) {
    char name[256];
    int64_t dims[2] = {conv1d_layout ? in : out, conv1d_layout ? out : in};
    llmrt_value w = llmrt_weight(g, join(name, sizeof name, prefix, "weight"), 2, dims);
    llmrt_value y = llmrt_matmul(g, x, w, !conv1d_layout);
    if (has_bias) y = llmrt_add(g, y, llmrt_weight(g, join(name, sizeof name, prefix, "bias"), 1, &out));
    return y;
}

static int tensor_parallel(const llmrt_graph *g) { return g->tp_size > 1; }

/* Column- and row-parallel linears of either weight layout: nn.Linear's
 * [out, in] or, conv1d_layout, GPT-2 Conv1D's [in, out] (its columns are the
 * outputs, so the split axes swap). */
static llmrt_value column_linear(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                                 int has_bias, int conv1d_layout) {
    if (!tensor_parallel(g)) return llmrt_linear_layer(g, x, prefix, in, out, has_bias, conv1d_layout);
    char name[256];
    int64_t dims[2] = {conv1d_layout ? in : out, conv1d_layout ? out : in};
    llmrt_value w = llmrt_weight_shard(g, join(name, sizeof name, prefix, "weight"), 2, dims, conv1d_layout ? 1 : 0,
                                       g->tp_rank, g->tp_size);
    llmrt_value y = llmrt_matmul(g, x, w, !conv1d_layout);
    if (has_bias)
        y = llmrt_add(g, y, llmrt_weight_shard(g, join(name, sizeof name, prefix, "bias"), 1, &out, 0, g->tp_rank,
                                               g->tp_size));
    return y;
}

static llmrt_value row_linear(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                              int has_bias, int conv1d_layout) {
    if (!tensor_parallel(g)) return llmrt_linear_layer(g, x, prefix, in, out, has_bias, conv1d_layout);
    char name[256];
    int64_t dims[2] = {conv1d_layout ? in : out, conv1d_layout ? out : in};
    llmrt_value w = llmrt_weight_shard(g, join(name, sizeof name, prefix, "weight"), 2, dims, conv1d_layout ? 0 : 1,
                                       g->tp_rank, g->tp_size);
    llmrt_value y = llmrt_all_reduce(g, llmrt_matmul(g, x, w, !conv1d_layout), g->tp_size);
    if (has_bias) y = llmrt_add(g, y, llmrt_weight(g, join(name, sizeof name, prefix, "bias"), 1, &out));
    return y;
}

/* A column-parallel linear of a fused weight: this rank's outputs are the
 * pieces `segments` ({offset, length} along the out dim) of "<prefix>.weight"
 * and its bias. x: [T, in] → [T, Σ lengths] */
static llmrt_value segments_linear(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                                   int has_bias, int conv1d_layout, const int64_t (*segments)[2],
                                   int32_t num_segments) {
    char name[256];
    int64_t dims[2] = {conv1d_layout ? in : out, conv1d_layout ? out : in};
    llmrt_value w = llmrt_weight_segments(g, join(name, sizeof name, prefix, "weight"), 2, dims, conv1d_layout ? 1 : 0,
                                          segments, num_segments, g->tp_rank, g->tp_size);
    llmrt_value y = llmrt_matmul(g, x, w, !conv1d_layout);
    if (has_bias)
        y = llmrt_add(g, y, llmrt_weight_segments(g, join(name, sizeof name, prefix, "bias"), 1, &out, 0, segments,
                                                  num_segments, g->tp_rank, g->tp_size));
    return y;
}

llmrt_value llmrt_column_linear_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                                      int has_bias) {
    return column_linear(g, x, prefix, in, out, has_bias, 0);
}

llmrt_value llmrt_row_linear_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                                   int has_bias) {
    return row_linear(g, x, prefix, in, out, has_bias, 0);
}

llmrt_value llmrt_lm_head_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t hidden, int64_t vocab) {
    if (!tensor_parallel(g) || vocab % g->tp_size != 0) return llmrt_linear_layer(g, x, prefix, hidden, vocab, 0, 0);
    llmrt_value part = llmrt_column_linear_layer(g, x, prefix, hidden, vocab, 0); /* [L, vocab/tp] */
    llmrt_value stacked = llmrt_all_gather(g, part, g->tp_size);                   /* [tp, L, vocab/tp] */
    const int32_t rows_first[3] = {1, 0, 2};
    int64_t dims[2] = {LLMRT_DIM_LOGITS, vocab};
    return llmrt_view(g, llmrt_permute(g, stacked, rows_first), 2, dims);
}

llmrt_value llmrt_embedding_layer(llmrt_graph *g, llmrt_value ids, const char *name, int64_t vocab, int64_t dim) {
    int64_t dims[2] = {vocab, dim};
    if (tensor_parallel(g) && vocab % g->tp_size == 0) {
        /* vocab-parallel: each rank holds vocab/tp rows, fills the ids it
         * holds and zeros for the rest; the sum over ranks is the lookup */
        llmrt_value table = llmrt_weight_shard(g, name, 2, dims, 0, g->tp_rank, g->tp_size);
        llmrt_value part = llmrt_gather_shard(g, table, ids, g->tp_rank * (vocab / g->tp_size));
        return llmrt_all_reduce(g, part, g->tp_size);
    }
    return llmrt_gather(g, llmrt_weight(g, name, 2, dims), ids);
}

llmrt_value llmrt_rmsnorm_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps) {
    char name[256];
    llmrt_value variance = llmrt_mean(g, llmrt_pow(g, x, 2.0f));
    llmrt_value normed = llmrt_mul(g, x, llmrt_rsqrt(g, llmrt_add(g, variance, llmrt_scalar(g, eps))));
    return llmrt_mul(g, normed, llmrt_weight(g, join(name, sizeof name, prefix, "weight"), 1, &dim));
}

llmrt_value llmrt_rmsnorm_plus_one_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps) {
    char name[256];
    llmrt_value variance = llmrt_mean(g, llmrt_pow(g, x, 2.0f));
    llmrt_value normed = llmrt_mul(g, x, llmrt_rsqrt(g, llmrt_add(g, variance, llmrt_scalar(g, eps))));
    llmrt_value w = llmrt_weight(g, join(name, sizeof name, prefix, "weight"), 1, &dim);
    return llmrt_mul(g, normed, llmrt_add(g, w, llmrt_scalar(g, 1.0f)));
}

/* Each head's row of x [T, heads·D] normalised over its D values. */
static llmrt_value per_head_rmsnorm(llmrt_graph *g, llmrt_value x, const char *prefix, int32_t heads,
                                    const llmrt_attention_layer_params *p) {
    int64_t by_head[3] = {LLMRT_DIM_TOKENS, heads, p->head_dim};
    int64_t flat[2] = {LLMRT_DIM_TOKENS, (int64_t)heads * p->head_dim};
    llmrt_value rows = llmrt_view(g, x, 3, by_head);
    rows = p->qk_norm_plus_one ? llmrt_rmsnorm_plus_one_layer(g, rows, prefix, p->head_dim, p->qk_norm_eps)
                               : llmrt_rmsnorm_layer(g, rows, prefix, p->head_dim, p->qk_norm_eps);
    return llmrt_view(g, rows, 2, flat);
}

llmrt_value llmrt_layernorm_no_bias_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps) {
    char name[256];
    llmrt_value centered = llmrt_sub(g, x, llmrt_mean(g, x));
    llmrt_value variance = llmrt_mean(g, llmrt_pow(g, centered, 2.0f));
    llmrt_value normed = llmrt_mul(g, centered, llmrt_rsqrt(g, llmrt_add(g, variance, llmrt_scalar(g, eps))));
    return llmrt_mul(g, normed, llmrt_weight(g, join(name, sizeof name, prefix, "weight"), 1, &dim));
}

/* Part `which` (0 q, 1 k, 2 v) of a fused projection interleaved per head:
 * qkv [T, heads·3·D] seen as [T, heads, 3, D] → [T, heads·D]. */
static llmrt_value per_head_part(llmrt_graph *g, llmrt_value qkv, int32_t heads, int32_t head_dim, int which) {
    int64_t split[4] = {LLMRT_DIM_TOKENS, heads, 3, head_dim}, flat[2] = {LLMRT_DIM_TOKENS, (int64_t)heads * head_dim};
    llmrt_value part = llmrt_slice(g, llmrt_view(g, qkv, 4, split), 2, which, 1);
    return llmrt_view(g, part, 2, flat);
}

llmrt_value llmrt_layernorm_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps) {
    char name[256];
    llmrt_value scaled = llmrt_layernorm_no_bias_layer(g, x, prefix, dim, eps);
    return llmrt_add(g, scaled, llmrt_weight(g, join(name, sizeof name, prefix, "bias"), 1, &dim));
}

llmrt_value llmrt_activation_layer(llmrt_graph *g, llmrt_value x, llmrt_activation act) {
    switch (act) {
    case LLMRT_ACT_SILU: return llmrt_mul(g, x, llmrt_sigmoid(g, x));
    case LLMRT_ACT_RELU: return llmrt_relu(g, x);
    case LLMRT_ACT_GELU: return llmrt_gelu(g, x);
    case LLMRT_ACT_GELU_TANH: {
        /* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), PyTorch's gelu(approximate="tanh") */
        llmrt_value cube = llmrt_mul(g, llmrt_pow(g, x, 3.0f), llmrt_scalar(g, 0.044715f));
        llmrt_value inner = llmrt_mul(g, llmrt_add(g, x, cube), llmrt_scalar(g, 0.7978845608028654f));
        llmrt_value t = llmrt_add(g, llmrt_tanh(g, inner), llmrt_scalar(g, 1.0f));
        return llmrt_mul(g, llmrt_mul(g, x, llmrt_scalar(g, 0.5f)), t);
    }
    }
    return llmrt_graph_fail(g, LLMRT_ERR_UNSUPPORTED, "activation %d not supported", (int)act);
}

llmrt_value llmrt_softcap_layer(llmrt_graph *g, llmrt_value x, float cap) {
    llmrt_value squashed = llmrt_tanh(g, llmrt_div(g, x, llmrt_scalar(g, cap)));
    return llmrt_mul(g, squashed, llmrt_scalar(g, cap));
}

void llmrt_rope_inv_freq(const llmrt_rope_config *rope, float *inv_freq) {
    int32_t dim = rope->rotary_dim;
    for (int32_t i = 0; i < dim / 2; i++) {
        /* transformers: 1 / base ** (arange(0, dim, 2).float() / dim), all fp32 */
        float exponent = (float)(2 * i) / (float)dim;
        inv_freq[i] = 1.0f / powf(rope->theta, exponent);
    }
    if (rope->type == LLMRT_ROPE_LINEAR) {
        for (int32_t i = 0; i < dim / 2; i++) inv_freq[i] /= rope->factor;
    } else if (rope->type == LLMRT_ROPE_LLAMA3) {
        /* LLaMA-3.1: low frequencies scaled by 1/factor, high ones kept, the band
         * between interpolated (transformers' _compute_llama3_parameters). */
        float old_context = (float)rope->original_max_position_embeddings;
        float low_wavelen = old_context / rope->low_freq_factor;
        float high_wavelen = old_context / rope->high_freq_factor;
        for (int32_t i = 0; i < dim / 2; i++) {
            float f = inv_freq[i];
            float wavelen = 2.0f * 3.14159265358979323846f / f;
            float scaled = wavelen > low_wavelen ? f / rope->factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                float smooth = (old_context / wavelen - rope->low_freq_factor) /
                               (rope->high_freq_factor - rope->low_freq_factor);
                scaled = (1.0f - smooth) * scaled / rope->factor + smooth * scaled;
            }
            inv_freq[i] = scaled;
        }
    } else if (rope->type == LLMRT_ROPE_LONGROPE) {
        /* transformers: 1 / (ext_factors * base ** (arange(0, dim, 2) / dim)), fp32 */
        const float *factors = rope->use_long_factors ? rope->long_factor : rope->short_factor;
        for (int32_t i = 0; i < dim / 2; i++)
            inv_freq[i] = 1.0f / (factors[i] * powf(rope->theta, (float)(2 * i) / (float)dim));
    }
}

/* LongRoPE scales cos and sin by s; rotation being linear, scaling the rotated
 * dims of q or k before it is the same. x: [T, heads·D]. */
static llmrt_value rope_scaled(llmrt_graph *g, llmrt_value x, int32_t heads, int32_t head_dim, int32_t rotary_dim,
                               float s) {
    if (rotary_dim == head_dim) return llmrt_mul(g, x, llmrt_scalar(g, s));
    int64_t width = (int64_t)heads * head_dim;
    float *scale = malloc((size_t)width * sizeof *scale);
    if (!scale) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < width; i++) scale[i] = i % head_dim < rotary_dim ? s : 1.0f;
    char label[48];
    snprintf(label, sizeof label, "rope.attention_factor.%d", g->num_nodes);
    llmrt_value v = llmrt_mul(g, x, llmrt_constant(g, label, scale, 1, &width));
    free(scale);
    return v;
}

/* The heads one tensor-parallel rank holds (all of them on one rank):
 * query heads [q_first, q_first + heads) and key/value heads [kv_first,
 * kv_first + kv_heads). Megatron's split gives each rank heads/tp query
 * heads and kv_heads/tp key/value heads, so attention runs with no
 * exchange; with fewer key/value heads than ranks (MQA, tp a multiple of
 * kv_heads) each rank keeps the one its query heads read, copies of it on
 * tp/kv_heads ranks. */
typedef struct head_split {
    int32_t heads, kv_heads, q_first, kv_first;
} head_split;

static int split_heads(llmrt_graph *g, const llmrt_attention_layer_params *p, head_split *s) {
    const int32_t tp = tensor_parallel(g) ? g->tp_size : 1, rank = tensor_parallel(g) ? g->tp_rank : 0;
    if (p->num_heads % tp || (p->num_kv_heads % tp && tp % p->num_kv_heads)) {
        llmrt_graph_fail(g, LLMRT_ERR_UNSUPPORTED,
                         "tensor parallelism over %d ranks: %d query heads and %d key/value heads do not split "
                         "(each must be a multiple of the ranks, or the ranks a multiple of the key/value heads)",
                         (int)tp, (int)p->num_heads, (int)p->num_kv_heads);
        return 0;
    }
    s->heads = p->num_heads / tp;
    s->q_first = rank * s->heads;
    s->kv_heads = p->num_kv_heads % tp ? 1 : p->num_kv_heads / tp;
    s->kv_first = (int32_t)((int64_t)rank * p->num_kv_heads / tp);
    return 1;
}

/* This rank's part of a fused qkv projection, laid out as the checkpoint's
 * but with the rank's head counts: [q | k | v] blocks, per head [q, k, v]
 * (qkv_per_head) or per KV head [query heads, k, v] (qkv_grouped).
 * x: [T, hidden] → [T, (heads + 2·kv_heads)·D] of the split s */
static llmrt_value fused_qkv(llmrt_graph *g, llmrt_value x, const llmrt_attention_layer_params *p,
                             const llmrt_attention_layer_names *names, const head_split *s) {
    const int64_t D = p->head_dim, H = p->num_heads, KV = p->num_kv_heads, out = (H + 2 * KV) * D;
    if (!tensor_parallel(g))
        return llmrt_linear_layer(g, x, names->qkv, p->hidden, out, p->qkv_bias, names->conv1d_layout);
    int64_t segments[3][2];
    int32_t count = 3;
    if (names->qkv_per_head) { /* kv_heads = heads: the rank's heads are one run of rows */
        segments[0][0] = s->q_first * 3 * D, segments[0][1] = s->heads * 3 * D, count = 1;
    } else if (names->qkv_grouped) {
        const int64_t group = H / KV, stride = (group + 2) * D, base = s->kv_first * stride;
        if (s->heads >= group) { /* whole KV groups: one run of rows */
            segments[0][0] = base, segments[0][1] = s->kv_heads * stride, count = 1;
        } else { /* part of one group's query heads, its k and v: [q | k | v] */
            segments[0][0] = base + (s->q_first - s->kv_first * group) * D, segments[0][1] = s->heads * D;
            segments[1][0] = base + group * D, segments[1][1] = D;
            segments[2][0] = base + (group + 1) * D, segments[2][1] = D;
        }
    } else {
        segments[0][0] = s->q_first * D, segments[0][1] = s->heads * D;
        segments[1][0] = (H + s->kv_first) * D, segments[1][1] = s->kv_heads * D;
        segments[2][0] = (H + KV + s->kv_first) * D, segments[2][1] = s->kv_heads * D;
    }
    return segments_linear(g, x, names->qkv, p->hidden, out, p->qkv_bias, names->conv1d_layout, segments, count);
}

/* One of separate q/k/v projections: this rank's `heads` heads from `first`
 * of `total`. x: [T, hidden] → [T, heads·D] */
static llmrt_value heads_projection(llmrt_graph *g, llmrt_value x, const llmrt_attention_layer_params *p,
                                    const char *prefix, int conv1d_layout, int32_t first, int32_t heads,
                                    int32_t total) {
    const int64_t D = p->head_dim;
    if (!tensor_parallel(g)) return llmrt_linear_layer(g, x, prefix, p->hidden, total * D, p->qkv_bias, conv1d_layout);
    const int64_t segment[1][2] = {{first * D, heads * D}};
    return segments_linear(g, x, prefix, p->hidden, total * D, p->qkv_bias, conv1d_layout, segment, 1);
}

llmrt_value llmrt_attention_layer(llmrt_graph *g, llmrt_value x, const llmrt_attention_layer_params *p,
                                  int32_t layer, const llmrt_attention_layer_names *names, llmrt_value inv_freq) {
    head_split s;
    if (!split_heads(g, p, &s)) return LLMRT_NO_VALUE;
    /* from here on, this rank's heads (all of them on one rank) */
    const int64_t q_width = (int64_t)s.heads * p->head_dim, kv_width = (int64_t)s.kv_heads * p->head_dim;
    llmrt_value q, k, v;
    if (names->qkv && names->qkv_per_head) {
        if (p->num_kv_heads != p->num_heads)
            return llmrt_graph_fail(g, LLMRT_ERR_UNSUPPORTED, "attention: a per-head fused qkv needs kv heads = heads");
        llmrt_value qkv = fused_qkv(g, x, p, names, &s);
        q = per_head_part(g, qkv, s.heads, p->head_dim, 0);
        k = per_head_part(g, qkv, s.heads, p->head_dim, 1);
        v = per_head_part(g, qkv, s.heads, p->head_dim, 2);
    } else if (names->qkv && names->qkv_grouped) {
        /* [T, kv_heads, group + 2, D]: each KV head's query heads, then its k and v */
        int64_t group = s.heads / s.kv_heads;
        llmrt_value qkv = fused_qkv(g, x, p, names, &s);
        int64_t grouped[4] = {LLMRT_DIM_TOKENS, s.kv_heads, group + 2, p->head_dim};
        int64_t q_flat[2] = {LLMRT_DIM_TOKENS, q_width}, kv_flat[2] = {LLMRT_DIM_TOKENS, kv_width};
        qkv = llmrt_view(g, qkv, 4, grouped);
        q = llmrt_view(g, llmrt_slice(g, qkv, 2, 0, group), 2, q_flat);
        k = llmrt_view(g, llmrt_slice(g, qkv, 2, group, 1), 2, kv_flat);
        v = llmrt_view(g, llmrt_slice(g, qkv, 2, group + 1, 1), 2, kv_flat);
    } else if (names->qkv) {
        llmrt_value qkv = fused_qkv(g, x, p, names, &s);
        q = llmrt_slice(g, qkv, 1, 0, q_width);
        k = llmrt_slice(g, qkv, 1, q_width, kv_width);
        v = llmrt_slice(g, qkv, 1, q_width + kv_width, kv_width);
    } else {
        q = heads_projection(g, x, p, names->q, names->conv1d_layout, s.q_first, s.heads, p->num_heads);
        k = heads_projection(g, x, p, names->k, names->conv1d_layout, s.kv_first, s.kv_heads, p->num_kv_heads);
        v = heads_projection(g, x, p, names->v, names->conv1d_layout, s.kv_first, s.kv_heads, p->num_kv_heads);
    }
    if (names->q_norm) q = per_head_rmsnorm(g, q, names->q_norm, s.heads, p);
    if (names->k_norm) k = per_head_rmsnorm(g, k, names->k_norm, s.kv_heads, p);
    if (p->rope_scale != 0.0f && p->rope_scale != 1.0f) {
        q = rope_scaled(g, q, s.heads, p->head_dim, p->rotary_dim, p->rope_scale);
        k = rope_scaled(g, k, s.kv_heads, p->head_dim, p->rotary_dim, p->rope_scale);
    }
    llmrt_attention_params params = {
        .layer = layer,
        .num_heads = s.heads,
        .num_kv_heads = s.kv_heads,
        .head_dim = p->head_dim,
        .rotary_dim = p->rotary_dim,
        .rope_neox = !p->rope_interleaved,
        .scale = p->scale > 0.0f ? p->scale : 1.0f / sqrtf((float)p->head_dim),
        .sliding_window = p->sliding_window,
        .logit_softcap = p->logit_softcap,
        .alibi_max_bias = p->alibi_max_bias,
        /* ALiBi's slope is the global head's */
        .alibi_first_head = tensor_parallel(g) ? s.q_first : 0,
        .alibi_total_heads = tensor_parallel(g) ? p->num_heads : 0,
        .non_causal = p->non_causal,
    };
    llmrt_value attended = llmrt_attention(g, q, k, v, inv_freq, &params);
    return row_linear(g, attended, names->out, (int64_t)p->num_heads * p->head_dim, p->hidden, p->out_bias,
                      names->conv1d_layout);
}

/* Under tensor parallelism an MLP splits its intermediate width: the
 * projections into it column-parallel, the one out of it row-parallel, one
 * all-reduce per MLP. */
static int split_intermediate(llmrt_graph *g, const llmrt_mlp_layer_params *p) {
    if (!tensor_parallel(g) || p->intermediate % g->tp_size == 0) return 1;
    llmrt_graph_fail(g, LLMRT_ERR_UNSUPPORTED,
                     "tensor parallelism over %d ranks: the MLP's intermediate size %lld does not split",
                     (int)g->tp_size, (long long)p->intermediate);
    return 0;
}

llmrt_value llmrt_gated_mlp_layer(llmrt_graph *g, llmrt_value x, const llmrt_mlp_layer_params *p, const char *gate,
                                  const char *up, const char *down) {
    if (!split_intermediate(g, p)) return LLMRT_NO_VALUE;
    int64_t hidden = p->hidden, inter = p->intermediate;
    llmrt_value gated = llmrt_activation_layer(g, llmrt_column_linear_layer(g, x, gate, hidden, inter, p->bias),
                                               p->activation);
    llmrt_value product = llmrt_mul(g, gated, llmrt_column_linear_layer(g, x, up, hidden, inter, p->bias));
    return llmrt_row_linear_layer(g, product, down, inter, hidden, p->bias);
}

llmrt_value llmrt_fused_gated_mlp_layer(llmrt_graph *g, llmrt_value x, const llmrt_mlp_layer_params *p,
                                        const char *gate_up, const char *down) {
    if (!split_intermediate(g, p)) return LLMRT_NO_VALUE;
    const int64_t hidden = p->hidden, inter = p->intermediate;
    int64_t width = inter;
    llmrt_value both;
    if (tensor_parallel(g)) { /* this rank's gate rows, then its up rows */
        width = inter / g->tp_size;
        const int64_t segments[2][2] = {{g->tp_rank * width, width}, {inter + g->tp_rank * width, width}};
        both = segments_linear(g, x, gate_up, hidden, 2 * inter, p->bias, 0, segments, 2);
    } else {
        both = llmrt_linear_layer(g, x, gate_up, hidden, 2 * inter, p->bias, 0);
    }
    llmrt_value gated = llmrt_activation_layer(g, llmrt_slice(g, both, 1, 0, width), p->activation);
    llmrt_value product = llmrt_mul(g, gated, llmrt_slice(g, both, 1, width, width));
    return llmrt_row_linear_layer(g, product, down, inter, hidden, p->bias);
}

llmrt_value llmrt_mlp_layer(llmrt_graph *g, llmrt_value x, const llmrt_mlp_layer_params *p, const char *fc,
                            const char *proj, int conv1d_layout) {
    if (!split_intermediate(g, p)) return LLMRT_NO_VALUE;
    int64_t hidden = p->hidden, inter = p->intermediate;
    llmrt_value h = llmrt_activation_layer(g, column_linear(g, x, fc, hidden, inter, p->bias, conv1d_layout),
                                           p->activation);
    return row_linear(g, h, proj, inter, hidden, p->bias, conv1d_layout);
}

llmrt_value llmrt_moe_layer(llmrt_graph *g, llmrt_value x, const llmrt_moe_layer_params *p,
                            const llmrt_moe_layer_names *names) {
    const int64_t hidden = p->hidden, inter = p->intermediate, experts = p->num_experts;
    /* the router is replicated: every rank picks the same experts */
    llmrt_value router_logits = llmrt_linear_layer(g, x, names->router, hidden, experts, 0, 0);
    char gate[256], up[256], down[256];
    snprintf(gate, sizeof gate, "%s.*.%s.weight", names->experts, names->gate);
    snprintf(up, sizeof up, "%s.*.%s.weight", names->experts, names->up);
    snprintf(down, sizeof down, "%s.*.%s.weight", names->experts, names->down);
    if (!tensor_parallel(g))
        return llmrt_moe(g, x, router_logits, llmrt_expert_weight(g, gate, experts, inter, hidden),
                         llmrt_expert_weight(g, up, experts, inter, hidden),
                         llmrt_expert_weight(g, down, experts, hidden, inter), p->top_k);
    /* Each expert split as a dense MLP: gate and up column-parallel (its
     * intermediate rows), down row-parallel; the routing weights scale each
     * expert's output linearly, so the ranks' partial sums add up to it. */
    const llmrt_mlp_layer_params mlp = {.hidden = hidden, .intermediate = inter};
    if (!split_intermediate(g, &mlp)) return LLMRT_NO_VALUE;
    const int64_t in_dims[3] = {experts, inter, hidden}, out_dims[3] = {experts, hidden, inter};
    llmrt_value partial =
        llmrt_moe(g, x, router_logits, llmrt_weight_shard(g, gate, 3, in_dims, 1, g->tp_rank, g->tp_size),
                  llmrt_weight_shard(g, up, 3, in_dims, 1, g->tp_rank, g->tp_size),
                  llmrt_weight_shard(g, down, 3, out_dims, 2, g->tp_rank, g->tp_size), p->top_k);
    return llmrt_all_reduce(g, partial, g->tp_size);
}
