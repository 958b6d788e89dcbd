/* Qwen3: the LLaMA block (RMSNorm, GQA with RoPE, SwiGLU) with an RMSNorm
 * over each head of q and of k before RoPE, and a head_dim set on its own
 * (not hidden / heads).
 *
 *   h = embed(ids)
 *   for each layer: q, k, v = q(n1(h)), k(n1(h)), v(n1(h))
 *                   h += o(attn(rope(qnorm(q)), rope(knorm(k)), v))
 *                   h += down(silu(gate(n2(h))) · up(n2(h)))
 *   logits = lm_head(norm(h[logits_indices]))
 */
#include "layers/layers.h"
#include "models/models.h"

static llmrt_status qwen3_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Qwen3 needs rotary embeddings", c->architecture);
    if (c->sliding_window > 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'use_sliding_window' (Qwen3's max_window_layers "
                           "schedule) is not supported", c->architecture);
    return LLMRT_OK;
}

static llmrt_value qwen3_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    llmrt_value freq = llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    attention.qk_norm_eps = c->norm_eps;
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        llmrt_model_layer_names n;
        llmrt_model_format_layer_names(&n, l);
        llmrt_attention_layer_names names = {.q = n.q, .k = n.k, .v = n.v, .out = n.o,
                                             .q_norm = n.q_norm, .k_norm = n.k_norm};
        llmrt_value x = llmrt_rmsnorm_layer(g, h, n.input_norm, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, freq));
        x = llmrt_rmsnorm_layer(g, h, n.post_attn_norm, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_gated_mlp_layer(g, x, &mlp, n.gate, n.up, n.down));
    }
    llmrt_value logits = llmrt_model_rmsnorm_logits(g, h, &in, c, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_qwen3 = {"Qwen3ForCausalLM", qwen3_validate, qwen3_build, NULL};
