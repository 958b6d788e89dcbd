/* The attention-variant fields of HF config.json: which layers use a
 * sliding window (layer_types, or the v4 patterns), Gemma's score scale and
 * soft-caps, Gemma 3's RoPE base for the windowed layers, and the ALiBi
 * families' own configs (MPT's attn_config, BLOOM). Every field is type-
 * and range-checked; errors name the file and the field. */
#include <string.h>

#include "import/hf_config_variants.h"

static int is_family(const llmrt_model_config *c, const char *model_type, const char *architecture) {
    return strcmp(c->model_type, model_type) == 0 || strcmp(c->architecture, architecture) == 0;
}

int llmrt_hf_config_uses_alibi(const llmrt_model_config *c) {
    return is_family(c, "mpt", "MptForCausalLM") || is_family(c, "bloom", "BloomForCausalLM");
}

static const json_t *present(const json_t *object, const char *key) {
    const json_t *v = object ? json_object_get(object, key) : NULL;
    return v && !json_is_null(v) ? v : NULL;
}

/* A number ≥ 0 (null or absent: fallback). */
static llmrt_status read_nonnegative(const char *source, const json_t *object, const char *prefix, const char *key,
                                     float fallback, float *out) {
    const json_t *v = present(object, key);
    *out = fallback;
    if (!v) return LLMRT_OK;
    if (!json_is_number(v) || !(json_number_value(v) >= 0.0) || json_number_value(v) > 1e30)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s%s' must be a number >= 0", source, prefix, key);
    *out = (float)json_number_value(v);
    return LLMRT_OK;
}

/* A field whose only supported value is `expected` (null counts as false/absent). */
static llmrt_status require_bool(const char *source, const json_t *object, const char *prefix, const char *key,
                                 int expected, int fallback) {
    const json_t *v = present(object, key);
    int value = fallback;
    if (v) {
        if (!json_is_boolean(v))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s%s' must be a boolean", source, prefix, key);
        value = json_is_true(v);
    }
    if (value != expected)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field '%s%s' = %s is not supported", source, prefix, key,
                           value ? "true" : "false");
    return LLMRT_OK;
}

static llmrt_status require_null(const char *source, const json_t *object, const char *prefix, const char *key) {
    if (present(object, key))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field '%s%s' must be null (not supported)", source, prefix, key);
    return LLMRT_OK;
}

/* layer_types (transformers 5) or the v4 patterns → sliding_window_pattern. */
static llmrt_status parse_layer_types(const char *source, const json_t *root, llmrt_model_config *c) {
    c->sliding_window_pattern = 0;
    const json_t *types = present(root, "layer_types");
    if (!types) {
        /* v4 Gemma 2: even layers local; Gemma 3: sliding_window_pattern */
        if (is_family(c, "gemma2", "Gemma2ForCausalLM")) c->sliding_window_pattern = 2;
        const json_t *pattern = present(root, "sliding_window_pattern");
        if (pattern && (is_family(c, "gemma3_text", "Gemma3ForCausalLM") || strcmp(c->model_type, "gemma3") == 0)) {
            if (!json_is_integer(pattern) || json_integer_value(pattern) < 1 || json_integer_value(pattern) > 1024)
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'sliding_window_pattern' must be an integer in "
                                   "[1, 1024]", source);
            c->sliding_window_pattern = (int32_t)json_integer_value(pattern);
        }
        return LLMRT_OK;
    }
    if (!json_is_array(types) || json_array_size(types) != (size_t)c->num_layers)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'layer_types' must be an array of num_hidden_layers = %d "
                           "strings", source, c->num_layers);
    int32_t first_global = -1, windowed = 0;
    for (int32_t l = 0; l < c->num_layers; l++) {
        const json_t *t = json_array_get(types, (size_t)l);
        const char *name = json_is_string(t) ? json_string_value(t) : "";
        if (strcmp(name, "sliding_attention") == 0) {
            windowed++;
        } else if (strcmp(name, "full_attention") == 0) {
            if (first_global < 0) first_global = l;
        } else {
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'layer_types[%d]' = '%.40s' is not "
                               "'full_attention' or 'sliding_attention'", source, (int)l, name);
        }
    }
    if (windowed == 0) { /* every layer global: a configured window is unused */
        c->sliding_window = 0;
        return LLMRT_OK;
    }
    if (c->sliding_window <= 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'layer_types' has sliding_attention layers but "
                           "'sliding_window' is %s", source, c->sliding_window == 0 ? "0 or absent" : "negative");
    if (windowed == c->num_layers) return LLMRT_OK;
    /* the engine stores a period: layer l global when (l + 1) % N == 0 */
    const int32_t period = first_global + 1;
    for (int32_t l = 0; l < c->num_layers; l++) {
        const int global = strcmp(json_string_value(json_array_get(types, (size_t)l)), "full_attention") == 0;
        if (global != ((l + 1) % period == 0))
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'layer_types': global layers other than every "
                               "%d-th are not supported (layer %d)", source, (int)period, (int)l);
    }
    c->sliding_window_pattern = period;
    return LLMRT_OK;
}

/* Gemma 3: the windowed layers' RoPE (v5 rope_parameters.sliding_attention,
 * v4 rope_local_base_freq), unscaled. */
static llmrt_status parse_local_rope(const char *source, const json_t *root, llmrt_model_config *c) {
    const json_t *params = present(root, "rope_parameters");
    const json_t *local = params && json_is_object(params) ? present(params, "sliding_attention") : NULL;
    if (local) {
        if (!json_is_object(local))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope_parameters.sliding_attention' must be an object",
                               source);
        const json_t *type = present(local, "rope_type");
        if (type && (!json_is_string(type) || strcmp(json_string_value(type), "default") != 0))
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'rope_parameters.sliding_attention.rope_type' "
                               "must be 'default'", source);
        LLMRT_TRY(read_nonnegative(source, local, "rope_parameters.sliding_attention.", "rope_theta", 0.0f,
                                   &c->rope_local_theta));
    } else {
        LLMRT_TRY(read_nonnegative(source, root, "", "rope_local_base_freq", 0.0f, &c->rope_local_theta));
    }
    return LLMRT_OK;
}

/* MPT: ALiBi through attn_config, no biases, GELU, a 4·d_model MLP. */
static llmrt_status parse_mpt(const char *source, const json_t *root, llmrt_model_config *c) {
    const json_t *attn = present(root, "attn_config");
    if (attn && !json_is_object(attn))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'attn_config' must be an object", source);
    const char *p = "attn_config.";
    LLMRT_TRY(require_bool(source, attn, p, "alibi", 1, 0));
    LLMRT_TRY(read_nonnegative(source, attn, p, "alibi_bias_max", 8.0f, &c->alibi_max_bias));
    if (!(c->alibi_max_bias > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'attn_config.alibi_bias_max' must be positive", source);
    LLMRT_TRY(require_bool(source, attn, p, "qk_ln", 0, 0));
    LLMRT_TRY(require_bool(source, attn, p, "prefix_lm", 0, 0));
    LLMRT_TRY(require_bool(source, attn, p, "attn_uses_sequence_id", 0, 0));
    LLMRT_TRY(require_null(source, attn, p, "clip_qkv"));
    LLMRT_TRY(require_null(source, attn, p, "softmax_scale"));
    LLMRT_TRY(require_null(source, root, "", "logit_scale"));
    LLMRT_TRY(require_bool(source, root, "", "no_bias", 1, 1));
    /* transformers' MptMLP is 4·d_model wide whatever expansion_ratio says
     * (the checkpoints it loads are shaped so) */
    c->intermediate_size = 4 * c->hidden_size;
    c->attention_bias = c->attention_out_bias = c->mlp_bias = 0;
    c->activation = LLMRT_ACT_GELU; /* nn.GELU(approximate="none") */
    return LLMRT_OK;
}

/* BLOOM: ALiBi with max bias 8, biases everywhere, its tanh GELU. */
static llmrt_status parse_bloom(const char *source, const json_t *root, llmrt_model_config *c) {
    LLMRT_TRY(require_bool(source, root, "", "apply_residual_connection_post_layernorm", 0, 0));
    c->alibi_max_bias = 8.0f;
    c->attention_bias = c->attention_out_bias = c->mlp_bias = 1;
    c->activation = LLMRT_ACT_GELU_TANH;
    return LLMRT_OK;
}

/* Gemma's MLP reads hidden_activation, defaulting to the tanh GELU even
 * where an older hidden_act says "gelu" (GemmaConfig). */
static llmrt_status parse_gemma_activation(const char *source, const json_t *root, llmrt_model_config *c) {
    const json_t *act = present(root, "hidden_activation");
    const char *name = act && json_is_string(act) ? json_string_value(act) : act ? "" : "gelu_pytorch_tanh";
    if (strcmp(name, "gelu_pytorch_tanh") == 0 || strcmp(name, "gelu_new") == 0) c->activation = LLMRT_ACT_GELU_TANH;
    else if (strcmp(name, "gelu") == 0) c->activation = LLMRT_ACT_GELU;
    else
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'hidden_activation' = '%.40s' is not supported", source,
                           name);
    return LLMRT_OK;
}

llmrt_status llmrt_hf_config_parse_variants(const char *source, const json_t *root, llmrt_model_config *c) {
    c->query_pre_attn_scalar = c->attn_logit_softcapping = c->final_logit_softcapping = 0.0f;
    c->rope_local_theta = c->alibi_max_bias = 0.0f;
    const int windowed_family = is_family(c, "mistral", "MistralForCausalLM") ||
                                is_family(c, "gemma2", "Gemma2ForCausalLM") ||
                                is_family(c, "gemma3_text", "Gemma3ForCausalLM");
    const json_t *window = present(root, "sliding_window");
    if (windowed_family && window && json_is_integer(window) && json_integer_value(window) == 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'sliding_window' = 0 is not a window (null means none)",
                           source);
    LLMRT_TRY(parse_layer_types(source, root, c));
    LLMRT_TRY(read_nonnegative(source, root, "", "query_pre_attn_scalar", 0.0f, &c->query_pre_attn_scalar));
    LLMRT_TRY(read_nonnegative(source, root, "", "attn_logit_softcapping", 0.0f, &c->attn_logit_softcapping));
    LLMRT_TRY(read_nonnegative(source, root, "", "final_logit_softcapping", 0.0f, &c->final_logit_softcapping));
    if (is_family(c, "gemma", "GemmaForCausalLM") || is_family(c, "gemma2", "Gemma2ForCausalLM") ||
        is_family(c, "gemma3_text", "Gemma3ForCausalLM"))
        LLMRT_TRY(parse_gemma_activation(source, root, c));
    if (is_family(c, "gemma3_text", "Gemma3ForCausalLM")) LLMRT_TRY(parse_local_rope(source, root, c));
    if (is_family(c, "mpt", "MptForCausalLM")) LLMRT_TRY(parse_mpt(source, root, c));
    if (is_family(c, "bloom", "BloomForCausalLM")) LLMRT_TRY(parse_bloom(source, root, c));
    return LLMRT_OK;
}
