/* OPT: learned positions read from row position + 2 of their table, LayerNorm
 * blocks that are pre-norm (do_layer_norm_before) or post-norm, a ReLU MLP,
 * and embeddings of word_embed_proj_dim projected in and out of the hidden
 * width when the two differ (project_in / project_out, no bias).
 *
 *   h = project_in(embed_tokens(ids)) + embed_positions[positions + 2]
 *   pre-norm:  h = h + attn(ln_a(h));  h = h + mlp(ln_m(h))
 *   post-norm: h = ln_a(h + attn(h));  h = ln_m(h + mlp(h))
 *   logits = lm_head(project_out(final_layer_norm(h[logits_indices])))
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

/* OPTLearnedPositionalEmbedding: the first two rows were padding offsets. */
enum { OPT_POSITION_OFFSET = 2 };

static llmrt_status opt_validate(const llmrt_model_config *c) {
    if (c->rope.type != LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: OPT has learned positions, not rotary embeddings", c->architecture);
    if (c->num_kv_heads != c->num_heads || c->head_dim * c->num_heads != c->hidden_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: hidden_size %d is not num_attention_heads %d × head size %d",
                           c->architecture, c->hidden_size, c->num_heads, c->head_dim);
    if (c->embed_dim <= 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: word_embed_proj_dim %d must be positive", c->architecture,
                           c->embed_dim);
    return LLMRT_OK;
}

static llmrt_value opt_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size, embed = c->embed_dim;
    float eps = c->norm_eps;
    int projected = embed != hidden;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.decoder.embed_tokens.weight", c->vocab_size, embed);
    if (projected) h = llmrt_linear_layer(g, h, "model.decoder.project_in", embed, hidden, 0, 0);
    int64_t table[2] = {(int64_t)c->max_position_embeddings + OPT_POSITION_OFFSET, hidden};
    llmrt_value positions = llmrt_weight(g, "model.decoder.embed_positions.weight", 2, table);
    h = llmrt_add(g, h, llmrt_gather_offset(g, positions, in.positions, OPT_POSITION_OFFSET));

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char ln_a[80], ln_m[80], q[80], k[80], v[80], out[80], fc1[80], fc2[80];
        snprintf(ln_a, sizeof ln_a, "model.decoder.layers.%d.self_attn_layer_norm", (int)l);
        snprintf(ln_m, sizeof ln_m, "model.decoder.layers.%d.final_layer_norm", (int)l);
        snprintf(q, sizeof q, "model.decoder.layers.%d.self_attn.q_proj", (int)l);
        snprintf(k, sizeof k, "model.decoder.layers.%d.self_attn.k_proj", (int)l);
        snprintf(v, sizeof v, "model.decoder.layers.%d.self_attn.v_proj", (int)l);
        snprintf(out, sizeof out, "model.decoder.layers.%d.self_attn.out_proj", (int)l);
        snprintf(fc1, sizeof fc1, "model.decoder.layers.%d.fc1", (int)l);
        snprintf(fc2, sizeof fc2, "model.decoder.layers.%d.fc2", (int)l);
        llmrt_attention_layer_names names = {.q = q, .k = k, .v = v, .out = out};
        if (c->post_norm) {
            h = llmrt_add(g, h, llmrt_attention_layer(g, h, &attention, l, &names, LLMRT_NO_VALUE));
            h = llmrt_layernorm_layer(g, h, ln_a, hidden, eps);
            h = llmrt_layernorm_layer(g, llmrt_add(g, h, llmrt_mlp_layer(g, h, &mlp, fc1, fc2, 0)), ln_m, hidden, eps);
        } else {
            llmrt_value x = llmrt_layernorm_layer(g, h, ln_a, hidden, eps);
            h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, LLMRT_NO_VALUE));
            x = llmrt_layernorm_layer(g, h, ln_m, hidden, eps);
            h = llmrt_add(g, h, llmrt_mlp_layer(g, x, &mlp, fc1, fc2, 0));
        }
    }
    h = llmrt_gather(g, h, in.logits_indices);
    if (c->final_norm) h = llmrt_layernorm_layer(g, h, "model.decoder.final_layer_norm", hidden, eps);
    if (projected) h = llmrt_linear_layer(g, h, "model.decoder.project_out", hidden, embed, 0, 0);
    const char *head = c->tie_word_embeddings ? "model.decoder.embed_tokens" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, embed, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_opt = {"OPTForCausalLM", opt_validate, opt_build, NULL};
