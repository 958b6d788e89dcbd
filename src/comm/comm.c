/* The communicator's checked entry points: they refuse a broken
 * communicator and put the collective and rank in front of every error, so
 * "all_reduce_sum on rank 1 of 2: timed out after 60000 ms ..." is what a
 * user sees, whichever implementation failed. */
#include "comm/comm.h"

#include <stdlib.h>
#include <string.h>

int llmrt_comm_launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

int llmrt_comm_devices_distinct(const char (*ids)[LLMRT_COMM_DEVICE_ID_BYTES], int32_t count) {
    for (int32_t a = 0; a < count; a++)
        for (int32_t b = a + 1; b < count; b++)
            if (strncmp(ids[a], ids[b], LLMRT_COMM_DEVICE_ID_BYTES) == 0) return 0;
    return 1;
}

void llmrt_comm_free(llmrt_comm *comm) {
    if (!comm) return;
    if (comm->ops && comm->ops->destroy) comm->ops->destroy(comm);
    free(comm);
}

static llmrt_status check_usable(const llmrt_comm *comm, const char *what) {
    if (!comm) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: no communicator", what);
    if (comm->broken)
        return llmrt_error(LLMRT_ERR_BACKEND, "%s on rank %d of %d: the communicator failed earlier", what,
                           (int)comm->rank, (int)comm->size);
    return LLMRT_OK;
}

static llmrt_status finish(llmrt_comm *comm, llmrt_status status, const char *what) {
    if (status == LLMRT_OK) return LLMRT_OK;
    comm->broken = 1;
    return llmrt_error_context(status, "%s on rank %d of %d (%s)", what, (int)comm->rank, (int)comm->size,
                               comm->ops->name);
}

static llmrt_status check_peer(const llmrt_comm *comm, int32_t peer, const char *what) {
    if (peer < 0 || peer >= comm->size)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: rank %d is not in 0..%d", what, (int)peer,
                           (int)comm->size - 1);
    return LLMRT_OK;
}

llmrt_status llmrt_comm_all_reduce_sum(llmrt_comm *comm, void *buf, int64_t count, llmrt_dtype dtype) {
    LLMRT_TRY(check_usable(comm, "all_reduce_sum"));
    if (comm->size == 1 || count == 0) return LLMRT_OK;
    return finish(comm, comm->ops->all_reduce_sum(comm, buf, count, dtype), "all_reduce_sum");
}

llmrt_status llmrt_comm_all_gather(llmrt_comm *comm, const void *send, void *recv, int64_t count,
                                   llmrt_dtype dtype) {
    LLMRT_TRY(check_usable(comm, "all_gather"));
    return finish(comm, comm->ops->all_gather(comm, send, recv, count, dtype), "all_gather");
}

llmrt_status llmrt_comm_broadcast(llmrt_comm *comm, void *buf, int64_t bytes, int32_t root) {
    LLMRT_TRY(check_usable(comm, "broadcast"));
    LLMRT_TRY(check_peer(comm, root, "broadcast"));
    if (comm->size == 1 || bytes == 0) return LLMRT_OK;
    return finish(comm, comm->ops->broadcast(comm, buf, bytes, root), "broadcast");
}

llmrt_status llmrt_comm_send(llmrt_comm *comm, const void *buf, int64_t bytes, int32_t peer) {
    LLMRT_TRY(check_usable(comm, "send"));
    LLMRT_TRY(check_peer(comm, peer, "send"));
    return finish(comm, comm->ops->send(comm, buf, bytes, peer), "send");
}

llmrt_status llmrt_comm_recv(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer) {
    LLMRT_TRY(check_usable(comm, "recv"));
    LLMRT_TRY(check_peer(comm, peer, "recv"));
    return finish(comm, comm->ops->recv(comm, buf, bytes, peer), "recv");
}

llmrt_status llmrt_comm_recv_start(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer, void **request) {
    *request = NULL;
    LLMRT_TRY(check_usable(comm, "recv_start"));
    LLMRT_TRY(check_peer(comm, peer, "recv_start"));
    if (!comm->ops->recv_start)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "the %s communicator has no posted receives", comm->ops->name);
    return finish(comm, comm->ops->recv_start(comm, buf, bytes, peer, request), "recv_start");
}

llmrt_status llmrt_comm_recv_finish(llmrt_comm *comm, void *request) {
    if (!request) return llmrt_error(LLMRT_ERR_INTERNAL, "recv_finish: no request");
    if (comm->broken) {
        llmrt_comm_recv_cancel(comm, request);
        return check_usable(comm, "recv_finish");
    }
    return finish(comm, comm->ops->recv_finish(comm, request), "recv_finish");
}

void llmrt_comm_recv_cancel(llmrt_comm *comm, void *request) {
    if (request && comm->ops->recv_cancel) comm->ops->recv_cancel(comm, request);
}

llmrt_status llmrt_comm_barrier(llmrt_comm *comm) {
    LLMRT_TRY(check_usable(comm, "barrier"));
    if (comm->size == 1) return LLMRT_OK;
    return finish(comm, comm->ops->barrier(comm), "barrier");
}

#ifndef LLMRT_HAVE_NCCL
llmrt_status llmrt_comm_create_nccl(llmrt_comm *bootstrap, int32_t device, llmrt_comm **out) {
    *out = NULL;
    return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                       "this llmrt was built without NCCL (it needs the CUDA backend and nccl.h); "
                       "CUDA ranks can use the MPI communicator");
}
#endif
