/* Gemma: the LLaMA block with Gemma's RMSNorm (weights stored as offsets
 * from 1: x̂·(1 + w)), the embedding scaled by √hidden, and a GeGLU MLP
 * (tanh GELU gate).
 *
 *   h = embed(ids) · √hidden
 *   for each layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))))
 *                   h += down(gelu(gate(n2(h))) · up(n2(h)))
 *   logits = lm_head(norm(h[logits_indices]))      (norms: x̂·(1 + w))
 */
#include <stdio.h>

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
        char p[32], pre[96], q[96], k[96], v[96], o[96], post[96], gate[96], up[96], down[96];
        snprintf(p, sizeof p, "model.layers.%d", (int)l);
        snprintf(pre, sizeof pre, "%s.input_layernorm", p);
        snprintf(q, sizeof q, "%s.self_attn.q_proj", p);
        snprintf(k, sizeof k, "%s.self_attn.k_proj", p);
        snprintf(v, sizeof v, "%s.self_attn.v_proj", p);
        snprintf(o, sizeof o, "%s.self_attn.o_proj", p);
        snprintf(post, sizeof post, "%s.post_attention_layernorm", p);
        snprintf(gate, sizeof gate, "%s.mlp.gate_proj", p);
        snprintf(up, sizeof up, "%s.mlp.up_proj", p);
        snprintf(down, sizeof down, "%s.mlp.down_proj", p);

        llmrt_attention_layer_names names = {.q = q, .k = k, .v = v, .out = o};
        llmrt_value x = llmrt_rmsnorm_plus_one_layer(g, h, pre, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, freq));
        x = llmrt_rmsnorm_plus_one_layer(g, h, post, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_gated_mlp_layer(g, x, &mlp, gate, up, down));
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_rmsnorm_plus_one_layer(g, h, "model.norm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_gemma = {"GemmaForCausalLM", gemma_validate, gemma_build, NULL};
