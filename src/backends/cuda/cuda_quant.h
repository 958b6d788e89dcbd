/* Linears with int8-wo / int4-wo weights on the GPU (gemv_quant.cu, and
 * cuda_qlinear.c which chooses between them). `blob` is the weight's blob
 * on the device (core/quant.h) and `h` a host copy of its header. */
#ifndef LLMRT_BACKENDS_CUDA_QUANT_H
#define LLMRT_BACKENDS_CUDA_QUANT_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "core/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows of x up to which a quantized LINEAR runs the GEMV (decode); larger
 * steps dequantize W and run the GEMM. */
enum { CUDA_QGEMV_MAX_M = 8 };

/* y[M, N] = x[M, K] · dequant(W)ᵀ (+ bias[N], f32, or NULL), dequantizing
 * in registers. x: f32/f16/bf16; y: x's type, or f32. M ≤ CUDA_QGEMV_MAX_M.
 * One block a panel of 16 outputs; launched with PDL when pdl is 1. */
cudaError_t cuda_qgemv(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, const void *blob,
                       const llmrt_qweight_header *h, const float *bias, int64_t M, int pdl, cudaStream_t stream);

/* out[N, K] (f32/f16/bf16, row-major, the nn.Linear layout) = dequant(W). */
cudaError_t cuda_qdequantize(void *out, llmrt_dtype out_type, const void *blob, const llmrt_qweight_header *h,
                             cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
