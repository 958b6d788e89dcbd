/* SmoothQuant smoothing (compiler/smooth.c) changes the weights but not the
 * model: an f32 plan compiled with smoothing (from made-up activation
 * statistics with a wide spread) gives the logits of the plain plan within
 * 1e-5, on RMSNorm (LLaMA), RMSNorm with a gain offset (Gemma), LayerNorm
 * with a bias (OPT) and Conv1D-layout weights (GPT-2). The norms in front
 * of LINEARs and those LINEARs' weights did change; the others did not. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "compiler/calibration.h"
#include "compiler/compiler.h"
#include "compiler/smooth.h"
#include "import/hf_config.h"
#include "import/safetensors.h"
#include "llmrt/llmrt.h"
#include "test_util.h"

#define CASES LLMRT_SOURCE_DIR "/tests/golden/cases/"

static llmrt_compile_options f32_options(void) {
    return (llmrt_compile_options){.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                                   .max_num_tokens = 16, .max_batch = 1, .max_seq_len = 32};
}

/* Statistics for every LINEAR but the output: max |x_k| log-uniform over
 * 1e-2..1e2, so the factors differ by orders of magnitude. */
static llmrt_calibration *fake_calibration(const llmrt_plan *plan, uint64_t seed) {
    const llmrt_graph *g = plan->graph;
    llmrt_calibration *c = calloc(1, sizeof *c);
    c->entries = calloc((size_t)g->num_nodes, sizeof *c->entries);
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op != LLMRT_OP_LINEAR || n->is_output) continue;
        const llmrt_node *w = &g->nodes[n->inputs[1]];
        if (llmrt_calibration_find(c, w->name)) continue;
        llmrt_calib_entry *e = &c->entries[c->count++];
        e->weight = strdup(w->name);
        e->cols = w->dims[1];
        e->channel_amax = malloc((size_t)e->cols * sizeof(float));
        for (int64_t k = 0; k < e->cols; k++) {
            e->channel_amax[k] = powf(10.0f, 2.0f * test_rand_uniform(&seed));
            if (e->channel_amax[k] > e->input_amax) e->input_amax = e->channel_amax[k];
        }
    }
    return c;
}

/* Logits of every position of one prompt. */
static float *run_plan(const llmrt_plan *plan, const int32_t *ids, int32_t n) {
    const llmrt_backend_ops *ops = &llmrt_cpu_backend_ops;
    llmrt_backend_config config = {.num_threads = 1, .kv_block_size = 16, .kv_num_blocks = 2};
    void *state = NULL;
    CHECK_OK(ops->create(plan, &config, &state));
    if (!state) return NULL;
    int32_t positions[16], rows[16], seq_start[2] = {0, n}, blocks[2] = {0, 1};
    for (int32_t t = 0; t < n; t++) positions[t] = rows[t] = t;
    llmrt_step step = {.num_tokens = n, .token_ids = ids, .positions = positions, .num_seqs = 1,
                       .seq_start = seq_start, .block_tables = blocks, .max_blocks_per_seq = 2, .num_logits = n,
                       .logits_indices = rows};
    float *logits = malloc((size_t)n * (size_t)plan->vocab_size * sizeof *logits);
    CHECK_OK(ops->forward(state, &step, logits));
    ops->destroy(state);
    return logits;
}

static const llmrt_plan_weight *weight_named(const llmrt_plan *plan, const char *name) {
    const int32_t i = llmrt_plan_find_weight(plan, name);
    return i >= 0 ? &plan->weights[i] : NULL;
}

/* 1 when the weight `name` holds the same bytes in both plans. */
static int same_weight(const llmrt_plan *a, const llmrt_plan *b, const char *name) {
    const llmrt_plan_weight *x = weight_named(a, name), *y = weight_named(b, name);
    CHECK_MSG(x && y, "no weight %s", name);
    return x && y && x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0;
}

static void check_case(const char *name, const char *const *smoothed, const char *const *kept) {
    char dir[512], config_path[600];
    snprintf(dir, sizeof dir, "%s%s", CASES, name);
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    llmrt_model_config config;
    llmrt_checkpoint *checkpoint = NULL;
    CHECK_OK(llmrt_hf_config_load(config_path, &config));
    CHECK_OK(llmrt_checkpoint_open_dir(dir, &checkpoint));
    if (!checkpoint) return;
    llmrt_compile_options plain_options = f32_options();
    llmrt_plan *plain = NULL, *smooth = NULL;
    CHECK_OK(llmrt_compile(&config, checkpoint, &plain_options, &plain));
    llmrt_calibration *calib = plain ? fake_calibration(plain, 7) : NULL;
    llmrt_compile_options smooth_options = f32_options();
    smooth_options.calibration = calib;
    smooth_options.smooth = 1;
    smooth_options.smooth_alpha = 0.5f;
    CHECK_OK(llmrt_compile(&config, checkpoint, &smooth_options, &smooth));
    if (plain && smooth) {
        for (const char *const *w = smoothed; *w; w++)
            CHECK_MSG(!same_weight(plain, smooth, *w), "%s: %s unchanged", name, *w);
        for (const char *const *w = kept; *w; w++)
            CHECK_MSG(same_weight(plain, smooth, *w), "%s: %s changed", name, *w);
        int32_t ids[9];
        uint64_t rng = 3;
        for (int32_t t = 0; t < 9; t++) ids[t] = (int32_t)(test_rand_u64(&rng) % (uint64_t)plain->vocab_size);
        float *a = run_plan(plain, ids, 9), *b = run_plan(smooth, ids, 9);
        const size_t count = (size_t)9 * (size_t)plain->vocab_size;
        double rel = a && b ? test_rel_l2(b, a, count) : 1.0;
        CHECK_MSG(rel <= 1e-5, "%s: smoothed logits differ from the plain plan's by %g (relative L2)", name, rel);
        fprintf(stderr, "%s: smoothed vs plain logits, relative L2 %.2e\n", name, rel);
        free(a), free(b);
    }
    /* alpha outside [0, 1] is refused */
    llmrt_plan *bad = NULL;
    smooth_options.smooth_alpha = 1.5f;
    CHECK(llmrt_compile(&config, checkpoint, &smooth_options, &bad) == LLMRT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(llmrt_last_error(), "alpha") != NULL);
    llmrt_plan_free(bad);
    llmrt_calibration_free(calib);
    llmrt_plan_free(plain);
    llmrt_plan_free(smooth);
    llmrt_checkpoint_close(checkpoint);
}

int main(void) {
    static const char *const llama_smoothed[] = {
        "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.v_proj.weight", "model.layers.1.post_attention_layernorm.weight",
        "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight", NULL};
    static const char *const llama_kept[] = {"model.layers.0.self_attn.o_proj.weight",
                                             "model.layers.0.mlp.down_proj.weight", "model.norm.weight", NULL};
    check_case("llama_f32", llama_smoothed, llama_kept);
    static const char *const gemma_smoothed[] = {"model.layers.0.input_layernorm.weight",
                                                 "model.layers.0.mlp.up_proj.weight", NULL};
    static const char *const gemma_kept[] = {"model.layers.0.mlp.down_proj.weight", NULL};
    check_case("gemma_f32", gemma_smoothed, gemma_kept);
    static const char *const opt_smoothed[] = {"model.decoder.layers.0.self_attn_layer_norm.weight",
                                               "model.decoder.layers.0.self_attn_layer_norm.bias",
                                               "model.decoder.layers.0.self_attn.q_proj.weight",
                                               "model.decoder.layers.0.final_layer_norm.weight",
                                               "model.decoder.layers.0.fc1.weight", NULL};
    static const char *const opt_kept[] = {"model.decoder.layers.0.fc2.weight",
                                           "model.decoder.layers.0.self_attn.out_proj.weight", NULL};
    check_case("opt_f32", opt_smoothed, opt_kept);
    static const char *const gpt2_smoothed[] = {"transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias",
                                                "transformer.h.0.attn.c_attn.weight#transposed",
                                                "transformer.h.0.mlp.c_fc.weight#transposed", NULL};
    static const char *const gpt2_kept[] = {"transformer.h.0.mlp.c_proj.weight#transposed",
                                            "transformer.h.0.attn.c_proj.weight#transposed", NULL};
    check_case("gpt2_f32", gpt2_smoothed, gpt2_kept);
    return test_finish();
}
