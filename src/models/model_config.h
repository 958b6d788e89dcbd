/* The model spec: what a network builder needs to know about a checkpoint,
 * independent of how its config.json spells it. src/import/hf_config.c fills
 * it from config.json (both the transformers-4 and transformers-5 dialects);
 * the engine file stores it; src/models/<family>.c turns it into a network. */
#ifndef LLMRT_MODELS_MODEL_CONFIG_H
#define LLMRT_MODELS_MODEL_CONFIG_H

#include <stdint.h>

#include "llmrt/dtype.h"

enum { LLMRT_MAX_EOS_TOKENS = 8, LLMRT_NAME_CAPACITY = 64 };

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

typedef struct llmrt_model_config {
    char architecture[LLMRT_NAME_CAPACITY]; /* HF "architectures"[0], e.g. "LlamaForCausalLM" */
    char model_type[LLMRT_NAME_CAPACITY];   /* HF "model_type", e.g. "llama" ("" if absent) */
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t num_layers;
    int32_t num_heads;
    int32_t num_kv_heads;       /* = num_heads when the config omits it */
    int32_t head_dim;           /* = hidden_size / num_heads when the config omits it */
    int32_t intermediate_size;  /* MLP width (GPT-2: n_inner, default 4 * hidden) */
    int32_t max_position_embeddings;
    float norm_eps;             /* rms_norm_eps or layer_norm_epsilon */
    llmrt_activation activation;
    int32_t tie_word_embeddings;
    int32_t attention_bias;     /* q/k/v projections carry a bias */
    int32_t attention_out_bias; /* the output projection carries a bias */
    int32_t mlp_bias;
    int32_t sliding_window;     /* 0 = none */
    llmrt_rope_config rope;
    int32_t bos_token_id;       /* -1 when unknown */
    int32_t pad_token_id;       /* -1 when unknown */
    int32_t num_eos_tokens;
    int32_t eos_token_ids[LLMRT_MAX_EOS_TOKENS];
    llmrt_dtype checkpoint_dtype; /* "torch_dtype"/"dtype", INVALID if absent */
} llmrt_model_config;

#endif
