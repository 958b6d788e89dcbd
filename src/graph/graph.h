/* The network definition API: a graph of values built by calling functional
 * ops (ggml-style: each op appends a node and returns its value). Shapes are
 * inferred as ops are added; dims may be symbolic in the step's token count
 * (LLMRT_DIM_TOKENS) or its number of logit rows (LLMRT_DIM_LOGITS).
 *
 * Errors are sticky: the first failing op records a status and message, every
 * later op returns LLMRT_NO_VALUE, and llmrt_graph_status() reports it, so a
 * model builder checks once at the end.
 *
 * The same structure is the compiled plan: compiler passes rewrite nodes in
 * place (fusion, dead-code removal) and annotate them (arena offsets, weight
 * slots), and the engine file stores it. */
#ifndef LLMRT_GRAPH_GRAPH_H
#define LLMRT_GRAPH_GRAPH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "graph/ops.h"
#include "llmrt/dtype.h"

enum {
    LLMRT_GRAPH_MAX_DIMS = 6,
    LLMRT_GRAPH_MAX_INPUTS = 6,
    LLMRT_GRAPH_MAX_ATTRS = 8,
    LLMRT_GRAPH_MAX_SEGMENTS = 4,
};

/* Symbolic dims. A dim d < 0 means "this symbol"; concrete per step. */
#define LLMRT_DIM_TOKENS ((int64_t)-1) /* T: tokens in the step (all sequences packed) */
#define LLMRT_DIM_LOGITS ((int64_t)-2) /* L: rows whose logits the step returns */

typedef int32_t llmrt_value;
#define LLMRT_NO_VALUE ((llmrt_value)-1)

typedef struct llmrt_node {
    llmrt_op op;
    llmrt_dtype dtype;
    int32_t ndim;
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    int32_t num_inputs;
    llmrt_value inputs[LLMRT_GRAPH_MAX_INPUTS];
    int64_t iattr[LLMRT_GRAPH_MAX_ATTRS];
    float fattr[LLMRT_GRAPH_MAX_ATTRS];
    char *name;           /* owned: binding name of inputs and weights; a label otherwise */
    float *const_data;    /* owned: values of an LLMRT_OP_CONSTANT (f32) */
    /* compiler annotations */
    llmrt_value alias_of; /* views: the value whose buffer this one shares */
    int64_t arena_offset; /* activations: byte offset in the arena (-1: none) */
    int32_t weight_slot;  /* weights and constants: index in the engine's weight table */
    int32_t is_output;    /* kept alive to the end (the logits) */
    void *plugin_params;  /* owned: an LLMRT_OP_PLUGIN node's parameter blob (NULL if empty) */
    int64_t plugin_params_size;
    /* a tensor-parallel shard made of pieces of its checkpoint tensor
     * (llmrt_weight_segments): (offset, length) along the split axis, in
     * order; none for an equal split (llmrt_weight_shard) */
    int32_t num_segments;
    int64_t segments[LLMRT_GRAPH_MAX_SEGMENTS][2];
} llmrt_node;

typedef struct llmrt_graph {
    llmrt_node *nodes;
    int32_t num_nodes;
    int32_t capacity;
    llmrt_dtype act_dtype;    /* activations (f32 on CPU; f16/bf16 on GPUs) */
    llmrt_dtype weight_dtype; /* weight matrices; vectors (norms, biases) stay f32 */
    llmrt_status status;      /* first error, sticky */
    /* tensor parallelism: layers build this rank's shard of the network
     * (tp_size 0 or 1: the whole network) */
    int32_t tp_rank, tp_size;
    /* pipeline parallelism: this stage of pp_stages builds only its layer
     * range (pp_stages 0 or 1: every layer) */
    int32_t pp_stage, pp_stages;
    char error[512];
} llmrt_graph;

llmrt_graph *llmrt_graph_create(llmrt_dtype act_dtype, llmrt_dtype weight_dtype);
void llmrt_graph_free(llmrt_graph *g);
/* LLMRT_OK, or the first error (and re-records its message for llmrt_last_error). */
llmrt_status llmrt_graph_status(const llmrt_graph *g);
/* Records an error on the graph (first one wins) and returns LLMRT_NO_VALUE. */
llmrt_value llmrt_graph_fail(llmrt_graph *g, llmrt_status status, const char *fmt, ...) LLMRT_PRINTF(3, 4);

static inline const llmrt_node *llmrt_graph_node(const llmrt_graph *g, llmrt_value v) { return &g->nodes[v]; }
/* Appends a raw node (compiler passes and the engine loader); returns its value. */
llmrt_value llmrt_graph_append(llmrt_graph *g, const llmrt_node *node);
int64_t llmrt_node_numel(const llmrt_node *node, int64_t tokens, int64_t logits);
size_t llmrt_node_bytes(const llmrt_node *node, int64_t tokens, int64_t logits);

/* ---- leaves ------------------------------------------------------------- */
/* A step input bound by name: "token_ids" [T] i32, "positions" [T] i32,
 * "logits_indices" [L] i32. */
llmrt_value llmrt_input(llmrt_graph *g, const char *name, llmrt_dtype dtype, int32_t ndim, const int64_t *dims);
/* A checkpoint weight bound by name (e.g. "model.norm.weight"). Matrices are
 * stored in g->weight_dtype, vectors in f32. `transposed` marks a matrix
 * stored [in, out] (GPT-2 Conv1D) rather than nn.Linear's [out, in]. */
llmrt_value llmrt_weight(llmrt_graph *g, const char *name, int32_t ndim, const int64_t *dims);
/* A constant f32 tensor (copied); a scalar when ndim == 0. */
llmrt_value llmrt_constant(llmrt_graph *g, const char *label, const float *data, int32_t ndim, const int64_t *dims);
llmrt_value llmrt_scalar(llmrt_graph *g, float value);

/* ---- functional ops ----------------------------------------------------- */
/* a: [..., K]; b: [N, K] when transpose_b (nn.Linear weight) else [K, N] → [..., N] */
llmrt_value llmrt_matmul(llmrt_graph *g, llmrt_value a, llmrt_value b, int transpose_b);
/* Elementwise with numpy broadcasting over trailing dims. */
llmrt_value llmrt_add(llmrt_graph *g, llmrt_value a, llmrt_value b);
llmrt_value llmrt_sub(llmrt_graph *g, llmrt_value a, llmrt_value b);
llmrt_value llmrt_mul(llmrt_graph *g, llmrt_value a, llmrt_value b);
llmrt_value llmrt_div(llmrt_graph *g, llmrt_value a, llmrt_value b);
llmrt_value llmrt_pow(llmrt_graph *g, llmrt_value a, float exponent);
llmrt_value llmrt_neg(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_exp(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_sqrt(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_rsqrt(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_tanh(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_erf(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_sigmoid(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_relu(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_gelu(llmrt_graph *g, llmrt_value a); /* exact (erf) form */
/* Reductions over the last axis, keeping it as size 1. */
llmrt_value llmrt_sum(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_mean(llmrt_graph *g, llmrt_value a);
llmrt_value llmrt_softmax(llmrt_graph *g, llmrt_value a); /* over the last axis */
/* table: [rows, D]; indices: [n] i32 → [n, D] */
llmrt_value llmrt_gather(llmrt_graph *g, llmrt_value table, llmrt_value indices);
/* The same reading row indices[i] + offset (OPT's positions start at row 2). */
llmrt_value llmrt_gather_offset(llmrt_graph *g, llmrt_value table, llmrt_value indices, int64_t offset);
/* A vocab-parallel embedding's gather: table holds rows [first_row,
 * first_row + rows) of the whole table; indices outside them give zero
 * rows (another rank holds them) instead of an error.
 * table: [rows, D]; indices: [n] i32 → [n, D] (iattr[0] = first_row, iattr[1] = 1) */
llmrt_value llmrt_gather_shard(llmrt_graph *g, llmrt_value table, llmrt_value indices, int64_t first_row);
llmrt_value llmrt_concat(llmrt_graph *g, const llmrt_value *parts, int32_t count, int32_t axis);
llmrt_value llmrt_slice(llmrt_graph *g, llmrt_value a, int32_t axis, int64_t start, int64_t length);
/* Reinterprets the shape (one dim may be a symbol; none is inferred). */
llmrt_value llmrt_view(llmrt_graph *g, llmrt_value a, int32_t ndim, const int64_t *dims);
llmrt_value llmrt_permute(llmrt_graph *g, llmrt_value a, const int32_t *perm);
llmrt_value llmrt_cast(llmrt_graph *g, llmrt_value a, llmrt_dtype dtype);

/* ---- plugin ops ----------------------------------------------------------- */
typedef struct llmrt_attention_params {
    int32_t layer;        /* which KV cache layer */
    int32_t num_heads;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t rotary_dim;   /* 0: no RoPE */
    int32_t rope_neox;    /* 1: rotate_half pairing (LLaMA); 0: interleaved (GPT-J) */
    float scale;          /* usually 1/sqrt(head_dim) */
    /* Attention variants (0 = off). A key at position j is seen from query
     * position i when i − window < j ≤ i (Mistral, Gemma 2/3 local layers);
     * scores = softcap·tanh(scores/softcap) (Gemma 2), applied before the
     * ALiBi bias slope_h·(j − i) (MPT, BLOOM; slopes llmrt_alibi_slope). */
    int32_t sliding_window; /* iattr[7] */
    float logit_softcap;    /* fattr[1] */
    float alibi_max_bias;   /* fattr[2]: 8 for BLOOM and MPT's default */
    /* Under tensor parallelism a rank holds heads [alibi_first_head,
     * alibi_first_head + num_heads) of alibi_total_heads, whose slopes its
     * heads take (fattr[3], fattr[4]; 0, 0: the heads are all there are) */
    int32_t alibi_first_head, alibi_total_heads;
    int32_t non_causal;     /* iattr[6]; 1: each token attends to its whole sequence (encoders);
                               the sequence must come whole in one step */
} llmrt_attention_params;

/* ALiBi's slope of head h of n (Press et al.; BLOOM's and MPT's
 * build_alibi): for n a power of two 2^(−max_bias·(h+1)/n); otherwise the
 * first p = 2^⌊log2 n⌋ heads take the slopes of p heads and the rest every
 * other slope of 2p heads (odd exponents). */
static inline float llmrt_alibi_slope(int32_t h, int32_t n, float max_bias) {
    int32_t p = 1;
    while (2 * p <= n) p *= 2;
    if (h < p) return exp2f(-max_bias * (float)(h + 1) / (float)p);
    return exp2f(-max_bias * (float)(2 * (h - p) + 1) / (float)(2 * p));
}

/* Causal (with non_causal: bidirectional) self-attention over the paged KV
 * cache for the packed step: applies RoPE to q and k (angles positions ·
 * inv_freq, inv_freq [rotary_dim/2] a constant, or LLMRT_NO_VALUE), appends
 * k, v to the layer's cache and attends.
 * q: [T, heads*D], k, v: [T, kv_heads*D] → [T, heads*D] */
llmrt_value llmrt_attention(llmrt_graph *g, llmrt_value q, llmrt_value k, llmrt_value v,
                            llmrt_value inv_freq, const llmrt_attention_params *params);

/* Mixture of experts with SwiGLU experts (Mixtral): per token, softmax over
 * the router logits, the top_k experts (ties to the lower index, as
 * torch.topk), their weights renormalised to sum to 1, and
 *   y[t] = Σ_j w[t,j] · down_e(silu(gate_e(x[t])) · up_e(x[t])),  e = expert j of t.
 * Expert weights are stacked, one expert's matrix contiguous after another's
 * (what an expert-parallel split cuts): see llmrt_expert_weight.
 * x: [T, H], router_logits: [T, E] (any float dtype, softmax in f32),
 * w_gate, w_up: [E, I, H], w_down: [E, H, I] → [T, H] */
llmrt_value llmrt_moe(llmrt_graph *g, llmrt_value x, llmrt_value router_logits, llmrt_value w_gate, llmrt_value w_up,
                      llmrt_value w_down, int32_t top_k);
/* A stacked weight [count, rows, cols] of the checkpoint's per-expert
 * matrices: `pattern` holds one '*', which binding replaces by 0..count-1
 * (e.g. "model.layers.0.block_sparse_moe.experts.*.w1.weight"). */
llmrt_value llmrt_expert_weight(llmrt_graph *g, const char *pattern, int64_t count, int64_t rows, int64_t cols);
/* A registered plugin op (llmrt/plugin.h): the plugin infers the output's
 * shape from the inputs' and `params` (params_size bytes, copied into the
 * node and stored in the engine verbatim). The engine records the plugin's
 * name and version; loading it needs the same plugin registered.
 * inputs: [num_inputs] values (1..6) → the shape the plugin infers */
llmrt_value llmrt_plugin_op(llmrt_graph *g, const char *name, const llmrt_value *inputs, int32_t num_inputs,
                            const void *params, size_t params_size);

/* ---- collective ops (tensor parallelism) ---------------------------------- */
/* x summed over the `ranks` ranks of the tensor-parallel group (a row-
 * parallel projection's partial products). x: [...] → [...] */
llmrt_value llmrt_all_reduce(llmrt_graph *g, llmrt_value x, int32_t ranks);
/* Every rank's x stacked: x: [...] → [ranks, ...], rank r's at index r
 * (a vocab-parallel LM head's logit columns). */
llmrt_value llmrt_all_gather(llmrt_graph *g, llmrt_value x, int32_t ranks);
/* Pipeline stages hand activations on. send: x: [...] → [...] (x itself,
 * after it went to rank `peer`); recv: a [dims] tensor from rank `peer`,
 * received once `after` is computed (so the stage's sends come first). */
llmrt_value llmrt_send(llmrt_graph *g, llmrt_value x, int32_t peer, int32_t ranks);
llmrt_value llmrt_recv(llmrt_graph *g, llmrt_value after, llmrt_dtype dtype, int32_t ndim, const int64_t *dims,
                       int32_t peer, int32_t ranks);
/* A weight that is this rank's shard of checkpoint tensor `name` (full
 * shape full_dims, 1 to 3 dims: a stack of experts "<...>.*.<...>" too):
 * the `index`-th of `count` equal parts along `axis`. Binding slices the
 * full tensor. */
llmrt_value llmrt_weight_shard(llmrt_graph *g, const char *name, int32_t ndim, const int64_t *full_dims,
                               int32_t axis, int32_t index, int32_t count);

/* A weight that is this rank's shard of checkpoint tensor `name` (full
 * shape full_dims) made of num_segments pieces of it along `axis`, each
 * segments[i] = {offset, length}, laid one after another: a fused
 * projection's rows of this rank's query heads, then of its key and value
 * heads (Megatron's split of [q | k | v]). rank, ranks: which shard it is.
 * Binding copies the pieces out of the full tensor. */
llmrt_value llmrt_weight_segments(llmrt_graph *g, const char *name, int32_t ndim, const int64_t *full_dims,
                                  int32_t axis, const int64_t (*segments)[2], int32_t num_segments, int32_t rank,
                                  int32_t ranks);

/* Names the graph's output (the logits). */
void llmrt_graph_mark_output(llmrt_graph *g, llmrt_value v);

#endif
