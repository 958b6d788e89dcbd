/* HF config.json → llmrt_model_config, and the model config's own JSON form
 * (stored in engine files).
 *
 * config.json spells the same quantity differently per family (hidden_size /
 * n_embd / d_model, ...), so fields are read through alias lists: the first
 * alias present with a non-null value wins, and an error names the alias that
 * was actually in the file. A null value means "absent" (HF writes null for
 * head_dim, n_inner, sliding_window, pad_token_id when they take defaults).
 *
 * Defaults follow the transformers config classes of the family, not
 * PretrainedConfig: LlamaConfig, MistralConfig and Qwen2Config default
 * tie_word_embeddings to false, GPT2Config to true. */
#include "import/hf_config.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "import/hf_config_fields.h"
#include "import/hf_config_variants.h"

/* ---- typed field readers ----------------------------------------------------- */

/* Integers; an integral real (4096.0, as some exporters write) is accepted. */
static llmrt_status int_value(const char *source, const char *field, const json_t *value, long long min,
                              long long max, long long *out) {
    long long v;
    if (json_is_integer(value)) {
        v = (long long)json_integer_value(value);
    } else if (json_is_real(value)) {
        double d = json_real_value(value);
        /* Range-check in double first: casting an out-of-range double is UB. */
        if (!(d >= (double)min && d <= (double)max) || d != floor(d))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %.*g is not an integer in [%lld, %lld]", source,
                               field, d == floor(d) && fabs(d) < 1e18 ? 18 : 6, d, min, max);
        v = (long long)d;
    } else {
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be an integer", source, field);
    }
    if (v < min || v > max)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %lld is out of range [%lld, %lld]", source, field, v,
                           min, max);
    *out = v;
    return LLMRT_OK;
}

/* Finite numbers that fit a float (a double beyond FLT_MAX → float is UB). */
static llmrt_status float_value(const char *source, const char *field, const json_t *value, float *out) {
    if (!json_is_number(value))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be a number", source, field);
    double d = json_number_value(value);
    if (!isfinite(d) || fabs(d) > FLT_MAX)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g is not a finite float", source, field, d);
    *out = (float)d;
    return LLMRT_OK;
}

static llmrt_status bool_value(const char *source, const char *field, const json_t *value, int32_t *out) {
    if (!json_is_boolean(value))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be true or false", source, field);
    *out = json_is_true(value) ? 1 : 0;
    return LLMRT_OK;
}

static llmrt_status string_value(const char *source, const char *field, const json_t *value, char *out,
                                 size_t capacity) {
    if (!json_is_string(value)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be a string", source, field);
    const char *s = json_string_value(value);
    size_t length = json_string_length(value);
    if (length >= capacity || strlen(s) != length)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = '%.40s...' is longer than %zu bytes", source, field,
                           s, capacity - 1);
    memcpy(out, s, length + 1);
    return LLMRT_OK;
}

/* The first alias present with a non-null value; *field names it (or the
 * canonical spelling when none is present, for "missing" messages). */
static const json_t *lookup(const json_t *object, const char *const *aliases, const char **field) {
    *field = aliases[0];
    for (size_t i = 0; aliases[i]; i++) {
        const json_t *value = json_object_get(object, aliases[i]);
        if (value && !json_is_null(value)) {
            *field = aliases[i];
            return value;
        }
    }
    return NULL;
}

static llmrt_status get_int(const char *source, const json_t *object, const char *const *aliases, int required,
                            long long fallback, long long min, long long max, int32_t *out) {
    const char *field;
    const json_t *value = lookup(object, aliases, &field);
    if (!value) {
        if (required) return llmrt_error(LLMRT_ERR_FORMAT, "%s: missing required field '%s'", source, field);
        /* Derived defaults (head_dim = hidden / heads) obey the same limits. */
        if (fallback < min || fallback > max)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' is absent and its default %lld is out of range "
                               "[%lld, %lld]", source, field, fallback, min, max);
        *out = (int32_t)fallback;
        return LLMRT_OK;
    }
    long long v;
    LLMRT_TRY(int_value(source, field, value, min, max, &v));
    *out = (int32_t)v;
    return LLMRT_OK;
}

static llmrt_status get_float(const char *source, const json_t *object, const char *const *aliases, float fallback,
                              float *out) {
    const char *field;
    const json_t *value = lookup(object, aliases, &field);
    if (!value) {
        *out = fallback;
        return LLMRT_OK;
    }
    return float_value(source, field, value, out);
}

static llmrt_status get_bool(const char *source, const json_t *object, const char *field, int32_t fallback,
                             int32_t *out) {
    const json_t *value = json_object_get(object, field);
    if (!value || json_is_null(value)) {
        *out = fallback;
        return LLMRT_OK;
    }
    return bool_value(source, field, value, out);
}

/* eos_token_id: an int, a list of ints, or null (leaves the list as is). */
static llmrt_status token_list(const char *source, const char *field, const json_t *value, int32_t *ids,
                               int32_t *count) {
    long long id = 0;
    if (json_is_array(value)) {
        size_t n = json_array_size(value);
        if (n > LLMRT_MAX_EOS_TOKENS)
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field '%s' lists %zu tokens, at most %d are supported",
                               source, field, n, (int)LLMRT_MAX_EOS_TOKENS);
        for (size_t i = 0; i < n; i++) {
            LLMRT_TRY(int_value(source, field, json_array_get(value, i), 0, MAX_TOKEN_ID, &id));
            ids[i] = (int32_t)id;
        }
        *count = (int32_t)n;
        return LLMRT_OK;
    }
    LLMRT_TRY(int_value(source, field, value, 0, MAX_TOKEN_ID, &id));
    ids[0] = (int32_t)id;
    *count = 1;
    return LLMRT_OK;
}

/* A special-token id past the vocabulary would never be produced (an EOS
 * that never stops generation) or index past the embedding (a BOS). */
static llmrt_status check_token_ids(const char *source, const llmrt_model_config *c) {
    const char *field = NULL;
    int32_t id = 0;
    if (c->bos_token_id >= c->vocab_size) field = "bos_token_id", id = c->bos_token_id;
    else if (c->pad_token_id >= c->vocab_size) field = "pad_token_id", id = c->pad_token_id;
    for (int32_t i = 0; !field && i < c->num_eos_tokens && i < LLMRT_MAX_EOS_TOKENS; i++)
        if (c->eos_token_ids[i] >= c->vocab_size) field = "eos_token_id", id = c->eos_token_ids[i];
    if (!field) return LLMRT_OK;
    return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %d is outside the vocabulary (vocab_size %d)", source, field,
                       id, c->vocab_size);
}

/* ---- names of enums ------------------------------------------------------------ */

static const char *const activation_names[] = {
    [LLMRT_ACT_SILU] = "silu", [LLMRT_ACT_GELU] = "gelu", [LLMRT_ACT_GELU_TANH] = "gelu_tanh",
    [LLMRT_ACT_RELU] = "relu"};
static const char *const rope_type_names[] = {
    [LLMRT_ROPE_NONE] = "none", [LLMRT_ROPE_DEFAULT] = "default", [LLMRT_ROPE_LINEAR] = "linear",
    [LLMRT_ROPE_LLAMA3] = "llama3", [LLMRT_ROPE_LONGROPE] = "longrope"};

/* HF ACT2FN keys we implement; everything else is refused, never guessed. */
static int parse_hf_activation(const char *name, llmrt_activation *out) {
    static const struct { const char *name; llmrt_activation act; } table[] = {
        {"silu", LLMRT_ACT_SILU},           {"swish", LLMRT_ACT_SILU},
        {"gelu", LLMRT_ACT_GELU},           {"gelu_new", LLMRT_ACT_GELU_TANH},
        {"gelu_pytorch_tanh", LLMRT_ACT_GELU_TANH}, {"gelu_fast", LLMRT_ACT_GELU_TANH},
        {"relu", LLMRT_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) return *out = table[i].act, 1;
    return 0;
}

/* ---- config.json --------------------------------------------------------------- */

/* Mixture of experts (Mixtral): num_local_experts routed experts, of which
 * num_experts_per_tok (MixtralConfig's default: 2) serve each token. */
static llmrt_status parse_experts(const char *source, const json_t *root, llmrt_model_config *c) {
    const char *field;
    if (!lookup(root, ALIASES("num_local_experts"), &field)) return LLMRT_OK;
    long long experts;
    LLMRT_TRY(int_value(source, field, json_object_get(root, field), 0, MAX_EXPERTS, &experts));
    if (experts < 1)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'num_local_experts' = %lld: a mixture needs at least one expert",
                           source, experts);
    c->num_experts = (int32_t)experts;
    LLMRT_TRY(get_int(source, root, ALIASES("num_experts_per_tok"), 0, c->num_experts < 2 ? c->num_experts : 2, 1,
                      MAX_EXPERTS, &c->num_experts_per_tok));
    if (c->num_experts_per_tok > c->num_experts)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'num_experts_per_tok' = %d exceeds num_local_experts = %d",
                           source, c->num_experts_per_tok, c->num_experts);
    return LLMRT_OK;
}

static int is_bert(const llmrt_model_config *c) {
    return strcmp(c->model_type, "bert") == 0 || strncmp(c->architecture, "Bert", 4) == 0;
}

/* BERT-style encoders: token types, absolute positions only (no rotary
 * embedding: llmrt_hf_parse_rope is told so), and the classification head's width
 * (id2label, else num_labels, else HF's default of 2 for a classifier). */
static llmrt_status parse_encoder_fields(const char *source, const json_t *root, llmrt_model_config *c) {
    if (!is_bert(c)) return LLMRT_OK;
    LLMRT_TRY(get_int(source, root, ALIASES("type_vocab_size"), 0, 2, 0, MAX_VOCAB, &c->type_vocab_size));
    const json_t *kind = json_object_get(root, "position_embedding_type");
    if (kind && !json_is_null(kind) && (!json_is_string(kind) || strcmp(json_string_value(kind), "absolute") != 0))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'position_embedding_type' must be \"absolute\" (relative "
                           "position embeddings are not supported)", source);
    const json_t *decoder = json_object_get(root, "is_decoder");
    if (json_is_true(decoder))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'is_decoder' is true: a causal BERT is not supported",
                           source);
    if (strstr(c->architecture, "ForSequenceClassification")) {
        const json_t *labels = json_object_get(root, "id2label");
        if (json_is_object(labels) && json_object_size(labels) > 0) {
            if (json_object_size(labels) > MAX_LABELS)
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'id2label' has %zu labels (at most %lld)", source,
                                   json_object_size(labels), MAX_LABELS);
            c->num_labels = (int32_t)json_object_size(labels);
        } else {
            LLMRT_TRY(get_int(source, root, ALIASES("num_labels"), 0, 2, 1, MAX_LABELS, &c->num_labels));
        }
    }
    return LLMRT_OK;
}

static llmrt_status parse_hf_root(const char *source, const json_t *root, llmrt_model_config *c) {
    const json_t *archs = json_object_get(root, "architectures");
    if (!archs || json_is_null(archs))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: missing required field 'architectures'", source);
    if (!json_is_array(archs) || json_array_size(archs) == 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'architectures' must be a non-empty array of strings", source);
    LLMRT_TRY(string_value(source, "architectures", json_array_get(archs, 0), c->architecture,
                           sizeof c->architecture));
    const json_t *model_type = json_object_get(root, "model_type");
    if (model_type && !json_is_null(model_type))
        LLMRT_TRY(string_value(source, "model_type", model_type, c->model_type, sizeof c->model_type));

    int is_gpt2 = strcmp(c->model_type, "gpt2") == 0 || strcmp(c->architecture, "GPT2LMHeadModel") == 0;
    /* Qwen2 has no attention_bias field: its q/k/v projections always carry a
     * bias and o_proj never does (modeling_qwen2.py). */
    int is_qwen2 = strcmp(c->model_type, "qwen2") == 0 || strcmp(c->model_type, "qwen2_moe") == 0 ||
                   strcmp(c->architecture, "Qwen2ForCausalLM") == 0;

    LLMRT_TRY(get_int(source, root, ALIASES("vocab_size", "padded_vocab_size"), 1, 0, 1, MAX_VOCAB,
                      &c->vocab_size));
    LLMRT_TRY(get_int(source, root, ALIASES("hidden_size", "n_embd", "d_model"), 1, 0, 1, MAX_HIDDEN,
                      &c->hidden_size));
    LLMRT_TRY(get_int(source, root, ALIASES("num_hidden_layers", "n_layer", "n_layers", "num_layers"), 1, 0, 1,
                      MAX_LAYERS, &c->num_layers));
    LLMRT_TRY(get_int(source, root, ALIASES("num_attention_heads", "n_head", "n_heads"), 1, 0, 1, MAX_HEADS,
                      &c->num_heads));
    LLMRT_TRY(get_int(source, root, ALIASES("num_key_value_heads"), 0, c->num_heads, 1, MAX_HEADS,
                      &c->num_kv_heads));
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'num_key_value_heads' = %d does not divide "
                           "num_attention_heads = %d", source, c->num_kv_heads, c->num_heads);
    const char *unused;
    if (!lookup(root, ALIASES("head_dim"), &unused) && c->hidden_size % c->num_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'hidden_size' = %d is not divisible by num_attention_heads "
                           "= %d and there is no head_dim", source, c->hidden_size, c->num_heads);
    LLMRT_TRY(get_int(source, root, ALIASES("head_dim"), 0, c->hidden_size / c->num_heads, 1, MAX_HEAD_DIM,
                      &c->head_dim));
    LLMRT_TRY(get_int(source, root, ALIASES("intermediate_size", "n_inner", "ffn_hidden_size"), 0,
                      4LL * c->hidden_size, 1, MAX_INTERMEDIATE, &c->intermediate_size));
    /* ALiBi models (BLOOM) may name no length: 2048, BLOOM's training length */
    LLMRT_TRY(get_int(source, root, ALIASES("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len",
                                            "seq_length"), !llmrt_hf_config_uses_alibi(c), 2048, 1,
                      MAX_POSITIONS, &c->max_position_embeddings));

    /* LlamaConfig/Qwen2Config/MistralConfig default to 1e-6, GPT2Config to 1e-5. */
    const char *field;
    const char *const *eps_aliases =
        ALIASES("rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps", "layernorm_epsilon");
    LLMRT_TRY(get_float(source, root, eps_aliases, is_gpt2 ? 1e-5f : 1e-6f, &c->norm_eps));
    lookup(root, eps_aliases, &field);
    if (!(c->norm_eps > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g must be positive", source, field,
                           (double)c->norm_eps);

    const json_t *act = lookup(root, ALIASES("hidden_act", "activation_function", "hidden_activation"), &field);
    c->activation = is_gpt2 ? LLMRT_ACT_GELU_TANH : LLMRT_ACT_SILU; /* gpt2: gelu_new; llama: silu */
    if (act) {
        if (!json_is_string(act)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be a string", source, field);
        if (!parse_hf_activation(json_string_value(act), &c->activation))
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field '%s' = '%.40s' is not a supported activation",
                               source, field, json_string_value(act));
    }

    LLMRT_TRY(get_bool(source, root, "tie_word_embeddings", is_gpt2, &c->tie_word_embeddings));
    if (is_gpt2) {
        /* GPT-2's Conv1D layers all carry biases; the config has no fields. */
        c->attention_bias = c->attention_out_bias = c->mlp_bias = 1;
    } else {
        /* Llama's attention_bias applies to q, k, v and o_proj alike. */
        LLMRT_TRY(get_bool(source, root, "attention_bias", 0, &c->attention_bias));
        LLMRT_TRY(get_bool(source, root, "attention_out_bias", c->attention_bias, &c->attention_out_bias));
        LLMRT_TRY(get_bool(source, root, "mlp_bias", 0, &c->mlp_bias));
        if (is_qwen2) {
            c->attention_bias = 1;
            c->attention_out_bias = 0;
        }
    }

    LLMRT_TRY(get_int(source, root, ALIASES("sliding_window"), 0, 0, 0, MAX_POSITIONS, &c->sliding_window));
    /* Qwen2 writes a sliding_window but switches it off with
     * use_sliding_window = false; recording it would change the attention. */
    int32_t use_sliding_window = 1;
    LLMRT_TRY(get_bool(source, root, "use_sliding_window", 1, &use_sliding_window));
    if (!use_sliding_window) c->sliding_window = 0;

    /* Unknown dtype names (float8 variants, "auto") are only a hint about the
     * checkpoint, so they leave INVALID rather than fail the import. */
    c->checkpoint_dtype = LLMRT_DTYPE_INVALID;
    const json_t *dtype = lookup(root, ALIASES("torch_dtype", "dtype"), &field);
    if (dtype) {
        if (!json_is_string(dtype)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be a string", source, field);
        const char *name = json_string_value(dtype);
        if (strncmp(name, "torch.", 6) == 0) name += 6;
        c->checkpoint_dtype = llmrt_dtype_from_name(name);
        if (c->checkpoint_dtype == LLMRT_DTYPE_INVALID)
            LLMRT_WARN("%s: field '%s' = '%.40s' is not a dtype llmrt knows; ignored", source, field, name);
    }

    LLMRT_TRY(get_int(source, root, ALIASES("bos_token_id"), 0, -1, -1, MAX_TOKEN_ID, &c->bos_token_id));
    LLMRT_TRY(get_int(source, root, ALIASES("pad_token_id"), 0, -1, -1, MAX_TOKEN_ID, &c->pad_token_id));
    const json_t *eos = json_object_get(root, "eos_token_id");
    if (eos && !json_is_null(eos)) LLMRT_TRY(token_list(source, "eos_token_id", eos, c->eos_token_ids, &c->num_eos_tokens));
    LLMRT_TRY(check_token_ids(source, c));

    LLMRT_TRY(parse_experts(source, root, c));
    LLMRT_TRY(llmrt_hf_parse_rope(source, root,
                                  is_gpt2 || is_bert(c) || llmrt_hf_config_uses_alibi(c) ||
                                      llmrt_hf_layout_has_learned_positions(root, c),
                                  c));
    LLMRT_TRY(parse_encoder_fields(source, root, c));
    LLMRT_TRY(llmrt_hf_config_parse_variants(source, root, c));
    return llmrt_hf_parse_layouts(source, root, c);
}

static llmrt_status load_object(const char *text, size_t length, const char *source, json_t **out) {
    json_error_t error;
    json_t *root = json_loadb(text ? text : "", text ? length : 0, JSON_REJECT_DUPLICATES, &error);
    if (!root)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", source, error.text,
                           error.line, error.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: not a JSON object", source);
    }
    *out = root;
    return LLMRT_OK;
}

llmrt_status llmrt_hf_config_parse(const char *json_text, size_t length, const char *source_name,
                                   llmrt_model_config *out) {
    const char *source = source_name ? source_name : "config.json";
    memset(out, 0, sizeof *out);
    json_t *root = NULL;
    LLMRT_TRY(load_object(json_text, length, source, &root));
    llmrt_model_config config;
    memset(&config, 0, sizeof config);
    llmrt_status status = parse_hf_root(source, root, &config);
    json_decref(root);
    if (status == LLMRT_OK) *out = config;
    return status;
}

llmrt_status llmrt_hf_config_load(const char *path, llmrt_model_config *out) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t length;
    LLMRT_TRY(llmrt_file_read_all(path, &text, &length));
    llmrt_status status = llmrt_hf_config_parse(text, length, path, out);
    free(text);
    return status;
}

llmrt_status llmrt_hf_generation_config_merge(const char *path, llmrt_model_config *config) {
    if (!llmrt_file_exists(path)) return LLMRT_OK;
    char *text;
    size_t length;
    LLMRT_TRY(llmrt_file_read_all(path, &text, &length));
    json_t *root = NULL;
    llmrt_status status = load_object(text, length, path, &root);
    free(text);
    if (status != LLMRT_OK) return status;
    /* Merge into a copy so a bad field leaves `config` untouched. */
    llmrt_model_config merged = *config;
    status = get_int(path, root, ALIASES("bos_token_id"), 0, merged.bos_token_id, -1, MAX_TOKEN_ID,
                     &merged.bos_token_id);
    if (status == LLMRT_OK)
        status = get_int(path, root, ALIASES("pad_token_id"), 0, merged.pad_token_id, -1, MAX_TOKEN_ID,
                         &merged.pad_token_id);
    const json_t *eos = json_object_get(root, "eos_token_id");
    if (status == LLMRT_OK && eos && !json_is_null(eos))
        status = token_list(path, "eos_token_id", eos, merged.eos_token_ids, &merged.num_eos_tokens);
    if (status == LLMRT_OK) status = check_token_ids(path, &merged);
    json_decref(root);
    if (status == LLMRT_OK) *config = merged;
    return status;
}

/* ---- the model config's own JSON (engine files) -------------------------------- */

/* One table drives both directions, so every field written is read back.
 * Keys are the struct's field names. */
typedef enum { FIELD_INT, FIELD_BOOL, FIELD_FLOAT } field_kind;
typedef struct field_spec {
    const char *key;
    field_kind kind;
    size_t offset;
    long long min, max; /* FIELD_INT */
} field_spec;

#define INT_FIELD(key, member, min, max) {key, FIELD_INT, offsetof(llmrt_model_config, member), min, max}
#define BOOL_FIELD(key, member) {key, FIELD_BOOL, offsetof(llmrt_model_config, member), 0, 1}
#define FLOAT_FIELD(key, member) {key, FIELD_FLOAT, offsetof(llmrt_model_config, member), 0, 0}

static const field_spec model_fields[] = {
    INT_FIELD("vocab_size", vocab_size, 1, MAX_VOCAB),
    INT_FIELD("hidden_size", hidden_size, 1, MAX_HIDDEN),
    INT_FIELD("num_layers", num_layers, 1, MAX_LAYERS),
    INT_FIELD("num_heads", num_heads, 1, MAX_HEADS),
    INT_FIELD("num_kv_heads", num_kv_heads, 1, MAX_HEADS),
    INT_FIELD("head_dim", head_dim, 1, MAX_HEAD_DIM),
    INT_FIELD("intermediate_size", intermediate_size, 1, MAX_INTERMEDIATE),
    INT_FIELD("max_position_embeddings", max_position_embeddings, 1, MAX_POSITIONS),
    FLOAT_FIELD("norm_eps", norm_eps),
    BOOL_FIELD("tie_word_embeddings", tie_word_embeddings),
    BOOL_FIELD("attention_bias", attention_bias),
    BOOL_FIELD("attention_out_bias", attention_out_bias),
    BOOL_FIELD("mlp_bias", mlp_bias),
    INT_FIELD("sliding_window", sliding_window, 0, MAX_POSITIONS),
    INT_FIELD("bos_token_id", bos_token_id, -1, MAX_TOKEN_ID),
    INT_FIELD("pad_token_id", pad_token_id, -1, MAX_TOKEN_ID),
};

/* Fields added after format v1's engines were written: absent means 0. */
static const field_spec optional_fields[] = {
    INT_FIELD("num_experts", num_experts, 0, MAX_EXPERTS),
    INT_FIELD("num_experts_per_tok", num_experts_per_tok, 0, MAX_EXPERTS),
};

/* Written as "attention_variants" {...}; engine files from before it
 * have none and read as all off. */
static const field_spec variant_fields[] = {
    FLOAT_FIELD("query_pre_attn_scalar", query_pre_attn_scalar),
    FLOAT_FIELD("attn_logit_softcapping", attn_logit_softcapping),
    FLOAT_FIELD("final_logit_softcapping", final_logit_softcapping),
    INT_FIELD("sliding_window_pattern", sliding_window_pattern, 0, MAX_LAYERS),
    FLOAT_FIELD("rope_local_theta", rope_local_theta),
    FLOAT_FIELD("alibi_max_bias", alibi_max_bias),
};

/* Encoder fields, absent from engines of decoders built before them. */
static const field_spec encoder_fields[] = {
    INT_FIELD("type_vocab_size", type_vocab_size, 0, MAX_VOCAB),
    INT_FIELD("num_labels", num_labels, 0, MAX_LABELS),
};

#define ROPE_OFFSET(member) (offsetof(llmrt_model_config, rope) + offsetof(llmrt_rope_config, member))
static const field_spec rope_fields[] = {
    {"theta", FIELD_FLOAT, ROPE_OFFSET(theta), 0, 0},
    {"factor", FIELD_FLOAT, ROPE_OFFSET(factor), 0, 0},
    {"low_freq_factor", FIELD_FLOAT, ROPE_OFFSET(low_freq_factor), 0, 0},
    {"high_freq_factor", FIELD_FLOAT, ROPE_OFFSET(high_freq_factor), 0, 0},
    {"original_max_position_embeddings", FIELD_INT, ROPE_OFFSET(original_max_position_embeddings), 0, MAX_POSITIONS},
    {"rotary_dim", FIELD_INT, ROPE_OFFSET(rotary_dim), 0, MAX_HEAD_DIM},
};

static int put_fields(json_t *object, const llmrt_model_config *c, const field_spec *fields, size_t count) {
    int failed = 0;
    for (size_t i = 0; i < count; i++) {
        const void *p = (const char *)c + fields[i].offset;
        json_t *value;
        switch (fields[i].kind) {
        case FIELD_INT: value = json_integer(*(const int32_t *)p); break;
        case FIELD_BOOL: value = json_boolean(*(const int32_t *)p); break;
        default: value = json_real(*(const float *)p); break;
        }
        failed |= json_object_set_new(object, fields[i].key, value) != 0;
    }
    return !failed;
}

char *llmrt_model_config_to_json(const llmrt_model_config *c) {
    if (!c || (unsigned)c->activation > LLMRT_ACT_RELU || (unsigned)c->rope.type > LLMRT_ROPE_LONGROPE ||
        c->num_eos_tokens < 0 || c->num_eos_tokens > LLMRT_MAX_EOS_TOKENS)
        return NULL;
    json_t *root = json_object(), *rope = json_object(), *eos = json_array(), *variants = json_object();
    int ok = root && rope && eos && variants;
    if (ok) {
        ok &= json_object_set_new(root, "architecture", json_stringn(c->architecture, strnlen(c->architecture,
                                  sizeof c->architecture))) == 0;
        ok &= json_object_set_new(root, "model_type", json_stringn(c->model_type, strnlen(c->model_type,
                                  sizeof c->model_type))) == 0;
        ok &= put_fields(root, c, model_fields, sizeof model_fields / sizeof model_fields[0]);
        ok &= put_fields(root, c, optional_fields, sizeof optional_fields / sizeof optional_fields[0]);
        ok &= put_fields(root, c, encoder_fields, sizeof encoder_fields / sizeof encoder_fields[0]);
        ok &= json_object_set_new(root, "activation", json_string(activation_names[c->activation])) == 0;
        ok &= json_object_set_new(rope, "type", json_string(rope_type_names[c->rope.type])) == 0;
        ok &= put_fields(rope, c, rope_fields, sizeof rope_fields / sizeof rope_fields[0]);
        ok &= put_fields(variants, c, variant_fields, sizeof variant_fields / sizeof variant_fields[0]);
        ok &= llmrt_layout_fields_to_json(root, rope, c);
        for (int32_t i = 0; i < c->num_eos_tokens; i++) ok &= json_array_append_new(eos, json_integer(c->eos_token_ids[i])) == 0;
        ok &= json_object_set_new(root, "checkpoint_dtype", c->checkpoint_dtype == LLMRT_DTYPE_INVALID
                                  ? json_null() : json_string(llmrt_dtype_name(c->checkpoint_dtype))) == 0;
    }
    /* set_new steals the reference even when it fails, so after these calls
     * root owns (or has already dropped) rope and eos. */
    if (root && rope) {
        ok &= json_object_set_new(root, "rope", rope) == 0;
        rope = NULL;
    }
    if (root && eos) {
        ok &= json_object_set_new(root, "eos_token_ids", eos) == 0;
        eos = NULL;
    }
    if (root && variants) {
        ok &= json_object_set_new(root, "attention_variants", variants) == 0;
        variants = NULL;
    }
    json_decref(rope);
    json_decref(eos);
    json_decref(variants);
    char *text = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static llmrt_status get_fields(const char *source, const json_t *object, const char *prefix, llmrt_model_config *c,
                               const field_spec *fields, size_t count) {
    char field[96];
    for (size_t i = 0; i < count; i++) {
        snprintf(field, sizeof field, "%s%s", prefix, fields[i].key);
        const json_t *value = json_object_get(object, fields[i].key);
        if (!value) return llmrt_error(LLMRT_ERR_FORMAT, "%s: missing required field '%s'", source, field);
        void *p = (char *)c + fields[i].offset;
        long long v;
        switch (fields[i].kind) {
        case FIELD_INT:
            LLMRT_TRY(int_value(source, field, value, fields[i].min, fields[i].max, &v));
            *(int32_t *)p = (int32_t)v;
            break;
        case FIELD_BOOL: LLMRT_TRY(bool_value(source, field, value, (int32_t *)p)); break;
        default: LLMRT_TRY(float_value(source, field, value, (float *)p)); break;
        }
    }
    return LLMRT_OK;
}

static llmrt_status get_enum(const char *source, const json_t *object, const char *field, const char *display,
                             const char *const *names, int count, int *out) {
    const json_t *value = json_object_get(object, field);
    if (!json_is_string(value)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be a string", source, display);
    for (int i = 0; i < count; i++)
        if (strcmp(json_string_value(value), names[i]) == 0) return *out = i, LLMRT_OK;
    return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = '%.40s' is not known", source, display,
                       json_string_value(value));
}

/* The invariants a network builder relies on, checked again on load since an
 * engine file is input like any other. */
static llmrt_status check_model_config(const char *source, const llmrt_model_config *c) {
    if (!(c->query_pre_attn_scalar >= 0.0f) || !(c->attn_logit_softcapping >= 0.0f) ||
        !(c->final_logit_softcapping >= 0.0f) || !(c->rope_local_theta >= 0.0f) || !(c->alibi_max_bias >= 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'attention_variants' holds a negative value", source);
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'num_kv_heads' = %d does not divide num_heads = %d", source,
                           c->num_kv_heads, c->num_heads);
    if (!(c->norm_eps > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'norm_eps' = %g must be positive", source, (double)c->norm_eps);
    if (c->num_experts_per_tok > c->num_experts || (c->num_experts > 0 && c->num_experts_per_tok < 1))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'num_experts_per_tok' = %d must be in [1, num_experts = %d]",
                           source, c->num_experts_per_tok, c->num_experts);
    const llmrt_rope_config *r = &c->rope;
    if (r->type == LLMRT_ROPE_NONE) return LLMRT_OK;
    if (!(r->theta > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope.theta' = %g must be positive", source, (double)r->theta);
    if (r->rotary_dim <= 0 || r->rotary_dim % 2 != 0 || r->rotary_dim > c->head_dim)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope.rotary_dim' = %d must be even and in (0, head_dim = %d]",
                           source, r->rotary_dim, c->head_dim);
    if ((r->type == LLMRT_ROPE_LINEAR || r->type == LLMRT_ROPE_LLAMA3) && !(r->factor > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope.factor' = %g must be positive", source, (double)r->factor);
    if (r->type == LLMRT_ROPE_LLAMA3 &&
        (!(r->low_freq_factor > 0.0f) || !(r->high_freq_factor > r->low_freq_factor) ||
         r->original_max_position_embeddings <= 0))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope': llama3 needs 0 < low_freq_factor < high_freq_factor "
                           "and original_max_position_embeddings > 0", source);
    return LLMRT_OK;
}

static llmrt_status parse_model_config(const char *source, const json_t *root, llmrt_model_config *c) {
    LLMRT_TRY(string_value(source, "architecture", json_object_get(root, "architecture"), c->architecture,
                           sizeof c->architecture));
    LLMRT_TRY(string_value(source, "model_type", json_object_get(root, "model_type"), c->model_type,
                           sizeof c->model_type));
    LLMRT_TRY(get_fields(source, root, "", c, model_fields, sizeof model_fields / sizeof model_fields[0]));
    for (size_t i = 0; i < sizeof optional_fields / sizeof optional_fields[0]; i++)
        if (json_object_get(root, optional_fields[i].key))
            LLMRT_TRY(get_fields(source, root, "", c, &optional_fields[i], 1));
    if (json_object_get(root, "num_labels"))
        LLMRT_TRY(get_fields(source, root, "", c, encoder_fields, sizeof encoder_fields / sizeof encoder_fields[0]));
    int v = 0;
    LLMRT_TRY(get_enum(source, root, "activation", "activation", activation_names, 4, &v));
    c->activation = (llmrt_activation)v;
    const json_t *rope = json_object_get(root, "rope");
    if (!json_is_object(rope)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope' must be an object", source);
    LLMRT_TRY(get_enum(source, rope, "type", "rope.type", rope_type_names, 5, &v));
    c->rope.type = (llmrt_rope_type)v;
    LLMRT_TRY(get_fields(source, rope, "rope.", c, rope_fields, sizeof rope_fields / sizeof rope_fields[0]));
    const json_t *variants = json_object_get(root, "attention_variants");
    if (variants && !json_is_object(variants))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'attention_variants' must be an object", source);
    if (variants)
        LLMRT_TRY(get_fields(source, variants, "attention_variants.", c, variant_fields,
                             sizeof variant_fields / sizeof variant_fields[0]));
    LLMRT_TRY(llmrt_layout_fields_from_json(source, root, rope, c));
    const json_t *eos = json_object_get(root, "eos_token_ids");
    if (!json_is_array(eos)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'eos_token_ids' must be an array", source);
    LLMRT_TRY(token_list(source, "eos_token_ids", eos, c->eos_token_ids, &c->num_eos_tokens));
    const json_t *dtype = json_object_get(root, "checkpoint_dtype");
    if (!dtype) return llmrt_error(LLMRT_ERR_FORMAT, "%s: missing required field 'checkpoint_dtype'", source);
    c->checkpoint_dtype = LLMRT_DTYPE_INVALID;
    if (!json_is_null(dtype)) {
        if (!json_is_string(dtype))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'checkpoint_dtype' must be a string or null", source);
        c->checkpoint_dtype = llmrt_dtype_from_name(json_string_value(dtype));
        if (c->checkpoint_dtype == LLMRT_DTYPE_INVALID)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'checkpoint_dtype' = '%.40s' is not known", source,
                               json_string_value(dtype));
    }
    return check_model_config(source, c);
}

llmrt_status llmrt_model_config_from_json(const char *json_text, size_t length, llmrt_model_config *out) {
    const char *source = "model config JSON";
    memset(out, 0, sizeof *out);
    json_t *root = NULL;
    LLMRT_TRY(load_object(json_text, length, source, &root));
    llmrt_model_config config;
    memset(&config, 0, sizeof config);
    llmrt_status status = parse_model_config(source, root, &config);
    json_decref(root);
    if (status == LLMRT_OK) *out = config;
    return status;
}

/* ---- the typed readers, for the per-family parsers (hf_config_fields.h) ---- */

llmrt_status llmrt_hf_get_int(const char *source, const json_t *object, const char *const *aliases, int required,
                              long long fallback, long long min, long long max, int32_t *out) {
    return get_int(source, object, aliases, required, fallback, min, max, out);
}
llmrt_status llmrt_hf_get_float(const char *source, const json_t *object, const char *const *aliases, float fallback,
                                float *out) {
    return get_float(source, object, aliases, fallback, out);
}
llmrt_status llmrt_hf_get_bool(const char *source, const json_t *object, const char *field, int32_t fallback,
                               int32_t *out) {
    return get_bool(source, object, field, fallback, out);
}
llmrt_status llmrt_hf_int_value(const char *source, const char *field, const json_t *value, long long min,
                                long long max, long long *out) {
    return int_value(source, field, value, min, max, out);
}
llmrt_status llmrt_hf_float_value(const char *source, const char *field, const json_t *value, float *out) {
    return float_value(source, field, value, out);
}
