/* The model spec: what a network builder needs to know about a checkpoint,
 * independent of how its config.json spells it. src/import/hf_config.c fills
 * it from config.json (both the transformers-4 and transformers-5 dialects);
 * the engine file stores it; src/models/<family>.c turns it into a network.
 * Its activation and RoPE types are the layers' own (layers/layer_params.h). */
#ifndef LLMRT_MODELS_MODEL_CONFIG_H
#define LLMRT_MODELS_MODEL_CONFIG_H

#include <stdint.h>

#include "layers/layer_params.h"
#include "llmrt/dtype.h"

enum { LLMRT_MAX_EOS_TOKENS = 8, LLMRT_NAME_CAPACITY = 64 };

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
    /* mixture of experts (Mixtral); 0 for dense models */
    int32_t num_experts;          /* num_local_experts */
    int32_t num_experts_per_tok;  /* top-k routed experts per token */
    /* attention variants (src/import/hf_config_variants.c); 0 = off */
    float query_pre_attn_scalar;    /* scores scaled by its rsqrt, not head_dim's (Gemma 2/3) */
    float attn_logit_softcapping;   /* scores = cap·tanh(scores/cap) (Gemma 2) */
    float final_logit_softcapping;  /* logits = cap·tanh(logits/cap) (Gemma 2) */
    int32_t sliding_window_pattern; /* with sliding_window: 0 = every layer windowed; N = layer l
                                       global when (l + 1) % N == 0 (layer_types) */
    float rope_local_theta;         /* RoPE base of the windowed layers (Gemma 3); 0 = rope.theta */
    float alibi_max_bias;           /* ALiBi position bias, no RoPE (MPT, BLOOM) */
    /* block layouts (GPT-J, GPT-NeoX, Falcon, OPT, GPTBigCode; hf_config_layouts.c) */
    int32_t parallel_residual;  /* h + attn(n1(h)) + mlp(n2(h)): both branches read the block's input */
    int32_t parallel_norms;     /* with parallel_residual: 1 = one norm feeds both, 2 = one each */
    int32_t qkv_grouped;        /* fused qkv per KV head: [kv_heads, heads/kv_heads + 2, D], not [q | k | v] */
    int32_t post_norm;          /* OPT do_layer_norm_before = false: h = norm(h + f(h)) */
    int32_t final_norm;         /* a norm before the head (OPT may drop it) */
    int32_t embed_dim;          /* OPT word_embed_proj_dim: embedding width, projected to hidden */
    /* encoders (BERT) */
    int32_t type_vocab_size;    /* token type (segment) embedding rows; 0 = none */
    int32_t num_labels;         /* sequence classification head outputs; 0 = no head */
} llmrt_model_config;

#endif
