/* GPTBigCode (StarCoder, SantaCoder): GPT-2's blocks (learned positions,
 * pre-LayerNorm, tanh-GeLU MLP, tied head) with nn.Linear weights and
 * multi-query attention: one fused c_attn giving [q | k | v] with a single
 * KV head, or per head [heads, 3, D] without multi_query.
 *
 *   h = wte(ids) + wpe(positions)
 *   for each layer: h += c_proj(attn(split(c_attn(ln_1(h)))))
 *                   h += mlp.c_proj(gelu(mlp.c_fc(ln_2(h))))
 *   logits = wteᵀ · ln_f(h[logits_indices])
 */
#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gpt_bigcode_validate(const llmrt_model_config *c) {
    if (c->rope.type != LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: GPTBigCode has learned positions, not rotary embeddings",
                           c->architecture);
    if (c->head_dim * c->num_heads != c->hidden_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: n_embd %d is not n_head %d × head size %d", c->architecture,
                           c->hidden_size, c->num_heads, c->head_dim);
    if (c->num_kv_heads != 1 && c->num_kv_heads != c->num_heads)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: %d KV heads: GPTBigCode has one (multi_query) or one per head",
                           c->architecture, c->num_kv_heads);
    return LLMRT_OK;
}

/* GPT-2's builder (gpt2.c) with nn.Linear weights and c_attn's own layout */
static llmrt_value gpt_bigcode_build(llmrt_graph *g, const llmrt_model_config *c) { return llmrt_gpt2_build(g, c, 0); }

const llmrt_model_family llmrt_family_gpt_bigcode = {"GPTBigCodeForCausalLM", gpt_bigcode_validate,
                                                     gpt_bigcode_build, NULL};
