/* SmoothQuant (Xiao et al., "SmoothQuant: Accurate and Efficient
 * Post-Training Quantization for Large Language Models", ICML 2023; the
 * reference is mit-han-lab/smoothquant, smooth_ln_fcs).
 *
 * A few input channels of a LINEAR carry outliers 10-100× the rest, so one
 * int8 scale per token wastes most of its range on them, while the weights'
 * columns are flat. For the LINEARs W_1..W_m that read one norm's output
 * (q/k/v after the input norm; gate/up after the post-attention norm),
 *
 *   s_k = max|X_k|^α / max_{i,n} |W_i[n, k]|^(1−α)
 *
 * (clamped to [1e-5, 1e5]; 1 where either maximum is 0), the norm's gain
 * (and bias) divided by s and each W_i's column k multiplied by s_k: the
 * products are unchanged in exact arithmetic, x/s has flatter channels and
 * W·diag(s) takes up the difference. α = 0.5 splits it evenly.
 *
 * Only a norm's output can absorb 1/s for free (its gain is a per-channel
 * multiply); o_proj and down_proj read the attention and SiLU·up outputs
 * and are left alone, as in the paper. A group is smoothed only if every
 * reader of the norm's output is such a LINEAR, reading it as x, whose
 * weight nothing else reads, and the gain and bias are that norm's alone:
 * nothing else may see the scaled values.
 *
 * Where: weight binding (compiler.c). The groups are found on the compiled
 * graph (after fusion, so the weight names are the quantize pass's and the
 * calibration's) and their factors computed before any weight is bound;
 * each touched weight is then bound as f32, scaled here and stored in its
 * dtype (quantized, for w8a8), so the engine holds only smoothed weights. */
#include "compiler/smooth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/passes.h"

typedef struct smooth_group {
    llmrt_value gain, bias; /* the norm's weight vectors; bias -1 for RMSNorm */
    float offset;           /* RMSNorm's x̂·(w + offset) (Gemma): the gain is w + offset */
    int64_t K;
    float *factors;         /* [K] */
} smooth_group;

struct llmrt_smoothing {
    int32_t num_nodes;
    int32_t *group_of; /* [num_nodes]: the group a weight node belongs to, or -1 */
    smooth_group *groups;
    int32_t count, linears;
};

static const float SMOOTH_MIN = 1e-5f, SMOOTH_MAX = 1e5f;

/* A weight vector [K] or matrix [N, K] read once, not a tensor-parallel
 * shard, and the only node of its name (binding gives nodes of one name
 * one slot: a tied copy would share the scaled bytes). */
static int own_weight(const llmrt_graph *g, const int32_t *uses, llmrt_value v, int32_t ndim, int64_t K) {
    if (v < 0) return 0;
    const llmrt_node *w = &g->nodes[v];
    if (w->op != LLMRT_OP_WEIGHT || w->ndim != ndim || w->dims[ndim - 1] != K || uses[v] != 1 || w->iattr[6] > 1 ||
        !w->name)
        return 0;
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (i != v && g->nodes[i].op == LLMRT_OP_WEIGHT && g->nodes[i].name && strcmp(g->nodes[i].name, w->name) == 0)
            return 0;
    return 1;
}

/* The LINEARs reading norm r's output as x, and the largest |x_k| they saw:
 * returns their count, 0 if the group cannot be smoothed. */
static int32_t group_readers(const llmrt_graph *g, const int32_t *uses, const llmrt_calibration *calib,
                             llmrt_value r, int64_t K, llmrt_value *linears, float *amax) {
    int32_t count = 0;
    for (int32_t i = r + 1; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        for (int32_t k = 0; k < n->num_inputs; k++) {
            if (n->inputs[k] != r) continue;
            if (n->op != LLMRT_OP_LINEAR || k != 0 || n->is_output || !own_weight(g, uses, n->inputs[1], 2, K))
                return 0;
            const llmrt_calib_entry *e = llmrt_calibration_find(calib, g->nodes[n->inputs[1]].name);
            if (!e || e->cols != K || !e->channel_amax) return 0;
            for (int64_t c = 0; c < K; c++) amax[c] = fmaxf(amax[c], e->channel_amax[c]);
            linears[count++] = n->inputs[1];
        }
    }
    return count == uses[r] ? count : 0;
}

static llmrt_status make_factors(const llmrt_graph *g, const llmrt_value *linears, int32_t count, const float *amax,
                                 float alpha, llmrt_smooth_read_fn read, void *read_ctx, smooth_group *group) {
    const int64_t K = group->K;
    float *wmax = calloc((size_t)K, sizeof *wmax);
    if (!wmax) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "smoothing: out of memory");
    llmrt_status s = LLMRT_OK;
    for (int32_t i = 0; i < count && s == LLMRT_OK; i++) {
        const llmrt_node *w = &g->nodes[linears[i]];
        float *values = malloc((size_t)(w->dims[0] * K) * sizeof *values);
        if (!values) s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "smoothing: out of memory reading '%s'", w->name);
        if (s == LLMRT_OK) s = read(read_ctx, w, values);
        for (int64_t n = 0; s == LLMRT_OK && n < w->dims[0]; n++)
            for (int64_t k = 0; k < K; k++) wmax[k] = fmaxf(wmax[k], fabsf(values[n * K + k]));
        free(values);
    }
    for (int64_t k = 0; s == LLMRT_OK && k < K; k++) {
        float f = 1.0f;
        if (amax[k] > 0 && wmax[k] > 0 && isfinite(amax[k]) && isfinite(wmax[k])) {
            f = (float)(pow(amax[k], alpha) / pow(wmax[k], 1.0 - alpha));
            f = f < SMOOTH_MIN ? SMOOTH_MIN : f > SMOOTH_MAX ? SMOOTH_MAX : f;
        }
        group->factors[k] = f;
    }
    free(wmax);
    return s;
}

llmrt_status llmrt_smoothing_create(const llmrt_graph *g, const llmrt_calibration *calib, float alpha,
                                    llmrt_smooth_read_fn read, void *read_ctx, llmrt_smoothing **out) {
    *out = NULL;
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "smoothing: alpha %g is outside [0, 1]", (double)alpha);
    if (!calib) return LLMRT_OK;
    const int32_t n = g->num_nodes;
    int32_t *uses = llmrt_graph_use_counts(g);
    llmrt_smoothing *s = calloc(1, sizeof *s);
    llmrt_value *linears = malloc(((size_t)n + 1) * sizeof *linears);
    if (s) s->group_of = malloc(((size_t)n + 1) * sizeof *s->group_of);
    if (s) s->groups = calloc((size_t)n + 1, sizeof *s->groups);
    if (!uses || !s || !linears || !s->group_of || !s->groups) {
        free(uses), free(linears), llmrt_smoothing_free(s);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "smoothing: out of memory");
    }
    s->num_nodes = n;
    for (int32_t i = 0; i < n; i++) s->group_of[i] = -1;
    llmrt_status status = LLMRT_OK;
    for (int32_t r = 0; r < n && status == LLMRT_OK; r++) {
        const llmrt_node *norm = &g->nodes[r];
        if ((norm->op != LLMRT_OP_RMSNORM && norm->op != LLMRT_OP_LAYERNORM) || norm->is_output || norm->ndim < 1)
            continue;
        const int64_t K = norm->dims[norm->ndim - 1];
        const llmrt_value gain = norm->inputs[1];
        const llmrt_value bias = norm->op == LLMRT_OP_LAYERNORM && norm->num_inputs > 2 ? norm->inputs[2] : -1;
        if (!own_weight(g, uses, gain, 1, K) || (bias >= 0 && !own_weight(g, uses, bias, 1, K))) continue;
        float *amax = calloc((size_t)K, sizeof *amax);
        smooth_group *group = &s->groups[s->count];
        *group = (smooth_group){.gain = gain, .bias = bias, .offset = norm->op == LLMRT_OP_RMSNORM ? norm->fattr[1] : 0,
                                .K = K, .factors = malloc((size_t)K * sizeof(float))};
        if (!amax || !group->factors) {
            free(amax), free(group->factors);
            status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "smoothing: out of memory");
            break;
        }
        const int32_t count = group_readers(g, uses, calib, r, K, linears, amax);
        if (count > 0) status = make_factors(g, linears, count, amax, alpha, read, read_ctx, group);
        free(amax);
        if (count == 0 || status != LLMRT_OK) {
            free(group->factors);
            continue;
        }
        s->group_of[gain] = s->count;
        if (bias >= 0) s->group_of[bias] = s->count;
        for (int32_t i = 0; i < count; i++) s->group_of[linears[i]] = s->count;
        s->linears += count;
        s->count++;
    }
    free(uses), free(linears);
    if (status != LLMRT_OK || s->count == 0) {
        llmrt_smoothing_free(s);
        return status;
    }
    *out = s;
    return LLMRT_OK;
}

int llmrt_smoothing_touches(const llmrt_smoothing *s, llmrt_value v) {
    return s && v >= 0 && v < s->num_nodes && s->group_of[v] >= 0;
}

void llmrt_smoothing_apply(const llmrt_smoothing *s, const llmrt_graph *g, llmrt_value v, float *values) {
    const smooth_group *group = &s->groups[s->group_of[v]];
    const float *f = group->factors;
    const int64_t K = group->K;
    if (v == group->gain) {
        for (int64_t k = 0; k < K; k++) values[k] = (values[k] + group->offset) / f[k] - group->offset;
    } else if (v == group->bias) {
        for (int64_t k = 0; k < K; k++) values[k] /= f[k];
    } else {
        const int64_t N = g->nodes[v].dims[0];
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) values[n * K + k] *= f[k];
    }
}

void llmrt_smoothing_counts(const llmrt_smoothing *s, int32_t *groups, int32_t *linears) {
    *groups = s ? s->count : 0;
    *linears = s ? s->linears : 0;
}

void llmrt_smoothing_free(llmrt_smoothing *s) {
    if (!s) return;
    for (int32_t i = 0; s->groups && i < s->count; i++) free(s->groups[i].factors);
    free(s->groups);
    free(s->group_of);
    free(s);
}
