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
 * act-order). */
#include <stdlib.h>

#include "compiler/passes.h"
#include "compiler/quantize.h"
#include "core/log.h"
#include "core/quant.h"

llmrt_status llmrt_pass_quantize_weights(llmrt_graph *g, llmrt_pass_context *ctx) {
    if (ctx->quant_dtype == LLMRT_DTYPE_INVALID && !ctx->prequantized) return LLMRT_OK;
    int32_t *uses = llmrt_graph_use_counts(g);
    int32_t *linear_uses = calloc((size_t)g->num_nodes + 1, sizeof *linear_uses);
    if (!uses || !linear_uses) {
        free(uses), free(linear_uses);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == LLMRT_OP_LINEAR && !g->nodes[i].is_output) linear_uses[g->nodes[i].inputs[1]]++;
    llmrt_status s = LLMRT_OK;
    for (int32_t i = 0; i < g->num_nodes && s == LLMRT_OK; i++) {
        llmrt_node *w = &g->nodes[i];
        if (w->op != LLMRT_OP_WEIGHT || w->ndim != 2 || linear_uses[i] == 0 || linear_uses[i] != uses[i] ||
            llmrt_dtype_is_quantized(w->dtype))
            continue;
        llmrt_dtype dtype = ctx->quant_dtype;
        int64_t group = ctx->quant_group_size;
        int32_t asymmetric = ctx->quant_asymmetric, permuted = 0;
        if (ctx->prequantized) {
            if (!llmrt_quant_checkpoint_has(ctx->checkpoint, w->name)) continue;
            if (w->iattr[0])
                s = llmrt_error(LLMRT_ERR_UNSUPPORTED, "'%s': packed weights of a transposed (Conv1D) layer", w->name);
            dtype = llmrt_quant_config_dtype(ctx->prequantized);
            group = ctx->prequantized->group_size;
            asymmetric = ctx->prequantized->method != LLMRT_QUANT_METHOD_COMPRESSED_TENSORS; /* fp8: symmetric */
            permuted = llmrt_quant_checkpoint_permuted(ctx->checkpoint, ctx->prequantized, w->name, w->dims[1]);
        }
        const int64_t K = w->dims[1];
        w->dtype = dtype;
        w->iattr[1] = group > 0 && group < K ? group : K;
        w->iattr[2] = asymmetric;
        w->iattr[3] = permuted;
        ctx->rewrites++;
    }
    free(uses), free(linear_uses);
    return s;
}

llmrt_status llmrt_quantize_matrix(const llmrt_node *w, const float *values, void *blob) {
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
