/* llmrt_comm_devices_distinct: the rule that gives CUDA ranks NCCL only
 * when no two of them name the same GPU (host and PCI address). */
#include <string.h>

#include "comm/comm.h"
#include "test_util.h"

static void set(char (*ids)[LLMRT_COMM_DEVICE_ID_BYTES], int i, const char *id) {
    memset(ids[i], 0, LLMRT_COMM_DEVICE_ID_BYTES);
    strncpy(ids[i], id, LLMRT_COMM_DEVICE_ID_BYTES - 1);
}

static void test_distinct(void) {
    char ids[4][LLMRT_COMM_DEVICE_ID_BYTES];
    set(ids, 0, "node1/0000:1b:00.0");
    set(ids, 1, "node1/0000:43:00.0");
    CHECK(llmrt_comm_devices_distinct((const char(*)[LLMRT_COMM_DEVICE_ID_BYTES])ids, 2) == 1);
    /* the same PCI address on another host is another GPU */
    set(ids, 2, "node2/0000:1b:00.0");
    set(ids, 3, "node2/0000:43:00.0");
    CHECK(llmrt_comm_devices_distinct((const char(*)[LLMRT_COMM_DEVICE_ID_BYTES])ids, 4) == 1);
    /* two ranks on one GPU (the single-GPU MPI test's layout) */
    set(ids, 3, "node1/0000:1b:00.0");
    CHECK(llmrt_comm_devices_distinct((const char(*)[LLMRT_COMM_DEVICE_ID_BYTES])ids, 4) == 0);
    set(ids, 1, "node1/0000:1b:00.0");
    CHECK(llmrt_comm_devices_distinct((const char(*)[LLMRT_COMM_DEVICE_ID_BYTES])ids, 2) == 0);
    /* one rank, or none, shares with nobody */
    CHECK(llmrt_comm_devices_distinct((const char(*)[LLMRT_COMM_DEVICE_ID_BYTES])ids, 1) == 1);
    CHECK(llmrt_comm_devices_distinct((const char(*)[LLMRT_COMM_DEVICE_ID_BYTES])ids, 0) == 1);
}

int main(void) {
    RUN_TEST(test_distinct);
    return test_finish();
}
