/* Gemma 2: Gemma's block (x̂·(1 + w) RMSNorm, √hidden embedding scale,
 * GeGLU) with a norm on both sides of attention and of the MLP, windowed
 * layers alternating with global ones, scores scaled by
 * query_pre_attn_scalar^-½, and soft-capped attention scores and logits.
 *
 *   h = embed(ids) · √hidden
 *   for each layer: h += n_post_attn(o(attn_w(rope(q(n_in(h))), rope(k(..)), v(..))))
 *                   h += n_post_ff(down(gelu(gate(n_pre_ff(h))) · up(n_pre_ff(h))))
 *     attn_w: window on the local layers, scores = cap·tanh(scores/cap)
 *   logits = cap_f·tanh(lm_head(norm(h[logits_indices])) / cap_f)
 */
#include <math.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gemma2_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Gemma 2 needs rotary embeddings", c->architecture);
    return LLMRT_OK;
}

llmrt_value llmrt_gemma2_build(llmrt_graph *g, const llmrt_model_config *c, int gemma3) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    h = llmrt_mul(g, h, llmrt_scalar(g, llmrt_model_embedding_scale(g, c)));
    llmrt_value global_freq = llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");
    llmrt_value local_freq = global_freq;
    if (gemma3) {
        /* Gemma 3's local layers' rotation: unscaled, its own base */
        llmrt_rope_config local_rope = {.type = LLMRT_ROPE_DEFAULT, .factor = 1.0f, .rotary_dim = c->rope.rotary_dim,
                                        .theta = c->rope_local_theta > 0.0f ? c->rope_local_theta : c->rope.theta};
        local_freq = llmrt_model_rope_inv_freq(g, &local_rope, "rope.local_inv_freq");
    }

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    if (c->query_pre_attn_scalar > 0.0f) attention.scale = 1.0f / sqrtf(c->query_pre_attn_scalar);
    attention.logit_softcap = c->attn_logit_softcapping;
    if (gemma3) {
        attention.qk_norm_eps = c->norm_eps;
        attention.qk_norm_plus_one = 1;
    }
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        llmrt_model_layer_names n;
        llmrt_model_format_layer_names(&n, l);
        attention.sliding_window = llmrt_model_layer_window(c, l);
        llmrt_value freq = attention.sliding_window > 0 ? local_freq : global_freq;
        llmrt_attention_layer_names names = {.q = n.q, .k = n.k, .v = n.v, .out = n.o};
        if (gemma3) {
            names.q_norm = n.q_norm;
            names.k_norm = n.k_norm;
        }
        llmrt_value x = llmrt_rmsnorm_plus_one_layer(g, h, n.input_norm, hidden, c->norm_eps);
        x = llmrt_attention_layer(g, x, &attention, l, &names, freq);
        h = llmrt_add(g, h, llmrt_rmsnorm_plus_one_layer(g, x, n.post_attn_norm, hidden, c->norm_eps));
        x = llmrt_rmsnorm_plus_one_layer(g, h, n.pre_ff_norm, hidden, c->norm_eps);
        x = llmrt_gated_mlp_layer(g, x, &mlp, n.gate, n.up, n.down);
        h = llmrt_add(g, h, llmrt_rmsnorm_plus_one_layer(g, x, n.post_ff_norm, hidden, c->norm_eps));
    }
    llmrt_value logits = llmrt_model_rmsnorm_logits(g, h, &in, c, 1);
    if (c->final_logit_softcapping > 0.0f) logits = llmrt_softcap_layer(g, logits, c->final_logit_softcapping);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

static llmrt_value gemma2_build(llmrt_graph *g, const llmrt_model_config *c) { return llmrt_gemma2_build(g, c, 0); }

const llmrt_model_family llmrt_family_gemma2 = {"Gemma2ForCausalLM", gemma2_validate, gemma2_build, NULL};
