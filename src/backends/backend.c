#include "backends/backend.h"

#include "comm/comm.h"

#include <stdlib.h>
#include <string.h>

llmrt_status llmrt_backend_lookup(const char *name, const llmrt_backend_ops **out) {
    *out = NULL;
    if (strcmp(name, "cpu") == 0) {
        *out = &llmrt_cpu_backend_ops;
        return LLMRT_OK;
    }
    if (strcmp(name, "cuda") == 0) {
#ifdef LLMRT_HAVE_CUDA
        *out = &llmrt_cuda_backend_ops;
        return LLMRT_OK;
#else
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "this llmrt was built without the CUDA backend");
#endif
    }
    return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "unknown backend '%s' (cpu, cuda)", name);
}

void *llmrt_backend_host_alloc(const llmrt_backend *backend, size_t bytes) {
    if (backend->ops->host_alloc) return backend->ops->host_alloc(backend->state, bytes);
    return malloc(bytes);
}

void llmrt_backend_host_free(const llmrt_backend *backend, void *ptr) {
    if (!ptr) return;
    if (backend->ops->host_free) backend->ops->host_free(backend->state, ptr);
    else free(ptr);
}

int32_t llmrt_plan_tp_ranks(const llmrt_plan *plan) {
    int32_t ranks = 1;
    for (int32_t i = 0; i < plan->graph->num_nodes; i++) {
        const llmrt_node *n = &plan->graph->nodes[i];
        if ((n->op == LLMRT_OP_ALL_REDUCE || n->op == LLMRT_OP_ALL_GATHER) && n->iattr[0] > ranks)
            ranks = (int32_t)n->iattr[0];
        if ((n->op == LLMRT_OP_SEND || n->op == LLMRT_OP_RECV) && n->iattr[1] > ranks) ranks = (int32_t)n->iattr[1];
    }
    return ranks;
}

int llmrt_node_is_logits_handback(const llmrt_node *n) {
    return (n->op == LLMRT_OP_SEND || n->op == LLMRT_OP_RECV) && n->ndim == 2 && n->dims[0] == LLMRT_DIM_LOGITS;
}

int32_t llmrt_plan_tp_group(const llmrt_plan *plan) {
    int32_t ranks = 1;
    for (int32_t i = 0; i < plan->graph->num_nodes; i++) {
        const llmrt_node *n = &plan->graph->nodes[i];
        if ((n->op == LLMRT_OP_ALL_REDUCE || n->op == LLMRT_OP_ALL_GATHER) && n->iattr[0] > ranks)
            ranks = (int32_t)n->iattr[0];
    }
    return ranks;
}

llmrt_status llmrt_backend_check_comm(const llmrt_plan *plan, const struct llmrt_comm *comm) {
    const int32_t ranks = llmrt_plan_tp_ranks(plan);
    if (ranks == 1) return LLMRT_OK;
    if (!comm && !llmrt_comm_have_mpi())
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "this engine is split over %d ranks, which needs MPI, and this llmrt was built without it "
                           "(Debian: apt-get install openmpi-bin libopenmpi-dev, then rebuild)",
                           (int)ranks);
    if (!comm)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "this engine is split over %d ranks: run it under mpirun -np %d", (int)ranks,
                           (int)ranks);
    if (comm->size != ranks)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "this engine is split over %d ranks but %d were launched (mpirun -np %d)",
                           (int)ranks, (int)comm->size, (int)ranks);
    return LLMRT_OK;
}
