/* The layout families' configs (GPT-J, GPT-NeoX, Falcon, OPT, GPTBigCode,
 * GLM, Phi-3): real config.json shapes of each parsed to the layout fields,
 * bad configs refused naming the field, the engine config JSON round trip
 * (LongRoPE factor lists included), LongRoPE frequencies, and the families'
 * own validation. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/hf_config.h"
#include "layers/layers.h"
#include "models/models.h"
#include "test_util.h"

static llmrt_status parse(const char *json, llmrt_model_config *c) {
    return llmrt_hf_config_parse(json, strlen(json), "config.json", c);
}

static void expect_error(int line, llmrt_status got, llmrt_status want, const char *needle) {
    CHECK_MSG(got == want && strstr(llmrt_last_error(), needle), "line %d: want %s with '%s', got %s: %s", line,
              llmrt_status_name(want), needle, llmrt_status_name(got), llmrt_last_error());
}
#define EXPECT_ERROR(expr, want, needle) expect_error(__LINE__, (expr), (want), (needle))

static void round_trip(const llmrt_model_config *in) {
    char *json = llmrt_model_config_to_json(in);
    CHECK(json != NULL);
    if (!json) return;
    llmrt_model_config out;
    CHECK_OK(llmrt_model_config_from_json(json, strlen(json), &out));
    CHECK_MSG(memcmp(in, &out, sizeof out) == 0, "round trip differs: %.300s", json);
    free(json);
}

static llmrt_status validate(const llmrt_model_config *c) {
    const llmrt_model_family *family;
    llmrt_status s = llmrt_model_lookup(c->architecture, &family);
    return s != LLMRT_OK ? s : family->validate(c);
}

/* EleutherAI/pythia-160m (transformers 4: rotary_pct, rotary_emb_base). */
static const char *PYTHIA =
    "{\"architectures\": [\"GPTNeoXForCausalLM\"], \"bos_token_id\": 0, \"eos_token_id\": 0,"
    " \"hidden_act\": \"gelu\", \"hidden_size\": 768, \"initializer_range\": 0.02, \"intermediate_size\": 3072,"
    " \"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 2048, \"model_type\": \"gpt_neox\","
    " \"num_attention_heads\": 12, \"num_hidden_layers\": 12, \"rotary_emb_base\": 10000, \"rotary_pct\": 0.25,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"float16\", \"use_cache\": true,"
    " \"use_parallel_residual\": true, \"vocab_size\": 50304}";

/* EleutherAI/gpt-j-6b. */
static const char *GPTJ =
    "{\"activation_function\": \"gelu_new\", \"architectures\": [\"GPTJForCausalLM\"], \"bos_token_id\": 50256,"
    " \"eos_token_id\": 50256, \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gptj\", \"n_embd\": 4096,"
    " \"n_head\": 16, \"n_inner\": null, \"n_layer\": 28, \"n_positions\": 2048, \"rotary_dim\": 64,"
    " \"tie_word_embeddings\": false, \"vocab_size\": 50400}";

/* tiiuae/falcon-7b (original layout, multi-query) and a falcon-40b-shaped one
 * (new_decoder_architecture, its n_head_kv spelling). */
static const char *FALCON7B =
    "{\"alibi\": false, \"apply_residual_connection_post_layernorm\": false, \"architectures\":"
    " [\"FalconForCausalLM\"], \"bias\": false, \"bos_token_id\": 11, \"eos_token_id\": 11, \"hidden_size\": 4544,"
    " \"layer_norm_epsilon\": 1e-05, \"model_type\": \"falcon\", \"multi_query\": true,"
    " \"new_decoder_architecture\": false, \"num_attention_heads\": 71, \"num_hidden_layers\": 32,"
    " \"parallel_attn\": true, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 65024,"
    " \"max_position_embeddings\": 2048}";
static const char *FALCON40B =
    "{\"alibi\": false, \"architectures\": [\"FalconForCausalLM\"], \"bias\": false, \"hidden_size\": 8192,"
    " \"layer_norm_epsilon\": 1e-05, \"model_type\": \"falcon\", \"new_decoder_architecture\": true,"
    " \"n_head\": 128, \"n_head_kv\": 8, \"n_layer\": 60, \"parallel_attn\": true, \"vocab_size\": 65024,"
    " \"max_position_embeddings\": 2048}";

/* facebook/opt-350m: 512-wide embeddings, post-norm blocks. */
static const char *OPT350M =
    "{\"_remove_final_layer_norm\": false, \"activation_function\": \"relu\", \"architectures\":"
    " [\"OPTForCausalLM\"], \"bos_token_id\": 2, \"do_layer_norm_before\": false, \"eos_token_id\": 2,"
    " \"ffn_dim\": 4096, \"hidden_size\": 1024, \"max_position_embeddings\": 2048, \"model_type\": \"opt\","
    " \"num_attention_heads\": 16, \"num_hidden_layers\": 24, \"pad_token_id\": 1, \"vocab_size\": 50272,"
    " \"word_embed_proj_dim\": 512}";

/* bigcode/starcoderbase-1b-shaped. */
static const char *BIGCODE =
    "{\"activation_function\": \"gelu_pytorch_tanh\", \"architectures\": [\"GPTBigCodeForCausalLM\"],"
    " \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gpt_bigcode\", \"multi_query\": true, \"n_embd\": 2048,"
    " \"n_head\": 16, \"n_inner\": 8192, \"n_layer\": 24, \"n_positions\": 8192, \"vocab_size\": 49152}";

/* THUDM/glm-4-9b-chat-hf-shaped, partial_rotary_factor left to its default. */
static const char *GLM =
    "{\"architectures\": [\"GlmForCausalLM\"], \"attention_bias\": true, \"head_dim\": 128, \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"intermediate_size\": 13696, \"max_position_embeddings\": 131072,"
    " \"model_type\": \"glm\", \"num_attention_heads\": 32, \"num_hidden_layers\": 40,"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1.5625e-07, \"rope_theta\": 10000.0, \"vocab_size\": 151552}";

/* THUDM/chatglm2-6b (remote code: THUDM's field names). */
static const char *CHATGLM2 =
    "{\"_name_or_path\": \"THUDM/chatglm2-6b\", \"model_type\": \"chatglm\", \"architectures\": [\"ChatGLMModel\"],"
    " \"add_bias_linear\": false, \"add_qkv_bias\": true, \"apply_query_key_layer_scaling\": true,"
    " \"apply_residual_connection_post_layernorm\": false, \"attention_dropout\": 0.0,"
    " \"attention_softmax_in_fp32\": true, \"bias_dropout_fusion\": true, \"ffn_hidden_size\": 13696,"
    " \"fp32_residual_connection\": false, \"hidden_dropout\": 0.0, \"hidden_size\": 4096, \"kv_channels\": 128,"
    " \"layernorm_epsilon\": 1e-05, \"multi_query_attention\": true, \"multi_query_group_num\": 2,"
    " \"num_attention_heads\": 32, \"num_layers\": 28, \"original_rope\": true, \"padded_vocab_size\": 65024,"
    " \"post_layer_norm\": true, \"rmsnorm\": true, \"seq_length\": 32768, \"use_cache\": true,"
    " \"torch_dtype\": \"float16\", \"transformers_version\": \"4.27.1\", \"tie_word_embeddings\": false,"
    " \"eos_token_id\": 2, \"pad_token_id\": 0, \"rope_ratio\": 50}";

/* microsoft/Phi-3-mini-128k-instruct-shaped (transformers 4 rope_scaling),
 * 4 heads of 16 so the factor lists are short. */
#define PHI3_HEAD                                                                                                  \
    "{\"architectures\": [\"Phi3ForCausalLM\"], \"hidden_act\": \"silu\", \"hidden_size\": 64,"                   \
    " \"intermediate_size\": 96, \"max_position_embeddings\": 131072, \"model_type\": \"phi3\","                 \
    " \"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"num_key_value_heads\": 4,"                          \
    " \"original_max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"              \
    " \"vocab_size\": 128, \"rope_scaling\": {\"type\": \"longrope\","
static const char *PHI3 = PHI3_HEAD " \"short_factor\": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7],"
                                    " \"long_factor\": [2, 3, 4, 5, 6, 7, 8, 9]}}";

static void test_parse(void) {
    llmrt_model_config c;
    CHECK_OK(parse(PYTHIA, &c));
    CHECK(c.parallel_residual == 1 && c.parallel_norms == 2 && c.qkv_grouped == 1);
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 1 && c.mlp_bias == 1);
    CHECK(c.rope.rotary_dim == 16 && c.rope.interleaved == 0 && c.rope.theta == 10000.0f);
    CHECK(c.activation == LLMRT_ACT_GELU && c.tie_word_embeddings == 0);
    CHECK_OK(validate(&c));
    round_trip(&c);

    CHECK_OK(parse(GPTJ, &c));
    CHECK(c.head_dim == 256 && c.rope.rotary_dim == 64 && c.rope.interleaved == 1);
    CHECK(c.parallel_residual == 1 && c.parallel_norms == 1 && c.qkv_grouped == 0);
    CHECK(c.attention_bias == 0 && c.attention_out_bias == 0 && c.mlp_bias == 1);
    CHECK(c.activation == LLMRT_ACT_GELU_TANH && c.intermediate_size == 4 * 4096);
    CHECK_OK(validate(&c));
    round_trip(&c);

    CHECK_OK(parse(FALCON7B, &c));
    CHECK(c.num_kv_heads == 1 && c.qkv_grouped == 0 && c.parallel_residual == 1 && c.parallel_norms == 1);
    CHECK(c.attention_bias == 0 && c.mlp_bias == 0 && c.tie_word_embeddings == 1 && c.head_dim == 64);
    CHECK(c.intermediate_size == 4 * 4544 && c.activation == LLMRT_ACT_GELU);
    CHECK_OK(validate(&c));
    round_trip(&c);
    CHECK_OK(parse(FALCON40B, &c));
    CHECK(c.num_heads == 128 && c.num_kv_heads == 8 && c.qkv_grouped == 1 && c.parallel_norms == 2);
    CHECK_OK(validate(&c));
    round_trip(&c);

    CHECK_OK(parse(OPT350M, &c));
    CHECK(c.rope.type == LLMRT_ROPE_NONE && c.post_norm == 1 && c.final_norm == 0 && c.embed_dim == 512);
    CHECK(c.intermediate_size == 4096 && c.activation == LLMRT_ACT_RELU && c.norm_eps == 1e-5f);
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 1 && c.mlp_bias == 1 && c.tie_word_embeddings == 1);
    CHECK_OK(validate(&c));
    round_trip(&c);

    CHECK_OK(parse(BIGCODE, &c));
    CHECK(c.rope.type == LLMRT_ROPE_NONE && c.num_kv_heads == 1 && c.qkv_grouped == 0 && c.tie_word_embeddings == 1);
    CHECK_OK(validate(&c));
    round_trip(&c);

    CHECK_OK(parse(GLM, &c));
    CHECK(c.rope.rotary_dim == 64 && c.rope.interleaved == 1);
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 0 && c.mlp_bias == 0);
    CHECK_OK(validate(&c));
    round_trip(&c);

    CHECK_OK(parse(CHATGLM2, &c));
    CHECK(c.vocab_size == 65024 && c.num_layers == 28 && c.max_position_embeddings == 32768);
    CHECK(c.intermediate_size == 13696 && c.norm_eps == 1e-5f && c.head_dim == 128 && c.num_kv_heads == 2);
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 0 && c.mlp_bias == 0 && c.final_norm == 1);
    CHECK(c.rope.rotary_dim == 64 && c.rope.interleaved == 1 && c.rope.theta == 500000.0f);
    CHECK_OK(validate(&c));
    round_trip(&c);

    CHECK_OK(parse(PHI3, &c));
    CHECK(c.rope.type == LLMRT_ROPE_LONGROPE && c.rope.original_max_position_embeddings == 4096);
    CHECK(c.rope.short_factor[1] == 1.1f && c.rope.long_factor[7] == 9.0f);
    /* √(1 + ln(131072 / 4096) / ln 4096) */
    CHECK(fabsf(c.rope.attention_factor - (float)sqrt(1.0 + log(32.0) / log(4096.0))) < 1e-6f);
    round_trip(&c);
}

static void test_bad_configs(void) {
    llmrt_model_config c;
    char json[2048];
    snprintf(json, sizeof json, "%.*s\"rotary_dim\": 272, %s", (int)(strstr(GPTJ, "\"rotary_dim\"") - GPTJ), GPTJ,
             strstr(GPTJ, "\"tie_word"));
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, "field 'rotary_dim' = 272 must be even and in (0, head size = 256]");
    snprintf(json, sizeof json, "%.*s\"rotary_dim\": 63, %s", (int)(strstr(GPTJ, "\"rotary_dim\"") - GPTJ), GPTJ,
             strstr(GPTJ, "\"tie_word"));
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, "'rotary_dim' = 63");

    snprintf(json, sizeof json, "%s", PYTHIA);
    memcpy(strstr(json, "0.25"), "1.50", 4);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, "'rotary_pct' = 1.5");
    memcpy(strstr(json, "1.50"), "0.01", 4);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, "'rotary_pct' = 0.01 gives rotary_dim 0");

    snprintf(json, sizeof json, "%s", FALCON7B);
    memcpy(strstr(json, "\"alibi\": false"), "\"alibi\": true ", 14);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_UNSUPPORTED, "'alibi'");
    snprintf(json, sizeof json, "%s", FALCON40B);
    memcpy(strstr(json, "\"n_head_kv\": 8"), "\"n_head_kv\": 3", 14);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, "'num_kv_heads' = 3 does not divide");
    snprintf(json, sizeof json, "%s", FALCON40B);
    memcpy(strstr(json, "\"parallel_attn\": true"), "\"parallel_attn\": 0   ", 21);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, "'parallel_attn'");

    snprintf(json, sizeof json, "%.*s, \"layer_norm_elementwise_affine\": false}", (int)strlen(OPT350M) - 1, OPT350M);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_UNSUPPORTED, "'layer_norm_elementwise_affine'");
    snprintf(json, sizeof json, "%.*s, \"scale_attn_weights\": false}", (int)strlen(BIGCODE) - 1, BIGCODE);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_UNSUPPORTED, "'scale_attn_weights'");

    EXPECT_ERROR(parse(PHI3_HEAD " \"short_factor\": [1, 1, 1], \"long_factor\": [1, 1, 1]}}", &c), LLMRT_ERR_FORMAT,
                 "'rope_scaling.short_factor' has 3 factors, rotary_dim / 2 = 8 expected");
    EXPECT_ERROR(parse(PHI3_HEAD " \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1],"
                                 " \"long_factor\": [1, 1, 1, 1, 1, 1, 1, -1]}}", &c),
                 LLMRT_ERR_FORMAT, "'rope_scaling.long_factor' has factor 7 = -1, not positive");
    EXPECT_ERROR(parse(PHI3_HEAD " \"short_factor\": [1, 1, 1, 1, 1, 1, 1, 1], \"long_factor\": 2}}", &c),
                 LLMRT_ERR_FORMAT, "'rope_scaling.long_factor' must be a list");

    snprintf(json, sizeof json, "%.*s, \"position_encoding_2d\": true}", (int)strlen(CHATGLM2) - 1, CHATGLM2);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_UNSUPPORTED, "'position_encoding_2d'");
    snprintf(json, sizeof json, "%s", CHATGLM2);
    memcpy(strstr(json, "\"multi_query_group_num\": 2"), "\"multi_query_group_num\": 3", 26);
    EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, "'multi_query_group_num' = 3 does not divide");

    /* The families' own checks, on specs that came from elsewhere (an engine). */
    CHECK_OK(parse(GPTJ, &c));
    c.rope.rotary_dim = 512;
    EXPECT_ERROR(validate(&c), LLMRT_ERR_FORMAT, "rotary_dim 512 exceeds the head size 256");
    CHECK_OK(parse(FALCON7B, &c));
    c.num_kv_heads = 71;
    EXPECT_ERROR(validate(&c), LLMRT_ERR_FORMAT, "needs one KV head");
    CHECK_OK(parse(OPT350M, &c));
    c.embed_dim = 0;
    EXPECT_ERROR(validate(&c), LLMRT_ERR_FORMAT, "word_embed_proj_dim");
    CHECK_OK(parse(PYTHIA, &c));
    c.num_kv_heads = 4;
    EXPECT_ERROR(validate(&c), LLMRT_ERR_FORMAT, "no grouped-query attention");
}

static void test_longrope_frequencies(void) {
    llmrt_model_config c;
    CHECK_OK(parse(PHI3, &c));
    float inv_freq[8];
    for (int use_long = 0; use_long < 2; use_long++) {
        c.rope.use_long_factors = use_long;
        llmrt_rope_inv_freq(&c.rope, inv_freq);
        for (int i = 0; i < 8; i++) {
            double factor = use_long ? c.rope.long_factor[i] : c.rope.short_factor[i];
            double want = 1.0 / (factor * pow(10000.0, 2.0 * i / 16.0));
            CHECK_MSG(fabs(inv_freq[i] - want) <= 1e-6 * want, "long=%d i=%d: %g, want %g", use_long, i,
                      (double)inv_freq[i], want);
        }
    }
}

/* Engines written before the layout fields load with the LLaMA/GPT-2 layout. */
static void test_engine_json_without_layout_fields(void) {
    llmrt_model_config c;
    CHECK_OK(parse(GPTJ, &c));
    char *text = llmrt_model_config_to_json(&c);
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    CHECK(root != NULL);
    if (!root) {
        free(text);
        return;
    }
    const char *keys[] = {"parallel_residual", "parallel_norms", "qkv_grouped", "post_norm", "final_norm", "embed_dim"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) json_object_del(root, keys[i]);
    json_t *rope = json_object_get(root, "rope");
    json_object_del(rope, "interleaved");
    json_object_del(rope, "attention_factor");
    json_object_del(rope, "use_long_factors");
    char *old = json_dumps(root, JSON_COMPACT);
    llmrt_model_config out;
    CHECK_OK(llmrt_model_config_from_json(old, strlen(old), &out));
    CHECK(out.parallel_residual == 0 && out.parallel_norms == 0 && out.qkv_grouped == 0 && out.post_norm == 0);
    CHECK(out.final_norm == 1 && out.embed_dim == c.hidden_size);
    CHECK(out.rope.interleaved == 0 && out.rope.attention_factor == 1.0f && out.rope.use_long_factors == 0);
    free(old);
    json_decref(root);
    free(text);
}

/* OPT's positions: a gather whose rows start at an offset, bounded by the table. */
static void test_gather_offset(void) {
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    int64_t table_dims[2] = {10, 4}, tokens = LLMRT_DIM_TOKENS;
    llmrt_value table = llmrt_weight(g, "table", 2, table_dims);
    llmrt_value ids = llmrt_input(g, "positions", LLMRT_DTYPE_I32, 1, &tokens);
    llmrt_value rows = llmrt_gather_offset(g, table, ids, 2);
    CHECK(rows != LLMRT_NO_VALUE && llmrt_graph_node(g, rows)->iattr[0] == 2);
    CHECK_OK(llmrt_graph_status(g));
    CHECK(llmrt_gather_offset(g, table, ids, 10) == LLMRT_NO_VALUE);
    CHECK(llmrt_graph_status(g) == LLMRT_ERR_INVALID_ARGUMENT && strstr(llmrt_last_error(), "row offset 10"));
    llmrt_graph_free(g);
}

int main(void) {
    RUN_TEST(test_parse);
    RUN_TEST(test_bad_configs);
    RUN_TEST(test_longrope_frequencies);
    RUN_TEST(test_engine_json_without_layout_fields);
    RUN_TEST(test_gather_offset);
    return test_finish();
}
