/* The example plugin end to end: a tiny network placing
 * example.scaled_residual through the functional API (twice, around the
 * built-in attention), compiled and written as an engine, loaded and run;
 * its logits are compared with a plain-C reference. Then the same engine
 * must refuse to load without the plugin, and with the plugin at version 2,
 * each time naming it.
 *
 * usage: test_plugin_example LIB_V1.so LIB_V2.so OUT.engine [cpu|cuda]
 * (cuda: exits 77, skipped, without a GPU) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "compiler/compiler.h"
#include "engine/engine_file.h"
#include "graph/graph.h"
#include "llmrt/llmrt.h"
#include "llmrt/plugin.h"

enum { VOCAB = 16, HIDDEN = 8, HEADS = 2, HEAD_DIM = 4, PROMPT = 5 };
static const float ALPHA_IN = 0.5f, ALPHA_OUT = 2.0f;
static const char *PLUGIN = "example.scaled_residual";

static int failures;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, " (last error: %s)\n", llmrt_last_error());    \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static float embedding[VOCAB * HIDDEN], lm_head[VOCAB * HIDDEN];
static const char *backend = "cpu";

static void fill(float *x, int n, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

/* token_ids [T] → x = emb[ids]; r = x + α₁·tanh(x); a = attention(r, r, r);
 * y = r + α₂·a; logits [L, V] = y[logits_indices] · lm_headᵀ */
static llmrt_graph *build_network(void) {
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    const int64_t t_dims[1] = {LLMRT_DIM_TOKENS}, l_dims[1] = {LLMRT_DIM_LOGITS}, table[2] = {VOCAB, HIDDEN};
    llmrt_value ids = llmrt_input(g, "token_ids", LLMRT_DTYPE_I32, 1, t_dims);
    llmrt_input(g, "positions", LLMRT_DTYPE_I32, 1, t_dims);
    llmrt_value rows = llmrt_input(g, "logits_indices", LLMRT_DTYPE_I32, 1, l_dims);
    llmrt_value x = llmrt_gather(g, llmrt_constant(g, "embedding", embedding, 2, table), ids);
    llmrt_value in1[2] = {x, llmrt_tanh(g, x)};
    llmrt_value r = llmrt_plugin_op(g, PLUGIN, in1, 2, &ALPHA_IN, sizeof ALPHA_IN);
    llmrt_attention_params p = {.layer = 0, .num_heads = HEADS, .num_kv_heads = HEADS, .head_dim = HEAD_DIM,
                                .scale = 1.0f / sqrtf((float)HEAD_DIM)};
    llmrt_value in2[2] = {r, llmrt_attention(g, r, r, r, LLMRT_NO_VALUE, &p)};
    llmrt_value y = llmrt_plugin_op(g, PLUGIN, in2, 2, &ALPHA_OUT, sizeof ALPHA_OUT);
    llmrt_value logits = llmrt_matmul(g, llmrt_gather(g, y, rows), llmrt_constant(g, "lm_head", lm_head, 2, table), 1);
    llmrt_graph_mark_output(g, logits);
    return g;
}

static void reference(const int32_t *ids, int n, float *logits) {
    float r[PROMPT][HIDDEN], y[PROMPT][HIDDEN];
    for (int t = 0; t < n; t++)
        for (int d = 0; d < HIDDEN; d++) {
            float x = embedding[ids[t] * HIDDEN + d];
            r[t][d] = x + ALPHA_IN * tanhf(x);
        }
    for (int t = 0; t < n; t++)
        for (int h = 0; h < HEADS; h++) {
            float score[PROMPT], top = -INFINITY, sum = 0;
            for (int s = 0; s <= t; s++) {
                score[s] = 0;
                for (int d = 0; d < HEAD_DIM; d++) score[s] += r[t][h * HEAD_DIM + d] * r[s][h * HEAD_DIM + d];
                score[s] /= sqrtf((float)HEAD_DIM);
                if (score[s] > top) top = score[s];
            }
            for (int s = 0; s <= t; s++) sum += score[s] = expf(score[s] - top);
            for (int d = 0; d < HEAD_DIM; d++) {
                float a = 0;
                for (int s = 0; s <= t; s++) a += score[s] / sum * r[s][h * HEAD_DIM + d];
                y[t][h * HEAD_DIM + d] = r[t][h * HEAD_DIM + d] + ALPHA_OUT * a;
            }
        }
    for (int t = 0; t < n; t++)
        for (int v = 0; v < VOCAB; v++) {
            float dot = 0;
            for (int d = 0; d < HIDDEN; d++) dot += y[t][d] * lm_head[v * HIDDEN + d];
            logits[t * VOCAB + v] = dot;
        }
}

static llmrt_status build_engine(const char *path) {
    llmrt_compile_options copts = {.target = backend, .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                                   .max_num_tokens = 16, .max_batch = 2, .max_seq_len = 16,
                                   .quant_dtype = LLMRT_DTYPE_INVALID};
    llmrt_plan *plan = NULL;
    LLMRT_TRY(llmrt_compile_graph(build_network(), NULL, &copts, &plan));
    llmrt_model_config config;
    memset(&config, 0, sizeof config);
    snprintf(config.architecture, sizeof config.architecture, "ScaledResidualExample");
    config.vocab_size = VOCAB, config.hidden_size = HIDDEN, config.num_layers = 1;
    config.num_heads = config.num_kv_heads = HEADS, config.head_dim = HEAD_DIM;
    config.intermediate_size = HIDDEN, config.max_position_embeddings = 16, config.norm_eps = 1e-5f;
    config.bos_token_id = config.pad_token_id = -1;
    llmrt_engine_write_input input = {.plan = plan, .config = &config,
                                      .build = {.backend = backend, .dtype = LLMRT_DTYPE_F32,
                                                .act_dtype = LLMRT_DTYPE_F32, .source = "test_plugin_example"}};
    llmrt_status s = llmrt_engine_write(path, &input);
    llmrt_plan_free(plan);
    return s;
}

static llmrt_status load(const char *path, llmrt_engine **engine) {
    llmrt_engine_options options;
    llmrt_engine_options_init(&options);
    options.num_threads = 1;
    return llmrt_engine_load(path, &options, engine);
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s LIB_V1.so LIB_V2.so OUT.engine [cpu|cuda]\n", argv[0]);
        return 2;
    }
    if (argc == 5) backend = argv[4];
    if (strcmp(backend, "cuda") == 0) {
#ifdef LLMRT_HAVE_CUDA
        if (!llmrt_cuda_available()) {
            printf("no CUDA device: skipped\n");
            return 77;
        }
#else
        printf("built without CUDA: skipped\n");
        return 77;
#endif
    }
    fill(embedding, VOCAB * HIDDEN, 1);
    fill(lm_head, VOCAB * HIDDEN, 2);

    /* an unregistered plugin cannot be placed in a graph */
    llmrt_graph *g = build_network();
    CHECK(llmrt_graph_status(g) == LLMRT_ERR_NOT_FOUND && strstr(llmrt_last_error(), PLUGIN),
          "placing an unregistered plugin must fail naming it");
    llmrt_graph_free(g);

    CHECK(llmrt_plugin_load(argv[1]) == LLMRT_OK, "loading %s", argv[1]);
    CHECK(llmrt_plugin_load(argv[1]) == LLMRT_OK, "loading the same library again is a no-op");
    CHECK(llmrt_plugin_load("/nonexistent/libnothing.so") == LLMRT_ERR_IO, "a missing library is an I/O error");
    CHECK(build_engine(argv[3]) == LLMRT_OK, "building the engine");

    /* run it: logits at every prompt position against the reference */
    const int32_t prompt[PROMPT] = {3, 1, 4, 1, 5};
    float got[PROMPT * VOCAB], want[PROMPT * VOCAB];
    llmrt_engine *engine = NULL;
    CHECK(load(argv[3], &engine) == LLMRT_OK, "loading the engine with its plugin");
    if (engine) {
        CHECK(llmrt_prompt_logits(engine, prompt, PROMPT, got) == LLMRT_OK, "prompt logits");
        reference(prompt, PROMPT, want);
        float worst = 0;
        for (int i = 0; i < PROMPT * VOCAB; i++) worst = fmaxf(worst, fabsf(got[i] - want[i]));
        CHECK(worst < (strcmp(backend, "cpu") == 0 ? 1e-4f : 2e-3f), "logits differ from the reference by %g", worst);
        printf("plugin engine (%s): logits match the reference (max |diff| %.2g)\n", backend, worst);
        llmrt_engine_free(engine);
        engine = NULL;
    }

    /* missing plugin: a clear error naming it */
    CHECK(llmrt_plugin_unregister(PLUGIN) == LLMRT_OK, "unregister");
    CHECK(llmrt_plugin_unregister("attention") != LLMRT_OK, "built-ins cannot be unregistered");
    llmrt_status s = load(argv[3], &engine);
    CHECK(s == LLMRT_ERR_NOT_FOUND && strstr(llmrt_last_error(), PLUGIN) && strstr(llmrt_last_error(), "not loaded"),
          "loading without the plugin must fail naming it");
    printf("missing plugin: %s\n", llmrt_last_error());
    if (engine) llmrt_engine_free(engine), engine = NULL;

    /* another version: a clear error naming both */
    CHECK(llmrt_plugin_load(argv[2]) == LLMRT_OK, "loading %s", argv[2]);
    s = load(argv[3], &engine);
    CHECK(s == LLMRT_ERR_UNSUPPORTED && strstr(llmrt_last_error(), PLUGIN) &&
              strstr(llmrt_last_error(), "version 1") && strstr(llmrt_last_error(), "version 2"),
          "loading with version 2 must fail naming the plugin and both versions");
    printf("wrong version: %s\n", llmrt_last_error());
    if (engine) llmrt_engine_free(engine);

    /* registration rules: a second plugin of the same name, a name without a prefix */
    CHECK(llmrt_plugin_load(argv[1]) == LLMRT_ERR_INVALID_ARGUMENT, "a name registered at another version");
    llmrt_plugin bad = {.abi_version = LLMRT_PLUGIN_ABI_VERSION, .name = "relu2", .version = 1};
    CHECK(llmrt_plugin_register(&bad) == LLMRT_ERR_INVALID_ARGUMENT, "a name without a '.'");
    if (failures) fprintf(stderr, "%d failures\n", failures);
    else printf("ok\n");
    return failures ? 1 : 0;
}
