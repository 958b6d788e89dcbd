/* The CUDA backend's LINEAR nodes whose weight is an 8-bit blob (fp8,
 * w8a8): their blobs checked and the shared scratch made at create, each
 * node run through cuda_q8linear_forward (cuda_q8linear.c). Apart from
 * that file so that tests of the LINEAR need none of the backend. */
#include <string.h>

#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_q8.h"

static const llmrt_plan_weight *q8_weight_of(const cuda_state *st, llmrt_value wv) {
    const int32_t slot = st->graph->nodes[wv].weight_slot;
    if (slot < 0 || slot >= st->plan->num_weights || !llmrt_dtype_is_q8(st->plan->weights[slot].dtype)) return NULL;
    return &st->plan->weights[slot];
}

static const void *host_bytes(const llmrt_plan_weight *w) { return w->data ? w->data : w->owned_data; }

llmrt_status cuda_q8linear_prepare(cuda_state *st) {
    int64_t max_k = 0, max_n = 0;
    for (int32_t v = 0; v < st->graph->num_nodes; v++) {
        if (st->graph->nodes[v].op != LLMRT_OP_WEIGHT) continue;
        const llmrt_plan_weight *w = q8_weight_of(st, v);
        if (!w) continue;
        const llmrt_node *n = &st->graph->nodes[v]; /* W [N, K], as the LINEAR reads it */
        if (n->ndim != 2)
            return llmrt_error(LLMRT_ERR_FORMAT, "cuda: 8-bit weight '%s' is not a matrix", w->name);
        /* the kernels trust the header and scales from here on */
        LLMRT_TRY(llmrt_q8weight_check(host_bytes(w), w->nbytes, w->dtype, n->dims[0], n->dims[1], w->name));
        if (n->dims[0] > max_n) max_n = n->dims[0];
        if (n->dims[1] > max_k) max_k = n->dims[1];
    }
    if (!max_k) return LLMRT_OK;
    return cuda_q8linear_create(&st->q8, st->gemm, st->plan->max_num_tokens, max_k, max_n, 0);
}

void cuda_q8linear_free(cuda_state *st) {
    cuda_q8linear_destroy(st->q8);
    st->q8 = NULL;
}

llmrt_status cuda_q8linear_run(cuda_state *st, llmrt_value v, llmrt_value xv, llmrt_value wv, llmrt_value bv) {
    const llmrt_node *n = &st->graph->nodes[v], *x = &st->graph->nodes[xv];
    const llmrt_plan_weight *w = q8_weight_of(st, wv);
    if (!w || !st->q8)
        return llmrt_error(LLMRT_ERR_INTERNAL, "cuda: linear node %d \"%s\": its 8-bit weight was not prepared", (int)v,
                           n->name ? n->name : "");
    llmrt_q8weight_header h;
    memcpy(&h, host_bytes(w), sizeof h); /* checked at prepare; the mapped file may leave it unaligned */
    const int64_t K = cuda_value_dim(st, xv, x->ndim - 1);
    if (K != h.cols || K <= 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: linear node %d \"%s\": x has %lld inputs, W %lld", (int)v,
                           n->name ? n->name : "", (long long)K, (long long)h.cols);
    if (bv >= 0 && cuda_value_type(st, bv) != LLMRT_DTYPE_F32)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cuda: linear node %d: an 8-bit weight takes an f32 bias", (int)v);
    const float *bias = bv >= 0 ? (const float *)st->node_ptr[bv] : NULL;
    const int64_t M = cuda_value_numel(st, xv) / K;
    const llmrt_status s = cuda_q8linear_forward(st->q8, st->node_ptr[v], cuda_value_type(st, v), st->node_ptr[xv],
                                                 cuda_value_type(st, xv), M, st->node_ptr[wv], &h, bias, st->pdl,
                                                 st->stream, CUDA_Q8_PATH_AUTO, NULL);
    return s == LLMRT_OK ? s : llmrt_error_context(s, "cuda: linear node %d \"%s\"", (int)v, n->name ? n->name : "");
}
