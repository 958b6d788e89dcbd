/* Gemma: the LLaMA block with Gemma's RMSNorm (weights stored as offsets
 * from 1: x̂·(1 + w)), the embedding scaled by √hidden, and a GeGLU MLP
 * (tanh GELU gate).
 *
 *   h = embed(ids) · √hidden
 *   for each layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))))
 *                   h += down(gelu(gate(n2(h))) · up(n2(h)))
 *   logits = lm_head(norm(h[logits_indices]))      (norms: x̂·(1 + w))
 */
#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gemma_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Gemma needs rotary embeddings", c->architecture);
    if (c->sliding_window > 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'sliding_window': Gemma 1 has no windowed layers",
                           c->architecture);
    return LLMRT_OK;
}

static llmrt_value gemma_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    h = llmrt_mul(g, h, llmrt_scalar(g, llmrt_model_embedding_scale(g, c)));
    llmrt_value freq = llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        llmrt_model_layer_names n;
        llmrt_model_format_layer_names(&n, l);
        llmrt_attention_layer_names names = {.q = n.q, .k = n.k, .v = n.v, .out = n.o};
        llmrt_value x = llmrt_rmsnorm_plus_one_layer(g, h, n.input_norm, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, freq));
        x = llmrt_rmsnorm_plus_one_layer(g, h, n.post_attn_norm, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_gated_mlp_layer(g, x, &mlp, n.gate, n.up, n.down));
    }
    llmrt_value logits = llmrt_model_rmsnorm_logits(g, h, &in, c, 1);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_gemma = {"GemmaForCausalLM", gemma_validate, gemma_build, NULL};
