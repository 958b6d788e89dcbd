/* CUDA error checks that turn failures into llmrt_status values (never exit),
 * shared by the C side of the CUDA backend (plan execution, cuBLASLt). The
 * kernels themselves (.cu) return cudaError_t from their launchers and know
 * nothing about llmrt_status; the caller names the op and node. */
#ifndef LLMRT_BACKENDS_CUDA_COMMON_H
#define LLMRT_BACKENDS_CUDA_COMMON_H

#include <cuda_runtime_api.h>

#include "core/status.h"

/* Maps a CUDA error to a status with a message naming `what` (an op, a node,
 * an allocation): cudaErrorMemoryAllocation becomes LLMRT_ERR_OUT_OF_MEMORY,
 * everything else LLMRT_ERR_BACKEND. */
static inline llmrt_status llmrt_cuda_status(cudaError_t err, const char *what) {
    if (err == cudaErrorMemoryAllocation)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: out of GPU memory in %s (%s)", what,
                           cudaGetErrorString(err));
    return llmrt_error(LLMRT_ERR_BACKEND, "cuda: %s failed: %s (%s)", what, cudaGetErrorName(err),
                       cudaGetErrorString(err));
}

/* return llmrt_cuda_status(...) when `call` fails. */
#define LLMRT_CUDA_TRY(call, what)                                  \
    do {                                                            \
        cudaError_t cuda_try_err_ = (call);                         \
        if (cuda_try_err_ != cudaSuccess) return llmrt_cuda_status(cuda_try_err_, (what)); \
    } while (0)

#endif
