/* GPT-NeoX / Pythia: LayerNorm blocks, one fused query_key_value projection
 * laid out per head ([heads, 3, D]), RoPE on the first rotary_pct of each
 * head (rotate-half pairs), GeLU MLP, and a residual that is parallel
 * (use_parallel_residual, the default) or serial.
 *
 *   h = embed_in(ids)
 *   parallel: h = h + attn(ln1(h)) + mlp(ln2(h))
 *   serial:   h = h + attn(ln1(h));  h = h + mlp(ln2(h))
 *   logits = embed_out(final_layer_norm(h[logits_indices]))
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gpt_neox_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: GPT-NeoX needs rotary embeddings", c->architecture);
    if (c->num_kv_heads != c->num_heads)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: GPT-NeoX has no grouped-query attention (num_kv_heads %d of %d)",
                           c->architecture, c->num_kv_heads, c->num_heads);
    if (c->head_dim * c->num_heads != c->hidden_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: hidden_size %d is not num_attention_heads %d × head size %d",
                           c->architecture, c->hidden_size, c->num_heads, c->head_dim);
    return LLMRT_OK;
}

static llmrt_value gpt_neox_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "gpt_neox.embed_in.weight", c->vocab_size, hidden);
    llmrt_value freq = llmrt_model_rope_frequencies(g, c);
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char ln1[80], ln2[80], qkv[80], dense[80], up[80], down[80];
        snprintf(ln1, sizeof ln1, "gpt_neox.layers.%d.input_layernorm", (int)l);
        snprintf(ln2, sizeof ln2, "gpt_neox.layers.%d.post_attention_layernorm", (int)l);
        snprintf(qkv, sizeof qkv, "gpt_neox.layers.%d.attention.query_key_value", (int)l);
        snprintf(dense, sizeof dense, "gpt_neox.layers.%d.attention.dense", (int)l);
        snprintf(up, sizeof up, "gpt_neox.layers.%d.mlp.dense_h_to_4h", (int)l);
        snprintf(down, sizeof down, "gpt_neox.layers.%d.mlp.dense_4h_to_h", (int)l);
        llmrt_attention_layer_names names = {.qkv = qkv, .out = dense, .qkv_grouped = 1};
        llmrt_value attended = llmrt_attention_layer(g, llmrt_layernorm_layer(g, h, ln1, hidden, c->norm_eps),
                                                     &attention, l, &names, freq);
        if (c->parallel_residual) {
            llmrt_value x = llmrt_layernorm_layer(g, h, ln2, hidden, c->norm_eps);
            h = llmrt_add(g, llmrt_add(g, llmrt_mlp_layer(g, x, &mlp, up, down, 0), attended), h);
        } else {
            h = llmrt_add(g, h, attended);
            llmrt_value x = llmrt_layernorm_layer(g, h, ln2, hidden, c->norm_eps);
            h = llmrt_add(g, h, llmrt_mlp_layer(g, x, &mlp, up, down, 0));
        }
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_layernorm_layer(g, h, "gpt_neox.final_layer_norm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "gpt_neox.embed_in" : "embed_out";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_gpt_neox = {"GPTNeoXForCausalLM", gpt_neox_validate, gpt_neox_build, NULL};
