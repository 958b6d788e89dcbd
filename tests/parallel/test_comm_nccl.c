/* The NCCL communicator's single-rank case on one GPU (bootstrapped over
 * MPI): every call runs and leaves a lone rank's data as it was. Skipped
 * (77) without a CUDA device. Run under mpirun -np 1. */
#include <cuda_runtime.h>
#include <stdio.h>

#include "comm/comm.h"
#include "test_util.h"

int main(void) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        fprintf(stderr, "no CUDA device: skipped\n");
        return 77;
    }
    llmrt_comm *world = NULL, *nccl = NULL;
    CHECK_OK(llmrt_comm_create_mpi(20000, &world));
    if (world) CHECK_OK(llmrt_comm_create_nccl(world, 0, &nccl));
    if (nccl) {
        const float host[4] = {1, 2, 3, 4};
        float back[4] = {0}, *buf = NULL, *gathered = NULL;
        CHECK(cudaMalloc((void **)&buf, sizeof host) == cudaSuccess);
        CHECK(cudaMalloc((void **)&gathered, sizeof host) == cudaSuccess);
        cudaMemcpy(buf, host, sizeof host, cudaMemcpyHostToDevice);
        CHECK_OK(llmrt_comm_all_reduce_sum(nccl, buf, 4, LLMRT_DTYPE_F32));
        CHECK_OK(llmrt_comm_all_gather(nccl, buf, gathered, 4, LLMRT_DTYPE_F32));
        CHECK_OK(llmrt_comm_broadcast(nccl, gathered, sizeof host, 0));
        CHECK_OK(llmrt_comm_barrier(nccl));
        cudaMemcpy(back, gathered, sizeof back, cudaMemcpyDeviceToHost);
        for (int i = 0; i < 4; i++) CHECK(back[i] == host[i]);
        cudaFree(buf);
        cudaFree(gathered);
    }
    llmrt_comm_free(nccl);
    llmrt_comm_free(world);
    return test_finish();
}
