/* The LLaMA family: LLaMA 1/2/3, Mistral, Qwen2 — pre-norm decoder blocks
 * with RMSNorm, RoPE attention (GQA, optional q/k/v bias) and a SwiGLU MLP.
 *
 *   h = embed(ids)
 *   for each layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))))
 *                   h += down(silu(gate(n2(h))) · up(n2(h)))
 *   logits = lm_head(norm(h[logits_indices]))
 */
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

llmrt_value llmrt_llama_attention_half(llmrt_graph *g, const llmrt_model_config *c,
                                       const llmrt_attention_layer_params *attention,
                                       const llmrt_model_layer_names *n, int32_t cache_layer, llmrt_value freq,
                                       llmrt_value *h) {
    int64_t hidden = c->hidden_size;
    llmrt_attention_layer_names names = {.q = n->q, .k = n->k, .v = n->v, .out = n->o};
    llmrt_value x = llmrt_rmsnorm_layer(g, *h, n->input_norm, hidden, c->norm_eps);
    *h = llmrt_add(g, *h, llmrt_attention_layer(g, x, attention, cache_layer, &names, freq));
    return llmrt_rmsnorm_layer(g, *h, n->post_attn_norm, hidden, c->norm_eps);
}

static llmrt_value llama_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    int32_t first, last; /* this pipeline stage's layers (all of them unless split) */
    llmrt_model_stage_layers(g, c->num_layers, &first, &last);
    llmrt_value h = llmrt_model_stage_receive(g, &in, hidden);
    if (h == LLMRT_NO_VALUE)
        h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);

    llmrt_value freq = llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = first; l < last; l++) {
        llmrt_model_layer_names n;
        llmrt_model_format_layer_names(&n, l);
        llmrt_value x = llmrt_llama_attention_half(g, c, &attention, &n, l - first, freq, &h);
        h = llmrt_add(g, h, llmrt_gated_mlp_layer(g, x, &mlp, n.gate, n.up, n.down));
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
