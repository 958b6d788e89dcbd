/* The communicator of tensor- and pipeline-parallel ranks: one small vtable
 * (as the backends have) with two implementations, MPI (host buffers: the
 * CPU backend directly, CUDA ranks through host staging) and NCCL (device
 * buffers). It knows nothing about models: it moves bytes between ranks.
 *
 * Every call waits at most the communicator's timeout: a rank that died or
 * hangs makes its peers fail with LLMRT_ERR_BACKEND naming the collective
 * and the timeout, never hang. After such a failure the communicator is
 * broken (its collectives cannot be completed) and every later call fails
 * at once; the process should report the error and exit (mpirun then ends
 * the other ranks).
 *
 * Ownership: llmrt_comm_create_* returns a communicator that the caller
 * frees with llmrt_comm_free; llmrt_comm_split's result is freed the same
 * way, before its parent. */
#ifndef LLMRT_COMM_COMM_H
#define LLMRT_COMM_COMM_H

#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

typedef struct llmrt_comm llmrt_comm;

typedef struct llmrt_comm_ops {
    const char *name; /* "mpi", "nccl" */
    /* buf [count] ← Σ over ranks of buf (in place). f32, f16, bf16, i32. */
    llmrt_status (*all_reduce_sum)(llmrt_comm *comm, void *buf, int64_t count, llmrt_dtype dtype);
    /* recv [size · count] ← rank r's send [count] at offset r · count. */
    llmrt_status (*all_gather)(llmrt_comm *comm, const void *send, void *recv, int64_t count, llmrt_dtype dtype);
    /* buf [bytes] ← root's buf. */
    llmrt_status (*broadcast)(llmrt_comm *comm, void *buf, int64_t bytes, int32_t root);
    /* Point to point (pipeline stages hand activations on). */
    llmrt_status (*send)(llmrt_comm *comm, const void *buf, int64_t bytes, int32_t peer);
    llmrt_status (*recv)(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer);
    llmrt_status (*barrier)(llmrt_comm *comm);
    /* A receive posted now and finished later, so that it can meet a send
     * that comes while this rank is busy with other sends (pipeline
     * stages' logits); finish frees the request, cancel withdraws it.
     * NULL where the communicator has none (NCCL). */
    llmrt_status (*recv_start)(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer, void **request);
    llmrt_status (*recv_finish)(llmrt_comm *comm, void *request);
    void (*recv_cancel)(llmrt_comm *comm, void *request);
    void (*destroy)(llmrt_comm *comm);
} llmrt_comm_ops;

struct llmrt_comm {
    const llmrt_comm_ops *ops;
    void *state;
    int32_t rank, size;
    int32_t timeout_ms; /* every call's bound */
    int32_t broken;     /* 1 after a failed or timed-out call */
};

enum { LLMRT_COMM_DEFAULT_TIMEOUT_MS = 60000 };

/* 1 when this build has the MPI communicator. */
int llmrt_comm_have_mpi(void);
/* 1 when this process was started by mpirun (OpenMPI, MPICH or PMIx env). */
int llmrt_comm_launched_by_mpi(void);
/* The world of MPI_COMM_WORLD (initialising MPI if nobody has yet).
 * timeout_ms <= 0: LLMRT_COMM_DEFAULT_TIMEOUT_MS. Unsupported (with a
 * message that says how to get it) in a build without MPI. */
llmrt_status llmrt_comm_create_mpi(int32_t timeout_ms, llmrt_comm **out);
/* The ranks of an MPI communicator with the same color, ordered by key
 * (MPI_Comm_split): the tensor-parallel group of a pipeline stage, say. */
llmrt_status llmrt_comm_split(llmrt_comm *comm, int32_t color, int32_t key, llmrt_comm **out);
/* NCCL over the ranks of `bootstrap` (MPI): rank 0 makes the unique id and
 * broadcasts it; this rank uses CUDA device `device`. Unsupported in a
 * build without CUDA and NCCL. */
llmrt_status llmrt_comm_create_nccl(llmrt_comm *bootstrap, int32_t device, llmrt_comm **out);
void llmrt_comm_free(llmrt_comm *comm);

/* Each rank's device, "<host>/<device>" (LLMRT_COMM_DEVICE_ID_BYTES each):
 * 1 when no two ranks name the same one, so NCCL may give every rank its
 * own GPU; 0 when some share (two ranks on one GPU stage through MPI). */
enum { LLMRT_COMM_DEVICE_ID_BYTES = 128 };
int llmrt_comm_devices_distinct(const char (*ids)[LLMRT_COMM_DEVICE_ID_BYTES], int32_t count);

/* The calls, checked: a broken communicator fails at once, and every
 * failure names the collective and this rank. */
llmrt_status llmrt_comm_all_reduce_sum(llmrt_comm *comm, void *buf, int64_t count, llmrt_dtype dtype);
llmrt_status llmrt_comm_all_gather(llmrt_comm *comm, const void *send, void *recv, int64_t count,
                                   llmrt_dtype dtype);
llmrt_status llmrt_comm_broadcast(llmrt_comm *comm, void *buf, int64_t bytes, int32_t root);
llmrt_status llmrt_comm_send(llmrt_comm *comm, const void *buf, int64_t bytes, int32_t peer);
llmrt_status llmrt_comm_recv(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer);
llmrt_status llmrt_comm_barrier(llmrt_comm *comm);
/* A posted receive: start, then exactly one of finish or cancel. */
llmrt_status llmrt_comm_recv_start(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer, void **request);
llmrt_status llmrt_comm_recv_finish(llmrt_comm *comm, void *request);
void llmrt_comm_recv_cancel(llmrt_comm *comm, void *request);

#endif
