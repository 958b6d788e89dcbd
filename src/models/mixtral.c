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
    int32_t first, last; /* this pipeline stage's layers (all of them unless split) */
    llmrt_model_stage_layers(g, c->num_layers, &first, &last);
    llmrt_value h = llmrt_model_stage_receive(g, &in, hidden);
    if (h == LLMRT_NO_VALUE)
        h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);

    llmrt_value freq = llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_moe_layer_params moe = {.hidden = hidden, .intermediate = c->intermediate_size,
                                  .num_experts = c->num_experts, .top_k = c->num_experts_per_tok};
    for (int32_t l = first; l < last; l++) {
        llmrt_model_layer_names n;
        llmrt_model_format_layer_names(&n, l);
        char router[96], experts[96];
        snprintf(router, sizeof router, "model.layers.%d.block_sparse_moe.gate", (int)l);
        snprintf(experts, sizeof experts, "model.layers.%d.block_sparse_moe.experts", (int)l);
        llmrt_moe_layer_names moe_names = {.router = router, .experts = experts,
                                           .gate = "w1", .up = "w3", .down = "w2"};
        llmrt_value x = llmrt_llama_attention_half(g, c, &attention, &n, l - first, freq, &h);
        h = llmrt_add(g, h, llmrt_moe_layer(g, x, &moe, &moe_names));
    }
    if (llmrt_model_stage_hand_on(g, h, c->vocab_size)) return LLMRT_NO_VALUE;
    /* Norm and project only the rows whose logits are wanted; the head is
     * vocab-parallel under tensor parallelism, as LLaMA's. */
    h = llmrt_gather(g, h, in.logits_indices);
    h = llmrt_rmsnorm_layer(g, h, "model.norm", hidden, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    llmrt_value logits = llmrt_lm_head_layer(g, h, head, hidden, c->vocab_size);
    llmrt_model_stage_logits(g, logits);
    return logits;
}

const llmrt_model_family llmrt_family_mixtral = {"MixtralForCausalLM", mixtral_validate, mixtral_build, NULL};
