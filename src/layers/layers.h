/* Reusable blocks built only from the functional API (src/graph/). Layers
 * name their weights with the checkpoint's names (the model passes the
 * prefix), so binding weights is a lookup by name. Shapes: x is [T, in]
 * (or [L, in]) throughout. */
#ifndef LLMRT_LAYERS_LAYERS_H
#define LLMRT_LAYERS_LAYERS_H

#include "graph/graph.h"
#include "layers/layer_params.h"

/* y = x·Wᵀ + b. Weight "<prefix>.weight" is [out, in] (nn.Linear) or, when
 * conv1d_layout, [in, out] (GPT-2 Conv1D); bias "<prefix>.bias" if has_bias. */
llmrt_value llmrt_linear_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                               int has_bias, int conv1d_layout);
/* Tensor-parallel halves of a Linear (Megatron-LM's split; with
 * g->tp_size <= 1 both are llmrt_linear_layer). Column-parallel: this rank
 * computes outputs [rank·out/tp, (rank+1)·out/tp), x: [T, in] → [T, out/tp].
 * Row-parallel: this rank holds inputs [rank·in/tp, ...) and the partial
 * products are summed over ranks (ALL_REDUCE), bias added once after:
 * x: [T, in/tp] → [T, out]. */
llmrt_value llmrt_column_linear_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                                      int has_bias);
llmrt_value llmrt_row_linear_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t in, int64_t out,
                                   int has_bias);
/* The LM head, vocab-parallel under tensor parallelism: each rank computes
 * its vocab/tp logit columns, ALL_GATHER stacks them [tp, L, vocab/tp] and
 * a permute lays them out [L, vocab]. x: [L, hidden] → [L, vocab] */
llmrt_value llmrt_lm_head_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t hidden, int64_t vocab);
/* ids: [T] i32 → [T, dim]; table "<name>" [vocab, dim] (vocab-parallel
 * under tensor parallelism: a shard of rows, then ALL_REDUCE) */
llmrt_value llmrt_embedding_layer(llmrt_graph *g, llmrt_value ids, const char *name, int64_t vocab, int64_t dim);
/* x·rsqrt(mean(x²) + eps)·w, weight "<prefix>.weight" [dim] */
llmrt_value llmrt_rmsnorm_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps);
/* x·rsqrt(mean(x²) + eps)·(1 + w): Gemma's RMSNorm, weights stored as offsets from 1 */
llmrt_value llmrt_rmsnorm_plus_one_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps);
/* (x − mean)·rsqrt(var + eps)·w, weight "<prefix>.weight" only (MPT) */
llmrt_value llmrt_layernorm_no_bias_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps);
/* (x − mean)·rsqrt(var + eps)·w + b, weights "<prefix>.weight", "<prefix>.bias" */
llmrt_value llmrt_layernorm_layer(llmrt_graph *g, llmrt_value x, const char *prefix, int64_t dim, float eps);
/* The activation as functional ops (silu = x·sigmoid(x), gelu_tanh, ...). */
llmrt_value llmrt_activation_layer(llmrt_graph *g, llmrt_value x, llmrt_activation act);

/* cap·tanh(x / cap): Gemma 2's soft-capping of the final logits. */
llmrt_value llmrt_softcap_layer(llmrt_graph *g, llmrt_value x, float cap);

/* RoPE inverse frequencies [rotary_dim / 2] for a rope config, computed in
 * fp32 the way transformers does (default, linear, llama3, longrope with the
 * list rope->use_long_factors picks). */
void llmrt_rope_inv_freq(const llmrt_rope_config *rope, float *inv_freq);

typedef struct llmrt_attention_layer_names {
    const char *q, *k, *v; /* separate projections' prefixes, or NULL with qkv */
    const char *qkv;       /* one fused projection (GPT-2 c_attn), or NULL */
    const char *out;
    int conv1d_layout;
    const char *q_norm, *k_norm; /* per-head q/k RMSNorm prefixes, or NULL */
    int qkv_per_head;            /* qkv's rows are [head][q, k, v][head_dim] (BLOOM), not [q | k | v] */
    int qkv_grouped;       /* qkv laid out per KV head [kv_heads, heads/kv_heads + 2, D] (GPT-NeoX, Falcon),
                              not [q | k | v] */
} llmrt_attention_layer_names;

/* Self-attention block: projections, the attention plugin op (RoPE inside),
 * output projection. x: [T, hidden] → [T, hidden]. inv_freq may be NO_VALUE.
 * Under tensor parallelism the rank's heads only (fused qkv: its rows of
 * them, in the names' layout), the output projection row-parallel. */
llmrt_value llmrt_attention_layer(llmrt_graph *g, llmrt_value x, const llmrt_attention_layer_params *params,
                                  int32_t layer, const llmrt_attention_layer_names *names, llmrt_value inv_freq);

/* down(act(gate(x)) · up(x)) — LLaMA's SwiGLU MLP. */
llmrt_value llmrt_gated_mlp_layer(llmrt_graph *g, llmrt_value x, const llmrt_mlp_layer_params *params,
                                  const char *gate, const char *up, const char *down);
/* The same with gate and up as one projection "<gate_up>" [2·intermediate,
 * hidden], gate rows first (Phi-3 gate_up_proj, GLM). */
llmrt_value llmrt_fused_gated_mlp_layer(llmrt_graph *g, llmrt_value x, const llmrt_mlp_layer_params *params,
                                        const char *gate_up, const char *down);
/* proj(act(fc(x))) — GPT-2's MLP. */
llmrt_value llmrt_mlp_layer(llmrt_graph *g, llmrt_value x, const llmrt_mlp_layer_params *params, const char *fc,
                            const char *proj, int conv1d_layout);

/* Mixtral's sparse MoE block: router linear "<router>.weight" [E, hidden],
 * then the experts "<experts>.<e>.<gate|up|down>.weight" (the suffixes as
 * the checkpoint names them: w1, w3, w2 for Mixtral) stacked per expert.
 * Under tensor parallelism every expert's intermediate width splits as a
 * dense MLP's (router replicated), ALL_REDUCE after. x: [T, hidden] */
typedef struct llmrt_moe_layer_names {
    const char *router;  /* "model.layers.0.block_sparse_moe.gate" */
    const char *experts; /* "model.layers.0.block_sparse_moe.experts" */
    const char *gate, *up, *down;
} llmrt_moe_layer_names;
llmrt_value llmrt_moe_layer(llmrt_graph *g, llmrt_value x, const llmrt_moe_layer_params *params,
                            const llmrt_moe_layer_names *names);

#endif
