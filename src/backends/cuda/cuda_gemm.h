/* GEMMs through cuBLASLt: y = x · Wᵀ (+ bias) with the algorithm picked by
 * cuBLASLt's heuristic once per shape and cached with its descriptors, so a
 * steady-state call is one cublasLtMatmul (capturable in a CUDA graph). */
#ifndef LLMRT_BACKENDS_CUDA_GEMM_H
#define LLMRT_BACKENDS_CUDA_GEMM_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

typedef struct cuda_gemm cuda_gemm;

/* Owns a cuBLASLt handle, a device workspace and the per-shape cache.
 * autotune 1: the first call of a large shape times cuBLASLt's candidates
 * on the real operands and keeps the fastest (see gemm_cublaslt.c). */
llmrt_status cuda_gemm_create(cuda_gemm **out, size_t workspace_bytes, int autotune);
void cuda_gemm_free(cuda_gemm *g);

/* y[M,N] = x[M,K] · W (+ bias[N], f32): W is [N,K] (nn.Linear, transpose_b
 * = 1) or [K,N] (transpose_b = 0). x, W, y all f16, all bf16 or all f32;
 * fp32 accumulation (f32 is true fp32, no TF32). The bias rides the
 * cuBLASLt epilogue where the library offers it, else a broadcast add.
 * Returns LLMRT_ERR_UNSUPPORTED when cuBLASLt has no algorithm (the caller
 * then uses cuda_matmul_generic). */
llmrt_status cuda_gemm_run(cuda_gemm *g, void *y, const void *x, const void *w, llmrt_dtype type, int transpose_b,
                           const float *bias, int64_t M, int64_t N, int64_t K, cudaStream_t stream);

/* The same with y of y_type: `type`, or f32 with 16-bit x and W (cuBLASLt
 * writes the fp32 accumulators as f32: the logits skip a 16-bit rounding). */
llmrt_status cuda_gemm_run_out(cuda_gemm *g, void *y, llmrt_dtype y_type, const void *x, const void *w,
                               llmrt_dtype type, int transpose_b, const float *bias, int64_t M, int64_t N, int64_t K,
                               cudaStream_t stream);

/* The cuBLASLt handle (a cublasLtHandle_t) and workspace, lent to the
 * 8-bit GEMMs (gemm_q8_cublaslt.c); they run on the same stream, so the
 * workspace is never used twice at once. */
void cuda_gemm_borrow(const cuda_gemm *g, void **handle, void **workspace, size_t *workspace_bytes);
/* A cuBLASLt heuristic preference (a cublasLtMatmulPreference_t) for at
 * most workspace_bytes of workspace and operands aligned to `align` bytes;
 * NULL if cuBLASLt cannot make one. Free with cublasLtMatmulPreferenceDestroy. */
void *cuda_gemm_preference(size_t workspace_bytes, uint32_t align);

/* Number of cached shapes (for tests and verbose logs). */
int cuda_gemm_cached_shapes(const cuda_gemm *g);

#endif
