/* config.json's rotary position embedding: rope_theta, the scaling
 * variants llmrt implements (linear, llama3; LongRoPE's factors are read
 * with Phi-3's layout in hf_config_layouts.c) and the rotary width. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "import/hf_config_fields.h"

/* Two dialects. transformers 4: top-level rope_theta and an optional
 * rope_scaling {rope_type|type, factor, ...}. transformers 5: rope_parameters
 * {rope_theta, rope_type, factor, ...}, possibly keyed by layer type
 * ({"full_attention": {...}, "sliding_attention": {...}}), in which case the
 * full-attention parameters are the model's. */
llmrt_status llmrt_hf_parse_rope(const char *source, const json_t *root, int no_rope, llmrt_model_config *c) {
    llmrt_rope_config *rope = &c->rope;
    memset(rope, 0, sizeof *rope);
    rope->factor = 1.0f;
    if (no_rope) {
        rope->type = LLMRT_ROPE_NONE; /* learned absolute positions, or ALiBi */
        return LLMRT_OK;
    }
    const json_t *params = json_object_get(root, "rope_parameters");
    const json_t *scaling;
    const char *prefix;
    float theta = 10000.0f;
    if (params && !json_is_null(params)) {
        prefix = "rope_parameters";
        if (!json_is_object(params))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope_parameters' must be an object", source);
        const json_t *full = json_object_get(params, "full_attention");
        if (full) {
            prefix = "rope_parameters.full_attention";
            if (!json_is_object(full))
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be an object", source, prefix);
            params = full;
        }
        scaling = params;
        LLMRT_TRY(llmrt_hf_get_float(source, root, ALIASES("rope_theta"), theta, &theta));
    } else {
        prefix = "rope_scaling";
        params = NULL;
        scaling = json_object_get(root, "rope_scaling");
        if (scaling && json_is_null(scaling)) scaling = NULL;
        if (scaling && !json_is_object(scaling))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope_scaling' must be an object or null", source);
    }

    /* Field names in messages carry the dialect's prefix, e.g.
     * "rope_scaling.factor" or "rope_parameters.rope_theta". */
    char field[96];
    const char *type_name = "default";
    const char *type_key = "rope_type";
    const json_t *type_value = NULL;
    if (scaling) {
        type_value = json_object_get(scaling, "rope_type");
        if (!type_value || json_is_null(type_value)) {
            type_key = "type";
            type_value = json_object_get(scaling, "type");
        }
        if (type_value && json_is_null(type_value)) type_value = NULL;
    }
    snprintf(field, sizeof field, "%s.%s", prefix, type_key);
    if (type_value) {
        if (!json_is_string(type_value))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be a string", source, field);
        type_name = json_string_value(type_value);
    }
    if (strcmp(type_name, "default") == 0) rope->type = LLMRT_ROPE_DEFAULT;
    else if (strcmp(type_name, "linear") == 0) rope->type = LLMRT_ROPE_LINEAR;
    else if (strcmp(type_name, "llama3") == 0) rope->type = LLMRT_ROPE_LLAMA3;
    else if (strcmp(type_name, "longrope") == 0) rope->type = LLMRT_ROPE_LONGROPE;
    else
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "%s: field '%s' = '%.40s' is not supported (default, linear, llama3 and longrope are)",
                           source, field, type_name);

    if (params) {
        /* v5 keeps rope_theta inside rope_parameters; fall back to a top-level one. */
        const json_t *value = json_object_get(params, "rope_theta");
        if (value && !json_is_null(value)) {
            snprintf(field, sizeof field, "%s.rope_theta", prefix);
            LLMRT_TRY(llmrt_hf_float_value(source, field, value, &theta));
        }
    } else {
        LLMRT_TRY(llmrt_hf_get_float(source, root, ALIASES("rope_theta"), theta, &theta));
    }
    if (!(theta > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g must be positive", source,
                           params ? "rope_parameters.rope_theta" : "rope_theta", (double)theta);
    rope->theta = theta;

    if (rope->type == LLMRT_ROPE_LINEAR || rope->type == LLMRT_ROPE_LLAMA3) {
        struct { const char *key; float *dst; } needed[] = {
            {"factor", &rope->factor}, {"low_freq_factor", &rope->low_freq_factor},
            {"high_freq_factor", &rope->high_freq_factor}};
        size_t count = rope->type == LLMRT_ROPE_LINEAR ? 1 : 3;
        for (size_t i = 0; i < count; i++) {
            snprintf(field, sizeof field, "%s.%s", prefix, needed[i].key);
            const json_t *value = json_object_get(scaling, needed[i].key);
            if (!value || json_is_null(value))
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: missing required field '%s' for rope type %s", source,
                                   field, type_name);
            LLMRT_TRY(llmrt_hf_float_value(source, field, value, needed[i].dst));
            if (!(*needed[i].dst > 0.0f))
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g must be positive", source, field,
                                   (double)*needed[i].dst);
        }
    }
    if (rope->type == LLMRT_ROPE_LLAMA3) {
        /* The llama3 band interpolation divides by (high - low). */
        if (!(rope->high_freq_factor > rope->low_freq_factor))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s.high_freq_factor' = %g must exceed low_freq_factor = %g",
                               source, prefix, (double)rope->high_freq_factor, (double)rope->low_freq_factor);
        snprintf(field, sizeof field, "%s.original_max_position_embeddings", prefix);
        const json_t *value = json_object_get(scaling, "original_max_position_embeddings");
        if (!value || json_is_null(value))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: missing required field '%s' for rope type llama3", source,
                               field);
        long long original;
        LLMRT_TRY(llmrt_hf_int_value(source, field, value, 1, MAX_POSITIONS, &original));
        rope->original_max_position_embeddings = (int32_t)original;
    }

    /* partial_rotary_factor: inside rope_parameters in v5, top level in v4. */
    float partial = 1.0f;
    const json_t *value = params ? json_object_get(params, "partial_rotary_factor") : NULL;
    if (value && !json_is_null(value)) snprintf(field, sizeof field, "%s.partial_rotary_factor", prefix);
    else {
        value = json_object_get(root, "partial_rotary_factor");
        snprintf(field, sizeof field, "partial_rotary_factor");
    }
    if (value && !json_is_null(value)) LLMRT_TRY(llmrt_hf_float_value(source, field, value, &partial));
    if (!(partial > 0.0f && partial <= 1.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g is not in (0, 1]", source, field, (double)partial);
    /* As transformers does: int(head_dim * partial_rotary_factor). */
    rope->rotary_dim = (int32_t)floor((double)c->head_dim * (double)partial);
    if (rope->rotary_dim <= 0 || rope->rotary_dim % 2 != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g gives rotary_dim %d of head_dim %d, not a positive "
                           "even number", source, field, (double)partial, rope->rotary_dim, c->head_dim);
    return LLMRT_OK;
}
