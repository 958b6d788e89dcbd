/* The MPI communicator. Collectives are the nonblocking kind (MPI-3
 * MPI_Iallreduce, ...) polled against a deadline, because a blocking MPI
 * call on a dead peer waits forever; MPI_ERRORS_RETURN makes MPI's own
 * failures come back as values. */
#include "comm/comm.h"

#include <stddef.h>

#ifdef LLMRT_HAVE_MPI

#include <mpi.h>
#include <stdlib.h>
#include <time.h>

typedef struct mpi_state {
    MPI_Comm comm;
    int owns_comm;     /* a split's communicator is freed with it */
    int owns_mpi_init; /* the world that initialised MPI finalises it */
} mpi_state;

int llmrt_comm_have_mpi(void) { return 1; }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static llmrt_status mpi_failed(int rc, const char *call) {
    char message[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(rc, message, &length) != MPI_SUCCESS) length = 0;
    message[length] = '\0';
    return llmrt_error(LLMRT_ERR_BACKEND, "%s failed: %s", call, message);
}

/* Polls `request` until it completes or the timeout passes. A short sleep
 * between polls keeps a waiting rank from stealing a core from the rank it
 * waits for (ranks are oversubscribed on small machines). */
static llmrt_status wait_bounded(llmrt_comm *comm, MPI_Request *request, int rc, const char *call) {
    if (rc != MPI_SUCCESS) return mpi_failed(rc, call);
    double deadline = now_ms() + comm->timeout_ms;
    long spins = 0;
    for (;;) {
        int done = 0;
        rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_failed(rc, call);
        if (done) return LLMRT_OK;
        if (now_ms() > deadline)
            return llmrt_error(LLMRT_ERR_BACKEND,
                               "%s timed out after %d ms waiting for the other ranks (did a rank die or hang?)",
                               call, (int)comm->timeout_ms);
        if (++spins > 1000) {
            struct timespec pause = {0, 50000}; /* 50 µs */
            nanosleep(&pause, NULL);
        }
    }
}

static llmrt_status mpi_type(llmrt_dtype dtype, MPI_Datatype *out) {
    switch (dtype) {
    case LLMRT_DTYPE_F32: *out = MPI_FLOAT; return LLMRT_OK;
    case LLMRT_DTYPE_I32: *out = MPI_INT32_T; return LLMRT_OK;
    default:
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "MPI all-reduce of %s (f32 and i32 only; CUDA ranks stage f32)",
                           llmrt_dtype_name(dtype));
    }
}

static MPI_Comm comm_of(const llmrt_comm *comm) { return ((const mpi_state *)comm->state)->comm; }

static llmrt_status mpi_all_reduce_sum(llmrt_comm *comm, void *buf, int64_t count, llmrt_dtype dtype) {
    MPI_Datatype type = MPI_DATATYPE_NULL;
    LLMRT_TRY(mpi_type(dtype, &type));
    if (count > INT32_MAX) return llmrt_error(LLMRT_ERR_CAPACITY, "MPI all-reduce of %lld elements", (long long)count);
    MPI_Request request;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, type, MPI_SUM, comm_of(comm), &request);
    return wait_bounded(comm, &request, rc, "MPI_Iallreduce");
}

static llmrt_status mpi_all_gather(llmrt_comm *comm, const void *send, void *recv, int64_t count, llmrt_dtype dtype) {
    int64_t bytes = count * (int64_t)llmrt_dtype_size(dtype);
    if (bytes <= 0 || bytes > INT32_MAX)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "MPI all-gather of %lld %s elements", (long long)count,
                           llmrt_dtype_name(dtype));
    MPI_Request request;
    int rc = MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, comm_of(comm), &request);
    return wait_bounded(comm, &request, rc, "MPI_Iallgather");
}

static llmrt_status mpi_broadcast(llmrt_comm *comm, void *buf, int64_t bytes, int32_t root) {
    if (bytes > INT32_MAX) return llmrt_error(LLMRT_ERR_CAPACITY, "MPI broadcast of %lld bytes", (long long)bytes);
    MPI_Request request;
    int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, comm_of(comm), &request);
    return wait_bounded(comm, &request, rc, "MPI_Ibcast");
}

enum { ACTIVATION_TAG = 31 };

static llmrt_status mpi_send(llmrt_comm *comm, const void *buf, int64_t bytes, int32_t peer) {
    if (bytes > INT32_MAX) return llmrt_error(LLMRT_ERR_CAPACITY, "MPI send of %lld bytes", (long long)bytes);
    MPI_Request request;
    int rc = MPI_Isend(buf, (int)bytes, MPI_BYTE, peer, ACTIVATION_TAG, comm_of(comm), &request);
    return wait_bounded(comm, &request, rc, "MPI_Isend");
}

static llmrt_status mpi_recv(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer) {
    if (bytes > INT32_MAX) return llmrt_error(LLMRT_ERR_CAPACITY, "MPI recv of %lld bytes", (long long)bytes);
    MPI_Request request;
    int rc = MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, ACTIVATION_TAG, comm_of(comm), &request);
    return wait_bounded(comm, &request, rc, "MPI_Irecv");
}

static llmrt_status mpi_recv_start(llmrt_comm *comm, void *buf, int64_t bytes, int32_t peer, void **request) {
    if (bytes > INT32_MAX) return llmrt_error(LLMRT_ERR_CAPACITY, "MPI recv of %lld bytes", (long long)bytes);
    MPI_Request *r = malloc(sizeof *r);
    if (!r) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory for an MPI request");
    int rc = MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, ACTIVATION_TAG, comm_of(comm), r);
    if (rc != MPI_SUCCESS) {
        free(r);
        return mpi_failed(rc, "MPI_Irecv");
    }
    *request = r;
    return LLMRT_OK;
}

static void mpi_recv_cancel(llmrt_comm *comm, void *request) {
    (void)comm;
    MPI_Request *r = request;
    if (*r != MPI_REQUEST_NULL) { /* the buffer may go away: nothing must land in it later */
        MPI_Cancel(r);
        MPI_Request_free(r);
    }
    free(r);
}

static llmrt_status mpi_recv_finish(llmrt_comm *comm, void *request) {
    llmrt_status s = wait_bounded(comm, request, MPI_SUCCESS, "MPI_Irecv");
    if (s != LLMRT_OK) mpi_recv_cancel(comm, request);
    else free(request);
    return s;
}

static llmrt_status mpi_barrier(llmrt_comm *comm) {
    MPI_Request request;
    int rc = MPI_Ibarrier(comm_of(comm), &request);
    return wait_bounded(comm, &request, rc, "MPI_Ibarrier");
}

static void mpi_destroy(llmrt_comm *comm) {
    mpi_state *state = comm->state;
    if (!state) return;
    /* A broken communicator has collectives that will never complete:
     * freeing or finalising would wait on them, so leave MPI to mpirun. */
    if (!comm->broken) {
        if (state->owns_comm) MPI_Comm_free(&state->comm);
        if (state->owns_mpi_init) MPI_Finalize();
    }
    free(state);
}

static const llmrt_comm_ops mpi_ops = {
    .name = "mpi",
    .all_reduce_sum = mpi_all_reduce_sum,
    .all_gather = mpi_all_gather,
    .broadcast = mpi_broadcast,
    .send = mpi_send,
    .recv = mpi_recv,
    .barrier = mpi_barrier,
    .recv_start = mpi_recv_start,
    .recv_finish = mpi_recv_finish,
    .recv_cancel = mpi_recv_cancel,
    .destroy = mpi_destroy,
};

static llmrt_status wrap(MPI_Comm handle, int owns_comm, int owns_init, int32_t timeout_ms, llmrt_comm **out) {
    llmrt_comm *comm = calloc(1, sizeof *comm);
    mpi_state *state = calloc(1, sizeof *state);
    if (!comm || !state) {
        free(comm);
        free(state);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory creating an MPI communicator");
    }
    MPI_Comm_set_errhandler(handle, MPI_ERRORS_RETURN);
    int rank = 0, size = 1;
    MPI_Comm_rank(handle, &rank);
    MPI_Comm_size(handle, &size);
    *state = (mpi_state){handle, owns_comm, owns_init};
    *comm = (llmrt_comm){&mpi_ops, state, rank, size, timeout_ms, 0};
    *out = comm;
    return LLMRT_OK;
}

llmrt_status llmrt_comm_create_mpi(int32_t timeout_ms, llmrt_comm **out) {
    *out = NULL;
    int initialized = 0, owns_init = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        /* Serialized: the server's HTTP threads never call MPI, but rank 0's
         * engine loop may run on a thread other than main's. */
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) return mpi_failed(rc, "MPI_Init_thread");
        owns_init = 1;
    }
    return wrap(MPI_COMM_WORLD, 0, owns_init, timeout_ms > 0 ? timeout_ms : LLMRT_COMM_DEFAULT_TIMEOUT_MS, out);
}

llmrt_status llmrt_comm_split(llmrt_comm *parent, int32_t color, int32_t key, llmrt_comm **out) {
    *out = NULL;
    if (!parent || parent->ops != &mpi_ops)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "llmrt_comm_split: only MPI communicators split");
    if (parent->broken) return llmrt_error(LLMRT_ERR_BACKEND, "llmrt_comm_split: the communicator failed earlier");
    /* MPI_Comm_split is blocking; a barrier first bounds the wait for a dead peer. */
    LLMRT_TRY(llmrt_comm_barrier(parent));
    MPI_Comm handle;
    int rc = MPI_Comm_split(comm_of(parent), color, key, &handle);
    if (rc != MPI_SUCCESS) return mpi_failed(rc, "MPI_Comm_split");
    return wrap(handle, 1, 0, parent->timeout_ms, out);
}

#else /* no MPI in this build */

int llmrt_comm_have_mpi(void) { return 0; }

static llmrt_status no_mpi(void) {
    return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                       "this llmrt was built without MPI: tensor and pipeline parallelism need it "
                       "(Debian: apt-get install openmpi-bin libopenmpi-dev, then rebuild)");
}

llmrt_status llmrt_comm_create_mpi(int32_t timeout_ms, llmrt_comm **out) {
    *out = NULL;
    return no_mpi();
}

llmrt_status llmrt_comm_split(llmrt_comm *parent, int32_t color, int32_t key, llmrt_comm **out) {
    *out = NULL;
    return no_mpi();
}

#endif
