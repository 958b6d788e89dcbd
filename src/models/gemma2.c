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
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gemma2_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Gemma 2 needs rotary embeddings", c->architecture);
    return LLMRT_OK;
}

static llmrt_value gemma2_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    h = llmrt_mul(g, h, llmrt_scalar(g, llmrt_model_embedding_scale(g, c)));
    llmrt_value freq = llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    if (c->query_pre_attn_scalar > 0.0f) attention.scale = 1.0f / sqrtf(c->query_pre_attn_scalar);
    attention.logit_softcap = c->attn_logit_softcapping;
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char p[32], n_in[96], q[96], k[96], v[96], o[96], n_post_attn[96], n_pre_ff[96], n_post_ff[96];
        char gate[96], up[96], down[96];
        snprintf(p, sizeof p, "model.layers.%d", (int)l);
        snprintf(n_in, sizeof n_in, "%s.input_layernorm", p);
        snprintf(q, sizeof q, "%s.self_attn.q_proj", p);
        snprintf(k, sizeof k, "%s.self_attn.k_proj", p);
        snprintf(v, sizeof v, "%s.self_attn.v_proj", p);
        snprintf(o, sizeof o, "%s.self_attn.o_proj", p);
        snprintf(n_post_attn, sizeof n_post_attn, "%s.post_attention_layernorm", p);
        snprintf(n_pre_ff, sizeof n_pre_ff, "%s.pre_feedforward_layernorm", p);
        snprintf(n_post_ff, sizeof n_post_ff, "%s.post_feedforward_layernorm", p);
        snprintf(gate, sizeof gate, "%s.mlp.gate_proj", p);
        snprintf(up, sizeof up, "%s.mlp.up_proj", p);
        snprintf(down, sizeof down, "%s.mlp.down_proj", p);

        attention.sliding_window = llmrt_model_layer_window(c, l);
        llmrt_attention_layer_names names = {.q = q, .k = k, .v = v, .out = o};
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

const llmrt_model_family llmrt_family_gemma2 = {"Gemma2ForCausalLM", gemma2_validate, gemma2_build, NULL};
