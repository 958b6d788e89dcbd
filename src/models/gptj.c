/* GPT-J: one LayerNorm feeds attention and the MLP in parallel; RoPE on the
 * first rotary_dim dims of each head with interleaved pairs (2i, 2i+1); no
 * attention biases; a GeLU MLP; an untied head with a bias.
 *
 *   h = wte(ids)
 *   for each layer: x = ln_1(h);  h = h + attn(x) + mlp(x)
 *   logits = lm_head(ln_f(h[logits_indices])) + lm_head.bias
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gptj_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: GPT-J needs rotary embeddings", c->architecture);
    if (c->rope.rotary_dim > c->head_dim)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: rotary_dim %d exceeds the head size %d", c->architecture,
                           c->rope.rotary_dim, c->head_dim);
    if (c->num_kv_heads != c->num_heads || c->head_dim * c->num_heads != c->hidden_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: n_embd %d is not n_head %d × head size %d (no grouped KV)",
                           c->architecture, c->hidden_size, c->num_heads, c->head_dim);
    return LLMRT_OK;
}

static llmrt_value gptj_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "transformer.wte.weight", c->vocab_size, hidden);
    llmrt_value freq = llmrt_model_rope_frequencies(g, c);
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char ln[64], q[64], k[64], v[64], out[64], fc_in[64], fc_out[64];
        snprintf(ln, sizeof ln, "transformer.h.%d.ln_1", (int)l);
        snprintf(q, sizeof q, "transformer.h.%d.attn.q_proj", (int)l);
        snprintf(k, sizeof k, "transformer.h.%d.attn.k_proj", (int)l);
        snprintf(v, sizeof v, "transformer.h.%d.attn.v_proj", (int)l);
        snprintf(out, sizeof out, "transformer.h.%d.attn.out_proj", (int)l);
        snprintf(fc_in, sizeof fc_in, "transformer.h.%d.mlp.fc_in", (int)l);
        snprintf(fc_out, sizeof fc_out, "transformer.h.%d.mlp.fc_out", (int)l);
        llmrt_attention_layer_names names = {.q = q, .k = k, .v = v, .out = out};
        llmrt_value x = llmrt_layernorm_layer(g, h, ln, hidden, c->norm_eps);
        llmrt_value attended = llmrt_attention_layer(g, x, &attention, l, &names, freq);
        h = llmrt_add(g, llmrt_add(g, attended, llmrt_mlp_layer(g, x, &mlp, fc_in, fc_out, 0)), h);
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_layernorm_layer(g, h, "transformer.ln_f", hidden, c->norm_eps);
    /* the head's bias stays lm_head.bias even when its weight is tied */
    const char *head = c->tie_word_embeddings ? "transformer.wte" : "lm_head";
    int64_t vocab = c->vocab_size;
    llmrt_value logits = llmrt_add(g, llmrt_linear_layer(g, h, head, hidden, vocab, 0, 0),
                                   llmrt_weight(g, "lm_head.bias", 1, &vocab));
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_gptj = {"GPTJForCausalLM", gptj_validate, gptj_build, NULL};
