/* Calibration (--calib): the CPU twin of the OBSERVE kernel against a
 * plain loop; the runner on the demo model, whose first layer's q/k/v input
 * statistics are checked against RMSNorm(embedding) computed here from the
 * checkpoint; the entries' names are those the quantize pass quantizes; too
 * little text, bad options and a sample length past max_seq_len. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/calibrate.h"
#include "backends/cpu/cpu_kernels_observe.h"
#include "compiler/compiler.h"
#include "core/dtype.h"
#include "import/hf_config.h"
#include "llmrt/llmrt.h"
#include "llmrt/tokenizer.h"
#include "test_util.h"

#define DEMO LLMRT_SOURCE_DIR "/models/demo"

static void test_column_amax(void) {
    uint64_t rng = 11;
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {37, 300}, {130, 513}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1];
        float *x = malloc((size_t)(rows * cols) * sizeof *x), *amax = calloc((size_t)cols, sizeof *amax);
        test_fill_random(x, (size_t)(rows * cols), &rng, 3.0f);
        amax[0] = 100.0f; /* a maximum from an earlier step stays */
        cpu_column_amax(amax, x, rows, cols);
        int ok = amax[0] == 100.0f;
        for (int64_t k = 1; k < cols; k++) {
            float want = 0;
            for (int64_t r = 0; r < rows; r++) want = fmaxf(want, fabsf(x[r * cols + k]));
            ok &= amax[k] == want;
        }
        CHECK_MSG(ok, "column amax of [%lld, %lld]", (long long)rows, (long long)cols);
        x[cols - 1] = NAN; /* sticks, whatever comes after */
        cpu_column_amax(amax, x, rows, cols);
        x[cols - 1] = 1e9f;
        cpu_column_amax(amax, x, 1, cols);
        CHECK(isnan(amax[cols - 1]));
        free(x), free(amax);
    }
}

/* The demo checkpoint's tensor as f32 (malloc'd). */
static float *tensor_f32(const llmrt_checkpoint *ck, const char *name, size_t count) {
    const llmrt_st_tensor *t = llmrt_checkpoint_find(ck, name);
    CHECK_MSG(t != NULL, "no tensor %s", name);
    float *v = malloc(count * sizeof *v);
    if (t) llmrt_convert_to_f32(v, t->data, t->dtype, count);
    return v;
}

static llmrt_compile_options demo_options(void) {
    return (llmrt_compile_options){.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                                   .max_num_tokens = 64, .max_batch = 1, .max_seq_len = 64};
}

static void test_demo_statistics(void) {
    llmrt_model_config config;
    llmrt_checkpoint *ck = NULL;
    CHECK_OK(llmrt_hf_config_load(DEMO "/config.json", &config));
    CHECK_OK(llmrt_checkpoint_open_dir(DEMO, &ck));
    if (!ck) return;
    const llmrt_compile_options build = demo_options();
    const int32_t samples = 3, len = 40;
    llmrt_calibrate_options co = {.text_path = DEMO "/validation.txt", .tokenizer_path = DEMO "/tokenizer.json",
                                  .samples = samples, .sample_len = len};
    llmrt_calibration *calib = NULL;
    CHECK_OK(llmrt_calibrate(&config, ck, &build, &co, &calib));
    if (!calib) {
        llmrt_checkpoint_close(ck);
        return;
    }
    CHECK(calib->samples == samples && calib->sample_len == len);

    /* layer 0's q/k/v read RMSNorm(embedding of the tokens) */
    llmrt_tokenizer *tok = NULL;
    char *text = NULL;
    size_t size = 0, count = 0;
    int32_t *ids = NULL;
    FILE *f = fopen(DEMO "/validation.txt", "rb");
    text = malloc(1 << 16);
    size = f ? fread(text, 1, 1 << 16, f) : 0;
    if (f) fclose(f);
    while (size > 0 && text[size - 1] != '\n') size--; /* whole lines */
    CHECK_OK(llmrt_tokenizer_load(DEMO "/tokenizer.json", &tok));
    CHECK_OK(llmrt_tokenizer_encode(tok, text, size, LLMRT_ENCODE_PLAIN, &ids, &count));
    CHECK(count >= (size_t)(samples * len));
    const int64_t H = config.hidden_size;
    float *embed = tensor_f32(ck, "model.embed_tokens.weight", (size_t)(config.vocab_size * H));
    float *gain = tensor_f32(ck, "model.layers.0.input_layernorm.weight", (size_t)H);
    double *want = calloc((size_t)H, sizeof *want);
    for (int32_t t = 0; t < samples * len && t < (int32_t)count; t++) {
        const float *e = embed + (size_t)ids[t] * (size_t)H;
        double ss = 0;
        for (int64_t k = 0; k < H; k++) ss += (double)e[k] * e[k];
        const double inv = 1.0 / sqrt(ss / (double)H + config.norm_eps);
        for (int64_t k = 0; k < H; k++) want[k] = fmax(want[k], fabs(e[k] * inv * gain[k]));
    }
    const char *qkv[] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                         "model.layers.0.self_attn.v_proj.weight"};
    for (int i = 0; i < 3; i++) {
        const llmrt_calib_entry *e = llmrt_calibration_find(calib, qkv[i]);
        CHECK_MSG(e && e->cols == H, "entry %s", qkv[i]);
        if (!e || e->cols != H) continue;
        double worst = 0, top = 0;
        for (int64_t k = 0; k < H; k++) {
            worst = fmax(worst, fabs(e->channel_amax[k] - want[k]) / want[k]);
            top = fmax(top, want[k]);
        }
        CHECK_MSG(worst < 1e-4, "%s: channel max |x| off by %g (relative)", qkv[i], worst);
        CHECK_MSG(fabs(e->input_amax - top) <= 1e-4 * top, "%s: input_amax %g, expected %g", qkv[i],
                  (double)e->input_amax, top);
    }

    /* every weight the quantize pass quantizes has an entry of its width;
     * the LM head (the plan's output) has none */
    llmrt_compile_options q = demo_options();
    q.quant_dtype = LLMRT_DTYPE_INT8_WO;
    llmrt_plan *plan = NULL;
    CHECK_OK(llmrt_compile(&config, ck, &q, &plan));
    int32_t quantized = 0;
    for (int32_t i = 0; plan && i < plan->graph->num_nodes; i++) {
        const llmrt_node *n = &plan->graph->nodes[i];
        if (n->op == LLMRT_OP_LINEAR && n->is_output)
            CHECK(llmrt_calibration_find(calib, plan->graph->nodes[n->inputs[1]].name) == NULL);
        if (n->op != LLMRT_OP_WEIGHT || n->dtype != LLMRT_DTYPE_INT8_WO) continue;
        const llmrt_calib_entry *e = llmrt_calibration_find(calib, n->name);
        CHECK_MSG(e && e->cols == n->dims[1] && e->input_amax > 0, "no statistics for quantized weight %s", n->name);
        quantized++;
    }
    CHECK(quantized == 7 * config.num_layers && calib->count == quantized);
    llmrt_plan_free(plan);
    free(want), free(embed), free(gain), free(ids), free(text);
    llmrt_tokenizer_free(tok);
    llmrt_calibration_free(calib);
    llmrt_checkpoint_close(ck);
}

/* The calibration compile: one OBSERVE per distinct LINEAR input (q/k/v
 * share one), right before its first reader, none on the LM head's; no
 * engine may hold one. */
static void test_observe_pass(void) {
    llmrt_model_config config;
    CHECK_OK(llmrt_hf_config_load(DEMO "/config.json", &config));
    llmrt_compile_options o = demo_options();
    o.random_weights = 1;
    o.observe = 1;
    llmrt_plan *plan = NULL;
    CHECK_OK(llmrt_compile(&config, NULL, &o, &plan));
    if (!plan) return;
    const llmrt_graph *g = plan->graph;
    int32_t observers = 0, linears = 0;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op == LLMRT_OP_LINEAR && !n->is_output) linears++;
        if (n->op != LLMRT_OP_OBSERVE) continue;
        observers++;
        const llmrt_node *x = &g->nodes[n->inputs[0]];
        CHECK(n->ndim == 1 && n->dims[0] == x->dims[x->ndim - 1] && n->arena_offset == -1);
        int32_t next = i + 1; /* the first node after it that computes is a LINEAR of x */
        while (next < g->num_nodes && (g->nodes[next].op == LLMRT_OP_WEIGHT || g->nodes[next].op == LLMRT_OP_VIEW))
            next++;
        CHECK(next < g->num_nodes && g->nodes[next].op == LLMRT_OP_LINEAR && g->nodes[next].inputs[0] == n->inputs[0]);
        for (int32_t j = 0; j < i; j++) /* and none before it reads x */
            CHECK(!(g->nodes[j].op == LLMRT_OP_LINEAR && g->nodes[j].inputs[0] == n->inputs[0]));
    }
    /* per layer: q/k/v, o_proj, gate/up and down_proj read 4 inputs */
    CHECK_MSG(observers == 4 * config.num_layers && linears == 7 * config.num_layers, "%d observers, %d linears",
              (int)observers, (int)linears);
    CHECK(llmrt_plan_verify(plan) == LLMRT_ERR_FORMAT && strstr(llmrt_last_error(), "calibration op"));
    llmrt_plan_free(plan);
}

static void test_errors(void) {
    llmrt_model_config config;
    llmrt_checkpoint *ck = NULL;
    CHECK_OK(llmrt_hf_config_load(DEMO "/config.json", &config));
    CHECK_OK(llmrt_checkpoint_open_dir(DEMO, &ck));
    const llmrt_compile_options build = demo_options();
    llmrt_calibrate_options co = {.text_path = DEMO "/validation.txt", .tokenizer_path = DEMO "/tokenizer.json",
                                  .samples = 1000, .sample_len = 512};
    llmrt_calibration *calib = NULL;
    /* the length is clamped to max_seq_len (64): 1000 samples need 64000 tokens */
    CHECK(llmrt_calibrate(&config, ck, &build, &co, &calib) == LLMRT_ERR_INVALID_ARGUMENT && !calib);
    CHECK_MSG(strstr(llmrt_last_error(), "need 64000") && strstr(llmrt_last_error(), "the text has"), "%s",
              llmrt_last_error());
    co.samples = 1;
    CHECK_OK(llmrt_calibrate(&config, ck, &build, &co, &calib));
    CHECK(calib && calib->sample_len == 64);
    llmrt_calibration_free(calib);
    llmrt_checkpoint_close(ck);

    /* the public options */
    llmrt_build_options bo;
    llmrt_build_options_init(&bo);
    CHECK(bo.smooth_alpha == 0.5f);
    bo.model_dir = DEMO;
    bo.output_path = "/nonexistent-dir/x.engine";
    bo.calib_path = DEMO "/validation.txt";
    bo.smooth_alpha = -0.1f;
    CHECK(llmrt_build(&bo) == LLMRT_ERR_INVALID_ARGUMENT && strstr(llmrt_last_error(), "--smooth-alpha"));
    bo.smooth_alpha = 0.5f;
    bo.calib_samples = -1;
    CHECK(llmrt_build(&bo) == LLMRT_ERR_INVALID_ARGUMENT && strstr(llmrt_last_error(), "--calib-samples"));
    bo.calib_samples = 0;
    bo.tp_size = 2;
    CHECK(llmrt_build(&bo) != LLMRT_OK && strstr(llmrt_last_error(), "--calib with --tp"));
}

int main(void) {
    RUN_TEST(test_column_amax);
    RUN_TEST(test_observe_pass);
    RUN_TEST(test_demo_statistics);
    RUN_TEST(test_errors);
    return test_finish();
}
