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
} llmrt_rope_type;

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
} llmrt_rope_config;

/* Self-attention: x [T, hidden] → q [T, num_heads·head_dim],
 * k and v [T, num_kv_heads·head_dim] → [T, hidden]. */
typedef struct llmrt_attention_layer_params {
    int64_t hidden;
    int32_t num_heads;
    int32_t num_kv_heads;     /* < num_heads: grouped-query attention */
    int32_t head_dim;
    int32_t rotary_dim;       /* dimensions RoPE rotates per head; 0 = no RoPE */
    int qkv_bias;             /* the q/k/v projections carry a bias */
    int out_bias;             /* the output projection carries a bias */
    int non_causal;           /* bidirectional (encoder) attention */
} llmrt_attention_layer_params;

/* An MLP: x [T, hidden] → [T, intermediate] → [T, hidden]. */
typedef struct llmrt_mlp_layer_params {
    int64_t hidden;
    int64_t intermediate;
    llmrt_activation activation;
    int bias;                 /* every projection carries a bias */
} llmrt_mlp_layer_params;

#endif
