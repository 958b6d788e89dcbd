/* ChatGLM2 / ChatGLM3 / GLM-4 as THUDM's remote code lays them out
 * (ChatGLMModel, model_type chatglm): GLM's RMSNorm blocks with one fused
 * query_key_value ([q | k | v], multi_query_group_num KV heads, optional
 * bias), RoPE on the first half of each head with interleaved pairs, and a
 * SwiGLU MLP whose dense_h_to_4h holds gate then up.
 *
 *   h = word_embeddings(ids)
 *   for each layer: h += dense(attn(split(query_key_value(n1(h)))))
 *                   h += dense_4h_to_h(silu(gate) · up),  [gate | up] = dense_h_to_4h(n2(h))
 *   logits = output_layer(final_layernorm(h[logits_indices]))
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status chatglm_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: ChatGLM needs rotary embeddings", c->architecture);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: multi_query_group_num %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    return LLMRT_OK;
}

static llmrt_value chatglm_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "transformer.embedding.word_embeddings.weight",
                                          c->vocab_size, hidden);
    llmrt_value freq = llmrt_model_rope_frequencies(g, c);
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char n1[96], n2[96], qkv[96], dense[96], up[96], down[96];
        snprintf(n1, sizeof n1, "transformer.encoder.layers.%d.input_layernorm", (int)l);
        snprintf(n2, sizeof n2, "transformer.encoder.layers.%d.post_attention_layernorm", (int)l);
        snprintf(qkv, sizeof qkv, "transformer.encoder.layers.%d.self_attention.query_key_value", (int)l);
        snprintf(dense, sizeof dense, "transformer.encoder.layers.%d.self_attention.dense", (int)l);
        snprintf(up, sizeof up, "transformer.encoder.layers.%d.mlp.dense_h_to_4h", (int)l);
        snprintf(down, sizeof down, "transformer.encoder.layers.%d.mlp.dense_4h_to_h", (int)l);
        llmrt_attention_layer_names names = {.qkv = qkv, .out = dense};
        llmrt_value x = llmrt_rmsnorm_layer(g, h, n1, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, freq));
        x = llmrt_rmsnorm_layer(g, h, n2, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_fused_gated_mlp_layer(g, x, &mlp, up, down));
    }
    h = llmrt_gather(g, h, in.logits_indices);
    if (c->final_norm) h = llmrt_rmsnorm_layer(g, h, "transformer.encoder.final_layernorm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "transformer.embedding.word_embeddings" : "transformer.output_layer";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_chatglm = {"ChatGLMModel", chatglm_validate, chatglm_build, NULL};
