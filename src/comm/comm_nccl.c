/* The NCCL communicator (GPU buffers). The unique id travels over the
 * bootstrap (MPI) communicator from rank 0. The communicator is
 * non-blocking (config.blocking = 0) so that init and every collective can
 * be polled against the timeout: ncclCommGetAsyncError reports a peer's
 * failure, and on a timeout ncclCommAbort tears the communicator down
 * instead of leaving a kernel spinning on a dead rank.
 *
 * Collectives run on the communicator's own stream and are waited for
 * before returning, so a caller sees them as ordered with its host code;
 * a backend that wants them on its compute stream records an event first
 * (nothing here needs that yet: one collective per layer). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#endif
#include "comm/comm.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct nccl_state {
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
} nccl_state;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static llmrt_status nccl_failed(ncclResult_t rc, const char *call) {
    return llmrt_error(LLMRT_ERR_BACKEND, "%s failed: %s", call, ncclGetErrorString(rc));
}

/* Waits until the communicator is idle (init) or the stream drained
 * (collectives), a peer failed, or the timeout passed. */
static llmrt_status wait_bounded(llmrt_comm *comm, int wait_stream, const char *call) {
    nccl_state *state = comm->state;
    double deadline = now_ms() + comm->timeout_ms;
    for (;;) {
        ncclResult_t async = ncclSuccess;
        ncclResult_t rc = ncclCommGetAsyncError(state->comm, &async);
        if (rc != ncclSuccess) return nccl_failed(rc, call);
        if (async != ncclSuccess && async != ncclInProgress) {
            ncclCommAbort(state->comm);
            state->comm = NULL;
            return nccl_failed(async, call);
        }
        if (async == ncclSuccess) {
            if (!wait_stream) return LLMRT_OK;
            cudaError_t status = cudaStreamQuery(state->stream);
            if (status == cudaSuccess) return LLMRT_OK;
            if (status != cudaErrorNotReady)
                return llmrt_error(LLMRT_ERR_BACKEND, "%s: %s", call, cudaGetErrorString(status));
        }
        if (now_ms() > deadline) {
            ncclCommAbort(state->comm);
            state->comm = NULL;
            return llmrt_error(LLMRT_ERR_BACKEND,
                               "%s timed out after %d ms waiting for the other ranks (did a rank die or hang?)",
                               call, (int)comm->timeout_ms);
        }
        struct timespec pause = {0, 20000}; /* 20 µs */
        nanosleep(&pause, NULL);
    }
}

static llmrt_status nccl_type(llmrt_dtype dtype, ncclDataType_t *out) {
    switch (dtype) {
    case LLMRT_DTYPE_F32: *out = ncclFloat32; return LLMRT_OK;
    case LLMRT_DTYPE_F16: *out = ncclFloat16; return LLMRT_OK;
    case LLMRT_DTYPE_BF16: *out = ncclBfloat16; return LLMRT_OK;
    case LLMRT_DTYPE_I32: *out = ncclInt32; return LLMRT_OK;
    default: return llmrt_error(LLMRT_ERR_UNSUPPORTED, "NCCL collective on %s", llmrt_dtype_name(dtype));
    }
}

static llmrt_status launched(llmrt_comm *comm, ncclResult_t rc, const char *call) {
    if (rc != ncclSuccess && rc != ncclInProgress) return nccl_failed(rc, call);
    return wait_bounded(comm, 1, call);
}

static llmrt_status nccl_all_reduce_sum(llmrt_comm *comm, void *buf, int64_t count, llmrt_dtype dtype) {
    nccl_state *state = comm->state;
    ncclDataType_t type = ncclFloat32;
    LLMRT_TRY(nccl_type(dtype, &type));
    return launched(comm, ncclAllReduce(buf, buf, (size_t)count, type, ncclSum, state->comm, state->stream),
                    "ncclAllReduce");
}

static llmrt_status nccl_all_gather(llmrt_comm *comm, const void *send, void *recv, int64_t count, llmrt_dtype dtype) {
    nccl_state *state = comm->state;
    ncclDataType_t type = ncclFloat32;
    LLMRT_TRY(nccl_type(dtype, &type));
    return launched(comm, ncclAllGather(send, recv, (size_t)count, type, state->comm, state->stream),
                    "ncclAllGather");
}

static llmrt_status nccl_broadcast(llmrt_comm *comm, void *buf, int64_t bytes, int32_t root) {
    nccl_state *state = comm->state;
    return launched(comm, ncclBroadcast(buf, buf, (size_t)bytes, ncclUint8, root, state->comm, state->stream),
                    "ncclBroadcast");
}

static llmrt_status nccl_send(llmrt_comm *comm, const void *buf, int64_t bytes, int32_t peer) {
    nccl_state *state = comm->state;
    return launched(comm, ncclSend(buf, (size_t)bytes, ncclUint8, peer, state->comm, state->stream), "ncclSend");
}

static llmrt_status nccl_recv(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer) {
    nccl_state *state = comm->state;
    return launched(comm, ncclRecv(buf, (size_t)bytes, ncclUint8, peer, state->comm, state->stream), "ncclRecv");
}

/* NCCL has no barrier: an all-reduce of one value is one. */
static llmrt_status nccl_barrier(llmrt_comm *comm) {
    nccl_state *state = comm->state;
    int32_t *one = NULL;
    if (cudaMallocAsync((void **)&one, sizeof *one, state->stream) != cudaSuccess)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "NCCL barrier: cudaMallocAsync failed");
    llmrt_status status = nccl_all_reduce_sum(comm, one, 1, LLMRT_DTYPE_I32);
    cudaFreeAsync(one, state->stream);
    return status;
}

static void nccl_destroy(llmrt_comm *comm) {
    nccl_state *state = comm->state;
    if (!state) return;
    if (state->comm) {
        if (comm->broken)
            ncclCommAbort(state->comm);
        else
            ncclCommDestroy(state->comm);
    }
    if (state->stream) cudaStreamDestroy(state->stream);
    free(state);
}

static const llmrt_comm_ops nccl_ops = {
    .name = "nccl",
    .all_reduce_sum = nccl_all_reduce_sum,
    .all_gather = nccl_all_gather,
    .broadcast = nccl_broadcast,
    .send = nccl_send,
    .recv = nccl_recv,
    .barrier = nccl_barrier,
    .destroy = nccl_destroy,
};

llmrt_status llmrt_comm_create_nccl(llmrt_comm *bootstrap, int32_t device, llmrt_comm **out) {
    *out = NULL;
    if (!bootstrap) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "NCCL needs a bootstrap communicator");
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (bootstrap->rank == 0) {
        ncclResult_t rc = ncclGetUniqueId(&id);
        if (rc != ncclSuccess) return nccl_failed(rc, "ncclGetUniqueId");
    }
    LLMRT_TRY(llmrt_comm_broadcast(bootstrap, &id, (int64_t)sizeof id, 0));

    if (cudaSetDevice(device) != cudaSuccess)
        return llmrt_error(LLMRT_ERR_BACKEND, "NCCL: cannot use CUDA device %d", (int)device);
    llmrt_comm *comm = calloc(1, sizeof *comm);
    nccl_state *state = calloc(1, sizeof *state);
    if (!comm || !state) {
        free(comm);
        free(state);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory creating an NCCL communicator");
    }
    *comm = (llmrt_comm){&nccl_ops, state, bootstrap->rank, bootstrap->size, bootstrap->timeout_ms, 0};
    state->device = device;
    if (cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking) != cudaSuccess) {
        llmrt_comm_free(comm);
        return llmrt_error(LLMRT_ERR_BACKEND, "NCCL: cudaStreamCreate failed");
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t rc = ncclCommInitRankConfig(&state->comm, comm->size, id, comm->rank, &config);
    llmrt_status status = rc == ncclSuccess || rc == ncclInProgress ? wait_bounded(comm, 0, "ncclCommInitRankConfig")
                                                                     : nccl_failed(rc, "ncclCommInitRankConfig");
    if (status != LLMRT_OK) {
        comm->broken = 1;
        llmrt_comm_free(comm);
        return status;
    }
    *out = comm;
    return LLMRT_OK;
}
