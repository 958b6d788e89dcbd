/* BLOOM: pre-norm decoder blocks with LayerNorm (and one more on the
 * embeddings), a fused query_key_value interleaved per head, ALiBi in place
 * of positions, biases everywhere and a tanh-GELU MLP of 4·hidden.
 *
 *   h = ln_emb(word_embeddings(ids))
 *   for each layer: h += dense(attn_alibi(query_key_value(ln_in(h))))
 *                   h += dense_4h_to_h(gelu(dense_h_to_4h(ln_post(h))))
 *   logits = word_embeddings(ln_f(h[logits_indices]))ᵀ
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status bloom_validate(const llmrt_model_config *c) {
    if (!(c->alibi_max_bias > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: BLOOM needs ALiBi (alibi_max_bias)", c->architecture);
    if (c->num_kv_heads != c->num_heads)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'num_key_value_heads': BLOOM has one kv head per head",
                           c->architecture);
    return LLMRT_OK;
}

static llmrt_value bloom_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "transformer.word_embeddings.weight", c->vocab_size,
                                          hidden);
    h = llmrt_layernorm_layer(g, h, "transformer.word_embeddings_layernorm", hidden, c->norm_eps);

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    attention.alibi_max_bias = c->alibi_max_bias;
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char p[32], ln_in[96], qkv[96], dense[96], ln_post[96], up[96], down[96];
        snprintf(p, sizeof p, "transformer.h.%d", (int)l);
        snprintf(ln_in, sizeof ln_in, "%s.input_layernorm", p);
        snprintf(qkv, sizeof qkv, "%s.self_attention.query_key_value", p);
        snprintf(dense, sizeof dense, "%s.self_attention.dense", p);
        snprintf(ln_post, sizeof ln_post, "%s.post_attention_layernorm", p);
        snprintf(up, sizeof up, "%s.mlp.dense_h_to_4h", p);
        snprintf(down, sizeof down, "%s.mlp.dense_4h_to_h", p);

        llmrt_attention_layer_names names = {.qkv = qkv, .out = dense, .qkv_per_head = 1};
        llmrt_value x = llmrt_layernorm_layer(g, h, ln_in, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, LLMRT_NO_VALUE));
        x = llmrt_layernorm_layer(g, h, ln_post, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_mlp_layer(g, x, &mlp, up, down, 0));
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_layernorm_layer(g, h, "transformer.ln_f", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "transformer.word_embeddings" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_bloom = {"BloomForCausalLM", bloom_validate, bloom_build, NULL};
