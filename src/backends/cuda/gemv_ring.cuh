// The staged decode GEMV (gemv_ring.cu), tried by gemv.cu's entry points
// before their register-streaming kernels.
#ifndef LLMRT_BACKENDS_CUDA_GEMV_RING_CUH
#define LLMRT_BACKENDS_CUDA_GEMV_RING_CUH

#include "backends/cuda/cuda_kernels.h"

// The same contract as cuda_gemv_multi_signal (one part and y_type F32:
// cuda_gemv_out's logits), for arguments the caller has checked.
// cudaErrorNotSupported where the staged kernel does not apply (off, M > 1,
// K not a multiple of 256, x or the ring too large for shared memory): the
// caller then launches its own kernel.
cudaError_t cuda_gemv_ring(const cuda_gemv_part *parts, int num_parts, int gated, const void *x,
                           const cuda_gemv_norm *norm, const cuda_gemv_signal *signal, llmrt_dtype type,
                           llmrt_dtype y_type, int64_t M, int64_t K, cudaStream_t stream);

#endif
