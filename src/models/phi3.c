/* Phi-3: LLaMA's blocks with q, k and v in one qkv_proj ([q | k | v]) and
 * gate and up in one gate_up_proj, and LongRoPE (rope type longrope): per
 * frequency factors, the short list for contexts within
 * original_max_position_embeddings and the long one past it, cos and sin
 * scaled by attention_factor. An engine picks one list for all positions
 * when it is built: the long one when its max_seq_len passes the original
 * context (src/compiler/compiler.c), since its cache holds keys of every
 * position of a sequence rotated alike.
 *
 *   h = embed(ids)
 *   for each layer: h += o(attn(split(qkv(n1(h)))))
 *                   h += down(silu(gate) · up),  [gate | up] = gate_up(n2(h))
 *   logits = lm_head(norm(h[logits_indices]))
 */
#include "layers/layers.h"
#include "models/models.h"

static llmrt_status phi3_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Phi-3 needs rotary embeddings", c->architecture);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    return LLMRT_OK;
}

llmrt_value llmrt_phi3_build(llmrt_graph *g, const llmrt_model_config *c, int fused_qkv) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t hidden = c->hidden_size;
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, "model.embed_tokens.weight", c->vocab_size, hidden);
    llmrt_value freq = llmrt_model_rope_frequencies(g, c);
    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    for (int32_t l = 0; l < c->num_layers; l++) {
        llmrt_model_layer_names n;
        llmrt_model_format_layer_names(&n, l);
        llmrt_attention_layer_names names = {.qkv = n.qkv, .out = n.o};
        if (!fused_qkv) names = (llmrt_attention_layer_names){.q = n.q, .k = n.k, .v = n.v, .out = n.o};
        llmrt_value x = llmrt_rmsnorm_layer(g, h, n.input_norm, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_attention_layer(g, x, &attention, l, &names, freq));
        x = llmrt_rmsnorm_layer(g, h, n.post_attn_norm, hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_fused_gated_mlp_layer(g, x, &mlp, n.gate_up, n.down));
    }
    llmrt_value logits = llmrt_model_rmsnorm_logits(g, h, &in, c, 0);
    llmrt_graph_mark_output(g, logits);
    return logits;
}

static llmrt_value phi3_build(llmrt_graph *g, const llmrt_model_config *c) { return llmrt_phi3_build(g, c, 1); }

const llmrt_model_family llmrt_family_phi3 = {"Phi3ForCausalLM", phi3_validate, phi3_build, NULL};
