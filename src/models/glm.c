/* GLM (GlmForCausalLM, the transformers form of GLM-4): LLaMA's RMSNorm
 * blocks with grouped KV, biases on q, k and v only, RoPE on the first half
 * of each head (partial_rotary_factor) with interleaved pairs (2i, 2i+1),
 * and gate and up in one gate_up_proj.
 *
 *   h = embed(ids)
 *   for each layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))))
 *                   h += down(silu(gate) · up),  [gate | up] = gate_up(n2(h))
 *   logits = lm_head(norm(h[logits_indices]))
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status glm_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: GLM needs rotary embeddings", c->architecture);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    return LLMRT_OK;
}

static llmrt_value glm_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    llmrt_value freq = llmrt_model_rope_frequencies(g, c);
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char n1[80], n2[80], q[80], k[80], v[80], o[80], gate_up[80], down[80];
        snprintf(n1, sizeof n1, "model.layers.%d.input_layernorm", (int)l);
        snprintf(n2, sizeof n2, "model.layers.%d.post_attention_layernorm", (int)l);
        snprintf(q, sizeof q, "model.layers.%d.self_attn.q_proj", (int)l);
        snprintf(k, sizeof k, "model.layers.%d.self_attn.k_proj", (int)l);
        snprintf(v, sizeof v, "model.layers.%d.self_attn.v_proj", (int)l);
        snprintf(o, sizeof o, "model.layers.%d.self_attn.o_proj", (int)l);
        snprintf(gate_up, sizeof gate_up, "model.layers.%d.mlp.gate_up_proj", (int)l);
        snprintf(down, sizeof down, "model.layers.%d.mlp.down_proj", (int)l);
        llmrt_attention_layer_names names = {.q = q, .k = k, .v = v, .out = o};
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

const llmrt_model_family llmrt_family_glm = {"GlmForCausalLM", glm_validate, glm_build, NULL};
