#include "compiler/compiler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/passes.h"
#include "compiler/quantize.h"
#include "compiler/smooth.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "core/quant8.h"
#include "core/log.h"
#include "import/compressed_tensors.h"
#include "models/models.h"

/* ---- plan ------------------------------------------------------------------- */

void llmrt_plan_free(llmrt_plan *plan) {
    if (!plan) return;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        free(plan->weights[i].name);
        free(plan->weights[i].owned_data);
    }
    free(plan->weights);
    llmrt_graph_free(plan->graph);
    free(plan);
}

int32_t llmrt_plan_find_weight(const llmrt_plan *plan, const char *name) {
    for (int32_t i = 0; i < plan->num_weights; i++)
        if (strcmp(plan->weights[i].name, name) == 0) return i;
    return -1;
}

uint64_t llmrt_plan_weight_bytes(const llmrt_plan *plan, uint64_t *bytes_by_dtype) {
    uint64_t total = 0;
    if (bytes_by_dtype) memset(bytes_by_dtype, 0, LLMRT_DTYPE_COUNT * sizeof *bytes_by_dtype);
    for (int32_t i = 0; i < plan->num_weights; i++) {
        total += plan->weights[i].nbytes;
        if (bytes_by_dtype && (unsigned)plan->weights[i].dtype < LLMRT_DTYPE_COUNT)
            bytes_by_dtype[plan->weights[i].dtype] += plan->weights[i].nbytes;
    }
    return total;
}

static llmrt_value find_input(const llmrt_graph *g, const char *name) {
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == LLMRT_OP_INPUT && g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0) return i;
    return LLMRT_NO_VALUE;
}

llmrt_status llmrt_plan_resolve_bindings(llmrt_plan *plan) {
    const llmrt_graph *g = plan->graph;
    plan->input_token_ids = find_input(g, "token_ids");
    plan->input_positions = find_input(g, "positions");
    plan->input_logits_indices = find_input(g, "logits_indices");
    plan->input_token_type_ids = find_input(g, "token_type_ids");
    plan->output_logits = LLMRT_NO_VALUE;
    plan->num_kv_layers = 0;
    plan->kv_window = 0;
    int any_full = 0;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->is_output) plan->output_logits = i;
        if (n->op != LLMRT_OP_ATTENTION) continue;
        if (n->iattr[7] <= 0) any_full = 1;
        else if (plan->kv_window == 0 || n->iattr[7] > plan->kv_window) plan->kv_window = (int32_t)n->iattr[7];
        int32_t layer = (int32_t)n->iattr[0];
        if (plan->num_kv_layers == 0) {
            plan->kv_heads = (int32_t)n->iattr[2];
            plan->head_dim = (int32_t)n->iattr[3];
        } else if (plan->kv_heads != n->iattr[2] || plan->head_dim != n->iattr[3]) {
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "plan: attention layers with different KV geometry");
        }
        if (layer < 0 || layer > 100000) return llmrt_error(LLMRT_ERR_FORMAT, "plan: attention layer %d", layer);
        if (layer + 1 > plan->num_kv_layers) plan->num_kv_layers = layer + 1;
    }
    if (any_full) plan->kv_window = 0;
    if (plan->input_token_ids < 0 || plan->input_positions < 0 || plan->input_logits_indices < 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "plan: missing a step input (token_ids, positions, logits_indices)");
    if (plan->output_logits < 0) return llmrt_error(LLMRT_ERR_FORMAT, "plan: no output");
    const llmrt_node *out = &g->nodes[plan->output_logits];
    if (out->ndim != 2 || out->dims[0] != LLMRT_DIM_LOGITS || out->dims[1] <= 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "plan: output must be [L, vocab]");
    plan->vocab_size = (int32_t)out->dims[1];
    return LLMRT_OK;
}

/* ---- weight binding ------------------------------------------------------ */

/* splitmix64: seeds independent streams per weight and chunk, so random
 * weights are the same whatever the thread count. */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Random weights of sensible scale: matrices uniform with std 1/√in, norm
 * gains near 1, biases small. Speed does not depend on the values. */
static void fill_random(float *dst, const llmrt_node *w, uint64_t seed, int64_t first, int64_t count) {
    float scale;
    float offset = 0.0f;
    if (w->ndim >= 2) scale = sqrtf(3.0f / (float)w->dims[w->ndim - 1]);
    else if (ends_with(w->name, "norm.weight") || strstr(w->name, "ln_") || strstr(w->name, "layernorm")) {
        scale = 0.1f;
        offset = 1.0f;
    } else scale = 0.02f;
    uint64_t state = seed ^ hash_name(w->name) ^ ((uint64_t)first * 0x632be59bd9b4e019ull);
    for (int64_t i = 0; i < count; i++) {
        float u = (float)(splitmix64(&state) >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        dst[i] = offset + scale * u;
    }
}

typedef struct binder {
    const llmrt_checkpoint *checkpoint;
    const llmrt_model_family *family;
    const llmrt_compile_options *options;
    llmrt_progress progress;
    llmrt_smoothing *smoothing; /* SmoothQuant factors (smooth.h), or NULL */
} binder;

static llmrt_status bind_tensor(const llmrt_checkpoint *checkpoint, const llmrt_model_family *family,
                                const llmrt_node *w, void *dst, float *scratch, llmrt_progress *progress);

/* A stacked expert weight [E, rows, cols] (llmrt_expert_weight): expert e's
 * matrix is the checkpoint tensor named with e for the '*', placed after
 * expert e-1's so each expert's bytes are contiguous. */
static llmrt_status bind_stacked(const llmrt_checkpoint *checkpoint, const llmrt_model_family *family,
                                 const llmrt_node *w, void *dst, float *scratch, llmrt_progress *progress) {
    const char *star = strchr(w->name, '*');
    char name[300];
    llmrt_node expert = *w;
    expert.ndim = 2;
    expert.dims[0] = w->dims[1];
    expert.dims[1] = w->dims[2];
    expert.name = name;
    const size_t expert_bytes = llmrt_node_bytes(&expert, 0, 0);
    for (int64_t e = 0; e < w->dims[0]; e++) {
        snprintf(name, sizeof name, "%.*s%lld%s", (int)(star - w->name), w->name, (long long)e, star + 1);
        LLMRT_TRY(bind_tensor(checkpoint, family, &expert, (uint8_t *)dst + (size_t)e * expert_bytes, scratch,
                              progress));
    }
    return LLMRT_OK;
}

/* Converts the checkpoint tensor that weight node `w` names into `dst`, in
 * w's storage dtype and layout: the family's alias for a name the checkpoint
 * lacks, the transpose the weight_layout pass asked for (GPT-2's Conv1D), the
 * shape the config implies. Build and refit both bind through here, so a
 * refit engine holds the bytes a fresh build would. */
static llmrt_status bind_tensor(const llmrt_checkpoint *checkpoint, const llmrt_model_family *family,
                                const llmrt_node *w, void *dst, float *scratch, llmrt_progress *progress) {
    if (w->ndim == 3 && strchr(w->name, '*')) return bind_stacked(checkpoint, family, w, dst, scratch, progress);
    const llmrt_st_tensor *t = llmrt_checkpoint_find(checkpoint, w->name);
    char alias[256];
    if (!t && family && family->alias_weight) {
        const char *other = family->alias_weight(w->name, alias, sizeof alias);
        if (other) t = llmrt_checkpoint_find(checkpoint, other);
    }
    if (!t) return llmrt_error(LLMRT_ERR_NOT_FOUND, "checkpoint has no tensor '%s'", w->name);
    int transposed = w->iattr[0] != 0;
    int64_t expected[2] = {w->dims[0], w->ndim == 2 ? w->dims[1] : 0};
    if (transposed) {
        expected[0] = w->dims[1];
        expected[1] = w->dims[0];
    }
    int shape_ok = t->ndim == w->ndim;
    for (int32_t d = 0; shape_ok && d < w->ndim; d++) shape_ok = t->shape[d] == expected[d];
    if (!shape_ok) {
        char got[128] = "", want[128] = "";
        size_t used = 0;
        for (int32_t d = 0; d < t->ndim && used < sizeof got; d++)
            used += (size_t)snprintf(got + used, sizeof got - used, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        used = 0;
        for (int32_t d = 0; d < w->ndim && used < sizeof want; d++)
            used += (size_t)snprintf(want + used, sizeof want - used, "%s%lld", d ? ", " : "", (long long)expected[d]);
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' has shape [%s] but the config implies [%s]",
                           t->file_path, t->name, got, want);
    }
    /* an fp8 checkpoint weight llmrt keeps 16-bit (LM head, experts): code × scale */
    if (t->dtype == LLMRT_DTYPE_FP8_E4M3 && !transposed && llmrt_dtype_size(w->dtype) > 0) {
        const int64_t count = llmrt_node_numel(w, 0, 0);
        float *values = malloc((size_t)count * sizeof *values + 1);
        if (!values) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory binding '%s'", w->name);
        llmrt_status s = llmrt_ct_dequantize(checkpoint, t, values);
        if (s == LLMRT_OK && llmrt_convert_from_f32(dst, w->dtype, values, (size_t)count) != 0)
            s = llmrt_error(LLMRT_ERR_UNSUPPORTED, "'%s': fp8 codes into %s", w->name, llmrt_dtype_name(w->dtype));
        if (s == LLMRT_OK && progress) llmrt_progress_add(progress, (uint64_t)count * llmrt_dtype_size(w->dtype));
        free(values);
        return s;
    }
    if (t->dtype != LLMRT_DTYPE_F32 && t->dtype != LLMRT_DTYPE_F16 && t->dtype != LLMRT_DTYPE_BF16 &&
        t->dtype != LLMRT_DTYPE_F64)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (expected a float type)",
                           t->file_path, t->name, llmrt_dtype_name(t->dtype));
    int64_t numel = llmrt_node_numel(w, 0, 0);
    unsigned src_size = llmrt_dtype_size(t->dtype), dst_size = llmrt_dtype_size(w->dtype);
    if (transposed) {
        /* small (GPT-2 Conv1D): convert whole, transpose through scratch */
        float *whole = malloc((size_t)numel * sizeof *whole);
        if (!whole) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory binding '%s'", w->name);
        llmrt_convert_to_f32(whole, t->data, t->dtype, (size_t)numel);
        int64_t rows = expected[0], cols = expected[1];
        for (int64_t c = 0; c < cols; c++) {
            for (int64_t r = 0; r < rows; r++) scratch[r] = whole[r * cols + c];
            llmrt_convert_from_f32((uint8_t *)dst + (size_t)(c * rows) * dst_size, w->dtype, scratch,
                                   (size_t)rows);
        }
        free(whole);
        if (progress) llmrt_progress_add(progress, (uint64_t)numel * dst_size);
        return LLMRT_OK;
    }
    const int64_t chunk = 1 << 20;
    for (int64_t i = 0; i < numel; i += chunk) {
        int64_t n = numel - i < chunk ? numel - i : chunk;
        llmrt_convert_to_f32(scratch, t->data + (size_t)i * src_size, t->dtype, (size_t)n);
        llmrt_convert_from_f32((uint8_t *)dst + (size_t)i * dst_size, w->dtype, scratch, (size_t)n);
        /* the converted chunk's pages leave the process: a build's resident
         * memory is the engine, not the engine plus the checkpoint */
        llmrt_checkpoint_release(checkpoint, t->data + (size_t)i * src_size, (size_t)n * src_size);
        if (progress) llmrt_progress_add(progress, (uint64_t)n * dst_size);
    }
    return LLMRT_OK;
}

/* A quantized weight: the checkpoint's packed codes (AWQ / GPTQ), else its
 * float tensor converted as for an f32 engine and quantized. */
static llmrt_status bind_quantized(const llmrt_checkpoint *checkpoint, const llmrt_model_family *family,
                                   const llmrt_quant_config *prequantized, const llmrt_node *w, void *dst,
                                   float *scratch, llmrt_progress *progress) {
    if (prequantized && llmrt_quant_checkpoint_has(checkpoint, w->name)) {
        LLMRT_TRY(llmrt_quant_checkpoint_read(checkpoint, prequantized, w->name, w->dims[0], w->dims[1], dst));
        if (progress) llmrt_progress_add(progress, llmrt_node_bytes(w, 0, 0));
        return LLMRT_OK;
    }
    if (!prequantized && llmrt_quant_checkpoint_has(checkpoint, w->name))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "'%s' is packed (AWQ / GPTQ) or fp8 (compressed-tensors) in this checkpoint: rebuild the "
                           "engine", w->name);
    llmrt_node as_f32 = *w;
    as_f32.dtype = LLMRT_DTYPE_F32;
    const size_t bytes = llmrt_node_bytes(&as_f32, 0, 0);
    float *values = malloc(bytes ? bytes : 1);
    if (!values) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory binding '%s'", w->name);
    llmrt_status s = bind_tensor(checkpoint, family, &as_f32, values, scratch, NULL);
    if (s == LLMRT_OK) s = llmrt_quantize_matrix(w, values, dst);
    if (s == LLMRT_OK && progress) llmrt_progress_add(progress, llmrt_node_bytes(w, 0, 0));
    free(values);
    return s;
}

static llmrt_status bind_shard(binder *b, const llmrt_node *w, llmrt_plan_weight *pw, float *scratch);

llmrt_status llmrt_compile_bind_weight(const llmrt_model_config *config, const llmrt_checkpoint *checkpoint,
                                       const llmrt_node *weight, void *dst, llmrt_progress *progress) {
    const llmrt_model_family *family;
    LLMRT_TRY(llmrt_model_lookup(config->architecture, &family));
    if (weight->op != LLMRT_OP_WEIGHT)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "'%s' is not a weight node", weight->name);
    /* A quantized shard's group comes from the full matrix's, which the
     * shard alone does not tell when it spans whole rows of a split K. */
    if (weight->iattr[6] > 1 && llmrt_dtype_is_packed(weight->dtype))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "'%s': a quantized tensor-parallel shard (rebuild the engine from the checkpoint)",
                           weight->name);
    float *scratch = malloc((size_t)(1 << 20) * sizeof *scratch + 1);
    if (!scratch) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s;
    if (weight->iattr[6] > 1) { /* the full tensor bound as one rank does, this rank's pieces cut from it */
        const llmrt_compile_options options = {0};
        binder b = {.checkpoint = checkpoint, .family = family, .options = &options};
        if (progress) b.progress = *progress;
        llmrt_plan_weight pw = {.dtype = weight->dtype, .nbytes = llmrt_node_bytes(weight, 0, 0), .owned_data = dst};
        s = bind_shard(&b, weight, &pw, scratch);
        if (progress) *progress = b.progress;
    } else {
        s = llmrt_dtype_is_packed(weight->dtype) ? bind_quantized(checkpoint, family, NULL, weight, dst, scratch, progress)
                                                 : bind_tensor(checkpoint, family, weight, dst, scratch, progress);
    }
    free(scratch);
    return s;
}

static llmrt_status bind_random(binder *b, const llmrt_node *w, llmrt_plan_weight *pw) {
    int64_t numel = llmrt_node_numel(w, 0, 0);
    if (llmrt_dtype_is_packed(w->dtype)) {
        /* the values an f32 engine of this seed holds, quantized */
        float *values = malloc((size_t)numel * sizeof *values);
        if (!values) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory generating '%s'", w->name);
        const int64_t chunk = 1 << 20;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t first = 0; first < numel; first += chunk)
            fill_random(values + first, w, b->options->seed, first, numel - first < chunk ? numel - first : chunk);
        llmrt_status s = llmrt_quantize_matrix(w, values, pw->owned_data);
        free(values);
        if (s == LLMRT_OK) llmrt_progress_add(&b->progress, pw->nbytes);
        return s;
    }
    unsigned dst_size = llmrt_dtype_size(pw->dtype);
    const int64_t chunk = 1 << 20;
    int64_t chunks = (numel + chunk - 1) / chunk;
    int failed = 0;
#pragma omp parallel
    {
        float *scratch = malloc((size_t)chunk * sizeof *scratch);
        if (!scratch) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < chunks; c++) {
            if (!scratch) continue;
            int64_t first = c * chunk, n = numel - first < chunk ? numel - first : chunk;
            fill_random(scratch, w, b->options->seed, first, n);
            llmrt_convert_from_f32((uint8_t *)pw->owned_data + (size_t)first * dst_size, pw->dtype, scratch, (size_t)n);
        }
        free(scratch);
    }
    if (failed) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory generating '%s'", w->name);
    llmrt_progress_add(&b->progress, (uint64_t)numel * dst_size);
    return LLMRT_OK;
}

/* The f32 values weight node w is bound with, as for an f32 engine (what
 * smoothing reads and scales). */
static llmrt_status read_f32(void *ctx, const llmrt_node *w, float *values) {
    const binder *b = ctx;
    llmrt_node as_f32 = *w;
    as_f32.dtype = LLMRT_DTYPE_F32;
    const int64_t numel = llmrt_node_numel(w, 0, 0), chunk = 1 << 20;
    if (b->options->random_weights) { /* bind_random's chunks: the same values */
        for (int64_t first = 0; first < numel; first += chunk)
            fill_random(values + first, w, b->options->seed, first, numel - first < chunk ? numel - first : chunk);
        return LLMRT_OK;
    }
    float *scratch = malloc((size_t)chunk * sizeof *scratch);
    if (!scratch) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory binding '%s'", w->name);
    llmrt_status s = bind_tensor(b->checkpoint, b->family, &as_f32, values, scratch, NULL);
    free(scratch);
    return s;
}

/* A weight SmoothQuant scales: its f32 values, scaled, then stored in its
 * dtype (quantized for a quantized node) like any other. */
static llmrt_status bind_smoothed(binder *b, const llmrt_graph *g, llmrt_value v, llmrt_plan_weight *pw) {
    const llmrt_node *w = &g->nodes[v];
    const int64_t numel = llmrt_node_numel(w, 0, 0);
    float *values = malloc((size_t)numel * sizeof *values + 1);
    if (!values) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory binding '%s'", w->name);
    llmrt_status s = read_f32(b, w, values);
    if (s == LLMRT_OK) {
        llmrt_smoothing_apply(b->smoothing, g, v, values);
        if (llmrt_dtype_is_quantized(w->dtype) || llmrt_dtype_is_q8(w->dtype))
            s = llmrt_quantize_matrix(w, values, pw->owned_data);
        else llmrt_convert_from_f32(pw->owned_data, w->dtype, values, (size_t)numel);
    }
    if (s == LLMRT_OK) llmrt_progress_add(&b->progress, pw->nbytes);
    free(values);
    return s;
}

/* A tensor-parallel shard (llmrt_weight_shard: iattr[4] = axis + 1,
 * iattr[5] = index, iattr[6] = count; llmrt_weight_segments adds the full
 * size along the axis in iattr[7] and the pieces it takes): the full tensor
 * is bound as for one rank, then this rank's pieces copied out, so every
 * rank's bytes are a TP=1 engine's, random weights included. A packed
 * (quantized) shard is cut from the full matrix quantized as TP=1 does:
 * its codes, scales and zeros are TP=1's, whole groups to a rank. */
static llmrt_status bind_shard(binder *b, const llmrt_node *w, llmrt_plan_weight *pw, float *scratch) {
    const int32_t axis = (int32_t)w->iattr[4] - 1, index = (int32_t)w->iattr[5], count = (int32_t)w->iattr[6];
    if (w->ndim < 1 || w->ndim > 3 || axis >= w->ndim || (llmrt_dtype_is_packed(w->dtype) && w->ndim != 2))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "weight %s: tensor-parallel shards of %dD %s weights", w->name,
                           (int)w->ndim, llmrt_dtype_name(w->dtype));
    int64_t one[1][2] = {{index * w->dims[axis], w->dims[axis]}};
    const int64_t(*segments)[2] = w->num_segments ? w->segments : one;
    const int32_t num_segments = w->num_segments ? w->num_segments : 1;
    llmrt_node full = *w;
    full.dims[axis] = w->num_segments ? w->iattr[7] : w->dims[axis] * count;
    full.iattr[4] = full.iattr[5] = full.iattr[6] = full.iattr[7] = 0;
    full.num_segments = 0;
    const int packed = llmrt_dtype_is_packed(w->dtype);
    if (llmrt_dtype_is_quantized(w->dtype)) /* the group TP=1 quantizes with (a shard's may be its whole row) */
        full.iattr[1] = llmrt_quant_full_group(b->options->prequantized, b->checkpoint, b->options->quant_group_size,
                                               &full);
    llmrt_plan_weight whole = *pw;
    whole.nbytes = llmrt_node_bytes(&full, 0, 0);
    whole.owned_data = malloc(whole.nbytes ? whole.nbytes : 1);
    if (!whole.owned_data) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory binding '%s'", w->name);
    llmrt_status status;
    if (b->options->random_weights) status = bind_random(b, &full, &whole);
    else if (packed)
        status = bind_quantized(b->checkpoint, b->family, b->options->prequantized, &full, whole.owned_data, scratch,
                                &b->progress);
    else status = bind_tensor(b->checkpoint, b->family, &full, whole.owned_data, scratch, &b->progress);
    if (status == LLMRT_OK && llmrt_dtype_is_quantized(w->dtype)) {
        llmrt_qweight_header layout;
        status = llmrt_qweight_layout(w->dtype, w->dims[0], w->dims[1], w->iattr[1], w->iattr[3] != 0, &layout);
        if (status == LLMRT_OK) {
            llmrt_qweight_init(pw->owned_data, &layout);
            status = llmrt_qweight_cut(whole.owned_data, pw->owned_data, axis, segments, num_segments, w->name);
        }
    } else if (status == LLMRT_OK && packed) {
        llmrt_q8weight_header layout;
        status = llmrt_q8weight_layout(w->dtype, w->dims[0], w->dims[1], &layout);
        if (status == LLMRT_OK) {
            llmrt_q8weight_init(pw->owned_data, &layout);
            status = llmrt_q8weight_cut(whole.owned_data, pw->owned_data, axis, segments, num_segments, w->name);
        }
    } else if (status == LLMRT_OK) {
        /* the tensor seen as [outer, axis, inner]: each piece is `inner`-long
         * runs in each of the outer rows (an expert stack [E, rows, cols] too) */
        const size_t elem = llmrt_dtype_size(w->dtype);
        int64_t outer = 1, inner = 1;
        for (int32_t d = 0; d < axis; d++) outer *= w->dims[d];
        for (int32_t d = axis + 1; d < w->ndim; d++) inner *= w->dims[d];
        const uint8_t *src = whole.owned_data;
        uint8_t *dst = pw->owned_data;
        for (int64_t o = 0; o < outer; o++)
            for (int32_t i = 0; i < num_segments; i++) {
                const size_t bytes = (size_t)(segments[i][1] * inner) * elem;
                memcpy(dst, src + (size_t)((o * full.dims[axis] + segments[i][0]) * inner) * elem, bytes);
                dst += bytes;
            }
    }
    free(whole.owned_data);
    return status;
}

/* A shard's slot name: "<name>#tp<index>/<count>:<axis>", then its pieces
 * "@<offset>+<length>" (two shards of one tensor must not share a slot). */
static void shard_slot_name(char *name, size_t size, const llmrt_node *n) {
    int used = snprintf(name, size, "%s%s#tp%d/%d:%d", n->name, n->iattr[0] ? "#transposed" : "", (int)n->iattr[5],
                        (int)n->iattr[6], (int)n->iattr[4] - 1);
    for (int32_t i = 0; i < n->num_segments && used > 0 && (size_t)used < size; i++)
        used += snprintf(name + used, size - (size_t)used, "@%lld+%lld", (long long)n->segments[i][0],
                         (long long)n->segments[i][1]);
}

/* Gives every weight and constant a slot in the plan's weight table. Weights
 * named twice (a tied LM head) share one slot when laid out alike. */
static llmrt_status bind_weights(llmrt_plan *plan, binder *b) {
    llmrt_graph *g = plan->graph;
    plan->weights = calloc((size_t)g->num_nodes + 1, sizeof *plan->weights);
    if (!plan->weights) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    uint64_t total = 0;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT) total += llmrt_node_bytes(n, 0, 0);
    }
    float *scratch = malloc((size_t)(1 << 20) * sizeof *scratch + 1);
    if (!scratch) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_progress_begin(&b->progress, b->options->random_weights ? "generating weights" : "converting weights", total);
    llmrt_status status = LLMRT_OK;
    for (int32_t i = 0; i < g->num_nodes && status == LLMRT_OK; i++) {
        llmrt_node *n = &g->nodes[i];
        if (n->op != LLMRT_OP_WEIGHT && n->op != LLMRT_OP_CONSTANT) continue;
        char name[400];
        if (n->op == LLMRT_OP_CONSTANT) snprintf(name, sizeof name, "const.%d.%s", i, n->name);
        else if (n->iattr[6] > 1) shard_slot_name(name, sizeof name, n);
        else snprintf(name, sizeof name, "%s%s", n->name, n->iattr[0] ? "#transposed" : "");
        int32_t slot = llmrt_plan_find_weight(plan, name);
        if (slot >= 0 && (plan->weights[slot].dtype != n->dtype || plan->weights[slot].nbytes != llmrt_node_bytes(n, 0, 0))) {
            status = llmrt_error(LLMRT_ERR_UNSUPPORTED, "weight %s is read as both %s and %s", n->name,
                                 llmrt_dtype_name(plan->weights[slot].dtype), llmrt_dtype_name(n->dtype));
            break;
        }
        if (slot >= 0) {
            n->weight_slot = slot;
            continue;
        }
        if (n->ndim >= 2 && (n->dims[0] > INT32_MAX || n->dims[1] > INT32_MAX)) {
            status = llmrt_error(LLMRT_ERR_FORMAT, "weight %s too large", n->name);
            break;
        }
        slot = plan->num_weights;
        llmrt_plan_weight *pw = &plan->weights[slot];
        pw->name = strdup(name);
        pw->dtype = n->dtype;
        pw->ndim = n->ndim;
        memcpy(pw->dims, n->dims, sizeof pw->dims);
        pw->nbytes = llmrt_node_bytes(n, 0, 0);
        pw->owned_data = malloc(pw->nbytes ? pw->nbytes : 1);
        if (!pw->name || !pw->owned_data) {
            free(pw->name);
            free(pw->owned_data);
            status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory for weight %s", n->name);
            break;
        }
        pw->data = pw->owned_data;
        plan->num_weights++;
        n->weight_slot = slot;
        if (n->op == LLMRT_OP_CONSTANT) {
            memcpy(pw->owned_data, n->const_data, pw->nbytes);
        } else if (llmrt_smoothing_touches(b->smoothing, i)) {
            status = bind_smoothed(b, g, i, pw);
        } else if (n->op == LLMRT_OP_WEIGHT && n->iattr[6] > 1) {
            status = bind_shard(b, n, pw, scratch);
        } else if (b->options->random_weights) {
            status = bind_random(b, n, pw);
        } else if (llmrt_dtype_is_packed(n->dtype)) {
            status = bind_quantized(b->checkpoint, b->family, b->options->prequantized, n, pw->owned_data, scratch,
                                    &b->progress);
        } else {
            status = bind_tensor(b->checkpoint, b->family, n, pw->owned_data, scratch, &b->progress);
        }
    }
    free(scratch);
    if (status == LLMRT_OK) llmrt_progress_end(&b->progress);
    return status;
}

/* ---- the builder -------------------------------------------------------------- */

static llmrt_status compile_network(llmrt_graph *graph, const llmrt_model_family *family,
                                    const llmrt_checkpoint *checkpoint, const llmrt_compile_options *options,
                                    llmrt_plan **out);

llmrt_status llmrt_compile(const llmrt_model_config *config, const llmrt_checkpoint *checkpoint,
                           const llmrt_compile_options *options, llmrt_plan **out) {
    *out = NULL;
    const llmrt_model_family *family;
    LLMRT_TRY(llmrt_model_lookup(config->architecture, &family));
    LLMRT_TRY(family->validate(config));
    if (!options->random_weights && !checkpoint)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: no checkpoint and no --random-weights");
    if (options->max_num_tokens < 1 || options->max_batch < 1 || options->max_seq_len < 1)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: max_num_tokens, max_batch and max_seq_len must be >= 1");
    if (config->rope.type == LLMRT_ROPE_NONE && config->alibi_max_bias == 0.0f &&
        options->max_seq_len > config->max_position_embeddings)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "build: --max-seq-len %d exceeds the model's %d learned positions", options->max_seq_len,
                           config->max_position_embeddings);

    if (options->tp_size > 1 && (options->tp_rank < 0 || options->tp_rank >= options->tp_size))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: tensor-parallel rank %d of %d", options->tp_rank,
                           options->tp_size);
    if (options->pp_stages > 1 && (options->pp_stage < 0 || options->pp_stage >= options->pp_stages ||
                                   options->pp_stages > config->num_layers))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "build: pipeline stage %d of %d for %d layers (at most one stage a layer)",
                           options->pp_stage, options->pp_stages, config->num_layers);
    if (options->smooth && (!options->calibration || options->tp_size > 1 || options->pp_stages > 1 ||
                            options->prequantized))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "build: SmoothQuant smoothing needs calibration statistics, one rank and 16-bit weights");

    llmrt_graph *graph = llmrt_graph_create(options->act_dtype, options->weight_dtype);
    if (!graph) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    graph->tp_rank = options->tp_size > 1 ? options->tp_rank : 0;
    graph->tp_size = options->tp_size > 1 ? options->tp_size : 1;
    graph->pp_stage = options->pp_stages > 1 ? options->pp_stage : 0;
    graph->pp_stages = options->pp_stages > 1 ? options->pp_stages : 1;
    /* LongRoPE: an engine that may run past the original context rotates
     * with the long factors throughout, one that cannot with the short ones
     * (transformers switches per forward pass at that length). */
    llmrt_model_config chosen = *config;
    if (chosen.rope.type == LLMRT_ROPE_LONGROPE)
        chosen.rope.use_long_factors = options->max_seq_len > chosen.rope.original_max_position_embeddings;
    family->build(graph, &chosen);
    llmrt_status status = llmrt_graph_status(graph);
    if (status != LLMRT_OK) {
        llmrt_graph_free(graph);
        return llmrt_error_context(status, "building the %s network", config->architecture);
    }
    if (graph->pp_stages > 1) { /* a family that ignores the stage would build every layer on every rank */
        int staged = 0;
        for (int32_t i = 0; i < graph->num_nodes && !staged; i++)
            staged = graph->nodes[i].op == LLMRT_OP_SEND || graph->nodes[i].op == LLMRT_OP_RECV;
        if (!staged) {
            llmrt_graph_free(graph);
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "build: the %s family does not split into pipeline stages yet",
                               config->architecture);
        }
    }
    return compile_network(graph, family, checkpoint, options, out);
}

llmrt_status llmrt_compile_graph(llmrt_graph *graph, const llmrt_checkpoint *checkpoint,
                                 const llmrt_compile_options *options, llmrt_plan **out) {
    *out = NULL;
    if (options->max_num_tokens < 1 || options->max_batch < 1 || options->max_seq_len < 1) {
        llmrt_graph_free(graph);
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: max_num_tokens, max_batch and max_seq_len must be >= 1");
    }
    llmrt_status status = llmrt_graph_status(graph);
    if (status != LLMRT_OK) {
        llmrt_graph_free(graph);
        return status;
    }
    return compile_network(graph, NULL, checkpoint, options, out);
}

/* Passes, bindings and weights for a built network (the plan takes it). */
static llmrt_status compile_network(llmrt_graph *graph, const llmrt_model_family *family,
                                    const llmrt_checkpoint *checkpoint, const llmrt_compile_options *options,
                                    llmrt_plan **out) {
    llmrt_plan *plan = calloc(1, sizeof *plan);
    if (!plan) {
        llmrt_graph_free(graph);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    plan->max_num_tokens = options->max_num_tokens;
    plan->max_batch = options->max_batch;
    plan->max_seq_len = options->max_seq_len;
    plan->kv_dtype = options->kv_dtype;
    plan->graph = graph;
    llmrt_status status = LLMRT_OK;
    {
        llmrt_pass_context ctx = {.plan = plan, .target = options->target, .quant_dtype = options->quant_dtype,
                                  .quant_group_size = options->quant_group_size,
                                  .quant_asymmetric = options->quant_asymmetric, .checkpoint = checkpoint,
                                  .prequantized = options->prequantized,
                                  .quant_per_tensor = options->quant_per_tensor,
                                  .quant_static_input = options->quant_static_input,
                                  .calibration = options->calibration,
                                  .observe = options->observe};
        status = llmrt_run_passes(plan->graph, &ctx, options->disabled_passes);
    }
    if (status == LLMRT_OK) status = llmrt_plan_resolve_bindings(plan);
    if (status == LLMRT_OK) {
        binder b = {.checkpoint = checkpoint, .family = family, .options = options};
        if (options->smooth)
            status = llmrt_smoothing_create(plan->graph, options->calibration, options->smooth_alpha, read_f32, &b,
                                            &b.smoothing);
        if (options->smooth && status == LLMRT_OK) {
            int32_t groups, linears;
            llmrt_smoothing_counts(b.smoothing, &groups, &linears);
            LLMRT_INFO("SmoothQuant (alpha %.2f): %d LINEARs behind %d norms smoothed", (double)options->smooth_alpha,
                       (int)linears, (int)groups);
        }
        if (status == LLMRT_OK) status = bind_weights(plan, &b);
        llmrt_smoothing_free(b.smoothing);
    }
    if (status != LLMRT_OK) {
        llmrt_plan_free(plan);
        return status;
    }
    *out = plan;
    return LLMRT_OK;
}
