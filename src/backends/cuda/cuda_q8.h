/* LINEARs with 8-bit weights and activations (fp8 E4M3 / w8a8 int8, the
 * blob of core/quant8.h) on the GPU, with exactly the semantics of
 * llmrt_q8_linear_reference:
 *
 *   q8_linear.cu          the kernels: activation quantization, the decode
 *                         GEMV, a tiled fallback product, the scaling epilogue
 *   gemm_q8_cublaslt.c    the prefill GEMMs through cuBLASLt (FP8, IMMA)
 *   cuda_q8linear.c       the choice between them, with the scratch they share
 *   cuda_q8linear_nodes.c the backend's LINEAR nodes on 8-bit weights
 *
 * Shapes: x [M, K] (f32/f16/bf16, row-major), W codes [N, K] row-major (the
 * blob's codes, K-major: cuBLASLt's "TN"), y [M, N] (f32/f16/bf16). */
#ifndef LLMRT_BACKENDS_CUDA_Q8_H
#define LLMRT_BACKENDS_CUDA_Q8_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "backends/cuda/cuda_gemm.h"
#include "core/quant8.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows of x up to which a LINEAR runs the GEMV (decode sizes). */
enum { CUDA_Q8_GEMV_MAX_M = 8 };

/* ---- kernels (q8_linear.cu); `kind` is LLMRT_Q8_FP8 or LLMRT_Q8_INT8 ---- */

/* codes[M, K] and scales[M] of x [M, K], each row as
 * llmrt_q8_quantize_activation quantizes it (bit for bit): with
 * static_scale > 0 that scale, else max|x_m| / QMAX (1 for a zero row). */
cudaError_t cuda_q8_quantize(uint8_t *codes, float *scales, const void *x, llmrt_dtype x_type, int64_t M, int64_t K,
                             int kind, float static_scale, int pdl, cudaStream_t stream);

/* y[m, n] = sx[m] · sw[n] · Σ_k dec(xq[m, k]) · dec(wq[n, k]) + bias[n] (bias
 * f32 or NULL), fp32 accumulation for fp8, int32 for int8. The GEMV needs
 * M ≤ CUDA_Q8_GEMV_MAX_M, K a multiple of 16 and xq, wq 16-byte aligned
 * (cuda_q8_gemv_supported); the tiled product takes any shape. */
int cuda_q8_gemv_supported(int64_t M, int64_t K, const void *xq, const void *wq);
/* The GEMV with x's quantization fused in (one launch, decode steps): x is
 * f32/f16/bf16 [M, K], 16-byte aligned, M ≤ CUDA_Q8_GEMV_FUSED_MAX_M and
 * M · K codes within CUDA_Q8_GEMV_FUSED_MAX_SMEM (cuda_q8_gemv_fused_supported);
 * the same result as cuda_q8_quantize + cuda_q8_gemv. */
#define CUDA_Q8_GEMV_FUSED_MAX_M 4
#define CUDA_Q8_GEMV_FUSED_MAX_SMEM (48 * 1024)
int cuda_q8_gemv_fused_supported(int64_t M, int64_t K, const void *x, const void *wq);
cudaError_t cuda_q8_gemv_fused(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, float static_scale,
                               const uint8_t *wq, const float *sw, const float *bias, int kind, int64_t M, int64_t N,
                               int64_t K, int pdl, cudaStream_t stream);
cudaError_t cuda_q8_gemv(void *y, llmrt_dtype y_type, const uint8_t *xq, const float *sx, const uint8_t *wq,
                         const float *sw, const float *bias, int kind, int64_t M, int64_t N, int64_t K, int pdl,
                         cudaStream_t stream);
cudaError_t cuda_q8_matmul_tiled(void *y, llmrt_dtype y_type, const uint8_t *xq, const float *sx, const uint8_t *wq,
                                 const float *sw, const float *bias, int kind, int64_t M, int64_t N, int64_t K,
                                 cudaStream_t stream);

/* y[m, n] = acc[m, n] · sx[m] · sw[n] + bias[n], acc f32 (acc_int 0) or
 * int32 (1) [M, N]; sx, sw or bias NULL: left out. */
cudaError_t cuda_q8_epilogue(void *y, llmrt_dtype y_type, const void *acc, int acc_int, const float *sx,
                             const float *sw, const float *bias, int64_t M, int64_t N, cudaStream_t stream);

/* ---- cuBLASLt (gemm_q8_cublaslt.c) ---- */

typedef struct cuda_q8_gemm cuda_q8_gemm;

/* Shares `gemm`'s cuBLASLt handle and workspace (stream-ordered use, one
 * stream); has its own per-shape cache. Free it before `gemm`. */
llmrt_status cuda_q8_gemm_create(cuda_q8_gemm **out, cuda_gemm *gemm);
void cuda_q8_gemm_free(cuda_q8_gemm *g);

/* FP8 E4M3 × E4M3: d[M, N] (d_type f32/f16/bf16) = Σ_k xq[m, k] · wq[n, k],
 * times sx[m] · sw[n] when both are given (cuBLASLt's outer-vector scale
 * mode, Hopper only), else unscaled. LLMRT_ERR_UNSUPPORTED (no message)
 * when cuBLASLt has no algorithm for it. */
llmrt_status cuda_q8_gemm_fp8(cuda_q8_gemm *g, void *d, llmrt_dtype d_type, const uint8_t *xq, const uint8_t *wq,
                              const float *sx, const float *sw, int64_t M, int64_t N, int64_t K, cudaStream_t stream);
/* INT8 × INT8 → INT32 (IMMA): d[M, N] = Σ_k xq[m, k] · wq[n, k], exact. */
llmrt_status cuda_q8_gemm_int8(cuda_q8_gemm *g, int32_t *d, const uint8_t *xq, const uint8_t *wq, int64_t M,
                               int64_t N, int64_t K, cudaStream_t stream);

/* ---- the LINEAR (cuda_q8linear.c) ---- */

typedef enum cuda_q8_path {
    CUDA_Q8_PATH_AUTO = 0,     /* as a request: choose */
    CUDA_Q8_PATH_GEMV,         /* the GEMV, x quantized inside it where it fits, else quantize + GEMV */
    CUDA_Q8_PATH_LT_SCALED,    /* quantize + cuBLASLt with the scales in its epilogue (+ bias kernel) */
    CUDA_Q8_PATH_LT_EPILOGUE,  /* quantize + unscaled cuBLASLt + the scaling epilogue kernel */
    CUDA_Q8_PATH_TILED,        /* quantize + the tiled kernel */
    CUDA_Q8_PATH_GEMV_SPLIT,   /* as a request: quantize + GEMV in two launches (tests, benchmarks) */
} cuda_q8_path;

typedef struct cuda_q8linear cuda_q8linear;

/* Scratch for LINEARs of up to max_k inputs and max_n outputs, any number
 * of rows: up to scratch_bytes (0: 64 MiB) each of activation codes and of
 * accumulators, for at most max_rows rows; a step of more rows than that
 * runs in chunks of rows. */
llmrt_status cuda_q8linear_create(cuda_q8linear **out, cuda_gemm *gemm, int64_t max_rows, int64_t max_k,
                                  int64_t max_n, size_t scratch_bytes);
void cuda_q8linear_destroy(cuda_q8linear *q);

/* y [M, N] = the q8 LINEAR of x [M, K] and the device blob (h: a host copy
 * of its header, checked), + bias (f32 [N] or NULL). `want` forces a path
 * (tests, benchmarks; one that cannot run falls back as AUTO would);
 * *used (may be NULL) says which ran last. */
llmrt_status cuda_q8linear_forward(cuda_q8linear *q, void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                                   int64_t M, const void *blob, const llmrt_q8weight_header *h, const float *bias,
                                   int pdl, cudaStream_t stream, cuda_q8_path want, cuda_q8_path *used);

#ifdef __cplusplus
}
#endif
#endif
