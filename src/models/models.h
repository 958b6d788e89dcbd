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
