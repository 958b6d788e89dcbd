/* ALL_REDUCE and ALL_GATHER nodes (tensor parallelism) and SEND / RECV
 * nodes (pipeline stages) on CUDA ranks. With the NCCL
 * communicator the device buffers go to NCCL directly; with the MPI one
 * they are staged through pinned host memory (converted to f32 for the
 * sum, since MPI has no f16/bf16 sum), which is what lets two ranks share
 * one GPU in tests. Either way the compute stream is drained first: the
 * communicator runs on its own stream (NCCL) or on the host (MPI), and a
 * plan with collectives is never captured into a CUDA graph. */
#include <string.h>

#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_common.h"
#include "comm/comm.h"
#include "core/dtype.h"

static int uses_nccl(const cuda_state *st) { return strcmp(st->comm->ops->name, "nccl") == 0; }

llmrt_status cuda_collectives_prepare(cuda_state *st, struct llmrt_comm *comm, struct llmrt_comm *tp_comm) {
    LLMRT_TRY(llmrt_backend_check_comm(st->plan, comm));
    st->comm = llmrt_plan_tp_ranks(st->plan) > 1 ? comm : NULL;
    st->tp_comm = tp_comm ? tp_comm : st->comm;
    if (!st->comm || uses_nccl(st)) return LLMRT_OK;
    size_t most = 0; /* elements of the largest collective output at max_num_tokens */
    for (int32_t i = 0; i < st->graph->num_nodes; i++) {
        const llmrt_node *n = &st->graph->nodes[i];
        if (n->op != LLMRT_OP_ALL_REDUCE && n->op != LLMRT_OP_ALL_GATHER && n->op != LLMRT_OP_SEND &&
            n->op != LLMRT_OP_RECV)
            continue;
        const size_t count = (size_t)llmrt_node_numel(n, st->plan->max_num_tokens, st->plan->max_num_tokens);
        if (count > most) most = count;
    }
    st->comm_capacity = most;
    if (cudaMallocHost((void **)&st->comm_f32, most * sizeof(float) + 16) != cudaSuccess ||
        cudaMallocHost(&st->comm_raw, most * sizeof(float) + 16) != cudaSuccess)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate %zu bytes of host staging for MPI",
                           2 * most * sizeof(float));
    return LLMRT_OK;
}

void cuda_collectives_free(cuda_state *st) {
    if (st->comm_f32) cudaFreeHost(st->comm_f32);
    if (st->comm_raw) cudaFreeHost(st->comm_raw);
    st->comm_f32 = NULL;
    st->comm_raw = NULL;
}

static llmrt_status staged_all_reduce(cuda_state *st, void *y, llmrt_dtype type, int64_t count) {
    const size_t bytes = (size_t)count * llmrt_dtype_size(type);
    LLMRT_CUDA_TRY(cudaMemcpyAsync(st->comm_raw, y, bytes, cudaMemcpyDeviceToHost, st->stream), "staging copy");
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "staging copy");
    float *sum = type == LLMRT_DTYPE_F32 ? (float *)st->comm_raw : st->comm_f32;
    if (type != LLMRT_DTYPE_F32) llmrt_convert_to_f32(sum, st->comm_raw, type, (size_t)count);
    LLMRT_TRY(llmrt_comm_all_reduce_sum(st->tp_comm, sum, count, LLMRT_DTYPE_F32));
    if (type != LLMRT_DTYPE_F32) llmrt_convert_from_f32(st->comm_raw, type, sum, (size_t)count);
    LLMRT_CUDA_TRY(cudaMemcpyAsync(y, st->comm_raw, bytes, cudaMemcpyHostToDevice, st->stream), "staging copy");
    return LLMRT_OK;
}

static llmrt_status staged_all_gather(cuda_state *st, const void *x, void *y, llmrt_dtype type, int64_t count) {
    const size_t bytes = (size_t)count * llmrt_dtype_size(type);
    LLMRT_CUDA_TRY(cudaMemcpyAsync(st->comm_raw, x, bytes, cudaMemcpyDeviceToHost, st->stream), "staging copy");
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "staging copy");
    LLMRT_TRY(llmrt_comm_all_gather(st->tp_comm, st->comm_raw, st->comm_f32, count, type));
    LLMRT_CUDA_TRY(cudaMemcpyAsync(y, st->comm_f32, bytes * (size_t)st->tp_comm->size, cudaMemcpyHostToDevice,
                                   st->stream),
                   "staging copy");
    return LLMRT_OK;
}

/* SEND: y = x, then y to the peer; RECV: y from the peer. */
static llmrt_status point_to_point(cuda_state *st, const llmrt_node *n, const void *x, void *y, size_t bytes) {
    const int32_t peer = (int32_t)n->iattr[0];
    if (n->op == LLMRT_OP_SEND && y != x)
        LLMRT_CUDA_TRY(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, st->stream), "send copy");
    if (st->logits_by_caller && llmrt_node_is_logits_handback(n)) return LLMRT_OK;
    if (uses_nccl(st)) {
        LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), llmrt_op_name(n->op));
        return n->op == LLMRT_OP_SEND ? llmrt_comm_send(st->comm, y, (int64_t)bytes, peer)
                                      : llmrt_comm_recv(st->comm, y, (int64_t)bytes, peer);
    }
    if (n->op == LLMRT_OP_SEND) {
        LLMRT_CUDA_TRY(cudaMemcpyAsync(st->comm_raw, y, bytes, cudaMemcpyDeviceToHost, st->stream), "staging copy");
        LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "staging copy");
        return llmrt_comm_send(st->comm, st->comm_raw, (int64_t)bytes, peer);
    }
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "recv"); /* comm_raw may still feed an earlier copy */
    LLMRT_TRY(llmrt_comm_recv(st->comm, st->comm_raw, (int64_t)bytes, peer));
    LLMRT_CUDA_TRY(cudaMemcpyAsync(y, st->comm_raw, bytes, cudaMemcpyHostToDevice, st->stream), "staging copy");
    return LLMRT_OK;
}

llmrt_status cuda_collective_run(cuda_state *st, llmrt_value v) {
    const llmrt_node *n = &st->graph->nodes[v];
    if (!st->comm) return llmrt_error(LLMRT_ERR_INTERNAL, "cuda: %s without a communicator", llmrt_op_name(n->op));
    const llmrt_dtype type = cuda_value_type(st, v);
    void *y = st->node_ptr[v];
    const void *x = st->node_ptr[n->inputs[0]];
    const int64_t out_count = cuda_value_numel(st, v);
    if (n->op == LLMRT_OP_SEND || n->op == LLMRT_OP_RECV)
        return point_to_point(st, n, x, y, (size_t)out_count * llmrt_dtype_size(type));
    if (n->op == LLMRT_OP_ALL_REDUCE) {
        if (y != x)
            LLMRT_CUDA_TRY(cudaMemcpyAsync(y, x, (size_t)out_count * llmrt_dtype_size(type), cudaMemcpyDeviceToDevice,
                                           st->stream),
                           "all_reduce copy");
        if (!uses_nccl(st)) return staged_all_reduce(st, y, type, out_count);
        LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "all_reduce");
        return llmrt_comm_all_reduce_sum(st->tp_comm, y, out_count, type);
    }
    const int64_t in_count = out_count / st->tp_comm->size;
    if (!uses_nccl(st)) return staged_all_gather(st, x, y, type, in_count);
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "all_gather");
    return llmrt_comm_all_gather(st->tp_comm, x, y, in_count, type);
}
