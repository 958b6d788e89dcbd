/* config.json's attention-variant fields (hf_config_variants.c): the
 * shipped configs of the golden cases read as their families mean them
 * (Gemma 2/3 layer patterns, soft-caps and scales, Gemma 3's local RoPE,
 * MPT's attn_config, BLOOM), bad values rejected with the field named, and
 * the engine JSON round trip with and without "attention_variants". */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/hf_config.h"
#include "test_util.h"

static llmrt_status load_case(const char *name, llmrt_model_config *c) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/cases/%s/config.json", LLMRT_SOURCE_DIR, name);
    return llmrt_hf_config_load(path, c);
}

/* The case's config.json with `key` set to the JSON `value` ("null" ok)
 * inside `object` (NULL: the top level), parsed. */
static llmrt_status load_patched(const char *name, const char *object, const char *key, const char *value,
                                 llmrt_model_config *c) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/golden/cases/%s/config.json", LLMRT_SOURCE_DIR, name);
    json_t *root = json_load_file(path, 0, NULL), *v = json_loads(value, JSON_DECODE_ANY, NULL);
    if (!root || !v) return LLMRT_ERR_INTERNAL;
    json_t *target = object ? json_object_get(root, object) : root;
    if (object && !target) json_object_set_new(root, object, target = json_object());
    json_object_set_new(target, key, v);
    char *text = json_dumps(root, 0);
    llmrt_status s = llmrt_hf_config_parse(text, strlen(text), "config.json", c);
    free(text);
    json_decref(root);
    return s;
}

static void expect_error(llmrt_status got, llmrt_status want, const char *field) {
    CHECK_MSG(got == want && strstr(llmrt_last_error(), field) != NULL, "expected %s naming '%s', got %s: %s",
              llmrt_status_name(want), field, llmrt_status_name(got), llmrt_last_error());
}

static void test_shipped_configs(void) {
    llmrt_model_config c;
    CHECK_OK(load_case("gemma2_f32", &c));
    CHECK(c.sliding_window == 16 && c.sliding_window_pattern == 2);
    CHECK(c.query_pre_attn_scalar == 16.0f && c.attn_logit_softcapping == 10.0f && c.final_logit_softcapping == 15.0f);
    CHECK(c.activation == LLMRT_ACT_GELU_TANH && c.alibi_max_bias == 0.0f);
    CHECK_OK(load_case("gemma3_f32", &c));
    CHECK(c.sliding_window == 16 && c.sliding_window_pattern == 3);
    CHECK(c.rope.theta == 1000000.0f && c.rope_local_theta == 10000.0f);
    CHECK(c.attn_logit_softcapping == 0.0f && c.final_logit_softcapping == 0.0f);
    CHECK_OK(load_case("mistral_window_f32", &c));
    CHECK(c.sliding_window == 16 && c.sliding_window_pattern == 0);
    CHECK_OK(load_case("qwen3_f32", &c)); /* layer_types all global, sliding_window null */
    CHECK(c.sliding_window == 0 && c.head_dim == 32 && c.hidden_size == 64);
    CHECK_OK(load_case("mpt_alibi_f32", &c));
    CHECK(c.alibi_max_bias == 8.0f && c.rope.type == LLMRT_ROPE_NONE && c.num_layers == 2 && c.num_heads == 4);
    CHECK(c.intermediate_size == 4 * 64 && c.max_position_embeddings == 512 && c.activation == LLMRT_ACT_GELU);
    CHECK(!c.attention_bias && !c.attention_out_bias && !c.mlp_bias);
    CHECK_OK(load_case("bloom_f32", &c));
    CHECK(c.alibi_max_bias == 8.0f && c.rope.type == LLMRT_ROPE_NONE && c.num_heads == 6 && c.head_dim == 8);
    CHECK(c.max_position_embeddings == 2048 && c.attention_bias && c.mlp_bias && c.activation == LLMRT_ACT_GELU_TANH);
    /* v4 Gemma 2 (no layer_types): even layers local */
    CHECK_OK(load_patched("gemma2_f32", NULL, "layer_types", "null", &c));
    CHECK(c.sliding_window_pattern == 2);
    CHECK_OK(load_patched("gemma3_f32", NULL, "layer_types", "[\"full_attention\", \"full_attention\", "
                          "\"full_attention\"]", &c));
    CHECK(c.sliding_window == 0);
}

static void test_bad_configs(void) {
    llmrt_model_config c;
    expect_error(load_patched("mistral_window_f32", NULL, "sliding_window", "0", &c), LLMRT_ERR_FORMAT,
                 "'sliding_window' = 0");
    expect_error(load_patched("gemma2_f32", NULL, "sliding_window", "null", &c), LLMRT_ERR_FORMAT, "sliding_window");
    expect_error(load_patched("gemma2_f32", NULL, "layer_types", "[\"sliding_attention\"]", &c), LLMRT_ERR_FORMAT,
                 "'layer_types'");
    expect_error(load_patched("gemma2_f32", NULL, "layer_types", "[\"sliding_attention\", \"chunked_attention\", "
                              "\"sliding_attention\", \"full_attention\"]", &c), LLMRT_ERR_UNSUPPORTED,
                 "'layer_types[1]'");
    expect_error(load_patched("gemma2_f32", NULL, "layer_types", "[\"sliding_attention\", \"full_attention\", "
                              "\"full_attention\", \"sliding_attention\"]", &c), LLMRT_ERR_UNSUPPORTED,
                 "'layer_types'");
    expect_error(load_patched("gemma2_f32", NULL, "attn_logit_softcapping", "-1", &c), LLMRT_ERR_FORMAT,
                 "'attn_logit_softcapping'");
    expect_error(load_patched("gemma2_f32", NULL, "query_pre_attn_scalar", "\"16\"", &c), LLMRT_ERR_FORMAT,
                 "'query_pre_attn_scalar'");
    expect_error(load_patched("gemma2_f32", NULL, "hidden_activation", "\"swish\"", &c), LLMRT_ERR_UNSUPPORTED,
                 "'hidden_activation'");
    expect_error(load_patched("gemma3_f32", "rope_parameters", "sliding_attention",
                              "{\"rope_type\": \"linear\", \"factor\": 8.0, \"rope_theta\": 10000.0}", &c),
                 LLMRT_ERR_UNSUPPORTED, "'rope_parameters.sliding_attention.rope_type'");
    expect_error(load_patched("mpt_alibi_f32", "attn_config", "alibi", "false", &c), LLMRT_ERR_UNSUPPORTED,
                 "'attn_config.alibi'");
    expect_error(load_patched("mpt_alibi_f32", "attn_config", "clip_qkv", "8.0", &c), LLMRT_ERR_UNSUPPORTED,
                 "'attn_config.clip_qkv'");
    expect_error(load_patched("mpt_alibi_f32", "attn_config", "qk_ln", "true", &c), LLMRT_ERR_UNSUPPORTED,
                 "'attn_config.qk_ln'");
    expect_error(load_patched("mpt_alibi_f32", "attn_config", "alibi_bias_max", "0", &c), LLMRT_ERR_FORMAT,
                 "'attn_config.alibi_bias_max'");
    expect_error(load_patched("mpt_alibi_f32", NULL, "no_bias", "false", &c), LLMRT_ERR_UNSUPPORTED, "'no_bias'");
    expect_error(load_patched("bloom_f32", NULL, "apply_residual_connection_post_layernorm", "true", &c),
                 LLMRT_ERR_UNSUPPORTED, "'apply_residual_connection_post_layernorm'");
    expect_error(load_patched("qwen3_f32", NULL, "head_dim", "0", &c), LLMRT_ERR_FORMAT, "'head_dim'");
}

static void test_engine_json(void) {
    llmrt_model_config in, out;
    CHECK_OK(load_case("gemma3_f32", &in));
    char *json = llmrt_model_config_to_json(&in);
    CHECK(json && strstr(json, "\"attention_variants\""));
    if (!json) return;
    CHECK_OK(llmrt_model_config_from_json(json, strlen(json), &out));
    CHECK(memcmp(&in, &out, sizeof out) == 0);
    /* an engine written before the variants reads them as off */
    json_t *root = json_loads(json, 0, NULL);
    json_object_del(root, "attention_variants");
    char *old = json_dumps(root, JSON_COMPACT);
    CHECK_OK(llmrt_model_config_from_json(old, strlen(old), &out));
    CHECK(out.sliding_window_pattern == 0 && out.query_pre_attn_scalar == 0.0f && out.rope_local_theta == 0.0f);
    json_object_set_new(json_object_get(root, "rope"), "theta", json_real(10000.0));
    json_object_set_new(root, "attention_variants", json_string("x"));
    free(old);
    old = json_dumps(root, JSON_COMPACT);
    expect_error(llmrt_model_config_from_json(old, strlen(old), &out), LLMRT_ERR_FORMAT, "'attention_variants'");
    free(old);
    json_decref(root);
    free(json);
}

int main(void) {
    RUN_TEST(test_shipped_configs);
    RUN_TEST(test_bad_configs);
    RUN_TEST(test_engine_json);
    return test_finish();
}
