/* HF config.json parsing: real configs of each family (both RoPE dialects,
 * GPT-2 spellings, Qwen2's bias rule), every malformed-field case with the
 * field named in the message, generation_config.json merging, and the round
 * trip through the engine's config JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "import/hf_config.h"
#include "models/models.h"
#include "test_util.h"

#define EXPECT_ERROR(expr, want, ...) \
    expect_error_at(__FILE__, __LINE__, (expr), (want), (const char *const[]){__VA_ARGS__, NULL})

static void expect_error_at(const char *file, int line, llmrt_status got, llmrt_status want,
                            const char *const *needles) {
    int ok = got == want;
    for (size_t i = 0; needles[i]; i++) ok = ok && strstr(llmrt_last_error(), needles[i]) != NULL;
    if (ok) {
        test_checks_passed++;
        return;
    }
    test_checks_failed++;
    fprintf(stderr, "%s:%d: expected status %s with", file, line, llmrt_status_name(want));
    for (size_t i = 0; needles[i]; i++) fprintf(stderr, " '%s'", needles[i]);
    fprintf(stderr, ", got %s: %s\n", llmrt_status_name(got), llmrt_last_error());
}

static llmrt_status parse(const char *json, llmrt_model_config *c) {
    return llmrt_hf_config_parse(json, strlen(json), "config.json", c);
}

static int near(float a, float b) { return fabsf(a - b) <= 1e-6f * fmaxf(1.0f, fabsf(b)); }

/* meta-llama/Llama-3.1-8B-Instruct, transformers 4 dialect. */
static const char *LLAMA31 =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009], \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"initializer_range\": 0.02, \"intermediate_size\": 14336,"
    " \"max_position_embeddings\": 131072, \"mlp_bias\": false, \"model_type\": \"llama\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,"
    " \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 8.0,"
    " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192,"
    " \"rope_type\": \"llama3\"}, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.43.0.dev0\", \"use_cache\": true,"
    " \"vocab_size\": 128256}";

/* The openai-community/gpt2 config.json. */
static const char *GPT2 =
    "{\"activation_function\": \"gelu_new\", \"architectures\": [\"GPT2LMHeadModel\"], \"attn_pdrop\": 0.1,"
    " \"bos_token_id\": 50256, \"embd_pdrop\": 0.1, \"eos_token_id\": 50256, \"initializer_range\": 0.02,"
    " \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gpt2\", \"n_ctx\": 1024, \"n_embd\": 768,"
    " \"n_head\": 12, \"n_inner\": null, \"n_layer\": 12, \"n_positions\": 1024, \"resid_pdrop\": 0.1,"
    " \"summary_activation\": null, \"task_specific_params\": {\"text-generation\": {\"do_sample\": true,"
    " \"max_length\": 50}}, \"vocab_size\": 50257}";

/* Qwen/Qwen2.5-0.5B-Instruct. */
static const char *QWEN25 =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151645, \"hidden_act\": \"silu\", \"hidden_size\": 896, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 4864, \"max_position_embeddings\": 32768, \"max_window_layers\": 21,"
    " \"model_type\": \"qwen2\", \"num_attention_heads\": 14, \"num_hidden_layers\": 24,"
    " \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 32768,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"use_cache\": true,"
    " \"use_sliding_window\": false, \"vocab_size\": 151936}";

/* mistralai/Mistral-7B-v0.1. */
static const char *MISTRAL =
    "{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 4096, \"intermediate_size\": 14336,"
    " \"max_position_embeddings\": 32768, \"model_type\": \"mistral\", \"num_attention_heads\": 32,"
    " \"num_hidden_layers\": 32, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"
    " \"sliding_window\": 4096, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"vocab_size\": 32000}";

/* A transformers-5 style config: rope_parameters, "dtype", per-layer-type rope. */
static const char *V5_LAYER_TYPES =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 1000,"
    " \"hidden_size\": 256, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"head_dim\": 64, \"intermediate_size\": 512, \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-5,"
    " \"dtype\": \"float16\", \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"llama3\","
    " \"rope_theta\": 500000.0, \"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    " \"original_max_position_embeddings\": 8192, \"partial_rotary_factor\": 0.5},"
    " \"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}}}";

/* A minimal llama-like base that tests append fields to: "{" BASE ", ...}". */
#define BASE                                                                                                      \
    "\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 1000, \"hidden_size\": " \
    "256, \"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"max_position_embeddings\": 2048"

static void test_llama31(void) {
    llmrt_model_config c;
    CHECK_OK(parse(LLAMA31, &c));
    CHECK(strcmp(c.architecture, "LlamaForCausalLM") == 0 && strcmp(c.model_type, "llama") == 0);
    CHECK(c.vocab_size == 128256 && c.hidden_size == 4096 && c.num_layers == 32);
    CHECK(c.num_heads == 32 && c.num_kv_heads == 8 && c.head_dim == 128);
    CHECK(c.intermediate_size == 14336 && c.max_position_embeddings == 131072);
    CHECK(near(c.norm_eps, 1e-5f) && c.activation == LLMRT_ACT_SILU);
    CHECK(c.tie_word_embeddings == 0 && c.attention_bias == 0 && c.attention_out_bias == 0 && c.mlp_bias == 0);
    CHECK(c.sliding_window == 0);
    CHECK(c.rope.type == LLMRT_ROPE_LLAMA3 && near(c.rope.theta, 500000.0f) && near(c.rope.factor, 8.0f));
    CHECK(near(c.rope.low_freq_factor, 1.0f) && near(c.rope.high_freq_factor, 4.0f));
    CHECK(c.rope.original_max_position_embeddings == 8192 && c.rope.rotary_dim == 128);
    CHECK(c.bos_token_id == 128000 && c.pad_token_id == -1);
    CHECK(c.num_eos_tokens == 3 && c.eos_token_ids[0] == 128001 && c.eos_token_ids[1] == 128008 &&
          c.eos_token_ids[2] == 128009);
    CHECK(c.checkpoint_dtype == LLMRT_DTYPE_BF16);
}

static void test_gpt2(void) {
    llmrt_model_config c;
    CHECK_OK(parse(GPT2, &c));
    CHECK(strcmp(c.architecture, "GPT2LMHeadModel") == 0 && strcmp(c.model_type, "gpt2") == 0);
    CHECK(c.vocab_size == 50257 && c.hidden_size == 768 && c.num_layers == 12 && c.num_heads == 12);
    CHECK(c.num_kv_heads == 12 && c.head_dim == 64 && c.intermediate_size == 4 * 768);
    CHECK(c.max_position_embeddings == 1024 && near(c.norm_eps, 1e-5f));
    CHECK(c.activation == LLMRT_ACT_GELU_TANH);
    CHECK(c.tie_word_embeddings == 1 && c.attention_bias == 1 && c.attention_out_bias == 1 && c.mlp_bias == 1);
    CHECK(c.rope.type == LLMRT_ROPE_NONE && c.rope.rotary_dim == 0);
    CHECK(c.bos_token_id == 50256 && c.num_eos_tokens == 1 && c.eos_token_ids[0] == 50256);
    CHECK(c.checkpoint_dtype == LLMRT_DTYPE_INVALID);

    /* GPT-2 detected by architecture alone; n_inner given; n_ctx as the
     * only position field; gelu spelled other ways. */
    CHECK_OK(parse("{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 100, \"n_embd\": 64, \"n_layer\": 2,"
                   " \"n_head\": 4, \"n_inner\": 100, \"n_ctx\": 128, \"activation_function\": \"gelu\","
                   " \"tie_word_embeddings\": false}",
                   &c));
    CHECK(c.intermediate_size == 100 && c.max_position_embeddings == 128 && c.activation == LLMRT_ACT_GELU);
    CHECK(c.tie_word_embeddings == 0 && c.rope.type == LLMRT_ROPE_NONE && c.attention_bias == 1);
    CHECK(near(c.norm_eps, 1e-5f)); /* the GPT-2 default */
}

static void test_qwen2_and_mistral(void) {
    llmrt_model_config c;
    CHECK_OK(parse(QWEN25, &c));
    CHECK(c.hidden_size == 896 && c.num_heads == 14 && c.num_kv_heads == 2 && c.head_dim == 64);
    /* q/k/v bias always, o_proj never; use_sliding_window false disables it. */
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 0 && c.mlp_bias == 0);
    CHECK(c.sliding_window == 0 && c.tie_word_embeddings == 1);
    CHECK(c.rope.type == LLMRT_ROPE_DEFAULT && near(c.rope.theta, 1e6f) && c.rope.rotary_dim == 64);
    CHECK(c.num_eos_tokens == 1 && c.eos_token_ids[0] == 151645 && c.bos_token_id == 151643);

    /* Qwen2 ignores an attention_bias field (it has none in transformers). */
    CHECK_OK(parse("{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"vocab_size\": 100,"
                   " \"hidden_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 4,"
                   " \"max_position_embeddings\": 64, \"attention_bias\": false}",
                   &c));
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 0);
    CHECK_OK(parse("{\"architectures\": [\"Qwen2ForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64,"
                   " \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"max_position_embeddings\": 64,"
                   " \"attention_bias\": true}",
                   &c));
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 0 && c.mlp_bias == 0);

    CHECK_OK(parse(MISTRAL, &c));
    CHECK(c.sliding_window == 4096 && c.tie_word_embeddings == 0 && c.rope.type == LLMRT_ROPE_DEFAULT);
    CHECK(near(c.rope.theta, 10000.0f) && c.num_kv_heads == 8);
    CHECK_OK(parse("{" BASE ", \"sliding_window\": null}", &c));
    CHECK(c.sliding_window == 0);
}

static void test_defaults_and_biases(void) {
    llmrt_model_config c;
    CHECK_OK(parse("{" BASE "}", &c));
    CHECK(c.num_kv_heads == 8 && c.head_dim == 32 && c.intermediate_size == 1024);
    CHECK(near(c.norm_eps, 1e-6f) && c.activation == LLMRT_ACT_SILU && c.tie_word_embeddings == 0);
    CHECK(c.rope.type == LLMRT_ROPE_DEFAULT && near(c.rope.theta, 10000.0f) && c.rope.rotary_dim == 32);
    CHECK(near(c.rope.factor, 1.0f));
    CHECK(c.bos_token_id == -1 && c.pad_token_id == -1 && c.num_eos_tokens == 0);
    /* llama attention_bias covers o_proj too; mlp_bias separate. */
    CHECK_OK(parse("{" BASE ", \"attention_bias\": true, \"mlp_bias\": true}", &c));
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 1 && c.mlp_bias == 1);
    CHECK_OK(parse("{" BASE ", \"attention_bias\": true, \"attention_out_bias\": false}", &c));
    CHECK(c.attention_bias == 1 && c.attention_out_bias == 0);
    /* null where HF writes null; integral reals accepted. */
    CHECK_OK(parse("{" BASE ", \"head_dim\": null, \"intermediate_size\": null, \"pad_token_id\": null,"
                   " \"bos_token_id\": null, \"eos_token_id\": null, \"rope_scaling\": null, \"hidden_act\": null}",
                   &c));
    CHECK(c.head_dim == 32 && c.intermediate_size == 1024 && c.pad_token_id == -1 && c.num_eos_tokens == 0);
    CHECK_OK(parse("{\"architectures\": [\"X\"], \"vocab_size\": 1000.0, \"hidden_size\": 4096.0,"
                   " \"num_hidden_layers\": 2, \"num_attention_heads\": 32, \"max_position_embeddings\": 64}",
                   &c));
    CHECK(c.hidden_size == 4096 && c.vocab_size == 1000 && c.model_type[0] == '\0');
    /* Aliases: d_model and layer_norm_eps, hidden_activation. */
    CHECK_OK(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"d_model\": 64, \"n_layer\": 1,"
                   " \"n_head\": 2, \"n_positions\": 16, \"layer_norm_eps\": 0.001,"
                   " \"hidden_activation\": \"gelu_pytorch_tanh\", \"pad_token_id\": 0, \"torch_dtype\": \"float32\"}",
                   &c));
    CHECK(c.hidden_size == 64 && near(c.norm_eps, 1e-3f) && c.activation == LLMRT_ACT_GELU_TANH);
    CHECK(c.pad_token_id == 0 && c.checkpoint_dtype == LLMRT_DTYPE_F32);
    /* Activation spellings. */
    const struct { const char *name; llmrt_activation act; } acts[] = {
        {"silu", LLMRT_ACT_SILU}, {"swish", LLMRT_ACT_SILU}, {"gelu", LLMRT_ACT_GELU},
        {"gelu_new", LLMRT_ACT_GELU_TANH}, {"gelu_fast", LLMRT_ACT_GELU_TANH}, {"relu", LLMRT_ACT_RELU}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{" BASE ", \"hidden_act\": \"%s\"}", acts[i].name);
        CHECK_OK(parse(json, &c));
        CHECK(c.activation == acts[i].act);
    }
    /* Unknown checkpoint dtype: a hint only, left INVALID. */
    CHECK_OK(parse("{" BASE ", \"torch_dtype\": \"float8_e4m3fn\"}", &c));
    CHECK(c.checkpoint_dtype == LLMRT_DTYPE_INVALID);
    CHECK_OK(parse("{" BASE ", \"torch_dtype\": \"torch.float16\"}", &c));
    CHECK(c.checkpoint_dtype == LLMRT_DTYPE_F16);
}

static void test_rope_dialects(void) {
    llmrt_model_config c;
    CHECK_OK(parse(V5_LAYER_TYPES, &c));
    CHECK(c.rope.type == LLMRT_ROPE_LLAMA3 && near(c.rope.theta, 500000.0f) && near(c.rope.factor, 32.0f));
    CHECK(near(c.rope.low_freq_factor, 1.0f) && near(c.rope.high_freq_factor, 4.0f));
    CHECK(c.rope.original_max_position_embeddings == 8192 && c.head_dim == 64 && c.rope.rotary_dim == 32);
    CHECK(c.checkpoint_dtype == LLMRT_DTYPE_F16 && c.num_kv_heads == 2);

    /* Flat rope_parameters. */
    CHECK_OK(parse("{" BASE ", \"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 4.0,"
                   " \"rope_theta\": 20000}}",
                   &c));
    CHECK(c.rope.type == LLMRT_ROPE_LINEAR && near(c.rope.factor, 4.0f) && near(c.rope.theta, 20000.0f));
    CHECK_OK(parse("{" BASE ", \"rope_parameters\": {\"rope_type\": \"default\"}, \"rope_theta\": 30000}", &c));
    CHECK(c.rope.type == LLMRT_ROPE_DEFAULT && near(c.rope.theta, 30000.0f));
    /* rope_parameters wins over a stale rope_scaling. */
    CHECK_OK(parse("{" BASE ", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1000},"
                   " \"rope_scaling\": {\"rope_type\": \"yarn\"}}",
                   &c));
    CHECK(c.rope.type == LLMRT_ROPE_DEFAULT && near(c.rope.theta, 1000.0f));

    /* transformers 4: old "type" key, linear. */
    CHECK_OK(parse("{" BASE ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}, \"rope_theta\": 1e4}", &c));
    CHECK(c.rope.type == LLMRT_ROPE_LINEAR && near(c.rope.factor, 2.0f));
    /* partial_rotary_factor at top level (v4): int(32 * 0.25) = 8. */
    CHECK_OK(parse("{" BASE ", \"partial_rotary_factor\": 0.25}", &c));
    CHECK(c.rope.rotary_dim == 8);

    /* Unsupported types name the field the dialect used. */
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}", &c),
                 LLMRT_ERR_UNSUPPORTED, "config.json", "rope_scaling.rope_type", "yarn");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4.0}}", &c),
                 LLMRT_ERR_UNSUPPORTED, "rope_scaling.type", "dynamic");
    /* longrope is supported; without its factor lists it names the first one missing */
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"longrope\"}}", &c), LLMRT_ERR_FORMAT,
                 "rope_scaling.short_factor");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"type\": \"su\"}}", &c), LLMRT_ERR_UNSUPPORTED, "'su'");
    EXPECT_ERROR(parse("{" BASE ", \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 1e4}}", &c),
                 LLMRT_ERR_UNSUPPORTED, "rope_parameters.rope_type", "yarn");
    EXPECT_ERROR(parse("{" BASE ", \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"dynamic\"}}}", &c),
                 LLMRT_ERR_UNSUPPORTED, "rope_parameters.full_attention.rope_type");

    /* Malformed scaling fields. */
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                       " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}",
                       &c),
                 LLMRT_ERR_FORMAT, "rope_scaling.low_freq_factor");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                       " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}}",
                       &c),
                 LLMRT_ERR_FORMAT, "rope_scaling.original_max_position_embeddings");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                       " \"low_freq_factor\": 4.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8}}",
                       &c),
                 LLMRT_ERR_FORMAT, "high_freq_factor");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": \"2\"}}", &c),
                 LLMRT_ERR_FORMAT, "rope_scaling.factor");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": -2}}", &c),
                 LLMRT_ERR_FORMAT, "rope_scaling.factor");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"linear\"}}", &c), LLMRT_ERR_FORMAT,
                 "rope_scaling.factor");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": 3}}", &c), LLMRT_ERR_FORMAT,
                 "rope_scaling.rope_type");
    EXPECT_ERROR(parse("{" BASE ", \"rope_scaling\": [1]}", &c), LLMRT_ERR_FORMAT, "rope_scaling");
    EXPECT_ERROR(parse("{" BASE ", \"rope_parameters\": 5}", &c), LLMRT_ERR_FORMAT, "rope_parameters");
    EXPECT_ERROR(parse("{" BASE ", \"rope_parameters\": {\"full_attention\": 1}}", &c), LLMRT_ERR_FORMAT,
                 "rope_parameters.full_attention");
    EXPECT_ERROR(parse("{" BASE ", \"rope_theta\": 0}", &c), LLMRT_ERR_FORMAT, "rope_theta");
    EXPECT_ERROR(parse("{" BASE ", \"rope_theta\": -10000}", &c), LLMRT_ERR_FORMAT, "rope_theta");
    EXPECT_ERROR(parse("{" BASE ", \"rope_theta\": 1e300}", &c), LLMRT_ERR_FORMAT, "rope_theta");
    EXPECT_ERROR(parse("{" BASE ", \"rope_parameters\": {\"rope_theta\": \"x\"}}", &c), LLMRT_ERR_FORMAT,
                 "rope_parameters.rope_theta");
    /* rotary_dim must be positive and even: int(32 * 0.1) = 3. */
    EXPECT_ERROR(parse("{" BASE ", \"partial_rotary_factor\": 0.1}", &c), LLMRT_ERR_FORMAT, "partial_rotary_factor");
    EXPECT_ERROR(parse("{" BASE ", \"partial_rotary_factor\": 1.5}", &c), LLMRT_ERR_FORMAT, "partial_rotary_factor");
    EXPECT_ERROR(parse("{" BASE ", \"partial_rotary_factor\": 0}", &c), LLMRT_ERR_FORMAT, "partial_rotary_factor");
}

static void test_field_errors(void) {
    llmrt_model_config c;
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 4096, \"n_layer\": 1,"
                       " \"num_attention_heads\": 32, \"num_key_value_heads\": 5, \"n_positions\": 8}",
                       &c),
                 LLMRT_ERR_FORMAT, "config.json: field 'num_key_value_heads' = 5 does not divide num_attention_heads = 32");
    /* Wrong JSON types name the field as spelled in the file. */
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": \"4096\"}", &c),
                 LLMRT_ERR_FORMAT, "config.json", "'hidden_size'");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"n_embd\": true}", &c), LLMRT_ERR_FORMAT,
                 "'n_embd'");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 4096.5}", &c),
                 LLMRT_ERR_FORMAT, "'hidden_size'");
    EXPECT_ERROR(parse("{" BASE ", \"num_key_value_heads\": [2]}", &c), LLMRT_ERR_FORMAT, "'num_key_value_heads'");
    EXPECT_ERROR(parse("{" BASE ", \"tie_word_embeddings\": \"yes\"}", &c), LLMRT_ERR_FORMAT, "'tie_word_embeddings'");
    EXPECT_ERROR(parse("{" BASE ", \"attention_bias\": 1}", &c), LLMRT_ERR_FORMAT, "'attention_bias'");
    EXPECT_ERROR(parse("{" BASE ", \"mlp_bias\": \"false\"}", &c), LLMRT_ERR_FORMAT, "'mlp_bias'");
    EXPECT_ERROR(parse("{" BASE ", \"rms_norm_eps\": \"1e-5\"}", &c), LLMRT_ERR_FORMAT, "'rms_norm_eps'");
    EXPECT_ERROR(parse("{" BASE ", \"rms_norm_eps\": 0}", &c), LLMRT_ERR_FORMAT, "'rms_norm_eps'");
    EXPECT_ERROR(parse("{" BASE ", \"layer_norm_epsilon\": -1e-5}", &c), LLMRT_ERR_FORMAT, "'layer_norm_epsilon'");
    EXPECT_ERROR(parse("{" BASE ", \"rms_norm_eps\": 1e-60}", &c), LLMRT_ERR_FORMAT, "'rms_norm_eps'");
    EXPECT_ERROR(parse("{" BASE ", \"hidden_act\": \"swiglu\"}", &c), LLMRT_ERR_UNSUPPORTED, "'hidden_act'",
                 "swiglu");
    EXPECT_ERROR(parse("{" BASE ", \"hidden_activation\": \"tanh\"}", &c), LLMRT_ERR_UNSUPPORTED,
                 "'hidden_activation'", "tanh");
    EXPECT_ERROR(parse("{" BASE ", \"hidden_act\": 1}", &c), LLMRT_ERR_FORMAT, "'hidden_act'");
    EXPECT_ERROR(parse("{" BASE ", \"torch_dtype\": 16}", &c), LLMRT_ERR_FORMAT, "'torch_dtype'");
    EXPECT_ERROR(parse("{" BASE ", \"sliding_window\": -1}", &c), LLMRT_ERR_FORMAT, "'sliding_window'");
    EXPECT_ERROR(parse("{" BASE ", \"sliding_window\": \"4096\"}", &c), LLMRT_ERR_FORMAT, "'sliding_window'");
    EXPECT_ERROR(parse("{" BASE ", \"use_sliding_window\": 0}", &c), LLMRT_ERR_FORMAT, "'use_sliding_window'");
    EXPECT_ERROR(parse("{" BASE ", \"bos_token_id\": \"<s>\"}", &c), LLMRT_ERR_FORMAT, "'bos_token_id'");
    EXPECT_ERROR(parse("{" BASE ", \"pad_token_id\": -2}", &c), LLMRT_ERR_FORMAT, "'pad_token_id'");
    EXPECT_ERROR(parse("{" BASE ", \"eos_token_id\": [1, \"x\"]}", &c), LLMRT_ERR_FORMAT, "'eos_token_id'");
    EXPECT_ERROR(parse("{" BASE ", \"eos_token_id\": -1}", &c), LLMRT_ERR_FORMAT, "'eos_token_id'");
    EXPECT_ERROR(parse("{" BASE ", \"eos_token_id\": [1,2,3,4,5,6,7,8,9]}", &c), LLMRT_ERR_UNSUPPORTED,
                 "'eos_token_id'");
    /* Required fields. */
    EXPECT_ERROR(parse("{\"vocab_size\": 10}", &c), LLMRT_ERR_FORMAT, "'architectures'");
    EXPECT_ERROR(parse("{\"architectures\": [], \"vocab_size\": 10}", &c), LLMRT_ERR_FORMAT, "'architectures'");
    EXPECT_ERROR(parse("{\"architectures\": \"LlamaForCausalLM\"}", &c), LLMRT_ERR_FORMAT, "'architectures'");
    EXPECT_ERROR(parse("{\"architectures\": [7]}", &c), LLMRT_ERR_FORMAT, "'architectures'");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"model_type\": 3}", &c), LLMRT_ERR_FORMAT, "'model_type'");
    EXPECT_ERROR(parse("{\"architectures\": [\"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"]}",
                       &c),
                 LLMRT_ERR_FORMAT, "'architectures'", "longer");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"hidden_size\": 64}", &c), LLMRT_ERR_FORMAT,
                 "missing required field 'vocab_size'");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": null}", &c),
                 LLMRT_ERR_FORMAT, "missing required field 'hidden_size'");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 64}", &c),
                 LLMRT_ERR_FORMAT, "'num_hidden_layers'");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 64, \"n_layer\": 1}", &c),
                 LLMRT_ERR_FORMAT, "'num_attention_heads'");
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 64, \"n_layer\": 1,"
                       " \"n_head\": 2}",
                       &c),
                 LLMRT_ERR_FORMAT, "'max_position_embeddings'");
    /* Range checks. */
    const struct { const char *field; const char *value; } ranges[] = {
        {"hidden_size", "0"}, {"hidden_size", "262144"}, {"num_hidden_layers", "2000"}, {"num_hidden_layers", "-1"},
        {"num_attention_heads", "2048"}, {"vocab_size", "8388608"}, {"head_dim", "2048"}, {"head_dim", "0"},
        {"intermediate_size", "2097152"}, {"max_position_embeddings", "0"}, {"num_key_value_heads", "0"},
        {"vocab_size", "1e30"}, {"hidden_size", "99999999999999999"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        /* A key twice is refused outright, so replace BASE's value when the
         * field is already there, else append it. */
        char base[512] = "{" BASE "}", json[512], key[64], field[64];
        snprintf(key, sizeof key, "\"%s\": ", ranges[i].field);
        snprintf(field, sizeof field, "'%s'", ranges[i].field);
        char *at = strstr(base, key);
        if (at) {
            char *end = at + strlen(key);
            while (*end && *end != ',' && *end != '}') end++;
            snprintf(json, sizeof json, "%.*s%s%s%s", (int)(at - base), base, key, ranges[i].value, end);
        } else {
            snprintf(json, sizeof json, "{" BASE ", %s%s}", key, ranges[i].value);
        }
        EXPECT_ERROR(parse(json, &c), LLMRT_ERR_FORMAT, field);
    }
    /* A derived default is range-checked too: head_dim = 2560 / 1. */
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 2560, \"n_layer\": 1,"
                       " \"n_head\": 1, \"n_positions\": 8}",
                       &c),
                 LLMRT_ERR_FORMAT, "'head_dim'", "2560");
    /* hidden_size not a multiple of heads needs an explicit head_dim. */
    EXPECT_ERROR(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 100, \"n_layer\": 1,"
                       " \"n_head\": 3, \"n_positions\": 8}",
                       &c),
                 LLMRT_ERR_FORMAT, "'hidden_size'", "num_attention_heads");
    CHECK_OK(parse("{\"architectures\": [\"X\"], \"vocab_size\": 10, \"hidden_size\": 100, \"n_layer\": 1,"
                   " \"n_head\": 3, \"n_positions\": 8, \"head_dim\": 32}",
                   &c));
    CHECK(c.head_dim == 32 && c.rope.rotary_dim == 32);
    /* Not JSON, not an object, duplicate keys; a failed parse leaves *out zeroed. */
    c.hidden_size = 77;
    EXPECT_ERROR(parse("{\"architectures\": ", &c), LLMRT_ERR_FORMAT, "config.json", "not valid JSON");
    CHECK(c.hidden_size == 0);
    EXPECT_ERROR(parse("[1]", &c), LLMRT_ERR_FORMAT, "not a JSON object");
    EXPECT_ERROR(parse("{" BASE ", \"vocab_size\": 5}", &c), LLMRT_ERR_FORMAT, "config.json");
    EXPECT_ERROR(llmrt_hf_config_parse(NULL, 0, "config.json", &c), LLMRT_ERR_FORMAT, "config.json");
    /* Text with an explicit length need not be NUL-terminated. */
    char buffer[1024];
    size_t n = strlen(GPT2);
    memcpy(buffer, GPT2, n);
    memset(buffer + n, 'x', 16);
    CHECK_OK(llmrt_hf_config_parse(buffer, n, "config.json", &c));
}

static char *write_temp(const char *dir, const char *name, const char *text) {
    char *path = llmrt_path_join(dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static void test_files_and_generation_config(void) {
    char *dir = test_temp_dir();
    char *config_path = write_temp(dir, "config.json", LLAMA31);
    llmrt_model_config c;
    CHECK_OK(llmrt_hf_config_load(config_path, &c));
    CHECK(c.hidden_size == 4096 && c.num_eos_tokens == 3);
    char *missing = llmrt_path_join(dir, "nope.json");
    EXPECT_ERROR(llmrt_hf_config_load(missing, &c), LLMRT_ERR_IO, "nope.json");
    char *bad_path = write_temp(dir, "bad.json", "{" BASE ", \"num_key_value_heads\": 3}");
    EXPECT_ERROR(llmrt_hf_config_load(bad_path, &c), LLMRT_ERR_FORMAT, "bad.json", "'num_key_value_heads' = 3");

    CHECK_OK(llmrt_hf_config_load(config_path, &c));
    llmrt_model_config before = c;
    /* A missing generation config is not an error and changes nothing. */
    CHECK_OK(llmrt_hf_generation_config_merge(missing, &c));
    CHECK(memcmp(&before, &c, sizeof c) == 0);
    /* Generation config wins for the token ids. */
    char *gen_path = write_temp(dir, "generation_config.json",
                                "{\"bos_token_id\": 7, \"eos_token_id\": [1, 2], \"do_sample\": true,"
                                " \"temperature\": 0.6, \"top_p\": 0.9, \"pad_token_id\": 3}");
    CHECK_OK(llmrt_hf_generation_config_merge(gen_path, &c));
    CHECK(c.bos_token_id == 7 && c.pad_token_id == 3 && c.num_eos_tokens == 2 && c.eos_token_ids[0] == 1 &&
          c.eos_token_ids[1] == 2);
    CHECK(c.hidden_size == 4096);
    char *gen_int = write_temp(dir, "gen_int.json", "{\"eos_token_id\": 9}");
    CHECK_OK(llmrt_hf_generation_config_merge(gen_int, &c));
    CHECK(c.num_eos_tokens == 1 && c.eos_token_ids[0] == 9 && c.bos_token_id == 7);
    /* A bad field fails and leaves the config untouched. */
    before = c;
    char *gen_bad = write_temp(dir, "gen_bad.json", "{\"bos_token_id\": 1, \"eos_token_id\": \"</s>\"}");
    EXPECT_ERROR(llmrt_hf_generation_config_merge(gen_bad, &c), LLMRT_ERR_FORMAT, "gen_bad.json", "'eos_token_id'");
    CHECK(memcmp(&before, &c, sizeof c) == 0);
    char *gen_broken = write_temp(dir, "gen_broken.json", "{");
    EXPECT_ERROR(llmrt_hf_generation_config_merge(gen_broken, &c), LLMRT_ERR_FORMAT, "gen_broken.json");

    char *paths[] = {config_path, missing, bad_path, gen_path, gen_int, gen_bad, gen_broken};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        remove(paths[i]);
        free(paths[i]);
    }
    rmdir(dir);
    free(dir);
}

/* Mixtral: the expert counts, their defaults and their errors. */
#define MIXTRAL_BASE                                                                                  \
    "{\"architectures\": [\"MixtralForCausalLM\"], \"model_type\": \"mixtral\", \"hidden_size\": 64,"      \
    " \"intermediate_size\": 48, \"num_attention_heads\": 4, \"num_hidden_layers\": 2,"                     \
    " \"num_key_value_heads\": 1, \"max_position_embeddings\": 1024, \"vocab_size\": 128,"                  \
    " \"sliding_window\": null, \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}"
static const char *MIXTRAL = MIXTRAL_BASE ", \"num_local_experts\": 8, \"num_experts_per_tok\": 2}";

static void test_mixtral(void) {
    llmrt_model_config c;
    CHECK_OK(parse(MIXTRAL, &c));
    CHECK(c.num_experts == 8 && c.num_experts_per_tok == 2 && c.sliding_window == 0);
    CHECK_OK(parse("{\"architectures\": [\"MixtralForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
                   " \"num_hidden_layers\": 1, \"vocab_size\": 16, \"max_position_embeddings\": 64,"
                   " \"num_local_experts\": 4}", &c));
    CHECK(c.num_experts == 4 && c.num_experts_per_tok == 2); /* MixtralConfig's default top-2 */
    CHECK_OK(parse(LLAMA31, &c));
    CHECK(c.num_experts == 0 && c.num_experts_per_tok == 0);

    EXPECT_ERROR(parse(MIXTRAL_BASE ", \"num_local_experts\": 8, \"num_experts_per_tok\": 9}", &c), LLMRT_ERR_FORMAT,
                 "num_experts_per_tok", "9", "num_local_experts = 8");
    EXPECT_ERROR(parse(MIXTRAL_BASE ", \"num_local_experts\": 8, \"num_experts_per_tok\": 0}", &c), LLMRT_ERR_FORMAT,
                 "num_experts_per_tok");
    EXPECT_ERROR(parse(MIXTRAL_BASE ", \"num_local_experts\": 0}", &c), LLMRT_ERR_FORMAT, "num_local_experts",
                 "at least one expert");

    /* an engine's config that breaks the invariant is refused on load */
    CHECK_OK(parse(MIXTRAL, &c));
    c.num_experts_per_tok = 9;
    char *text = llmrt_model_config_to_json(&c);
    CHECK(text != NULL);
    if (text) EXPECT_ERROR(llmrt_model_config_from_json(text, strlen(text), &c), LLMRT_ERR_FORMAT, "num_experts_per_tok");
    free(text);
}

static void round_trip(const llmrt_model_config *in) {
    char *json = llmrt_model_config_to_json(in);
    CHECK(json != NULL);
    if (!json) return;
    llmrt_model_config out;
    CHECK_OK(llmrt_model_config_from_json(json, strlen(json), &out));
    CHECK_MSG(memcmp(in, &out, sizeof out) == 0, "round trip differs: %s", json);
    free(json);
}

/* google-bert/bert-base-uncased, and a classifier head on it. */
static const char *BERT_BASE =
    "{\"architectures\": [\"BertForMaskedLM\"], \"attention_probs_dropout_prob\": 0.1, \"gradient_checkpointing\": false,"
    " \"hidden_act\": \"gelu\", \"hidden_dropout_prob\": 0.1, \"hidden_size\": 768, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 3072, \"layer_norm_eps\": 1e-12, \"max_position_embeddings\": 512,"
    " \"model_type\": \"bert\", \"num_attention_heads\": 12, \"num_hidden_layers\": 12, \"pad_token_id\": 0,"
    " \"position_embedding_type\": \"absolute\", \"transformers_version\": \"4.6.0.dev0\", \"type_vocab_size\": 2,"
    " \"use_cache\": true, \"vocab_size\": 30522}";

/* A BERT config with one field replaced: `from` → `to` in BERT_CLS. */
static const char *BERT_CLS =
    "{\"architectures\": [\"BertForSequenceClassification\"], \"model_type\": \"bert\", \"vocab_size\": 128,"
    " \"hidden_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"intermediate_size\": 96,"
    " \"hidden_act\": \"gelu\", \"max_position_embeddings\": 512, \"type_vocab_size\": 2,"
    " \"layer_norm_eps\": 1e-12, \"position_embedding_type\": \"absolute\", \"is_decoder\": false,"
    " \"id2label\": {\"0\": \"LABEL_0\", \"1\": \"LABEL_1\", \"2\": \"LABEL_2\"}}";

static llmrt_status parse_edited(const char *from, const char *to, llmrt_model_config *c) {
    char edited[2048];
    const char *at = strstr(BERT_CLS, from);
    CHECK_MSG(at != NULL, "%s not in BERT_CLS", from);
    if (!at) return LLMRT_ERR_INTERNAL;
    snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - BERT_CLS), BERT_CLS, to, at + strlen(from));
    return parse(edited, c);
}

static llmrt_status validate_family(const llmrt_model_config *c) {
    const llmrt_model_family *family = NULL;
    LLMRT_TRY(llmrt_model_lookup(c->architecture, &family));
    return family->validate(c);
}

static void test_bert(void) {
    llmrt_model_config c;
    CHECK_OK(parse(BERT_BASE, &c));
    CHECK(c.hidden_size == 768 && c.num_heads == 12 && c.head_dim == 64 && c.intermediate_size == 3072);
    CHECK(c.type_vocab_size == 2 && c.num_labels == 0 && c.activation == LLMRT_ACT_GELU);
    CHECK(c.rope.type == LLMRT_ROPE_NONE && c.rope.rotary_dim == 0 && near(c.norm_eps, 1e-12f));

    CHECK_OK(parse(BERT_CLS, &c));
    CHECK(c.num_labels == 3 && c.type_vocab_size == 2 && llmrt_model_is_encoder(c.architecture));
    CHECK_OK(validate_family(&c));
    llmrt_encoder_row_layout row = llmrt_encoder_layout(&c);
    CHECK(row.hidden == 48 && row.pooled == 48 && row.labels == 3);
    round_trip(&c);
    /* no id2label: num_labels, else HF's default of 2 */
    CHECK_OK(parse_edited("\"id2label\"", "\"num_labels\": 5, \"x\"", &c));
    CHECK(c.num_labels == 5);
    CHECK_OK(parse_edited("\"id2label\"", "\"x\"", &c));
    CHECK(c.num_labels == 2);
    CHECK(!llmrt_model_is_encoder("LlamaForCausalLM"));

    /* Bad configs: the field is named. */
    EXPECT_ERROR(parse_edited("\"absolute\"", "\"relative_key\"", &c), LLMRT_ERR_UNSUPPORTED,
                 "'position_embedding_type'");
    EXPECT_ERROR(parse_edited("\"is_decoder\": false", "\"is_decoder\": true", &c), LLMRT_ERR_UNSUPPORTED,
                 "'is_decoder'");
    EXPECT_ERROR(parse_edited("\"type_vocab_size\": 2", "\"type_vocab_size\": -1", &c), LLMRT_ERR_FORMAT,
                 "'type_vocab_size'");
    EXPECT_ERROR(parse_edited("\"id2label\"", "\"num_labels\": 0, \"x\"", &c), LLMRT_ERR_FORMAT, "'num_labels'");
    EXPECT_ERROR(parse_edited("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu_erf\"", &c),
                 LLMRT_ERR_UNSUPPORTED, "'hidden_act'");
    CHECK_OK(parse_edited("\"type_vocab_size\": 2", "\"type_vocab_size\": 0", &c));
    EXPECT_ERROR(validate_family(&c), LLMRT_ERR_FORMAT, "type_vocab_size");
    CHECK_OK(parse_edited("\"num_attention_heads\": 4", "\"num_attention_heads\": 4, \"num_key_value_heads\": 2", &c));
    EXPECT_ERROR(validate_family(&c), LLMRT_ERR_FORMAT, "num_key_value_heads");
    CHECK_OK(parse_edited("\"num_attention_heads\": 4", "\"num_attention_heads\": 4, \"head_dim\": 8", &c));
    EXPECT_ERROR(validate_family(&c), LLMRT_ERR_FORMAT, "hidden_size");
    /* an engine written before the encoder fields still reads (no labels) */
    CHECK_OK(parse(BERT_CLS, &c));
    char *json = llmrt_model_config_to_json(&c);
    CHECK(json && strstr(json, "\"num_labels\":3,"));
    if (json) {
        char *at = strstr(json, "\"type_vocab_size\":2,\"num_labels\":3,");
        CHECK(at != NULL);
        if (at) memmove(at, at + strlen("\"type_vocab_size\":2,\"num_labels\":3,"),
                        strlen(at + strlen("\"type_vocab_size\":2,\"num_labels\":3,")) + 1);
        llmrt_model_config old;
        CHECK_OK(llmrt_model_config_from_json(json, strlen(json), &old));
        CHECK(old.num_labels == 0 && old.type_vocab_size == 0);
    }
    free(json);
}

static void test_model_config_json(void) {
    const char *configs[] = {LLAMA31, GPT2, QWEN25, MISTRAL, V5_LAYER_TYPES, MIXTRAL};
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        llmrt_model_config c;
        CHECK_OK(parse(configs[i], &c));
        round_trip(&c);
    }
    /* Every field distinct from its default, so a field the JSON forgets
     * would show up as a difference. */
    llmrt_model_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.architecture, "ArchitectureWithA\"Quote");
    strcpy(c.model_type, "type\\x");
    c.vocab_size = 12345;
    c.hidden_size = 640;
    c.num_layers = 7;
    c.num_heads = 10;
    c.num_kv_heads = 5;
    c.head_dim = 96;
    c.intermediate_size = 1111;
    c.max_position_embeddings = 3333;
    c.norm_eps = 3.3e-6f;
    c.activation = LLMRT_ACT_RELU;
    c.tie_word_embeddings = 1;
    c.attention_bias = 1;
    c.attention_out_bias = 0;
    c.mlp_bias = 1;
    c.sliding_window = 555;
    c.rope = (llmrt_rope_config){.type = LLMRT_ROPE_LLAMA3, .theta = 123456.7f, .factor = 3.5f,
                                 .low_freq_factor = 0.75f, .high_freq_factor = 5.25f,
                                 .original_max_position_embeddings = 777, .rotary_dim = 48};
    c.bos_token_id = 11;
    c.pad_token_id = -1;
    c.num_eos_tokens = LLMRT_MAX_EOS_TOKENS;
    for (int i = 0; i < LLMRT_MAX_EOS_TOKENS; i++) c.eos_token_ids[i] = 100 + i;
    c.checkpoint_dtype = LLMRT_DTYPE_BF16;
    round_trip(&c);
    c.activation = LLMRT_ACT_GELU;
    c.rope.type = LLMRT_ROPE_LINEAR;
    c.checkpoint_dtype = LLMRT_DTYPE_INVALID;
    c.num_eos_tokens = 0; /* entries past the count are not part of the config */
    memset(c.eos_token_ids, 0, sizeof c.eos_token_ids);
    round_trip(&c);

    /* Bad engine-side JSON. */
    llmrt_model_config out;
    EXPECT_ERROR(llmrt_model_config_from_json("{", 1, &out), LLMRT_ERR_FORMAT, "not valid JSON");
    char *json = llmrt_model_config_to_json(&c);
    CHECK(json && strstr(json, "\"num_kv_heads\":5"));
    /* Knock out / corrupt fields by editing the text. */
    struct { const char *from, *to, *needle; } edits[] = {
        {"\"num_kv_heads\":5", "\"num_kv_heads\":3", "'num_kv_heads' = 3 does not divide"},
        {"\"num_kv_heads\":5", "\"num_kv_headz\":5", "'num_kv_heads'"},
        {"\"type\":\"linear\"", "\"type\":\"ntk\"", "'rope.type'"},
        {"\"rotary_dim\":48", "\"rotary_dim\":47", "'rope.rotary_dim'"},
        {"\"rotary_dim\":48", "\"rotary_dim\":128", "'rope.rotary_dim'"},
        {"\"activation\":\"gelu\"", "\"activation\":\"gelu_erf\"", "'activation'"},
        {"\"checkpoint_dtype\":null", "\"checkpoint_dtype\":\"f99\"", "'checkpoint_dtype'"},
        {"\"checkpoint_dtype\":null", "\"checkpoint_dtypo\":null", "'checkpoint_dtype'"},
        {"\"eos_token_ids\":[]", "\"eos_token_ids\":7", "'eos_token_ids'"},
        {"\"mlp_bias\":true", "\"mlp_bias\":1", "'mlp_bias'"},
        {"\"rope\":{", "\"rope\":7,\"x\":{", "'rope'"},
    };
    for (size_t i = 0; json && i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(json, edits[i].from);
        CHECK_MSG(at != NULL, "%s not in %s", edits[i].from, json);
        if (!at) continue;
        char edited[4096];
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - json), json, edits[i].to, at + strlen(edits[i].from));
        EXPECT_ERROR(llmrt_model_config_from_json(edited, strlen(edited), &out), LLMRT_ERR_FORMAT, edits[i].needle);
    }
    free(json);
    /* to_json refuses a config with out-of-range enums instead of writing junk. */
    c.activation = (llmrt_activation)9;
    CHECK(llmrt_model_config_to_json(&c) == NULL);
}

int main(void) {
    RUN_TEST(test_llama31);
    RUN_TEST(test_gpt2);
    RUN_TEST(test_qwen2_and_mistral);
    RUN_TEST(test_defaults_and_biases);
    RUN_TEST(test_rope_dialects);
    RUN_TEST(test_field_errors);
    RUN_TEST(test_files_and_generation_config);
    RUN_TEST(test_model_config_json);
    RUN_TEST(test_mixtral);
    RUN_TEST(test_bert);
    return test_finish();
}
