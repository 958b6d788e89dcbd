/* The CUDA microbenchmarks' error check: a failed call prints where and why,
 * then exits (a benchmark has nothing to recover). C and CUDA C++. */
#ifndef LLMRT_BENCH_CUDA_BENCH_CHECK_H
#define LLMRT_BENCH_CUDA_BENCH_CHECK_H

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(call)                                                                                      \
    do {                                                                                              \
        cudaError_t e_ = (call);                                                                      \
        if (e_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));   \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

#endif
