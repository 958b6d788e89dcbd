/* The model registry: HF `architectures` names → network builders. Each
 * family lives in its own file (llama.c, gpt2.c, ...) and only calls layers. */
#ifndef LLMRT_MODELS_MODELS_H
#define LLMRT_MODELS_MODELS_H

#include "graph/graph.h"
#include "layers/layer_params.h"
#include "models/model_config.h"

typedef struct llmrt_model_family {
    const char *architecture; /* "LlamaForCausalLM" */
    /* Checks the config for this family (field combinations it cannot run). */
    llmrt_status (*validate)(const llmrt_model_config *config);
    /* Builds the network: inputs token_ids [T], positions [T],
     * logits_indices [L] → logits [L, vocab] (marked as output). */
    llmrt_value (*build)(llmrt_graph *g, const llmrt_model_config *config);
    /* Alternative checkpoint names tried when a weight is missing: returns
     * the name with a known prefix changed, or NULL (e.g. GPT-2 checkpoints
     * saved without "transformer."). */
    const char *(*alias_weight)(const char *name, char *buf, size_t size);
} llmrt_model_family;

/* The family for config->architecture, or an LLMRT_ERR_UNSUPPORTED error
 * listing the supported ones. */
llmrt_status llmrt_model_lookup(const char *architecture, const llmrt_model_family **out);
/* Comma-separated list of supported architectures (static string). */
const char *llmrt_model_supported_list(void);

/* Builds the step inputs every family shares. */
typedef struct llmrt_model_inputs {
    llmrt_value token_ids, positions, logits_indices;
} llmrt_model_inputs;
llmrt_model_inputs llmrt_model_declare_inputs(llmrt_graph *g);
/* The spec's attention and MLP sizes, biases and activation as the layers
 * take them (family_common.c). */
llmrt_attention_layer_params llmrt_model_attention_params(const llmrt_model_config *config);
llmrt_mlp_layer_params llmrt_model_mlp_params(const llmrt_model_config *config);
/* The sliding window of layer l: the config's window where layer l is
 * windowed (sliding_window_pattern), else 0. */
int32_t llmrt_model_layer_window(const llmrt_model_config *config, int32_t layer);
/* Gemma's embedding scale √hidden, rounded to the graph's activation type
 * as HF rounds it to the model's dtype. */
float llmrt_model_embedding_scale(const llmrt_graph *g, const llmrt_model_config *config);
/* The rope config's inverse frequencies [rotary_dim / 2] as a constant. */
llmrt_value llmrt_model_rope_inv_freq(llmrt_graph *g, const llmrt_rope_config *rope, const char *label);
/* The spec's RoPE inverse frequencies as a constant [rotary_dim / 2], or
 * LLMRT_NO_VALUE for learned positions. */
llmrt_value llmrt_model_rope_frequencies(llmrt_graph *g, const llmrt_model_config *config);

/* The weight prefixes of decoder layer l in the HF "model.layers.<l>"
 * layout (LLaMA and the families that copied it), each ready to pass to
 * a layer; a family uses the ones its checkpoint has. */
typedef struct llmrt_model_layer_names {
    char input_norm[96];     /* input_layernorm */
    char post_attn_norm[96]; /* post_attention_layernorm */
    char pre_ff_norm[96];    /* pre_feedforward_layernorm (Gemma 2/3) */
    char post_ff_norm[96];   /* post_feedforward_layernorm (Gemma 2/3) */
    char q[96], k[96], v[96], o[96], qkv[96]; /* self_attn.{q,k,v,o,qkv}_proj */
    char q_norm[96], k_norm[96];              /* self_attn.{q,k}_norm */
    char gate[96], up[96], down[96], gate_up[96]; /* mlp.{gate,up,down,gate_up}_proj */
} llmrt_model_layer_names;
void llmrt_model_format_layer_names(llmrt_model_layer_names *names, int32_t layer);

/* The LLaMA-layout head: lm_head(norm(h[logits_indices])) → [L, vocab],
 * the final RMSNorm "model.norm" (Gemma's x̂·(1 + w) where plus_one) and
 * "lm_head" or the tied "model.embed_tokens"; not yet marked the output. */
llmrt_value llmrt_model_rmsnorm_logits(llmrt_graph *g, llmrt_value h, const llmrt_model_inputs *in,
                                       const llmrt_model_config *config, int plus_one);

/* Family builders that a near relative reuses. Gemma 2's network
 * (gemma2.c); with gemma3, Gemma 3's: per-head q/k RMSNorm (1 + w) and an
 * unscaled RoPE of base rope_local_theta on the windowed layers. */
llmrt_value llmrt_gemma2_build(llmrt_graph *g, const llmrt_model_config *config, int gemma3);
/* Phi-3's network (phi3.c): RMSNorm blocks with a fused gate_up_proj, and
 * q, k and v in one qkv_proj where fused_qkv, else three (GLM). */
llmrt_value llmrt_phi3_build(llmrt_graph *g, const llmrt_model_config *config, int fused_qkv);
/* LLaMA's attention half of a decoder layer (llama.c), shared by its MoE
 * relatives: h += o(attn(rope(q(n1(h))), rope(k(..)), v(..))) with the KV
 * cache of layer cache_layer; returns n2(h), the input of the MLP half.
 * h: [T, hidden]. */
llmrt_value llmrt_llama_attention_half(llmrt_graph *g, const llmrt_model_config *config,
                                       const llmrt_attention_layer_params *attention,
                                       const llmrt_model_layer_names *names, int32_t cache_layer, llmrt_value freq,
                                       llmrt_value *h);
/* GPT-2's network (gpt2.c): Conv1D weights [in, out] where conv1d_layout;
 * else nn.Linear ones and c_attn laid out as config->qkv_grouped says
 * (GPTBigCode). */
llmrt_value llmrt_gpt2_build(llmrt_graph *g, const llmrt_model_config *config, int conv1d_layout);

/* Pipeline parallelism (family_common.c): the layers [first, last) of this
 * stage, a contiguous near-equal share (g->pp_stage of g->pp_stages; every
 * layer when not split). */
void llmrt_model_stage_layers(const llmrt_graph *g, int32_t num_layers, int32_t *first, int32_t *last);
/* The hidden state a stage starts from: the previous stage's, received
 * [T, hidden]; on the first stage NO_VALUE (the family embeds the ids). */
llmrt_value llmrt_model_stage_receive(llmrt_graph *g, const llmrt_model_inputs *in, int64_t hidden);
/* Where a stage ends. Not the last: hands h on to the next stage and takes
 * the last stage's logits [L, vocab] as its output; returns 1 (the family
 * stops there). The last: returns 0 (the family computes the logits and
 * passes them to llmrt_model_stage_logits). */
int llmrt_model_stage_hand_on(llmrt_graph *g, llmrt_value h, int64_t vocab);
/* The last stage's logits sent to every other stage, marked the output. */
void llmrt_model_stage_logits(llmrt_graph *g, llmrt_value logits);

extern const llmrt_model_family llmrt_family_llama;
extern const llmrt_model_family llmrt_family_mistral;
extern const llmrt_model_family llmrt_family_qwen2;
extern const llmrt_model_family llmrt_family_gpt2;
extern const llmrt_model_family llmrt_family_mixtral;
/* attention variants: q/k norm, sliding windows, soft-caps, ALiBi */
extern const llmrt_model_family llmrt_family_qwen3;
extern const llmrt_model_family llmrt_family_gemma;
extern const llmrt_model_family llmrt_family_gemma2;
extern const llmrt_model_family llmrt_family_gemma3;
extern const llmrt_model_family llmrt_family_mpt;
extern const llmrt_model_family llmrt_family_bloom;
/* rotary and layout variants */
extern const llmrt_model_family llmrt_family_gpt_neox;
extern const llmrt_model_family llmrt_family_gptj;
extern const llmrt_model_family llmrt_family_phi3;
extern const llmrt_model_family llmrt_family_falcon;
extern const llmrt_model_family llmrt_family_opt;
extern const llmrt_model_family llmrt_family_gpt_bigcode;
extern const llmrt_model_family llmrt_family_glm;
extern const llmrt_model_family llmrt_family_chatglm;
/* encoders (bert.c) */
extern const llmrt_model_family llmrt_family_bert;
extern const llmrt_model_family llmrt_family_bert_classifier;

/* 1 for an encoder (BERT): non-causal, one forward per input, no
 * sampling. Its build takes token_type_ids [T] as well, and its output
 * rows are llmrt_encoder_row_layout's (the last hidden state, then the
 * pooled vector and the classifier logits where the model has them). */
int llmrt_model_is_encoder(const char *architecture);

/* Where an encoder's output row keeps its parts: [hidden | pooled |
 * logits], widths hidden_size, pooled_width (hidden_size or 0) and
 * num_labels (0 without a classifier). */
typedef struct llmrt_encoder_row_layout {
    int32_t hidden, pooled, labels; /* widths */
} llmrt_encoder_row_layout;
llmrt_encoder_row_layout llmrt_encoder_layout(const llmrt_model_config *config);

#endif
