/* compressed-tensors FP8 checkpoints: a one-layer checkpoint written here
 * (odd sizes, fresh random codes) per scheme the format ships, read through
 * the loader's entry points (llmrt_quant_config_load, the checkpoint,
 * llmrt_quant_checkpoint_read) into an fp8 blob whose codes, per-row
 * scales, flags and input scale must be the checkpoint's; and every
 * quantization_config or tensor llmrt does not read fails with an error
 * naming the field or tensor. The whole-model check (an engine built from
 * such a checkpoint against `--quant fp8` of its dequantized twin) is
 * tests/cli/cli_compressed_tensors.sh. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compiler/passes.h"
#include "core/dtype.h"
#include "core/quant8.h"
#include "import/compressed_tensors.h"
#include "import/quant_checkpoint.h"
#include "import/safetensors.h"
#include "llmrt/llmrt.h"
#include "test_util.h"

#define N 5
#define K 7
#define WEIGHT "model.layers.0.mlp.down_proj.weight"

static char dir[256];

typedef struct layer {
    uint8_t codes[N * K];
    llmrt_dtype scale_dtype;
    int32_t scale_ndim;
    int64_t scale_shape[2];
    uint8_t scale_bytes[N * 4];
    int with_weight_scale, with_input_scale;
    float input_scale;
} layer;

static float scales_f32[N];

/* Random codes without the NaN ones; scales per row (or one) as `dtype`. */
static void make_layer(layer *l, uint64_t seed, int per_channel, llmrt_dtype dtype, int32_t scale_ndim) {
    memset(l, 0, sizeof *l);
    uint64_t state = seed;
    for (int i = 0; i < N * K; i++) {
        uint8_t c = (uint8_t)test_rand_u64(&state);
        l->codes[i] = (c & 0x7f) == 0x7f ? (uint8_t)(c - 1) : c;
    }
    const int count = per_channel ? N : 1;
    for (int n = 0; n < count; n++) {
        float s = 0.001f + 0.01f * (float)(n + 1) + 0.003f * test_rand_uniform(&state);
        if (dtype == LLMRT_DTYPE_BF16) s = llmrt_bf16_to_f32(llmrt_f32_to_bf16(s));
        if (dtype == LLMRT_DTYPE_F16) s = llmrt_f16_to_f32(llmrt_f32_to_f16(s));
        scales_f32[n] = s;
    }
    llmrt_convert_from_f32(l->scale_bytes, dtype, scales_f32, (size_t)count);
    l->scale_dtype = dtype;
    l->scale_ndim = scale_ndim;
    l->scale_shape[0] = count, l->scale_shape[1] = 1;
    l->with_weight_scale = 1;
}

/* config.json of llama_f32 with `quantization_config` (JSON text), and a
 * model.safetensors holding the one layer. */
static void write_checkpoint(const char *quantization_config, const layer *l) {
    char path[400];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/tests/golden/cases/llama_f32/config.json", LLMRT_SOURCE_DIR);
    json_t *config = json_load_file(path, 0, NULL);
    json_object_set_new(config, "quantization_config", json_loads(quantization_config, 0, NULL));
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_dump_file(config, path, 0);
    json_decref(config);
    const int64_t wshape[2] = {N, K}, one[1] = {1};
    llmrt_st_write_entry e[3];
    size_t count = 0;
    e[count++] = (llmrt_st_write_entry){WEIGHT, LLMRT_DTYPE_FP8_E4M3, 2, wshape, l->codes};
    if (l->with_weight_scale)
        e[count++] = (llmrt_st_write_entry){"model.layers.0.mlp.down_proj.weight_scale", l->scale_dtype, l->scale_ndim,
                                            l->scale_shape, l->scale_bytes};
    if (l->with_input_scale)
        e[count++] = (llmrt_st_write_entry){"model.layers.0.mlp.down_proj.input_scale", LLMRT_DTYPE_F32, 1, one,
                                            &l->input_scale};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(llmrt_safetensors_write(path, e, count));
}

/* Loads the settings and reads the layer; returns the status, the blob in *out. */
static llmrt_status load(void **out, llmrt_quant_config *config) {
    *out = NULL;
    LLMRT_TRY(llmrt_quant_config_load(dir, config));
    llmrt_checkpoint *cp = NULL;
    LLMRT_TRY(llmrt_checkpoint_open_dir(dir, &cp));
    const size_t bytes = llmrt_q8weight_bytes(LLMRT_DTYPE_FP8_W8A8, N, K);
    void *blob = malloc(bytes);
    llmrt_status s = llmrt_quant_checkpoint_has(cp, WEIGHT) ? LLMRT_OK
                     : llmrt_error(LLMRT_ERR_NOT_FOUND, "the loader does not see '%s' as quantized", WEIGHT);
    if (s == LLMRT_OK) s = llmrt_quant_checkpoint_read(cp, config, WEIGHT, N, K, blob);
    if (s == LLMRT_OK) s = llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, WEIGHT);
    llmrt_checkpoint_close(cp);
    if (s != LLMRT_OK) free(blob);
    else *out = blob;
    return s;
}

static const char *scheme(const char *weights_strategy, const char *inputs) {
    static char text[1024];
    snprintf(text, sizeof text,
             "{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
             "\"quantization_status\": \"compressed\", \"ignore\": [\"lm_head\", \"re:.*router$\"], "
             "\"kv_cache_scheme\": null, \"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], "
             "\"weights\": {\"num_bits\": 8, \"type\": \"float\", \"symmetric\": true, \"strategy\": \"%s\", "
             "\"dynamic\": false}, \"input_activations\": %s}}}",
             weights_strategy, inputs);
    return text;
}
#define STATIC_INPUTS "{\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"tensor\", \"dynamic\": false}"
#define TOKEN_INPUTS "{\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"token\", \"dynamic\": true}"

/* The blob holds the layer's codes, each row's scale and the flags. */
static void check_blob(const void *blob, const layer *l, int per_channel, int static_input) {
    const llmrt_q8weight_header *h = blob;
    CHECK(memcmp(llmrt_q8weight_codes(blob), l->codes, N * K) == 0);
    const float *scales = llmrt_q8weight_scales(blob);
    for (int n = 0; n < N; n++) CHECK_MSG(scales[n] == scales_f32[per_channel ? n : 0], "row %d: %g", n, scales[n]);
    CHECK(!!(h->flags & LLMRT_Q8_PER_TENSOR) == !per_channel);
    CHECK(!!(h->flags & LLMRT_Q8_STATIC_INPUT) == static_input);
    CHECK(h->input_scale == (static_input ? l->input_scale : 0.0f));
    float row[K];
    llmrt_q8_dequantize_row(blob, N - 1, row); /* the engine's weights are code × scale */
    for (int k = 0; k < K; k++)
        CHECK(row[k] == llmrt_fp8_e4m3_decode(l->codes[(N - 1) * K + k]) * scales_f32[per_channel ? N - 1 : 0]);
}

static void test_schemes(void) {
    layer l;
    llmrt_quant_config config;
    void *blob;
    /* "FP8-dynamic": per-channel [N, 1] f32 scales, activations per token */
    make_layer(&l, 1, 1, LLMRT_DTYPE_F32, 2);
    write_checkpoint(scheme("channel", TOKEN_INPUTS), &l);
    CHECK_OK(load(&blob, &config));
    CHECK(config.method == LLMRT_QUANT_METHOD_COMPRESSED_TENSORS);
    CHECK(llmrt_quant_config_dtype(&config) == LLMRT_DTYPE_FP8_W8A8);
    if (blob) check_blob(blob, &l, 1, 0);
    free(blob);
    /* "FP8": per-tensor [1] bf16 scale, static input scale */
    make_layer(&l, 2, 0, LLMRT_DTYPE_BF16, 1);
    l.with_input_scale = 1, l.input_scale = 0.0371f;
    write_checkpoint(scheme("tensor", STATIC_INPUTS), &l);
    CHECK_OK(load(&blob, &config));
    if (blob) check_blob(blob, &l, 0, 1);
    free(blob);
    /* weight-only: a scalar f16 scale, no input_activations → per token */
    make_layer(&l, 3, 0, LLMRT_DTYPE_F16, 0);
    write_checkpoint(scheme("tensor", "null"), &l);
    CHECK_OK(load(&blob, &config));
    CHECK(config.ct_weight_only == 1);
    if (blob) check_blob(blob, &l, 0, 0);
    free(blob);
    /* a preset group name ("FP8_DYNAMIC": its targets) and per-channel [N] scales */
    make_layer(&l, 4, 1, LLMRT_DTYPE_F32, 1);
    write_checkpoint("{\"quant_method\": \"compressed-tensors\", "
                     "\"config_groups\": {\"FP8_DYNAMIC\": [\"Linear\"]}}", &l);
    CHECK_OK(load(&blob, &config));
    if (blob) check_blob(blob, &l, 1, 0);
    free(blob);
    /* an all-zero row (scale 0) reads as zeros with scale 1 */
    make_layer(&l, 5, 1, LLMRT_DTYPE_F32, 2);
    memset(l.scale_bytes + 4, 0, 4);
    write_checkpoint(scheme("channel", TOKEN_INPUTS), &l);
    CHECK_OK(load(&blob, &config));
    if (blob) {
        float row[K];
        llmrt_q8_dequantize_row(blob, 1, row);
        for (int k = 0; k < K; k++) CHECK(row[k] == 0.0f);
        CHECK(llmrt_q8weight_scales(blob)[1] == 1.0f);
    }
    free(blob);
}

/* A config that must fail, with `needle` in the message. */
static void expect_config_error(const char *quantization_config, const char *needle) {
    layer l;
    make_layer(&l, 9, 1, LLMRT_DTYPE_F32, 2);
    write_checkpoint(quantization_config, &l);
    void *blob;
    llmrt_quant_config config;
    llmrt_status s = load(&blob, &config);
    CHECK_MSG(s != LLMRT_OK && strstr(llmrt_last_error(), needle), "expected an error naming '%s', got: %s", needle,
              s == LLMRT_OK ? "success" : llmrt_last_error());
    free(blob);
}

static void test_config_errors(void) {
    char text[1200];
    const char *good = scheme("channel", TOKEN_INPUTS);
    struct { const char *from, *to, *needle; } edits[] = {
        {"\"num_bits\": 8, \"type\": \"float\", \"symmetric\"", "\"num_bits\": 4, \"type\": \"float\", \"symmetric\"",
         "config_groups.group_0.weights.num_bits' is 4"},
        {"\"type\": \"float\", \"symmetric\"", "\"type\": \"int\", \"symmetric\"", "weights.type' is \"int\""},
        {"\"compressed-tensors\"", "\"fp8-magic\"", "'quant_method' is \"fp8-magic\""},
        {"\"strategy\": \"channel\"", "\"strategy\": \"group\", \"group_size\": 128", "weights.strategy' is \"group\""},
        {"\"strategy\": \"channel\"", "\"strategy\": \"block\", \"block_structure\": [128, 128]", "block_structure"},
        {"\"kv_cache_scheme\": null", "\"kv_cache_scheme\": {\"num_bits\": 8, \"type\": \"float\"}", "kv_cache_scheme"},
        {"\"float-quantized\"", "\"pack-quantized\"", "'format' is \"pack-quantized\""},
        {"\"re:.*router$\"", "\"re:(unclosed\"", "'ignore' entry \"re:(unclosed\""},
        {"\"symmetric\": true", "\"symmetric\": false", "weights.symmetric' is false"},
        {"\"strategy\": \"token\", \"dynamic\": true", "\"strategy\": \"token\", \"dynamic\": false",
         "input_activations' is static per token"},
        {"\"compressed\"", "\"initialized\"", "quantization_status"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(good, edits[i].from);
        CHECK_MSG(at != NULL, "edit %zu", i);
        if (!at) continue;
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good), good, edits[i].to, at + strlen(edits[i].from));
        expect_config_error(text, edits[i].needle);
    }
    expect_config_error("{\"quant_method\": \"compressed-tensors\", \"config_groups\": {\"W8A8\": [\"Linear\"]}}",
                        "preset scheme \"W8A8\"");
    expect_config_error("{\"quant_method\": \"compressed-tensors\"}", "config_groups");
    /* the type a QuantizationArgs without one has is int */
    expect_config_error("{\"quant_method\": \"compressed-tensors\", \"config_groups\": {\"g\": {\"targets\": "
                        "[\"Linear\"], \"weights\": {\"num_bits\": 8}}}}", "weights.type' is \"int\" (its default)");
}

/* A tensor flaw that must fail, with `needle` in the message. */
static void expect_tensor_error(const layer *l, const char *inputs, const char *needle) {
    write_checkpoint(scheme(inputs == NULL ? "channel" : "tensor", inputs ? inputs : TOKEN_INPUTS), l);
    void *blob;
    llmrt_quant_config config;
    llmrt_status s = load(&blob, &config);
    CHECK_MSG(s != LLMRT_OK && strstr(llmrt_last_error(), needle), "expected an error naming '%s', got: %s", needle,
              s == LLMRT_OK ? "success" : llmrt_last_error());
    free(blob);
}

static void test_tensor_errors(void) {
    layer l;
    make_layer(&l, 7, 1, LLMRT_DTYPE_F32, 2);
    l.with_weight_scale = 0;
    expect_tensor_error(&l, NULL, "no weight_scale tensor");
    make_layer(&l, 7, 0, LLMRT_DTYPE_F32, 1);
    expect_tensor_error(&l, STATIC_INPUTS, "down_proj.weight' has no input_scale tensor");
    make_layer(&l, 7, 1, LLMRT_DTYPE_F32, 2);
    l.codes[3] = 0xff;
    expect_tensor_error(&l, NULL, "holds a NaN code at [0, 3]");
    make_layer(&l, 7, 1, LLMRT_DTYPE_F32, 2);
    l.scale_shape[0] = N - 1;
    expect_tensor_error(&l, NULL, "weight_scale' has shape [4, 1]");
    make_layer(&l, 7, 1, LLMRT_DTYPE_I32, 2);
    expect_tensor_error(&l, NULL, "weight_scale' has dtype i32");
    make_layer(&l, 7, 1, LLMRT_DTYPE_F32, 2);
    const float negative = -0.5f;
    memcpy(l.scale_bytes + 8, &negative, 4);
    expect_tensor_error(&l, NULL, "holds the scale -0.5 (row 2)");
}

/* A weight llmrt keeps 16-bit, stored fp8: its values are code × scale. */
static void test_dequantize(void) {
    for (int per_channel = 0; per_channel < 3; per_channel++) {
        layer l;
        make_layer(&l, 11, per_channel == 1, per_channel ? LLMRT_DTYPE_F32 : LLMRT_DTYPE_BF16, 1);
        l.with_weight_scale = per_channel < 2;
        write_checkpoint(scheme("channel", TOKEN_INPUTS), &l);
        char path[300];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        llmrt_checkpoint *cp = NULL;
        CHECK_OK(llmrt_checkpoint_open_file(path, &cp));
        if (!cp) continue;
        float values[N * K];
        llmrt_status s = llmrt_ct_dequantize(cp, llmrt_checkpoint_find(cp, WEIGHT), values);
        if (per_channel == 2) {
            CHECK_MSG(s != LLMRT_OK && strstr(llmrt_last_error(), "has no weight_scale"), "%s", llmrt_last_error());
        } else {
            CHECK_OK(s);
            for (int i = 0; i < N * K && s == LLMRT_OK; i++)
                CHECK(values[i] == llmrt_fp8_e4m3_decode(l.codes[i]) * scales_f32[per_channel ? i / K : 0]);
            char unused[256];
            CHECK(llmrt_checkpoint_unused(cp, unused, sizeof unused) == 0); /* the scale was taken */
        }
        llmrt_checkpoint_close(cp);
    }
}

/* The quantize_weights pass stores a Linear whose checkpoint weight is fp8
 * as an fp8 matrix (symmetric; its scales come from the checkpoint when
 * bound), and leaves the output
 * LINEAR (the LM head) and weights stored 16-bit alone. */
static void test_pass(void) {
    layer l;
    make_layer(&l, 13, 1, LLMRT_DTYPE_F32, 2);
    write_checkpoint(scheme("channel", TOKEN_INPUTS), &l);
    llmrt_quant_config config;
    llmrt_checkpoint *cp = NULL;
    CHECK_OK(llmrt_quant_config_load(dir, &config));
    CHECK_OK(llmrt_checkpoint_open_dir(dir, &cp));
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    const int64_t x_dims[2] = {3, K}, w_dims[2] = {N, K}, up_dims[2] = {N, N}, head_dims[2] = {K, N};
    llmrt_value x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, x_dims);
    llmrt_value fp8 = llmrt_weight(g, WEIGHT, 2, w_dims);
    llmrt_value plain = llmrt_weight(g, "model.layers.0.mlp.up_proj.weight", 2, up_dims);
    llmrt_value head = llmrt_weight(g, WEIGHT, 2, head_dims); /* fp8 too, but the output's */
    llmrt_value y = llmrt_matmul(g, llmrt_matmul(g, llmrt_matmul(g, x, fp8, 1), plain, 1), head, 1);
    llmrt_graph_mark_output(g, y);
    CHECK_OK(llmrt_graph_status(g));
    llmrt_pass_context ctx = {.target = "cpu", .quant_dtype = LLMRT_DTYPE_INVALID, .checkpoint = cp,
                              .prequantized = &config};
    CHECK_OK(llmrt_pass_fuse_linear(g, &ctx));
    CHECK_OK(llmrt_pass_quantize_weights(g, &ctx));
    CHECK(g->nodes[fp8].dtype == LLMRT_DTYPE_FP8_W8A8);
    CHECK(g->nodes[fp8].iattr[2] == 0 && g->nodes[fp8].iattr[3] == 0); /* symmetric, inputs in order */
    CHECK(g->nodes[plain].dtype == LLMRT_DTYPE_F32);
    CHECK(g->nodes[head].dtype == LLMRT_DTYPE_F32);
    llmrt_graph_free(g);
    llmrt_checkpoint_close(cp);
}

int main(void) {
    char *tmp = test_temp_dir();
    if (!tmp) return 1;
    snprintf(dir, sizeof dir, "%s/ct", tmp);
    RUN_TEST(test_schemes);
    RUN_TEST(test_config_errors);
    RUN_TEST(test_tensor_errors);
    RUN_TEST(test_dequantize);
    RUN_TEST(test_pass);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    free(tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish();
}
