/* compressed-tensors FP8 checkpoints → llmrt fp8 matrices.
 *
 * The format, as its writer and the loaders that read it define it
 * (compressed-tensors src/compressed_tensors/quantization/quant_args.py
 * QuantizationArgs, quant_scheme.py QuantizationScheme, quant_config.py
 * QuantizationConfig; vLLM model_executor/layers/quantization/
 * compressed_tensors/schemes/compressed_tensors_w8a8_fp8.py; transformers
 * integrations/compressed_tensors.py):
 *
 *   quantization_config: quant_method "compressed-tensors",
 *     format "float-quantized" (or "naive-quantized": the same tensors),
 *     quantization_status "compressed" (or "frozen"), ignore [names or
 *     "re:" regexes of layers left 16-bit, e.g. "lm_head"],
 *     kv_cache_scheme null,
 *     config_groups { name: { targets ["Linear"],
 *       weights { num_bits 8, type "float", symmetric true, dynamic false,
 *                 strategy "tensor" | "channel" (null: from group_size,
 *                 none → tensor, -1 → channel) },
 *       input_activations { num_bits 8, type "float", strategy "tensor",
 *                 dynamic false (static: an input_scale per layer) or
 *                 strategy "token", dynamic true } or null (weight-only) } }
 *     (a group may instead be a preset name → its targets: "FP8" is
 *     tensor/static, "FP8_DYNAMIC" channel/token).
 *   Per quantized Linear "<m>": "<m>.weight" F8_E4M3 [out, in] (e4m3fn),
 *     "<m>.weight_scale" F32 (or BF16 / F16) [1], [] or [out, 1], and with
 *     static activations "<m>.input_scale" F32 [1]: w = weight_scale ·
 *     decode(code); x is quantized with x / input_scale.
 *
 * Which weights are fp8 follows the stored tensors: a weight stored
 * F8_E4M3 is read into an fp8 matrix (LLMRT_DTYPE_FP8_W8A8), its codes
 * copied, its scale repeated over its rows (per tensor) or row by row (per
 * channel), so the engine computes exactly the checkpoint's weights. The
 * layers `ignore` names are stored 16-bit and stay so. Each checkpoint
 * tensor is one llmrt weight (llmrt does not concatenate q/k/v or gate/up
 * weights of separate tensors), so every matrix keeps its own weight and
 * input scales; a checkpoint's own fused tensor (Phi-3 qkv_proj) has one. */
#include "import/compressed_tensors.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/dtype.h"
#include "core/quant8.h"

/* ---- settings ------------------------------------------------------------------ */

static llmrt_status field_error(const llmrt_quant_config *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static llmrt_status field_error(const llmrt_quant_config *c, const char *field, const char *fmt, ...) {
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: quantization field '%s' %s", c->source, field, why);
}

/* A JSON value for messages: a string quoted, anything else as JSON. */
static void describe(const json_t *v, char *buf, size_t size) {
    if (json_is_string(v)) {
        snprintf(buf, size, "\"%.60s\"", json_string_value(v));
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(buf, size, "%.60s", text ? text : "?");
    free(text);
}

static int present(const json_t *v) { return v && !json_is_null(v); }

typedef enum strategy { STRATEGY_TENSOR, STRATEGY_CHANNEL, STRATEGY_TOKEN } strategy;

/* One QuantizationArgs object at `path`: fp8 (num_bits 8, type "float"),
 * symmetric, one of the strategies llmrt reads. */
static llmrt_status parse_args(const llmrt_quant_config *c, const json_t *args, const char *path, strategy *out,
                               int *dynamic) {
    char field[160], value[80];
    if (!json_is_object(args)) return field_error(c, path, "is not an object");
#define FIELD(name) (snprintf(field, sizeof field, "%s.%s", path, name), field)
    const json_t *v = json_object_get(args, "num_bits"); /* QuantizationArgs defaults: 8 bits, int */
    if (present(v) && !(json_is_integer(v) && json_integer_value(v) == 8)) {
        describe(v, value, sizeof value);
        return field_error(c, FIELD("num_bits"), "is %s (llmrt reads fp8 checkpoints: num_bits 8, type \"float\")",
                           value);
    }
    v = json_object_get(args, "type");
    if (!present(v) || !json_is_string(v) || strcasecmp(json_string_value(v), "float") != 0) {
        if (present(v)) describe(v, value, sizeof value);
        else snprintf(value, sizeof value, "\"int\" (its default)");
        return field_error(c, FIELD("type"), "is %s (llmrt reads fp8 checkpoints: type \"float\"; int8 / int4 "
                           "compressed-tensors schemes are not supported)", value);
    }
    v = json_object_get(args, "symmetric");
    if (present(v) && !json_is_true(v)) {
        describe(v, value, sizeof value);
        return field_error(c, FIELD("symmetric"), "is %s (fp8 scales are symmetric)", value);
    }
    v = json_object_get(args, "dynamic");
    if (present(v) && !json_is_boolean(v)) {
        describe(v, value, sizeof value);
        return field_error(c, FIELD("dynamic"), "is %s (true or false)", value);
    }
    *dynamic = json_is_true(v);
    v = json_object_get(args, "block_structure");
    if (present(v)) {
        describe(v, value, sizeof value);
        return field_error(c, FIELD("block_structure"), "is %s (block-scaled fp8 is not supported)", value);
    }
    const json_t *group = json_object_get(args, "group_size");
    if (present(group) && !json_is_integer(group)) {
        describe(group, value, sizeof value);
        return field_error(c, FIELD("group_size"), "is %s (an integer)", value);
    }
    const json_int_t group_size = present(group) ? json_integer_value(group) : 0;
    v = json_object_get(args, "strategy");
    const char *name = json_string_value(v);
    if (present(v) && !name) {
        describe(v, value, sizeof value);
        return field_error(c, FIELD("strategy"), "is %s (a string)", value);
    }
    /* no strategy: inferred from group_size, as QuantizationArgs does */
    if (!name) name = group_size == -1 ? "channel" : group_size > 0 ? "group" : "tensor";
    if (strcasecmp(name, "tensor") == 0) *out = STRATEGY_TENSOR;
    else if (strcasecmp(name, "channel") == 0) *out = STRATEGY_CHANNEL;
    else if (strcasecmp(name, "token") == 0) *out = STRATEGY_TOKEN;
    else
        return field_error(c, FIELD("strategy"), "is \"%.40s\" (llmrt reads \"tensor\", \"channel\" and \"token\")",
                           name);
    if (group_size > 0)
        return field_error(c, FIELD("group_size"), "is %lld (group-scaled fp8 is not supported)",
                           (long long)group_size);
    return LLMRT_OK;
#undef FIELD
}

/* A scheme: fp8 weights per tensor or per channel, static; activations fp8
 * static per tensor, dynamic per token (or per tensor), or none. */
static llmrt_status parse_scheme(llmrt_quant_config *c, const json_t *scheme, const char *path) {
    char field[160], value[80];
    if (!json_is_object(scheme)) return field_error(c, path, "is not an object");
    snprintf(field, sizeof field, "%s.targets", path);
    const json_t *targets = json_object_get(scheme, "targets");
    if (!json_is_array(targets) || json_array_size(targets) == 0)
        return field_error(c, field, "is not a list of names");
    snprintf(field, sizeof field, "%s.format", path);
    const json_t *format = json_object_get(scheme, "format");
    if (present(format) && !(json_is_string(format) && (strcmp(json_string_value(format), "float-quantized") == 0 ||
                                                        strcmp(json_string_value(format), "naive-quantized") == 0))) {
        describe(format, value, sizeof value);
        return field_error(c, field, "is %s (llmrt reads \"float-quantized\" and \"naive-quantized\")", value);
    }
    snprintf(field, sizeof field, "%s.output_activations", path);
    if (present(json_object_get(scheme, "output_activations")))
        return field_error(c, field, "is set (output quantization is not supported)");
    strategy s;
    int dynamic;
    snprintf(field, sizeof field, "%s.weights", path);
    const json_t *weights = json_object_get(scheme, "weights");
    if (!present(weights)) return field_error(c, field, "is missing (a scheme without quantized weights)");
    LLMRT_TRY(parse_args(c, weights, field, &s, &dynamic));
    if (s == STRATEGY_TOKEN)
        return field_error(c, field, "has strategy \"token\" (weights are scaled per \"tensor\" or \"channel\")");
    if (dynamic) return field_error(c, field, "is dynamic (weight scales must be stored)");
    if (s == STRATEGY_CHANNEL) c->ct_weight_per_channel = 1;
    snprintf(field, sizeof field, "%s.input_activations", path);
    const json_t *inputs = json_object_get(scheme, "input_activations");
    if (!present(inputs)) {
        c->ct_dynamic_groups++, c->ct_weight_only = 1;
        return LLMRT_OK;
    }
    LLMRT_TRY(parse_args(c, inputs, field, &s, &dynamic));
    if (s == STRATEGY_CHANNEL) return field_error(c, field, "has strategy \"channel\" (\"tensor\" or \"token\")");
    if (s == STRATEGY_TOKEN && !dynamic) return field_error(c, field, "is static per token (token scales are dynamic)");
    if (dynamic) c->ct_dynamic_groups++;
    else c->ct_static_groups++;
    return LLMRT_OK;
}

/* The presets a group may name instead of spelling its scheme out
 * (compressed-tensors quant_scheme.py): only the fp8 ones. */
static llmrt_status parse_preset(llmrt_quant_config *c, const char *name, const json_t *targets, const char *path) {
    if (!json_is_array(targets) || json_array_size(targets) == 0) return field_error(c, path, "is not a list of names");
    if (strcmp(name, "FP8") == 0) c->ct_static_groups++;
    else if (strcmp(name, "FP8_DYNAMIC") == 0) c->ct_dynamic_groups++, c->ct_weight_per_channel = 1;
    else
        return field_error(c, path, "names the preset scheme \"%.40s\" (llmrt reads \"FP8\" and \"FP8_DYNAMIC\")",
                           name);
    return LLMRT_OK;
}

/* ignore: names or "re:" regexes (PCRE syntax, as Python's re for these). */
static llmrt_status check_ignore(const llmrt_quant_config *c, const json_t *ignore) {
    if (!present(ignore)) return LLMRT_OK;
    if (!json_is_array(ignore)) return field_error(c, "ignore", "is not a list of names");
    size_t i;
    const json_t *item;
    json_array_foreach(ignore, i, item) {
        const char *name = json_string_value(item);
        if (!name) return field_error(c, "ignore", "holds a value that is not a string (entry %zu)", i);
        if (strncmp(name, "re:", 3) != 0) continue;
        int code;
        PCRE2_SIZE offset;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)(name + 3), PCRE2_ZERO_TERMINATED, 0, &code, &offset, NULL);
        if (!re) return field_error(c, "ignore", "entry \"%.60s\" is not a valid regular expression", name);
        pcre2_code_free(re);
    }
    return LLMRT_OK;
}

llmrt_status llmrt_ct_parse(const json_t *q, llmrt_quant_config *c) {
    char value[80];
    c->method = LLMRT_QUANT_METHOD_COMPRESSED_TENSORS;
    c->bits = 8;
    c->group_size = 0;
    const json_t *format = json_object_get(q, "format");
    if (present(format) && !(json_is_string(format) && (strcmp(json_string_value(format), "float-quantized") == 0 ||
                                                        strcmp(json_string_value(format), "naive-quantized") == 0))) {
        describe(format, value, sizeof value);
        return field_error(c, "format", "is %s (llmrt reads \"float-quantized\" and \"naive-quantized\" fp8)", value);
    }
    const json_t *status = json_object_get(q, "quantization_status");
    if (present(status) && !(json_is_string(status) && (strcmp(json_string_value(status), "compressed") == 0 ||
                                                        strcmp(json_string_value(status), "frozen") == 0))) {
        describe(status, value, sizeof value);
        return field_error(c, "quantization_status", "is %s (\"compressed\" or \"frozen\")", value);
    }
    const json_t *kv = json_object_get(q, "kv_cache_scheme");
    if (present(kv))
        return field_error(c, "kv_cache_scheme", "is set: checkpoint KV-cache scales are not supported (convert "
                           "without kv_cache_scheme, and choose the KV cache's storage when building)");
    const json_t *sparsity = json_object_get(q, "sparsity_config");
    const json_t *sparse_format = json_is_object(sparsity) ? json_object_get(sparsity, "format") : NULL;
    const char *sparse_name = json_string_value(sparse_format);
    if (present(sparse_format) && !(sparse_name && strcmp(sparse_name, "dense") == 0)) {
        describe(sparse_format, value, sizeof value);
        return field_error(c, "sparsity_config.format", "is %s (sparse checkpoints are not supported)", value);
    }
    if (present(json_object_get(q, "transform_config")))
        return field_error(c, "transform_config", "is set (rotated checkpoints are not supported)");
    LLMRT_TRY(check_ignore(c, json_object_get(q, "ignore")));
    const json_t *groups = json_object_get(q, "config_groups");
    if (!json_is_object(groups) || json_object_size(groups) == 0)
        return field_error(c, "config_groups", "is missing or empty");
    const char *name;
    const json_t *group;
    json_object_foreach((json_t *)groups, name, group) {
        char path[128];
        snprintf(path, sizeof path, "config_groups.%.80s", name);
        LLMRT_TRY(json_is_array(group) ? parse_preset(c, name, group, path) : parse_scheme(c, group, path));
    }
    return LLMRT_OK;
}

/* ---- tensors ------------------------------------------------------------------- */

static int sibling_name(const char *weight_name, const char *suffix, char *buf, size_t size) {
    size_t n = strlen(weight_name), w = strlen(".weight");
    if (n < w || strcmp(weight_name + n - w, ".weight") != 0) return 0;
    return snprintf(buf, size, "%.*s.%s", (int)(n - w), weight_name, suffix) < (int)size;
}

int llmrt_ct_has(const llmrt_checkpoint *checkpoint, const char *weight_name) {
    const llmrt_st_tensor *t = checkpoint ? llmrt_checkpoint_peek(checkpoint, weight_name) : NULL;
    return t && t->dtype == LLMRT_DTYPE_FP8_E4M3;
}

static int64_t numel(const llmrt_st_tensor *t) {
    int64_t n = 1;
    for (int32_t d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static void shape_text(const llmrt_st_tensor *t, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int32_t d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* A scale tensor: float dtype, `count` values (shape [], [1], [count] or
 * [count, 1]); read into f32 `out` (count values). */
static llmrt_status read_scales(const llmrt_st_tensor *t, int64_t rows, int64_t *count, float *out) {
    char shape[96];
    if (t->dtype != LLMRT_DTYPE_F32 && t->dtype != LLMRT_DTYPE_BF16 && t->dtype != LLMRT_DTYPE_F16)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected f32, bf16 or f16)",
                           t->file_path, t->name, llmrt_dtype_name(t->dtype));
    const int64_t n = numel(t);
    const int shape_ok = t->ndim <= 1 || (t->ndim == 2 && t->shape[1] == 1);
    if (!shape_ok || (n != 1 && n != rows)) {
        shape_text(t, shape, sizeof shape);
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' has shape %s (expected [1] per tensor or [%lld, 1] per "
                           "channel)", t->file_path, t->name, shape, (long long)rows);
    }
    llmrt_convert_to_f32(out, t->data, t->dtype, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        if (!(isfinite(out[i]) && out[i] >= 0))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' holds the scale %g (row %lld): scales must be finite "
                               "and not negative", t->file_path, t->name, (double)out[i], (long long)i);
    *count = n;
    return LLMRT_OK;
}

static llmrt_status find(const llmrt_checkpoint *cp, const char *weight_name, const char *suffix,
                         const llmrt_st_tensor **out) {
    char name[512];
    if (!sibling_name(weight_name, suffix, name, sizeof name))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "'%s' is not a weight name", weight_name);
    *out = llmrt_checkpoint_find(cp, name);
    return LLMRT_OK;
}

llmrt_status llmrt_ct_read(const llmrt_checkpoint *cp, const llmrt_quant_config *c, const char *weight_name,
                           int64_t N, int64_t K, void *blob) {
    char shape[96];
    const llmrt_st_tensor *w = llmrt_checkpoint_find(cp, weight_name), *ws = NULL, *is = NULL;
    if (!w) return llmrt_error(LLMRT_ERR_NOT_FOUND, "checkpoint has no tensor '%s'", weight_name);
    if (w->dtype != LLMRT_DTYPE_FP8_E4M3)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected fp8_e4m3)", w->file_path,
                           w->name, llmrt_dtype_name(w->dtype));
    if (w->ndim != 2 || w->shape[0] != N || w->shape[1] != K) {
        shape_text(w, shape, sizeof shape);
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' has shape %s but the config implies [%lld, %lld]",
                           w->file_path, w->name, shape, (long long)N, (long long)K);
    }
    LLMRT_TRY(find(cp, weight_name, "weight_scale", &ws));
    if (!ws)
        return llmrt_error(LLMRT_ERR_NOT_FOUND, "%s: fp8 weight '%s' has no weight_scale tensor beside it",
                           w->file_path, weight_name);
    /* static activations: the layer's input_scale; a checkpoint whose every
     * group is static must have one, a mixed one decides per layer */
    is = NULL;
    if (c->ct_static_groups) LLMRT_TRY(find(cp, weight_name, "input_scale", &is));
    if (!is && c->ct_static_groups && !c->ct_dynamic_groups)
        return llmrt_error(LLMRT_ERR_NOT_FOUND, "%s: fp8 weight '%s' has no input_scale tensor beside it (the "
                           "quantization_config's input_activations are static)", w->file_path, weight_name);

    llmrt_q8weight_header layout;
    LLMRT_TRY(llmrt_q8weight_layout(LLMRT_DTYPE_FP8_W8A8, N, K, &layout));
    float input_scale = 0;
    if (is) {
        int64_t count = 0;
        LLMRT_TRY(read_scales(is, 1, &count, &input_scale));
        if (input_scale <= 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' holds the input scale 0", is->file_path, is->name);
        layout.flags |= LLMRT_Q8_STATIC_INPUT;
        layout.input_scale = input_scale;
    }
    float *scales = (float *)((uint8_t *)blob + layout.scales_offset);
    int64_t count = 0;
    LLMRT_TRY(read_scales(ws, N, &count, scales));
    if (count == 1) {
        layout.flags |= LLMRT_Q8_PER_TENSOR;
        for (int64_t n = 1; n < N; n++) scales[n] = scales[0];
    }
    /* the header and padding go in after the scales were read in place */
    llmrt_q8weight_init(blob, &layout);
    uint8_t *codes = (uint8_t *)blob + LLMRT_Q8WEIGHT_HEADER_BYTES;
    memcpy(codes, w->data, (size_t)(N * K));
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++)
            if ((codes[n * K + k] & 0x7f) == 0x7f) /* e4m3fn's only NaNs */
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' holds a NaN code at [%lld, %lld]", w->file_path,
                                   w->name, (long long)n, (long long)k);
        if (scales[n] == 0) { /* a zero row: the same zeros with a scale kernels may divide by */
            memset(codes + n * K, 0, (size_t)K);
            scales[n] = 1;
        }
    }
    return LLMRT_OK;
}

llmrt_status llmrt_ct_dequantize(const llmrt_checkpoint *cp, const llmrt_st_tensor *t, float *out) {
    char shape[96];
    if (t->ndim != 2) {
        shape_text(t, shape, sizeof shape);
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: fp8 tensor '%s' has shape %s (fp8 matrices only)", t->file_path,
                           t->name, shape);
    }
    const int64_t N = t->shape[0], K = t->shape[1];
    const llmrt_st_tensor *ws = NULL, *is = NULL;
    LLMRT_TRY(find(cp, t->name, "weight_scale", &ws));
    LLMRT_TRY(find(cp, t->name, "input_scale", &is));
    if (!ws)
        return llmrt_error(LLMRT_ERR_NOT_FOUND, "%s: fp8 weight '%s' has no weight_scale tensor beside it",
                           t->file_path, t->name);
    float *scales = malloc(sizeof *scales * (size_t)N);
    if (!scales) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", ws->name);
    int64_t count = 0;
    llmrt_status s = read_scales(ws, N, &count, scales);
    for (int64_t n = 0; n < N && s == LLMRT_OK; n++)
        for (int64_t k = 0; k < K; k++) {
            const uint8_t code = t->data[n * K + k];
            if ((code & 0x7f) == 0x7f) {
                s = llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' holds a NaN code at [%lld, %lld]", t->file_path,
                                t->name, (long long)n, (long long)k);
                break;
            }
            out[n * K + k] = llmrt_fp8_e4m3_decode(code) * scales[count == 1 ? 0 : n];
        }
    free(scales);
    return s;
}
