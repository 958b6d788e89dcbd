/* The LLaMA family: LLaMA 1/2/3, Mistral, Qwen2 — pre-norm decoder blocks
 * with RMSNorm, RoPE attention (GQA, optional q/k/v bias) and a SwiGLU MLP.
 *
 *   h = embed(ids)
 *   for each layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))))
 *                   h += down(silu(gate(n2(h))) · up(n2(h)))
 *   logits = lm_head(norm(h[logits_indices]))
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status llama_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: the LLaMA family needs rotary embeddings", c->architecture);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    return LLMRT_OK;
}

static llmrt_value llama_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    int32_t first, last; /* this pipeline stage's layers (all of them unless split) */
    llmrt_model_stage_layers(g, c->num_layers, &first, &last);
    llmrt_value h = llmrt_model_stage_receive(g, &in, hidden);
    if (h == LLMRT_NO_VALUE)
        h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);

    float *inv_freq = malloc((size_t)(c->rope.rotary_dim / 2 + 1) * sizeof *inv_freq);
    if (!inv_freq) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_rope_inv_freq(&c->rope, inv_freq);
    int64_t half = c->rope.rotary_dim / 2;
    llmrt_value freq = llmrt_constant(g, "rope.inv_freq", inv_freq, 1, &half);
    free(inv_freq);

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = first; l < last; l++) {
        char p[8][96];
        snprintf(p[0], sizeof p[0], "model.layers.%d.input_layernorm", (int)l);
        snprintf(p[1], sizeof p[1], "model.layers.%d.self_attn.q_proj", (int)l);
        snprintf(p[2], sizeof p[2], "model.layers.%d.self_attn.k_proj", (int)l);
        snprintf(p[3], sizeof p[3], "model.layers.%d.self_attn.v_proj", (int)l);
        snprintf(p[4], sizeof p[4], "model.layers.%d.self_attn.o_proj", (int)l);
        snprintf(p[5], sizeof p[5], "model.layers.%d.post_attention_layernorm", (int)l);
        snprintf(p[6], sizeof p[6], "model.layers.%d.mlp", (int)l);
        char gate[112], up[112], down[112];
        snprintf(gate, sizeof gate, "%s.gate_proj", p[6]);
        snprintf(up, sizeof up, "%s.up_proj", p[6]);
        snprintf(down, sizeof down, "%s.down_proj", p[6]);

        llmrt_attention_layer_names names = {.q = p[1], .k = p[2], .v = p[3], .out = p[4]};
        llmrt_value x = llmrt_rmsnorm_layer(g, h, p[0], hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l - first, &names, freq));
        x = llmrt_rmsnorm_layer(g, h, p[5], hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_gated_mlp_layer(g, x, &mlp, gate, up, down));
    }
    if (llmrt_model_stage_hand_on(g, h, c->vocab_size)) return LLMRT_NO_VALUE;
    /* Norm and project only the rows whose logits are wanted. */
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_rmsnorm_layer(g, h, "model.norm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    llmrt_value logits = llmrt_lm_head_layer(g, h, head, hidden, c->vocab_size);
    llmrt_model_stage_logits(g, logits);
    return logits;
}

static llmrt_status mistral_validate(const llmrt_model_config *c) { return llama_validate(c); }

const llmrt_model_family llmrt_family_llama = {"LlamaForCausalLM", llama_validate, llama_build, NULL};
const llmrt_model_family llmrt_family_mistral = {"MistralForCausalLM", mistral_validate, llama_build, NULL};
const llmrt_model_family llmrt_family_qwen2 = {"Qwen2ForCausalLM", llama_validate, llama_build, NULL};
