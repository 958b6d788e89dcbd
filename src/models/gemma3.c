/* Gemma 3 (text): Gemma 2's block with Gemma-style RMSNorm (1 + w) on each
 * head of q and k before RoPE, and a RoPE base of its own for the windowed
 * layers (rope_local_theta) beside the global layers' (possibly scaled) one.
 *
 *   h = embed(ids) · √hidden
 *   for each layer: q, k, v = q(n_in(h)), k(n_in(h)), v(n_in(h))
 *                   h += n_post_attn(o(attn_w(rope_l(qnorm(q)), rope_l(knorm(k)), v)))
 *                   h += n_post_ff(down(gelu(gate(n_pre_ff(h))) · up(n_pre_ff(h))))
 *     local layers: window and rope_local_theta; global: full and rope
 *   logits = lm_head(norm(h[logits_indices]))  (soft-capped if configured)
 */
#include <math.h>
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gemma3_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Gemma 3 needs rotary embeddings", c->architecture);
    return LLMRT_OK;
}

static llmrt_value gemma3_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    h = llmrt_mul(g, h, llmrt_scalar(g, llmrt_model_embedding_scale(g, c)));
    /* the local layers' rotation: unscaled, its own base */
    llmrt_rope_config local_rope = {.type = LLMRT_ROPE_DEFAULT, .factor = 1.0f, .rotary_dim = c->rope.rotary_dim,
                                    .theta = c->rope_local_theta > 0.0f ? c->rope_local_theta : c->rope.theta};
    llmrt_value global_freq = llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");
    llmrt_value local_freq = llmrt_model_rope_inv_freq(g, &local_rope, "rope.local_inv_freq");

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    if (c->query_pre_attn_scalar > 0.0f) attention.scale = 1.0f / sqrtf(c->query_pre_attn_scalar);
    attention.logit_softcap = c->attn_logit_softcapping;
    attention.qk_norm_eps = c->norm_eps;
    attention.qk_norm_plus_one = 1;
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char p[32], n_in[96], q[96], k[96], v[96], o[96], qn[96], kn[96], n_post_attn[96], n_pre_ff[96];
        char n_post_ff[96], gate[96], up[96], down[96];
        snprintf(p, sizeof p, "model.layers.%d", (int)l);
        snprintf(n_in, sizeof n_in, "%s.input_layernorm", p);
        snprintf(q, sizeof q, "%s.self_attn.q_proj", p);
        snprintf(k, sizeof k, "%s.self_attn.k_proj", p);
        snprintf(v, sizeof v, "%s.self_attn.v_proj", p);
        snprintf(o, sizeof o, "%s.self_attn.o_proj", p);
        snprintf(qn, sizeof qn, "%s.self_attn.q_norm", p);
        snprintf(kn, sizeof kn, "%s.self_attn.k_norm", p);
        snprintf(n_post_attn, sizeof n_post_attn, "%s.post_attention_layernorm", p);
        snprintf(n_pre_ff, sizeof n_pre_ff, "%s.pre_feedforward_layernorm", p);
        snprintf(n_post_ff, sizeof n_post_ff, "%s.post_feedforward_layernorm", p);
        snprintf(gate, sizeof gate, "%s.mlp.gate_proj", p);
        snprintf(up, sizeof up, "%s.mlp.up_proj", p);
        snprintf(down, sizeof down, "%s.mlp.down_proj", p);

        attention.sliding_window = llmrt_model_layer_window(c, l);
        llmrt_value freq = attention.sliding_window > 0 ? local_freq : global_freq;
        llmrt_attention_layer_names names = {.q = q, .k = k, .v = v, .out = o, .q_norm = qn, .k_norm = kn};
        llmrt_value x = llmrt_rmsnorm_plus_one_layer(g, h, n_in, hidden, c->norm_eps);
        x = llmrt_attention_layer(g, x, &attention, l, &names, freq);
        h = llmrt_add(g, h, llmrt_rmsnorm_plus_one_layer(g, x, n_post_attn, hidden, c->norm_eps));
        x = llmrt_rmsnorm_plus_one_layer(g, h, n_pre_ff, hidden, c->norm_eps);
        x = llmrt_gated_mlp_layer(g, x, &mlp, gate, up, down);
        h = llmrt_add(g, h, llmrt_rmsnorm_plus_one_layer(g, x, n_post_ff, hidden, c->norm_eps));
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_rmsnorm_plus_one_layer(g, h, "model.norm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    if (c->final_logit_softcapping > 0.0f) logits = llmrt_softcap_layer(g, logits, c->final_logit_softcapping);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_gemma3 = {"Gemma3ForCausalLM", gemma3_validate, gemma3_build, NULL};
