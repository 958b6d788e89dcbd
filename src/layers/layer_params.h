/* What the layers are parameterised by: the activation, the RoPE scaling,
 * and the sizes of attention and MLP blocks. The model spec
 * (src/models/model_config.h) uses the first two as they are; each family
 * translates the spec into the block parameters (src/models/family_common.c). */
#ifndef LLMRT_LAYERS_LAYER_PARAMS_H
#define LLMRT_LAYERS_LAYER_PARAMS_H

#include <stdint.h>

typedef enum llmrt_rope_type {
    LLMRT_ROPE_NONE = 0,    /* no rotary embedding (e.g. GPT-2: learned positions) */
    LLMRT_ROPE_DEFAULT = 1, /* inv_freq = theta^(-2i/d) */
    LLMRT_ROPE_LINEAR = 2,  /* inv_freq / factor */
    LLMRT_ROPE_LLAMA3 = 3,  /* LLaMA-3.1 frequency-banded scaling */
    LLMRT_ROPE_LONGROPE = 4, /* Phi-3 LongRoPE: per-frequency short/long factors, cos/sin scaled */
} llmrt_rope_type;

/* LongRoPE lists one factor per rotated frequency: rotary_dim / 2 of them. */
enum { LLMRT_ROPE_MAX_FACTORS = 256 };

typedef enum llmrt_activation {
    LLMRT_ACT_SILU = 0,
    LLMRT_ACT_GELU = 1,       /* exact erf form ("gelu") */
    LLMRT_ACT_GELU_TANH = 2,  /* tanh approximation ("gelu_new", "gelu_pytorch_tanh") */
    LLMRT_ACT_RELU = 3,
} llmrt_activation;

typedef struct llmrt_rope_config {
    llmrt_rope_type type;
    float theta;              /* base, e.g. 10000 or 500000 */
    float factor;             /* linear and llama3 */
    float low_freq_factor;    /* llama3 */
    float high_freq_factor;   /* llama3 */
    int32_t original_max_position_embeddings; /* llama3 */
    int32_t rotary_dim;       /* dimensions rotated per head (head_dim * partial_rotary_factor) */
    int32_t interleaved;      /* pairs (2i, 2i+1) (GPT-J, GLM) rather than (i, i + rotary_dim/2) */
    /* longrope: original_max_position_embeddings above, then */
    float attention_factor;   /* cos and sin are scaled by it (1: none) */
    int32_t use_long_factors; /* the engine's choice between the lists (set when it is built) */
    float short_factor[LLMRT_ROPE_MAX_FACTORS];
    float long_factor[LLMRT_ROPE_MAX_FACTORS];
} llmrt_rope_config;

/* Self-attention: x [T, hidden] → q [T, num_heads·head_dim],
 * k and v [T, num_kv_heads·head_dim] → [T, hidden]. */
typedef struct llmrt_attention_layer_params {
    int64_t hidden;
    int32_t num_heads;
    int32_t num_kv_heads;     /* < num_heads: grouped-query attention */
    int32_t head_dim;
    int32_t rotary_dim;       /* dimensions RoPE rotates per head; 0 = no RoPE */
    int rope_interleaved;     /* RoPE pairs (2i, 2i+1) (GPT-J) rather than (i, i + rotary_dim/2) */
    float rope_scale;         /* LongRoPE's cos/sin scale, applied to q and k's rotated dims (0 or 1: none) */
    int qkv_bias;             /* the q/k/v projections carry a bias */
    int out_bias;             /* the output projection carries a bias */
    /* Attention variants (0 = off; see llmrt_attention_params). */
    float scale;              /* score scale; 0 = 1/sqrt(head_dim) */
    int32_t sliding_window;   /* keys within the last `sliding_window` positions */
    float logit_softcap;      /* scores = cap·tanh(scores/cap) */
    float alibi_max_bias;     /* ALiBi bias instead of (or beside) RoPE */
    /* Per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3): weights
     * "<names.q_norm>.weight" [head_dim]; qk_norm_plus_one: Gemma's (1 + w). */
    float qk_norm_eps;
    int qk_norm_plus_one;
    int non_causal;           /* bidirectional (encoder) attention */
} llmrt_attention_layer_params;

/* An MLP: x [T, hidden] → [T, intermediate] → [T, hidden]. */
typedef struct llmrt_mlp_layer_params {
    int64_t hidden;
    int64_t intermediate;
    llmrt_activation activation;
    int bias;                 /* every projection carries a bias */
} llmrt_mlp_layer_params;

/* A mixture of SwiGLU experts: x [T, hidden] → top_k of num_experts
 * experts, each [T_e, hidden] → [T_e, intermediate] → [T_e, hidden]. */
typedef struct llmrt_moe_layer_params {
    int64_t hidden;
    int64_t intermediate;     /* one expert's MLP width */
    int32_t num_experts;
    int32_t top_k;            /* experts per token */
} llmrt_moe_layer_params;

#endif
