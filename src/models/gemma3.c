/* Gemma 3 (text): Gemma 2's block with Gemma-style RMSNorm (1 + w) on each
 * head of q and k before RoPE, and a RoPE base of its own for the windowed
 * layers (rope_local_theta) beside the global layers' (possibly scaled) one.
 *
 *   h = embed(ids) · √hidden
 *   for each layer: q, k, v = q(n_in(h)), k(n_in(h)), v(n_in(h))
 *                   h += n_post_attn(o(attn_w(rope_l(qnorm(q)), rope_l(knorm(k)), v)))
 *                   h += n_post_ff(down(gelu(gate(n_pre_ff(h))) · up(n_pre_ff(h))))
 *     local layers: window and rope_local_theta; global: full and rope
 *   logits = lm_head(norm(h[logits_indices]))  (soft-capped if configured)
 */
#include "layers/layers.h"
#include "models/models.h"

static llmrt_status gemma3_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: Gemma 3 needs rotary embeddings", c->architecture);
    return LLMRT_OK;
}

/* Gemma 2's builder (gemma2.c) with the q/k norms and the local RoPE base */
static llmrt_value gemma3_build(llmrt_graph *g, const llmrt_model_config *c) { return llmrt_gemma2_build(g, c, 1); }

const llmrt_model_family llmrt_family_gemma3 = {"Gemma3ForCausalLM", gemma3_validate, gemma3_build, NULL};
