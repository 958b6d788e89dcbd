/* Weight-only quantization: which weights are stored quantized, and how
 * their bytes are made (round-to-nearest from float weights, or the packed
 * codes of an AWQ / GPTQ checkpoint).
 *
 * Only the weights of LINEARs are quantized, and not the LM head's (the
 * output LINEAR), nor a weight any other op also reads (a tied embedding
 * table is gathered): the head and the embeddings stay 16-bit, as in AWQ and
 * GPTQ checkpoints. A quantized weight node keeps its [N, K] shape and
 * carries iattr[1] = group size (K for per channel), iattr[2] = 1 when
 * asymmetric, iattr[3] = 1 when its inputs are stored permuted (GPTQ
 * act-order).
 *
 * A tensor-parallel shard is quantized as the full matrix is (TP=1's
 * codes and scales, cut at binding): a shard of rows keeps the group size;
 * a shard of inputs (row-parallel) must hold whole groups, and with per
 * channel scales it holds one group, the full row's scale.
 *
 * The 8-bit weight-and-activation dtypes (fp8, w8a8; core/quant8.h) take
 * the same weights; their node carries iattr[1] = 1 for one scale per
 * matrix and fattr[0] = the static input scale (0: per token), which
 * binding writes into the blob's header. */
#include <math.h>
#include <stdlib.h>

#include "compiler/calibration.h"
#include "compiler/passes.h"
#include "compiler/quantize.h"
#include "core/dtype.h"
#include "core/log.h"
#include "core/quant.h"
#include "core/quant8.h"

/* Annotates 8-bit weight node `w`: its scale granularity and, for static
 * activations, input_scale = the calibrated max |x| / 448. */
static llmrt_status mark_q8(llmrt_node *w, const llmrt_pass_context *ctx) {
    w->iattr[1] = ctx->quant_per_tensor ? 1 : 0;
    w->iattr[2] = w->iattr[3] = 0;
    w->fattr[0] = 0;
    if (!ctx->quant_static_input) return LLMRT_OK;
    if (ctx->quant_dtype != LLMRT_DTYPE_FP8_W8A8)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "static activation scales are for fp8, not %s",
                           llmrt_dtype_name(ctx->quant_dtype));
    if (!ctx->calibration)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "static activation scales need calibration: give --calib FILE (or dynamic scales)");
    const llmrt_calib_entry *e = llmrt_calibration_find(ctx->calibration, w->name);
    if (!e) return llmrt_error(LLMRT_ERR_NOT_FOUND, "calibration has no entry for '%s'", w->name);
    if (e->cols != w->dims[1] || !isfinite(e->input_amax) || e->input_amax < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "calibration entry of '%s': %lld inputs, max |x| %g (the weight has %lld inputs)", w->name,
                           (long long)e->cols, (double)e->input_amax, (long long)w->dims[1]);
    /* an input never seen non-zero: any scale quantizes it exactly */
    w->fattr[0] = e->input_amax > 0 ? e->input_amax / LLMRT_FP8_E4M3_MAX : 1.0f;
    return LLMRT_OK;
}

/* Whether 8-bit weight w's LINEAR quantizes its input with one static
 * scale: calibrated (fattr[0]), or every group of a compressed-tensors
 * checkpoint has an input_scale. */
static int q8_static_input(const llmrt_node *w, const llmrt_pass_context *ctx) {
    if (w->fattr[0] > 0) return 1;
    const llmrt_quant_config *q = ctx->prequantized;
    return q && q->method == LLMRT_QUANT_METHOD_COMPRESSED_TENSORS && q->ct_static_groups > 0 &&
           q->ct_dynamic_groups == 0;
}

int64_t llmrt_quant_full_group(const llmrt_quant_config *prequantized, const llmrt_checkpoint *checkpoint,
                               int64_t requested, const llmrt_node *w) {
    const int64_t K = w->dims[1];
    const int64_t group =
        prequantized && llmrt_quant_checkpoint_has(checkpoint, w->name) ? prequantized->group_size : requested;
    return group > 0 && group < K ? group : K;
}

/* Shard w's group size (iattr[1]) from the full matrix's, which has
 * full_cols inputs: a shard of inputs must start and end on group
 * boundaries, or its groups would mix two of TP=1's scales. */
static llmrt_status shard_group(llmrt_node *w, int64_t full_group, int64_t full_cols) {
    const int64_t K = w->dims[1];
    const int split_inputs = w->iattr[6] > 1 && w->iattr[4] == 2;
    if (!split_inputs || full_group >= full_cols) {
        w->iattr[1] = full_group < K ? full_group : K;
        return LLMRT_OK;
    }
    int aligned = K % full_group == 0;
    for (int32_t i = 0; aligned && i < w->num_segments; i++)
        aligned = w->segments[i][0] % full_group == 0 && w->segments[i][1] % full_group == 0;
    if (!aligned)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "'%s': tensor parallelism over %d ranks gives each rank %lld of its %lld inputs, not a "
                           "multiple of the quantization group size %lld (use a group size dividing %lld, or per "
                           "channel scales)", w->name, (int)w->iattr[6], (long long)K, (long long)full_cols,
                           (long long)full_group, (long long)K);
    w->iattr[1] = full_group;
    return LLMRT_OK;
}

llmrt_status llmrt_pass_quantize_weights(llmrt_graph *g, llmrt_pass_context *ctx) {
    if (ctx->quant_dtype == LLMRT_DTYPE_INVALID && !ctx->prequantized) return LLMRT_OK;
    int32_t *uses = llmrt_graph_use_counts(g);
    int32_t *linear_uses = calloc((size_t)g->num_nodes + 1, sizeof *linear_uses);
    if (!uses || !linear_uses) {
        free(uses), free(linear_uses);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    /* not quantized: the LM head, the LINEAR an output comes from through
     * elementwise ops only (a final soft-cap: tanh(x / c) · c) and the moves
     * of parallel plans (a vocab-parallel head's gather and permute, the
     * last pipeline stage's sends), ... */
    int32_t *head = calloc((size_t)g->num_nodes + 1, sizeof *head);
    if (!head) {
        free(uses), free(linear_uses);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int32_t i = 0; i < g->num_nodes; i++) {
        if (!g->nodes[i].is_output) continue;
        int32_t v = i;
        while (v >= 0 && (g->nodes[v].op == LLMRT_OP_MUL || g->nodes[v].op == LLMRT_OP_DIV ||
                          g->nodes[v].op == LLMRT_OP_TANH || g->nodes[v].op == LLMRT_OP_CAST ||
                          g->nodes[v].op == LLMRT_OP_SEND || g->nodes[v].op == LLMRT_OP_ALL_GATHER ||
                          g->nodes[v].op == LLMRT_OP_PERMUTE || g->nodes[v].op == LLMRT_OP_VIEW))
            v = g->nodes[v].inputs[0];
        if (v >= 0 && g->nodes[v].op == LLMRT_OP_LINEAR) head[v] = 1;
    }
    /* and a MoE router: a flipped expert choice costs more than its bytes */
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == LLMRT_OP_MOE && g->nodes[i].inputs[1] >= 0) head[g->nodes[i].inputs[1]] = 1;
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == LLMRT_OP_LINEAR && !head[i]) linear_uses[g->nodes[i].inputs[1]]++;
    free(head);
    llmrt_status s = LLMRT_OK;
    for (int32_t i = 0; i < g->num_nodes && s == LLMRT_OK; i++) {
        llmrt_node *w = &g->nodes[i];
        if (w->op != LLMRT_OP_WEIGHT || w->ndim != 2 || linear_uses[i] == 0 || linear_uses[i] != uses[i] ||
            llmrt_dtype_is_packed(w->dtype))
            continue;
        llmrt_dtype dtype = ctx->quant_dtype;
        /* a shard of inputs: the full matrix's K decides groups and act-order */
        const int64_t full_cols = w->iattr[6] > 1 && w->iattr[4] == 2
                                      ? (w->num_segments ? w->iattr[7] : w->dims[1] * w->iattr[6])
                                      : w->dims[1];
        int32_t asymmetric = ctx->quant_asymmetric, permuted = 0;
        if (ctx->prequantized) {
            if (!llmrt_quant_checkpoint_has(ctx->checkpoint, w->name)) continue;
            if (w->iattr[0])
                s = llmrt_error(LLMRT_ERR_UNSUPPORTED, "'%s': packed weights of a transposed (Conv1D) layer", w->name);
            dtype = llmrt_quant_config_dtype(ctx->prequantized);
            asymmetric = ctx->prequantized->method != LLMRT_QUANT_METHOD_COMPRESSED_TENSORS; /* fp8: symmetric */
            permuted = llmrt_quant_checkpoint_permuted(ctx->checkpoint, ctx->prequantized, w->name, full_cols);
            if (permuted && full_cols != w->dims[1])
                s = llmrt_error(LLMRT_ERR_UNSUPPORTED, "'%s' holds act-order (permuted) codes: its inputs cannot be "
                                "split across %d tensor-parallel ranks", w->name, (int)w->iattr[6]);
        }
        w->dtype = dtype;
        if (llmrt_dtype_is_q8(dtype)) {
            s = mark_q8(w, ctx);
            if (s == LLMRT_OK && full_cols != w->dims[1] && !q8_static_input(w, ctx))
                s = llmrt_error(LLMRT_ERR_UNSUPPORTED,
                                "'%s': %s with per-token activation scales cannot split its %lld inputs over %d "
                                "tensor-parallel ranks (each rank would scale a token by the max of its own "
                                "inputs, not of all of them, unlike one rank); static activation scales (a "
                                "compressed-tensors FP8 checkpoint with input_scale) split exactly",
                                w->name, llmrt_dtype_name(dtype), (long long)full_cols, (int)w->iattr[6]);
            ctx->rewrites++;
            continue;
        }
        llmrt_node full = *w;
        full.dims[1] = full_cols;
        if (s == LLMRT_OK)
            s = shard_group(w, llmrt_quant_full_group(ctx->prequantized, ctx->checkpoint, ctx->quant_group_size, &full),
                            full_cols);
        w->iattr[2] = asymmetric;
        w->iattr[3] = permuted;
        ctx->rewrites++;
    }
    free(uses), free(linear_uses);
    return s;
}

llmrt_status llmrt_quantize_matrix(const llmrt_node *w, const float *values, void *blob) {
    if (llmrt_dtype_is_q8(w->dtype)) {
        llmrt_q8weight_header layout;
        LLMRT_TRY(llmrt_q8weight_layout(w->dtype, w->dims[0], w->dims[1], &layout));
        if (w->fattr[0] > 0) {
            layout.flags |= LLMRT_Q8_STATIC_INPUT;
            layout.input_scale = w->fattr[0];
        }
        llmrt_q8weight_init(blob, &layout);
        llmrt_q8_quantize_matrix(blob, values, w->iattr[1] != 0);
        return LLMRT_OK;
    }
    if (w->iattr[3])
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "'%s' holds act-order (permuted) codes: rebuild the engine from its "
                           "GPTQ checkpoint", w->name);
    llmrt_qweight_header layout;
    LLMRT_TRY(llmrt_qweight_layout(w->dtype, w->dims[0], w->dims[1], w->iattr[1], 0, &layout));
    llmrt_qweight_init(blob, &layout);
    const int64_t N = w->dims[0], K = w->dims[1];
    const int asymmetric = w->iattr[2] != 0;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) llmrt_quantize_row(blob, n, values + n * K, asymmetric);
    return LLMRT_OK;
}
