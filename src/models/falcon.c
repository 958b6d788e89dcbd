/* Falcon: LayerNorm blocks with one fused query_key_value projection,
 * rotate-half RoPE, a GeLU MLP, and attention and MLP in parallel
 * (parallel_attn) from one shared LayerNorm, or (new_decoder_architecture
 * with num_ln_in_parallel_attn = 2) from ln_attn and ln_mlp. The fused
 * projection is [q | k | v] with one KV head (multi_query) or grouped per
 * KV head [kv_heads, heads/kv_heads + 2, D] (qkv_grouped).
 *
 *   h = word_embeddings(ids)
 *   parallel: h = h + mlp(n2(h)) + attn(n1(h))     (n2 = n1 unless two norms)
 *   serial:   h = h + attn(input_layernorm(h));  h = h + mlp(post_attention_layernorm(h))
 *   logits = lm_head(ln_f(h[logits_indices]))
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status falcon_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Falcon without rotary embeddings (ALiBi) is not supported",
                           c->architecture);
    if (c->head_dim * c->num_heads != c->hidden_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: hidden_size %d is not num_attention_heads %d × head size %d",
                           c->architecture, c->hidden_size, c->num_heads, c->head_dim);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_kv_heads %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    if (!c->qkv_grouped && c->num_kv_heads != 1)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: a [q | k | v] query_key_value needs one KV head (multi_query), "
                           "not %d", c->architecture, c->num_kv_heads);
    if (c->parallel_residual && c->parallel_norms != 1 && c->parallel_norms != 2)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_ln_in_parallel_attn %d must be 1 or 2", c->architecture,
                           c->parallel_norms);
    return LLMRT_OK;
}

static llmrt_value falcon_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    float eps = c->norm_eps;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "transformer.word_embeddings.weight", c->vocab_size,
                                          hidden);
    llmrt_value freq = llmrt_model_rope_frequencies(g, c);
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    int two_norms = c->parallel_residual && c->parallel_norms == 2;
    for (int32_t l = 0; l < c->num_layers; l++) {
        char n1[80], n2[80], qkv[80], dense[80], up[80], down[80];
        snprintf(n1, sizeof n1, "transformer.h.%d.%s", (int)l, two_norms ? "ln_attn" : "input_layernorm");
        snprintf(n2, sizeof n2, "transformer.h.%d.%s", (int)l, two_norms ? "ln_mlp" : "post_attention_layernorm");
        snprintf(qkv, sizeof qkv, "transformer.h.%d.self_attention.query_key_value", (int)l);
        snprintf(dense, sizeof dense, "transformer.h.%d.self_attention.dense", (int)l);
        snprintf(up, sizeof up, "transformer.h.%d.mlp.dense_h_to_4h", (int)l);
        snprintf(down, sizeof down, "transformer.h.%d.mlp.dense_4h_to_h", (int)l);
        llmrt_attention_layer_names names = {.qkv = qkv, .out = dense, .qkv_grouped = c->qkv_grouped};
        llmrt_value x = llmrt_layernorm_layer(g, h, n1, hidden, eps);
        llmrt_value attended = llmrt_attention_layer(g, x, &attention, l, &names, freq);
        if (c->parallel_residual) {
            llmrt_value xm = two_norms ? llmrt_layernorm_layer(g, h, n2, hidden, eps) : x;
            h = llmrt_add(g, llmrt_add(g, llmrt_mlp_layer(g, xm, &mlp, up, down, 0), attended), h);
        } else {
            h = llmrt_add(g, h, attended);
            h = llmrt_add(g, h, llmrt_mlp_layer(g, llmrt_layernorm_layer(g, h, n2, hidden, eps), &mlp, up, down, 0));
        }
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_layernorm_layer(g, h, "transformer.ln_f", hidden, eps);
    const char *head = c->tie_word_embeddings ? "transformer.word_embeddings" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_falcon = {"FalconForCausalLM", falcon_validate, falcon_build, NULL};
