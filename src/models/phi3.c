/* Phi-3: LLaMA's blocks with q, k and v in one qkv_proj ([q | k | v]) and
 * gate and up in one gate_up_proj, and LongRoPE (rope type longrope): per
 * frequency factors, the short list for contexts within
 * original_max_position_embeddings and the long one past it, cos and sin
 * scaled by attention_factor. An engine picks one list for all positions
 * when it is built: the long one when its max_seq_len passes the original
 * context (src/compiler/compiler.c), since its cache holds keys of every
 * position of a sequence rotated alike.
 *
 *   h = embed(ids)
 *   for each layer: h += o(attn(split(qkv(n1(h)))))
 *                   h += down(silu(gate) · up),  [gate | up] = gate_up(n2(h))
 *   logits = lm_head(norm(h[logits_indices]))
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status phi3_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Phi-3 needs rotary embeddings", c->architecture);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    return LLMRT_OK;
}

static llmrt_value phi3_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    llmrt_value freq = llmrt_model_rope_frequencies(g, c);
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char n1[80], n2[80], qkv[80], out[80], gate_up[80], down[80];
        snprintf(n1, sizeof n1, "model.layers.%d.input_layernorm", (int)l);
        snprintf(n2, sizeof n2, "model.layers.%d.post_attention_layernorm", (int)l);
        snprintf(qkv, sizeof qkv, "model.layers.%d.self_attn.qkv_proj", (int)l);
        snprintf(out, sizeof out, "model.layers.%d.self_attn.o_proj", (int)l);
        snprintf(gate_up, sizeof gate_up, "model.layers.%d.mlp.gate_up_proj", (int)l);
        snprintf(down, sizeof down, "model.layers.%d.mlp.down_proj", (int)l);
        llmrt_attention_layer_names names = {.qkv = qkv, .out = out};
        llmrt_value x = llmrt_rmsnorm_layer(g, h, n1, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, freq));
        x = llmrt_rmsnorm_layer(g, h, n2, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_fused_gated_mlp_layer(g, x, &mlp, gate_up, down));
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_rmsnorm_layer(g, h, "model.norm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_phi3 = {"Phi3ForCausalLM", phi3_validate, phi3_build, NULL};
