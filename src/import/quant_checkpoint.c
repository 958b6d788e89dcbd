/* AWQ and GPTQ packed weights → llmrt int4-wo / int8-wo.
 *
 * The layouts, as the reference implementations write and read them:
 *
 * AWQ, "gemm" version (AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM
 * .from_linear packs; awq/utils/packing_utils.py unpack_awq +
 * reverse_awq_order + dequantize_gemm read back; vLLM's
 * model_executor/layers/quantization/awq.py loads the same tensors):
 *   qweight I32 [in, out/8]: int32 c of row k holds outputs 8c .. 8c+7, the
 *           nibble at bits 4i..4i+3 holding output 8c + order[i], order =
 *           (0, 2, 4, 6, 1, 3, 5, 7) (so output 8c + p sits in nibble
 *           reverse[p], reverse = (0, 4, 1, 5, 2, 6, 3, 7))
 *   qzeros  I32 [in/group, out/8], the same order
 *   scales  F16 [in/group, out]
 *   w[k, n] = scales[k / group, n] · (q[k, n] − z[k / group, n])
 *
 * GPTQ (AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py pack and
 * forward; GPTQModel gptqmodel/utils/model.py
 * convert_gptq_v1_to_v2_format_module):
 *   qweight I32 [in · bits / 32, out]: int32 r of column n holds inputs
 *           (32/bits)·r + j at bits j·bits .. (j+1)·bits − 1 (packed along
 *           the input dimension)
 *   qzeros  I32 [groups, out · bits / 32]: output (32/bits)·c + j of group g
 *           at bits j·bits of qzeros[g, c] (plain order)
 *   scales  F16 [groups, out]
 *   g_idx   I32 [in]: the group of each input (k / group unless act-order)
 *   w[k, n] = scales[g_idx[k], n] · (q[k, n] − z[g_idx[k], n]), where the
 *   true zero z is the stored one + 1 for checkpoint_format "gptq" (v1:
 *   AutoGPTQ subtracted 1 before saving) and the stored one for "gptq_v2".
 *
 * Both are repacked code by code into llmrt's layout (row = output,
 * groups along the input), so the engine holds exactly the checkpoint's
 * codes, scales and zero points. */
#include "import/quant_checkpoint.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/file.h"
#include "core/quant.h"
#include "import/compressed_tensors.h"

/* ---- settings ------------------------------------------------------------------ */

static llmrt_status field_error(const llmrt_quant_config *c, const char *field, const char *why) {
    return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: quantization field '%s' %s", c->source, field, why);
}

static const json_t *first_of(const json_t *o, const char *a, const char *b) {
    const json_t *v = json_object_get(o, a);
    return v && !json_is_null(v) ? v : b ? json_object_get(o, b) : NULL;
}

static llmrt_status read_int(const llmrt_quant_config *c, const json_t *o, const char *a, const char *b,
                             int64_t fallback, int64_t *out) {
    const json_t *v = first_of(o, a, b);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return LLMRT_OK;
    }
    if (!json_is_integer(v)) return field_error(c, a, "must be an integer");
    *out = json_integer_value(v);
    return LLMRT_OK;
}

static llmrt_status read_bool(const llmrt_quant_config *c, const json_t *o, const char *field, int fallback,
                              int32_t *out) {
    const json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return LLMRT_OK;
    }
    if (!json_is_boolean(v)) return field_error(c, field, "must be true or false");
    *out = json_is_true(v);
    return LLMRT_OK;
}

static llmrt_status parse_settings(const json_t *q, const char *default_method, llmrt_quant_config *c) {
    const char *method = json_string_value(json_object_get(q, "quant_method"));
    if (!method) method = default_method;
    if (!method) return field_error(c, "quant_method", "is missing");
    int64_t bits = 0, group = 0;
    if (strcmp(method, "compressed-tensors") == 0) return llmrt_ct_parse(q, c);
    if (strcmp(method, "awq") == 0) {
        c->method = LLMRT_QUANT_METHOD_AWQ;
        const char *version = json_string_value(first_of(q, "version", "backend"));
        if (version && strcasecmp(version, "gemm") != 0)
            return field_error(c, "version", "is not \"gemm\" (the only AWQ layout llmrt reads)");
        int32_t zero_point = 1;
        LLMRT_TRY(read_bool(c, q, "zero_point", 1, &zero_point));
        if (!zero_point) return field_error(c, "zero_point", "is false (llmrt reads AWQ with zero points)");
        LLMRT_TRY(read_int(c, q, "bits", "w_bit", 4, &bits));
        LLMRT_TRY(read_int(c, q, "group_size", "q_group_size", 128, &group));
        if (bits != 4) return field_error(c, "bits", "is not 4 (AWQ gemm packs 4-bit weights)");
    } else if (strcmp(method, "gptq") == 0) {
        c->method = LLMRT_QUANT_METHOD_GPTQ;
        LLMRT_TRY(read_int(c, q, "bits", NULL, 4, &bits));
        LLMRT_TRY(read_int(c, q, "group_size", NULL, 128, &group));
        if (bits != 4 && bits != 8) return field_error(c, "bits", "is not 4 or 8");
        LLMRT_TRY(read_bool(c, q, "desc_act", 0, &c->desc_act));
        int32_t marlin = 0;
        LLMRT_TRY(read_bool(c, q, "is_marlin_format", 0, &marlin));
        if (marlin) return field_error(c, "is_marlin_format", "is true (llmrt reads the plain GPTQ layout)");
        const char *format = json_string_value(first_of(q, "checkpoint_format", "format"));
        if (!format || strcmp(format, "gptq") == 0) c->zeros_minus_one = 1;
        else if (strcmp(format, "gptq_v2") == 0) c->zeros_minus_one = 0;
        else return field_error(c, "checkpoint_format", "is not \"gptq\" or \"gptq_v2\"");
    } else {
        char why[128];
        snprintf(why, sizeof why, "is \"%.40s\" (llmrt reads \"awq\", \"gptq\" and \"compressed-tensors\")", method);
        return field_error(c, "quant_method", why);
    }
    if (group == -1) group = 0;
    else if (group < 8 || group > (1 << 20) || group % 8 != 0)
        return field_error(c, "group_size", "is not -1 or a multiple of 8");
    c->bits = (int32_t)bits;
    c->group_size = group;
    return LLMRT_OK;
}

/* Parses one JSON file; `key` names the object holding the settings, or
 * NULL for the whole file. *found = 0 when the file or key is absent. */
static llmrt_status load_file(const char *dir, const char *name, const char *key, const char *default_method,
                              llmrt_quant_config *c, int *found) {
    *found = 0;
    char *path = llmrt_path_join(dir, name);
    if (!path) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (!llmrt_file_exists(path)) {
        free(path);
        return LLMRT_OK;
    }
    snprintf(c->source, sizeof c->source, "%s", path);
    char *text = NULL;
    size_t size = 0;
    llmrt_status s = llmrt_file_read_limited(path, 1 << 24, &text, &size);
    free(path);
    if (s != LLMRT_OK) return s;
    json_error_t err;
    json_t *root = json_loadb(text, size, 0, &err);
    free(text);
    if (!root) return llmrt_error(LLMRT_ERR_FORMAT, "%s: not valid JSON: %s", c->source, err.text);
    const json_t *q = key ? json_object_get(root, key) : root;
    if (q && !json_is_null(q)) {
        *found = 1;
        s = json_is_object(q) ? parse_settings(q, default_method, c)
                              : llmrt_error(LLMRT_ERR_FORMAT, "%s: '%s' is not an object", c->source, key);
    }
    json_decref(root);
    return s;
}

llmrt_status llmrt_quant_config_load(const char *model_dir, llmrt_quant_config *out) {
    memset(out, 0, sizeof *out);
    int found = 0;
    if (!model_dir) return LLMRT_OK;
    LLMRT_TRY(load_file(model_dir, "config.json", "quantization_config", NULL, out, &found));
    if (!found) LLMRT_TRY(load_file(model_dir, "quant_config.json", NULL, "awq", out, &found));
    if (!found) LLMRT_TRY(load_file(model_dir, "quantize_config.json", NULL, "gptq", out, &found));
    if (!found) memset(out, 0, sizeof *out);
    return LLMRT_OK;
}

llmrt_dtype llmrt_quant_config_dtype(const llmrt_quant_config *config) {
    if (config->method == LLMRT_QUANT_METHOD_COMPRESSED_TENSORS) return LLMRT_DTYPE_FP8_W8A8;
    return config->bits == 8 ? LLMRT_DTYPE_INT8_WO : LLMRT_DTYPE_INT4_WO;
}

void llmrt_quant_config_describe(const llmrt_quant_config *c, char *buf, size_t size) {
    if (c->method != LLMRT_QUANT_METHOD_COMPRESSED_TENSORS) {
        snprintf(buf, size, "%d-bit %s weights, group %lld", c->bits,
                 c->method == LLMRT_QUANT_METHOD_AWQ ? "AWQ" : "GPTQ", (long long)c->group_size);
        return;
    }
    const char *inputs = c->ct_static_groups && c->ct_dynamic_groups ? "static or per-token fp8 activations"
                         : c->ct_static_groups ? "static per-tensor fp8 activations (input_scale)"
                         : c->ct_weight_only ? "no activation scheme (weight-only): activations quantized per token"
                                             : "dynamic per-token fp8 activations";
    snprintf(buf, size, "compressed-tensors fp8 weights (per %s), %s", c->ct_weight_per_channel ? "channel" : "tensor",
             inputs);
}

/* ---- tensors ------------------------------------------------------------------- */

static int sibling_name(const char *weight_name, const char *suffix, char *buf, size_t size) {
    size_t n = strlen(weight_name), w = strlen(".weight");
    if (n < w || strcmp(weight_name + n - w, ".weight") != 0) return 0;
    return snprintf(buf, size, "%.*s.%s", (int)(n - w), weight_name, suffix) < (int)size;
}

int llmrt_quant_checkpoint_has(const llmrt_checkpoint *checkpoint, const char *weight_name) {
    char name[512];
    if (llmrt_ct_has(checkpoint, weight_name)) return 1;
    return sibling_name(weight_name, "qweight", name, sizeof name) && llmrt_checkpoint_find(checkpoint, name);
}

static llmrt_status find_tensor(const llmrt_checkpoint *cp, const char *weight_name, const char *suffix,
                                llmrt_dtype dtype, int64_t d0, int64_t d1, int optional, const llmrt_st_tensor **out) {
    char name[512];
    *out = NULL;
    if (!sibling_name(weight_name, suffix, name, sizeof name))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "'%s' is not a weight name", weight_name);
    const llmrt_st_tensor *t = llmrt_checkpoint_find(cp, name);
    if (!t) return optional ? LLMRT_OK : llmrt_error(LLMRT_ERR_NOT_FOUND, "checkpoint has no tensor '%s'", name);
    const int ndim = d1 > 0 ? 2 : 1;
    if (t->dtype != dtype)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected %s)", t->file_path, name,
                           llmrt_dtype_name(t->dtype), llmrt_dtype_name(dtype));
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' has shape [%lld%s%lld] but the config implies [%lld%s%lld]",
                           t->file_path, name, (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                           t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)d0, ndim > 1 ? ", " : "",
                           ndim > 1 ? (long long)d1 : 0LL);
    *out = t;
    return LLMRT_OK;
}

/* 1 when g_idx puts input k in group k / group for every k (no act-order). */
static int trivial_g_idx(const llmrt_st_tensor *g_idx, int64_t K, int64_t group) {
    for (int64_t k = 0; k < K; k++) {
        uint32_t g;
        memcpy(&g, g_idx->data + k * 4, 4);
        if ((int64_t)g != k / group) return 0;
    }
    return 1;
}

int llmrt_quant_checkpoint_permuted(const llmrt_checkpoint *checkpoint, const llmrt_quant_config *config,
                                    const char *weight_name, int64_t cols) {
    char name[512];
    if (config->method != LLMRT_QUANT_METHOD_GPTQ || !sibling_name(weight_name, "g_idx", name, sizeof name)) return 0;
    const llmrt_st_tensor *g_idx = llmrt_checkpoint_peek(checkpoint, name);
    const int64_t group = config->group_size > 0 && config->group_size < cols ? config->group_size : cols;
    if (!g_idx || g_idx->dtype != LLMRT_DTYPE_I32 || g_idx->ndim != 1 || g_idx->shape[0] != cols) return 0;
    return !trivial_g_idx(g_idx, cols, group);
}

/* Every element ±0 (a float tensor). */
static int all_zero(const llmrt_st_tensor *t) {
    const size_t size = llmrt_dtype_size(t->dtype);
    if (t->dtype != LLMRT_DTYPE_F16 && t->dtype != LLMRT_DTYPE_BF16 && t->dtype != LLMRT_DTYPE_F32) return 0;
    for (size_t i = 0; i < t->nbytes; i++)
        if (t->data[i] & (i % size == size - 1 ? 0x7f : 0xff)) return 0;
    return 1;
}

/* Safetensors data need not be aligned for its dtype: read through memcpy. */
static uint32_t u32_at(const llmrt_st_tensor *t, size_t index) {
    uint32_t v;
    memcpy(&v, t->data + index * 4, 4);
    return v;
}
static uint16_t u16_at(const llmrt_st_tensor *t, size_t index) {
    uint16_t v;
    memcpy(&v, t->data + index * 2, 2);
    return v;
}

llmrt_status llmrt_quant_checkpoint_read(const llmrt_checkpoint *cp, const llmrt_quant_config *c,
                                         const char *weight_name, int64_t N, int64_t K, void *blob) {
    if (c->method == LLMRT_QUANT_METHOD_COMPRESSED_TENSORS) return llmrt_ct_read(cp, c, weight_name, N, K, blob);
    const int bits = c->bits, per_word = 32 / bits;
    const unsigned mask = (1u << bits) - 1;
    const int64_t group = c->group_size > 0 && c->group_size < K ? c->group_size : K;
    if (K % group != 0 || N % per_word != 0 || K % per_word != 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "%s: weight '%s' [%lld, %lld] does not divide into groups of %lld and words of %d codes",
                           c->source, weight_name, (long long)N, (long long)K, (long long)group, per_word);
    const int64_t groups = K / group;
    const llmrt_st_tensor *qweight, *qzeros, *scales, *g_idx = NULL;
    const int awq = c->method == LLMRT_QUANT_METHOD_AWQ;
    if (awq) LLMRT_TRY(find_tensor(cp, weight_name, "qweight", LLMRT_DTYPE_I32, K, N / per_word, 0, &qweight));
    else LLMRT_TRY(find_tensor(cp, weight_name, "qweight", LLMRT_DTYPE_I32, K / per_word, N, 0, &qweight));
    LLMRT_TRY(find_tensor(cp, weight_name, "qzeros", LLMRT_DTYPE_I32, groups, N / per_word, 0, &qzeros));
    LLMRT_TRY(find_tensor(cp, weight_name, "scales", LLMRT_DTYPE_F16, groups, N, 0, &scales));
    if (!awq) LLMRT_TRY(find_tensor(cp, weight_name, "g_idx", LLMRT_DTYPE_I32, K, 0, 1, &g_idx));
    /* act-order: llmrt's groups are runs of stored inputs, so the inputs
     * are stored sorted by group (stably) and the engine keeps the order */
    int32_t *perm = NULL;
    if (g_idx && !trivial_g_idx(g_idx, K, group)) {
        perm = malloc(sizeof *perm * (size_t)K);
        int64_t *fill = calloc((size_t)groups, sizeof *fill);
        llmrt_status s = perm && fill ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int64_t k = 0; k < K && s == LLMRT_OK; k++) {
            const int32_t g = (int32_t)u32_at(g_idx, (size_t)k);
            if (g < 0 || g >= groups || fill[g] == group)
                s = llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' g_idx[%lld] = %d: groups must be %lld inputs each",
                                g_idx->file_path, g_idx->name, (long long)k, g, (long long)group);
            else perm[g * group + fill[g]++] = (int32_t)k;
        }
        free(fill);
        if (s != LLMRT_OK) {
            free(perm);
            return s;
        }
    }
    llmrt_qweight_header layout;
    llmrt_status s = llmrt_qweight_layout(bits == 8 ? LLMRT_DTYPE_INT8_WO : LLMRT_DTYPE_INT4_WO, N, K, group,
                                          perm != NULL, &layout);
    if (s != LLMRT_OK) {
        free(perm);
        return s;
    }
    /* AutoGPTQ saves a bias for every quantized layer, zeros where the
     * model has none: an all-zero bias is marked read, so that it is not
     * reported as a tensor the model does not use; any other stays for the
     * model's own binding (or that report) */
    char bias_name[512];
    const llmrt_st_tensor *bias = sibling_name(weight_name, "bias", bias_name, sizeof bias_name)
                                      ? llmrt_checkpoint_peek(cp, bias_name) : NULL;
    if (bias && all_zero(bias)) llmrt_checkpoint_find(cp, bias_name);
    static const int awq_nibble_of[8] = {0, 4, 1, 5, 2, 6, 3, 7}; /* output 8c + p sits in nibble awq_nibble_of[p] */
    llmrt_qweight_init(blob, &layout);
    if (perm) memcpy((uint8_t *)blob + llmrt_qweight_perm_offset(&layout), perm, sizeof *perm * (size_t)K);
    uint16_t *dst_scales = (uint16_t *)((uint8_t *)blob + layout.scales_offset);
    uint8_t *dst_zeros = (uint8_t *)blob + layout.zeros_offset;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t n = 0; n < N; n++) {
            const int slot = awq ? awq_nibble_of[n % 8] : (int)(n % per_word);
            unsigned zero = (u32_at(qzeros, (size_t)(g * (N / per_word) + n / per_word)) >> (slot * bits)) & mask;
            if (c->zeros_minus_one) zero += 1;
            if (zero > 255) {
                free(perm);
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': zero point %u of output %lld is out of range",
                                   qzeros->file_path, qzeros->name, zero, (long long)n);
            }
            dst_zeros[llmrt_qweight_group_index(&layout, n, g)] = (uint8_t)zero;
            dst_scales[llmrt_qweight_group_index(&layout, n, g)] = u16_at(scales, (size_t)(g * N + n));
        }
    for (int64_t j = 0; j < K; j++) {
        const int64_t k = perm ? perm[j] : j; /* stored input j is input k of the checkpoint */
        for (int64_t n = 0; n < N; n++) {
            unsigned code;
            if (awq) code = (u32_at(qweight, (size_t)(k * (N / 8) + n / 8)) >> (awq_nibble_of[n % 8] * 4)) & mask;
            else code = (u32_at(qweight, (size_t)((k / per_word) * N + n)) >> ((k % per_word) * bits)) & mask;
            llmrt_qweight_set(blob, n, j, code);
        }
    }
    free(perm);
    return LLMRT_OK;
}
