/* MPT: pre-norm decoder blocks with bias-free LayerNorms and projections,
 * a fused Wqkv ([q | k | v]), ALiBi in place of positions (slopes
 * 2^(−alibi_bias_max·i/n)) and a GELU MLP of 4·d_model (as transformers
 * builds it, whatever expansion_ratio says).
 *
 *   h = wte(ids)
 *   for each layer: h += out_proj(attn_alibi(Wqkv(norm_1(h))))
 *                   h += down_proj(gelu(up_proj(norm_2(h))))
 *   logits = wte(norm_f(h[logits_indices]))ᵀ
 */
#include <stdio.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status mpt_validate(const llmrt_model_config *c) {
    if (!(c->alibi_max_bias > 0.0f))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'attn_config.alibi': MPT without ALiBi (learned "
                           "positions) is not supported", c->architecture);
    if (c->num_kv_heads != c->num_heads)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: MPT's attn_type must be multihead_attention", c->architecture);
    return LLMRT_OK;
}

static llmrt_value mpt_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "transformer.wte.weight", c->vocab_size, hidden);

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    attention.alibi_max_bias = c->alibi_max_bias;
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        char p[40], norm_1[96], qkv[96], out[96], norm_2[96], up[96], down[96];
        snprintf(p, sizeof p, "transformer.blocks.%d", (int)l);
        snprintf(norm_1, sizeof norm_1, "%s.norm_1", p);
        snprintf(qkv, sizeof qkv, "%s.attn.Wqkv", p);
        snprintf(out, sizeof out, "%s.attn.out_proj", p);
        snprintf(norm_2, sizeof norm_2, "%s.norm_2", p);
        snprintf(up, sizeof up, "%s.ffn.up_proj", p);
        snprintf(down, sizeof down, "%s.ffn.down_proj", p);

        llmrt_attention_layer_names names = {.qkv = qkv, .out = out};
        llmrt_value x = llmrt_layernorm_no_bias_layer(g, h, norm_1, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, LLMRT_NO_VALUE));
        x = llmrt_layernorm_no_bias_layer(g, h, norm_2, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_mlp_layer(g, x, &mlp, up, down, 0));
    }
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_layernorm_no_bias_layer(g, h, "transformer.norm_f", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "transformer.wte" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_mpt = {"MptForCausalLM", mpt_validate, mpt_build, NULL};
