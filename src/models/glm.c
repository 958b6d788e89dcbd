/* GLM (GlmForCausalLM, the transformers form of GLM-4): LLaMA's RMSNorm
 * blocks with grouped KV, biases on q, k and v only, RoPE on the first half
 * of each head (partial_rotary_factor) with interleaved pairs (2i, 2i+1),
 * and gate and up in one gate_up_proj.
 *
 *   h = embed(ids)
 *   for each layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))))
 *                   h += down(silu(gate) · up),  [gate | up] = gate_up(n2(h))
 *   logits = lm_head(norm(h[logits_indices]))
 */
#include "layers/layers.h"
#include "models/models.h"

static llmrt_status glm_validate(const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: GLM needs rotary embeddings", c->architecture);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d",
                           c->architecture, c->num_kv_heads, c->num_heads);
    return LLMRT_OK;
}

/* Phi-3's builder (phi3.c) with q, k and v as three projections */
static llmrt_value glm_build(llmrt_graph *g, const llmrt_model_config *c) { return llmrt_phi3_build(g, c, 0); }

const llmrt_model_family llmrt_family_glm = {"GlmForCausalLM", glm_validate, glm_build, NULL};
