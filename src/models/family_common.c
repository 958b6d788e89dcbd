/* What every family's network builder shares: the step's inputs, and the
 * model spec translated into the layers' parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/dtype.h"
#include "layers/layers.h"
#include "models/models.h"

llmrt_model_inputs llmrt_model_declare_inputs(llmrt_graph *g) {
    int64_t tokens = LLMRT_DIM_TOKENS, logits = LLMRT_DIM_LOGITS;
    llmrt_model_inputs in;
    in.token_ids = llmrt_input(g, "token_ids", LLMRT_DTYPE_I32, 1, &tokens);
    in.positions = llmrt_input(g, "positions", LLMRT_DTYPE_I32, 1, &tokens);
    in.logits_indices = llmrt_input(g, "logits_indices", LLMRT_DTYPE_I32, 1, &logits);
    return in;
}

llmrt_attention_layer_params llmrt_model_attention_params(const llmrt_model_config *c) {
    return (llmrt_attention_layer_params){
        .hidden = c->hidden_size,
        .num_heads = c->num_heads,
        .num_kv_heads = c->num_kv_heads,
        .head_dim = c->head_dim,
        .rotary_dim = c->rope.type == LLMRT_ROPE_NONE ? 0 : c->rope.rotary_dim,
        .rope_interleaved = c->rope.interleaved,
        .rope_scale = c->rope.type == LLMRT_ROPE_LONGROPE ? c->rope.attention_factor : 1.0f,
        .qkv_bias = c->attention_bias,
        .out_bias = c->attention_out_bias,
        .sliding_window = c->sliding_window,
    };
}

llmrt_mlp_layer_params llmrt_model_mlp_params(const llmrt_model_config *c) {
    return (llmrt_mlp_layer_params){
        .hidden = c->hidden_size,
        .intermediate = c->intermediate_size,
        .activation = c->activation,
        .bias = c->mlp_bias,
    };
}

llmrt_value llmrt_model_rope_inv_freq(llmrt_graph *g, const llmrt_rope_config *rope, const char *label) {
    int64_t half = rope->rotary_dim / 2;
    float *inv_freq = malloc((size_t)(half + 1) * sizeof *inv_freq);
    if (!inv_freq) return llmrt_graph_fail(g, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_rope_inv_freq(rope, inv_freq);
    llmrt_value freq = llmrt_constant(g, label, inv_freq, 1, &half);
    free(inv_freq);
    return freq;
}

int32_t llmrt_model_layer_window(const llmrt_model_config *c, int32_t layer) {
    const int32_t n = c->sliding_window_pattern;
    return n > 0 && (layer + 1) % n == 0 ? 0 : c->sliding_window;
}

float llmrt_model_embedding_scale(const llmrt_graph *g, const llmrt_model_config *c) {
    float scale = sqrtf((float)c->hidden_size);
    if (g->act_dtype == LLMRT_DTYPE_BF16) scale = llmrt_bf16_to_f32(llmrt_f32_to_bf16(scale));
    if (g->act_dtype == LLMRT_DTYPE_F16) scale = llmrt_f16_to_f32(llmrt_f32_to_f16(scale));
    return scale;
}
llmrt_value llmrt_model_rope_frequencies(llmrt_graph *g, const llmrt_model_config *c) {
    if (c->rope.type == LLMRT_ROPE_NONE) return LLMRT_NO_VALUE;
    return llmrt_model_rope_inv_freq(g, &c->rope, "rope.inv_freq");
}

void llmrt_model_format_layer_names(llmrt_model_layer_names *n, int32_t layer) {
    char p[32];
    snprintf(p, sizeof p, "model.layers.%d", (int)layer);
    snprintf(n->input_norm, sizeof n->input_norm, "%s.input_layernorm", p);
    snprintf(n->post_attn_norm, sizeof n->post_attn_norm, "%s.post_attention_layernorm", p);
    snprintf(n->pre_ff_norm, sizeof n->pre_ff_norm, "%s.pre_feedforward_layernorm", p);
    snprintf(n->post_ff_norm, sizeof n->post_ff_norm, "%s.post_feedforward_layernorm", p);
    snprintf(n->q, sizeof n->q, "%s.self_attn.q_proj", p);
    snprintf(n->k, sizeof n->k, "%s.self_attn.k_proj", p);
    snprintf(n->v, sizeof n->v, "%s.self_attn.v_proj", p);
    snprintf(n->o, sizeof n->o, "%s.self_attn.o_proj", p);
    snprintf(n->qkv, sizeof n->qkv, "%s.self_attn.qkv_proj", p);
    snprintf(n->q_norm, sizeof n->q_norm, "%s.self_attn.q_norm", p);
    snprintf(n->k_norm, sizeof n->k_norm, "%s.self_attn.k_norm", p);
    snprintf(n->gate, sizeof n->gate, "%s.mlp.gate_proj", p);
    snprintf(n->up, sizeof n->up, "%s.mlp.up_proj", p);
    snprintf(n->down, sizeof n->down, "%s.mlp.down_proj", p);
    snprintf(n->gate_up, sizeof n->gate_up, "%s.mlp.gate_up_proj", p);
}

llmrt_value llmrt_model_rmsnorm_logits(llmrt_graph *g, llmrt_value h, const llmrt_model_inputs *in,
                                       const llmrt_model_config *c, int plus_one) {
    /* Norm and project only the rows whose logits are wanted. */
    h = llmrt_gather(g, h, in->logits_indices);
    h = plus_one ? llmrt_rmsnorm_plus_one_layer(g, h, "model.norm", c->hidden_size, c->norm_eps)
                 : llmrt_rmsnorm_layer(g, h, "model.norm", c->hidden_size, c->norm_eps);
    const char *head = c->tie_word_embeddings ? "model.embed_tokens" : "lm_head";
    return llmrt_linear_layer(g, h, head, c->hidden_size, c->vocab_size, 0, 0);
}

/* ---- pipeline stages ----------------------------------------------------------
 * A step flows stage 0 → 1 → … → last by SEND/RECV of the hidden state
 * [T, hidden]; the last stage sends the logits back to every other stage,
 * so each plan ends in the logits as one-stage plans do. With tensor
 * parallelism too, rank = stage · tp + tp_rank, and each tensor-parallel
 * rank talks to the same tp_rank of the next stage. */

static int pipelined(const llmrt_graph *g) { return g->pp_stages > 1; }
static int32_t tp_of(const llmrt_graph *g) { return g->tp_size > 1 ? g->tp_size : 1; }
static int32_t rank_of(const llmrt_graph *g, int32_t stage) { return stage * tp_of(g) + g->tp_rank; }
static int32_t ranks_of(const llmrt_graph *g) { return g->pp_stages * tp_of(g); }

/* iattr[2] of a stage's SEND/RECV: the stage itself (for inspect) */
static llmrt_value stage_node(llmrt_graph *g, llmrt_value v) {
    if (v != LLMRT_NO_VALUE) g->nodes[v].iattr[2] = g->pp_stage;
    return v;
}

void llmrt_model_stage_layers(const llmrt_graph *g, int32_t num_layers, int32_t *first, int32_t *last) {
    if (!pipelined(g)) {
        *first = 0;
        *last = num_layers;
        return;
    }
    *first = (int32_t)((int64_t)num_layers * g->pp_stage / g->pp_stages);
    *last = (int32_t)((int64_t)num_layers * (g->pp_stage + 1) / g->pp_stages);
}

llmrt_value llmrt_model_stage_receive(llmrt_graph *g, const llmrt_model_inputs *in, int64_t hidden) {
    if (!pipelined(g) || g->pp_stage == 0) return LLMRT_NO_VALUE;
    int64_t dims[2] = {LLMRT_DIM_TOKENS, hidden};
    return stage_node(g, llmrt_recv(g, in->token_ids, g->act_dtype, 2, dims, rank_of(g, g->pp_stage - 1), ranks_of(g)));
}

int llmrt_model_stage_hand_on(llmrt_graph *g, llmrt_value h, int64_t vocab) {
    if (!pipelined(g) || g->pp_stage == g->pp_stages - 1) return 0;
    llmrt_value sent = stage_node(g, llmrt_send(g, h, rank_of(g, g->pp_stage + 1), ranks_of(g)));
    int64_t dims[2] = {LLMRT_DIM_LOGITS, vocab};
    llmrt_value logits =
        stage_node(g, llmrt_recv(g, sent, g->act_dtype, 2, dims, rank_of(g, g->pp_stages - 1), ranks_of(g)));
    llmrt_graph_mark_output(g, logits);
    return 1;
}

void llmrt_model_stage_logits(llmrt_graph *g, llmrt_value logits) {
    if (pipelined(g))
        for (int32_t stage = 0; stage < g->pp_stages - 1; stage++)
            logits = stage_node(g, llmrt_send(g, logits, rank_of(g, stage), ranks_of(g)));
    llmrt_graph_mark_output(g, logits);
}
