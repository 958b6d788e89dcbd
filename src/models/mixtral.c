/* Mixtral (Jiang et al. 2024, "Mixtral of Experts"): the Mistral decoder with
 * each block's MLP replaced by a sparse mixture of SwiGLU experts. A router
 * scores the experts per token; the top k (2 of 8 in Mixtral-8x7B) run, and
 * their outputs are summed with the softmax weights renormalised over the k.
 *
 *   h = embed(ids)
 *   for each layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))))
 *                   x = n2(h);  p = softmax(router(x));  K = topk(p, k)
 *                   h += Σ_{e∈K} p_e / Σ_{K} p · w2_e(silu(w1_e(x)) · w3_e(x))
 *   logits = lm_head(norm(h[logits_indices]))
 */
#include <stdio.h>
#include <stdlib.h>

#include "layers/layers.h"
#include "models/models.h"

static llmrt_status mixtral_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Mixtral needs rotary embeddings", c->architecture);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    if (c->num_experts < 1)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_local_experts is %d; a mixture needs at least one expert",
                           c->architecture, c->num_experts);
    if (c->num_experts_per_tok < 1 || c->num_experts_per_tok > c->num_experts)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_experts_per_tok %d must be in [1, num_local_experts = %d]",
                           c->architecture, c->num_experts_per_tok, c->num_experts);
    if (c->activation != LLMRT_ACT_SILU)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: hidden_act must be silu (the experts are SwiGLU MLPs)",
                           c->architecture);
    if (c->mlp_bias)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: experts with biases (mlp_bias) are not supported",
                           c->architecture);
    if (c->sliding_window > 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: sliding_window %d: windowed attention is not supported for "
                           "Mixtral yet", c->architecture, c->sliding_window);
    return LLMRT_OK;
}

static llmrt_value mixtral_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);

    float *inv_freq = malloc((size_t)(c->rope.rotary_dim / 2 + 1) * sizeof *inv_freq);
    if (!inv_freq) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_rope_inv_freq(&c->rope, inv_freq);
    int64_t half = c->rope.rotary_dim / 2;
    llmrt_value freq = llmrt_constant(g, "rope.inv_freq", inv_freq, 1, &half);
    free(inv_freq);

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_moe_layer_params moe = {.hidden = hidden, .intermediate = c->intermediate_size,
                                  .num_experts = c->num_experts, .top_k = c->num_experts_per_tok};
    for (int32_t l = 0; l < c->num_layers; l++) {
        char p[8][96];
        snprintf(p[0], sizeof p[0], "model.layers.%d.input_layernorm", (int)l);
        snprintf(p[1], sizeof p[1], "model.layers.%d.self_attn.q_proj", (int)l);
        snprintf(p[2], sizeof p[2], "model.layers.%d.self_attn.k_proj", (int)l);
        snprintf(p[3], sizeof p[3], "model.layers.%d.self_attn.v_proj", (int)l);
        snprintf(p[4], sizeof p[4], "model.layers.%d.self_attn.o_proj", (int)l);
        snprintf(p[5], sizeof p[5], "model.layers.%d.post_attention_layernorm", (int)l);
        snprintf(p[6], sizeof p[6], "model.layers.%d.block_sparse_moe.gate", (int)l);
        snprintf(p[7], sizeof p[7], "model.layers.%d.block_sparse_moe.experts", (int)l);

        llmrt_attention_layer_names names = {.q = p[1], .k = p[2], .v = p[3], .out = p[4]};
        llmrt_moe_layer_names experts = {.router = p[6], .experts = p[7], .gate = "w1", .up = "w3", .down = "w2"};
        llmrt_value x = llmrt_rmsnorm_layer(g, h, p[0], hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, freq));
        x = llmrt_rmsnorm_layer(g, h, p[5], hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_moe_layer(g, x, &moe, &experts));
    }
    /* Norm and project only the rows whose logits are wanted. */
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_rmsnorm_layer(g, h, "model.norm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    llmrt_value logits = llmrt_linear_layer(g, h, head, hidden, c->vocab_size, 0, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_mixtral = {"MixtralForCausalLM", mixtral_validate, mixtral_build, NULL};
