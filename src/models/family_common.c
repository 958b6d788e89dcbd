/* What every family's network builder shares: the step's inputs, and the
 * model spec translated into the layers' parameters. */
#include <math.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "layers/layers.h"
#include "models/models.h"

llmrt_model_inputs llmrt_model_declare_inputs(llmrt_graph *g) {
    int64_t tokens = LLMRT_DIM_TOKENS, logits = LLMRT_DIM_LOGITS;
    llmrt_model_inputs in;
    in.token_ids = llmrt_input(g, "token_ids", LLMRT_DTYPE_I32, 1, &tokens);
    in.positions = llmrt_input(g, "positions", LLMRT_DTYPE_I32, 1, &tokens);
    in.logits_indices = llmrt_input(g, "logits_indices", LLMRT_DTYPE_I32, 1, &logits);
    return in;
}

llmrt_attention_layer_params llmrt_model_attention_params(const llmrt_model_config *c) {
    return (llmrt_attention_layer_params){
        .hidden = c->hidden_size,
        .num_heads = c->num_heads,
        .num_kv_heads = c->num_kv_heads,
        .head_dim = c->head_dim,
        .rotary_dim = c->rope.type == LLMRT_ROPE_NONE ? 0 : c->rope.rotary_dim,
        .rope_interleaved = c->rope.interleaved,
        .rope_scale = c->rope.type == LLMRT_ROPE_LONGROPE ? c->rope.attention_factor : 1.0f,
        .qkv_bias = c->attention_bias,
        .out_bias = c->attention_out_bias,
        .sliding_window = c->sliding_window,
    };
}

llmrt_mlp_layer_params llmrt_model_mlp_params(const llmrt_model_config *c) {
    return (llmrt_mlp_layer_params){
        .hidden = c->hidden_size,
        .intermediate = c->intermediate_size,
        .activation = c->activation,
        .bias = c->mlp_bias,
    };
}

llmrt_value llmrt_model_rope_inv_freq(llmrt_graph *g, const llmrt_rope_config *rope, const char *label) {
    int64_t half = rope->rotary_dim / 2;
    float *inv_freq = malloc((size_t)(half + 1) * sizeof *inv_freq);
    if (!inv_freq) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_rope_inv_freq(rope, inv_freq);
    llmrt_value freq = llmrt_constant(g, label, inv_freq, 1, &half);
    free(inv_freq);
    return freq;
}

int32_t llmrt_model_layer_window(const llmrt_model_config *c, int32_t layer) {
    const int32_t n = c->sliding_window_pattern;
    return n > 0 && (layer + 1) % n == 0 ? 0 : c->sliding_window;
}

float llmrt_model_embedding_scale(const llmrt_graph *g, const llmrt_model_config *c) {
    float scale = sqrtf((float)c->hidden_size);
    if (g->act_dtype == LLMRT_DTYPE_BF16) scale = llmrt_bf16_to_f32(llmrt_f32_to_bf16(scale));
    if (g->act_dtype == LLMRT_DTYPE_F16) scale = llmrt_f16_to_f32(llmrt_f32_to_f16(scale));
    return scale;
}
llmrt_value llmrt_model_rope_frequencies(llmrt_graph *g, const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE) return LLMRT_NO_VALUE;
    return llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");
}
