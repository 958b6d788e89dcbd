/* The MPI communicator under mpirun -np N: every collective against values
 * each rank can compute alone, and, with --hang-rank R, the timeout: rank R
 * sleeps past it and the others must fail with a message naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "test_util.h"

static void test_collectives(llmrt_comm *comm) {
    const int32_t rank = comm->rank, size = comm->size;
    float sum[5];
    for (int i = 0; i < 5; i++) sum[i] = (float)(rank + 1) * (float)(i + 1);
    CHECK_OK(llmrt_comm_all_reduce_sum(comm, sum, 5, LLMRT_DTYPE_F32));
    float ranks_total = (float)(size * (size + 1)) / 2.0f;
    for (int i = 0; i < 5; i++) CHECK(sum[i] == ranks_total * (float)(i + 1));

    int32_t mine[3] = {rank * 10, rank * 10 + 1, rank * 10 + 2};
    int32_t *all = calloc((size_t)size * 3, sizeof *all);
    CHECK_OK(llmrt_comm_all_gather(comm, mine, all, 3, LLMRT_DTYPE_I32));
    for (int32_t r = 0; r < size; r++)
        for (int i = 0; i < 3; i++) CHECK(all[r * 3 + i] == r * 10 + i);
    free(all);

    char message[16] = {0};
    if (rank == size - 1) strcpy(message, "from the last");
    CHECK_OK(llmrt_comm_broadcast(comm, message, sizeof message, size - 1));
    CHECK(strcmp(message, "from the last") == 0);

    if (size >= 2) { /* a ring of sends, as pipeline stages hand activations on */
        int32_t token = rank == 0 ? 7 : -1;
        if (rank == 0) {
            CHECK_OK(llmrt_comm_send(comm, &token, sizeof token, 1));
            CHECK_OK(llmrt_comm_recv(comm, &token, sizeof token, size - 1));
            CHECK(token == 7 + size - 1);
        } else {
            CHECK_OK(llmrt_comm_recv(comm, &token, sizeof token, rank - 1));
            token++;
            CHECK_OK(llmrt_comm_send(comm, &token, sizeof token, (rank + 1) % size));
        }
    }

    if (size >= 2) { /* posted receives: rank 1 sends large messages while rank 0 is still sending to it
                        (a pipeline's logits coming back while stage 0 hands on the next micro-batch) */
        enum { PIECES = 3, BIG = 1 << 20 };
        float *buf = calloc((size_t)PIECES * BIG, sizeof *buf);
        CHECK(buf != NULL);
        if (rank == 0) {
            void *pending[PIECES];
            for (int g = 0; g < PIECES; g++)
                CHECK_OK(llmrt_comm_recv_start(comm, buf + (size_t)g * BIG, BIG * sizeof(float), 1, &pending[g]));
            for (int g = 0; g < PIECES; g++) CHECK_OK(llmrt_comm_send(comm, buf, BIG * sizeof(float), 1));
            for (int g = 0; g < PIECES; g++) CHECK_OK(llmrt_comm_recv_finish(comm, pending[g]));
            for (int g = 0; g < PIECES; g++) CHECK(buf[(size_t)g * BIG + 5] == (float)(g + 1));
            void *cancelled = NULL; /* withdrawn before any send meets it */
            CHECK_OK(llmrt_comm_recv_start(comm, buf, sizeof(float), 1, &cancelled));
            llmrt_comm_recv_cancel(comm, cancelled);
        } else if (rank == 1) {
            float *in = calloc(BIG, sizeof *in);
            for (int g = 0; g < PIECES; g++) {
                buf[5] = (float)(g + 1);
                CHECK_OK(llmrt_comm_send(comm, buf, BIG * sizeof(float), 0));
                CHECK_OK(llmrt_comm_recv(comm, in, BIG * sizeof(float), 0));
            }
            free(in);
        }
        free(buf);
    }

    /* Sub-groups: even and odd ranks each sum their own. */
    llmrt_comm *group = NULL;
    CHECK_OK(llmrt_comm_split(comm, rank % 2, rank, &group));
    if (group) {
        int32_t value = rank, expect = 0;
        for (int32_t r = rank % 2; r < size; r += 2) expect += r;
        CHECK_OK(llmrt_comm_all_reduce_sum(group, &value, 1, LLMRT_DTYPE_I32));
        CHECK(value == expect);
        llmrt_comm_free(group);
    }
    CHECK_OK(llmrt_comm_barrier(comm));
}

/* Rank `hang_rank` sleeps past the timeout; every other rank must see the
 * all-reduce fail with "timed out" and exit non-zero (the test expects the
 * job to fail with that message, not to hang). */
static int test_hang(llmrt_comm *comm, int32_t hang_rank) {
    if (comm->rank == hang_rank) {
        sleep(10);
        return 0;
    }
    float value = 1.0f;
    llmrt_status status = llmrt_comm_all_reduce_sum(comm, &value, 1, LLMRT_DTYPE_F32);
    fprintf(stderr, "rank %d: %s\n", (int)comm->rank, status == LLMRT_OK ? "no error" : llmrt_last_error());
    CHECK(status == LLMRT_ERR_BACKEND);
    CHECK(strstr(llmrt_last_error(), "timed out") != NULL);
    CHECK(llmrt_comm_barrier(comm) == LLMRT_ERR_BACKEND); /* broken from now on */
    return 1;
}

int main(int argc, char **argv) {
    int32_t hang_rank = -1;
    if (argc == 3 && strcmp(argv[1], "--hang-rank") == 0) hang_rank = atoi(argv[2]);
    if (!llmrt_comm_have_mpi()) {
        fprintf(stderr, "built without MPI: skipped\n");
        return 77;
    }
    llmrt_comm *comm = NULL;
    if (llmrt_comm_create_mpi(hang_rank >= 0 ? 1000 : 20000, &comm) != LLMRT_OK) {
        fprintf(stderr, "%s\n", llmrt_last_error());
        return 1;
    }
    if (hang_rank >= 0) {
        int failed_as_expected = test_hang(comm, hang_rank);
        int code = test_finish();
        /* The timed-out rank leaves without MPI_Finalize (its collective can
         * never finish); exit code 3 tells the runner that it saw the error. */
        fflush(NULL);
        _exit(failed_as_expected && code == 0 ? 3 : 1);
    }
    test_collectives(comm);
    llmrt_comm_free(comm);
    return test_finish();
}
