/* GPT-2: learned absolute positions, pre-LayerNorm blocks, fused c_attn
 * projection, gelu_new MLP, Conv1D weights stored [in, out], tied head.
 *
 *   h = wte(ids) + wpe(positions)
 *   for each layer: h += c_proj(attn(split(c_attn(ln_1(h)))))
 *                   h += mlp.c_proj(gelu(mlp.c_fc(ln_2(h))))
 *   logits = wteᵀ · ln_f(h[logits_indices])
 */
#include <stdio.h>
#include <string.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gpt2_validate(const llmrt_model_config *c) {
    if (c->num_kv_heads != c->num_heads)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: GPT-2 has no grouped-query attention", c->architecture);
    if (c->head_dim * c->num_heads != c->hidden_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: n_embd %d is not n_head %d × head_dim", c->architecture,
                           c->hidden_size, c->num_heads);
    return LLMRT_OK;
}

llmrt_value llmrt_gpt2_build(llmrt_graph *g, const llmrt_model_config *c, int conv1d_layout) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_add(g, llmrt_embedding_layer(g, in.token_ids, "transformer.wte.weight", c->vocab_size, hidden),
                              llmrt_embedding_layer(g, in.positions, "transformer.wpe.weight",
                                                    c->max_position_embeddings, hidden));
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char ln1[64], ln2[64], attn[64], attn_proj[64], fc[64], proj[64];
        snprintf(ln1, sizeof ln1, "transformer.h.%d.ln_1", (int)l);
        snprintf(ln2, sizeof ln2, "transformer.h.%d.ln_2", (int)l);
        snprintf(attn, sizeof attn, "transformer.h.%d.attn.c_attn", (int)l);
        snprintf(attn_proj, sizeof attn_proj, "transformer.h.%d.attn.c_proj", (int)l);
        snprintf(fc, sizeof fc, "transformer.h.%d.mlp.c_fc", (int)l);
        snprintf(proj, sizeof proj, "transformer.h.%d.mlp.c_proj", (int)l);
        llmrt_attention_layer_names names = {.qkv = attn, .out = attn_proj, .conv1d_layout = conv1d_layout};
        if (!conv1d_layout) names.qkv_grouped = c->qkv_grouped;
        llmrt_value x = llmrt_layernorm_layer(g, h, ln1, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, LLMRT_NO_VALUE));
        x = llmrt_layernorm_layer(g, h, ln2, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_mlp_layer(g, x, &mlp, fc, proj, conv1d_layout));
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_layernorm_layer(g, h, "transformer.ln_f", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "transformer.wte" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

static llmrt_value gpt2_build(llmrt_graph *g, const llmrt_model_config *c) { return llmrt_gpt2_build(g, c, 1); }

/* The original GPT-2 checkpoints name weights without "transformer.". */
static const char *gpt2_alias(const char *name, char *buf, size_t size) {
    static const char prefix[] = "transformer.";
    if (strncmp(name, prefix, sizeof prefix - 1) != 0) return NULL;
    snprintf(buf, size, "%s", name + sizeof prefix - 1);
    return buf;
}

const llmrt_model_family llmrt_family_gpt2 = {"GPT2LMHeadModel", gpt2_validate, gpt2_build, gpt2_alias};
