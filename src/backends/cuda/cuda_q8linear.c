/* LINEARs with 8-bit weights and activations (fp8, w8a8) on the GPU: every
 * step first quantizes x's rows (codes + one scale a row, exactly as the
 * CPU reference), then
 *   - up to CUDA_Q8_GEMV_MAX_M rows (decode): the GEMV, which streams W's
 *     one-byte codes (bandwidth-bound: half the bytes of bf16);
 *   - more rows (prefill), K a multiple of 16: cuBLASLt. FP8 on Hopper
 *     puts the per-row and per-channel scales in cuBLASLt's own epilogue
 *     (outer-vector scale mode) and writes y directly: one GEMM, nothing
 *     else (plus a pass for an f32 bias, which FP8 GEMMs cannot add
 *     unrounded). Where that mode is refused (not sm_90), and for INT8
 *     (IMMA gives exact int32 sums), the GEMM writes unscaled sums to the
 *     accumulator scratch and a small epilogue kernel scales them;
 *   - anything cuBLASLt refuses (K % 16 ≠ 0, alignment): the tiled kernel.
 * The scratch (codes, row scales, accumulators) is allocated once at
 * create; a step of more rows than it holds runs in chunks of rows. */
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_common.h"
#include "backends/cuda/cuda_q8.h"

/* The default bound of the scratch: 64 MiB of activation codes (a chunk
 * of ≥ 4096 rows for K ≤ 16384) and as much for the accumulators (≥ 1024
 * rows for N ≤ 16384: enough to keep cuBLASLt at full speed); the FP8
 * path with the scales in cuBLASLt's epilogue and no bias needs no
 * accumulators. */
enum { DEFAULT_SCRATCH_BYTES = 64 << 20, ROW_QUANTUM = 64 };

struct cuda_q8linear {
    cuda_q8_gemm *gemm;
    uint8_t *codes;    /* [chunk_rows, max_k] the activation codes */
    float *row_scales; /* [chunk_rows] */
    void *acc;         /* [acc_rows, max_n] f32 or int32 sums before the epilogue kernel */
    int64_t chunk_rows, acc_rows, max_k, max_n;
};

/* Rows of `row_bytes` that fit `budget`, a multiple of ROW_QUANTUM, at
 * least ROW_QUANTUM (≥ a GEMV's rows), at most max_rows. */
static int64_t rows_within(int64_t budget, int64_t row_bytes, int64_t max_rows) {
    int64_t rows = budget / row_bytes;
    rows -= rows % ROW_QUANTUM;
    if (rows < ROW_QUANTUM) rows = ROW_QUANTUM;
    return rows < max_rows ? rows : max_rows;
}

void cuda_q8linear_destroy(cuda_q8linear *q) {
    if (!q) return;
    cuda_q8_gemm_free(q->gemm);
    cudaFree(q->codes);
    cudaFree(q->row_scales);
    cudaFree(q->acc);
    free(q);
}

llmrt_status cuda_q8linear_create(cuda_q8linear **out, cuda_gemm *gemm, int64_t max_rows, int64_t max_k,
                                  int64_t max_n, size_t scratch_bytes) {
    *out = NULL;
    if (max_rows <= 0 || max_k <= 0 || max_n <= 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: 8-bit linear scratch for [%lld rows, K %lld, N %lld]",
                           (long long)max_rows, (long long)max_k, (long long)max_n);
    cuda_q8linear *q = calloc(1, sizeof *q);
    if (!q) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    q->max_k = max_k;
    q->max_n = max_n;
    const int64_t budget = scratch_bytes ? (int64_t)scratch_bytes : DEFAULT_SCRATCH_BYTES;
    q->chunk_rows = rows_within(budget, max_k, max_rows);
    q->acc_rows = rows_within(budget, 4 * max_n, q->chunk_rows);
    const size_t codes = (size_t)(q->chunk_rows * max_k), acc = (size_t)(q->acc_rows * max_n) * 4;
    llmrt_status s = cuda_q8_gemm_create(&q->gemm, gemm);
    cudaError_t err = cudaSuccess;
    if (s == LLMRT_OK) err = cudaMalloc((void **)&q->codes, codes + 16);
    if (s == LLMRT_OK && err == cudaSuccess) err = cudaMalloc((void **)&q->row_scales, (size_t)q->chunk_rows * 4);
    if (s == LLMRT_OK && err == cudaSuccess) err = cudaMalloc(&q->acc, acc);
    if (s == LLMRT_OK && err != cudaSuccess)
        s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate %.1f MiB of 8-bit linear scratch (%s)",
                        (codes + acc) / 1048576.0, cudaGetErrorString(err));
    if (s != LLMRT_OK) {
        cuda_q8linear_destroy(q);
        return s;
    }
    *out = q;
    return LLMRT_OK;
}

static llmrt_status launched(cudaError_t err, const char *what) {
    return err == cudaSuccess ? LLMRT_OK : llmrt_cuda_status(err, what);
}

/* yc [rows, N] through cuBLASLt from the codes and row scales of q's
 * scratch; LLMRT_ERR_UNSUPPORTED when cuBLASLt refuses the shape. The
 * paths through the accumulator scratch run in pieces of acc_rows rows. */
static llmrt_status run_cublaslt(cuda_q8linear *q, void *yc, llmrt_dtype y_type, int64_t rows, int64_t N, int64_t K,
                                 int kind, const uint8_t *wq, const float *sw, const float *bias, cuda_q8_path want,
                                 cuda_q8_path *path, cudaStream_t stream) {
    if (kind == LLMRT_Q8_FP8 && !bias && want != CUDA_Q8_PATH_LT_EPILOGUE) {
        const llmrt_status s =
            cuda_q8_gemm_fp8(q->gemm, yc, y_type, q->codes, wq, q->row_scales, sw, rows, N, K, stream);
        if (s != LLMRT_ERR_UNSUPPORTED) {
            *path = CUDA_Q8_PATH_LT_SCALED;
            return s;
        }
    }
    const size_t y_row = (size_t)N * llmrt_dtype_size(y_type);
    int scaled = kind == LLMRT_Q8_FP8 && want != CUDA_Q8_PATH_LT_EPILOGUE; /* worth a try with a bias */
    for (int64_t r0 = 0; r0 < rows; r0 += q->acc_rows) {
        const int64_t n_rows = rows - r0 < q->acc_rows ? rows - r0 : q->acc_rows;
        const uint8_t *xq = q->codes + r0 * K;
        const float *sx = q->row_scales + r0;
        void *y = (unsigned char *)yc + (size_t)r0 * y_row;
        if (kind == LLMRT_Q8_INT8) {
            LLMRT_TRY(cuda_q8_gemm_int8(q->gemm, q->acc, xq, wq, n_rows, N, K, stream));
            LLMRT_TRY(
                launched(cuda_q8_epilogue(y, y_type, q->acc, 1, sx, sw, bias, n_rows, N, stream), "int8 epilogue"));
            *path = CUDA_Q8_PATH_LT_EPILOGUE;
            continue;
        }
        /* fp8 with a bias: cuBLASLt applies the scales into f32 (an FP8
         * GEMM's own bias would be bf16), our kernel adds the f32 bias */
        llmrt_status s = LLMRT_ERR_UNSUPPORTED;
        if (scaled) {
            s = cuda_q8_gemm_fp8(q->gemm, q->acc, LLMRT_DTYPE_F32, xq, wq, sx, sw, n_rows, N, K, stream);
            if (s == LLMRT_OK) {
                LLMRT_TRY(launched(cuda_q8_epilogue(y, y_type, q->acc, 0, NULL, NULL, bias, n_rows, N, stream),
                                   "fp8 bias"));
                *path = CUDA_Q8_PATH_LT_SCALED;
                continue;
            }
            if (s != LLMRT_ERR_UNSUPPORTED) return s;
            scaled = 0;
        }
        LLMRT_TRY(cuda_q8_gemm_fp8(q->gemm, q->acc, LLMRT_DTYPE_F32, xq, wq, NULL, NULL, n_rows, N, K, stream));
        LLMRT_TRY(launched(cuda_q8_epilogue(y, y_type, q->acc, 0, sx, sw, bias, n_rows, N, stream), "fp8 epilogue"));
        *path = CUDA_Q8_PATH_LT_EPILOGUE;
    }
    return LLMRT_OK;
}

static int float_type(llmrt_dtype t) {
    return t == LLMRT_DTYPE_F32 || t == LLMRT_DTYPE_F16 || t == LLMRT_DTYPE_BF16;
}

llmrt_status cuda_q8linear_forward(cuda_q8linear *q, void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                                   int64_t M, const void *blob, const llmrt_q8weight_header *h, const float *bias,
                                   int pdl, cudaStream_t stream, cuda_q8_path want, cuda_q8_path *used) {
    const int64_t N = h->rows, K = h->cols;
    const int kind = h->kind;
    if (N > q->max_n || K > q->max_k)
        return llmrt_error(LLMRT_ERR_INTERNAL,
                           "cuda: 8-bit linear [%lld, %lld] is larger than its scratch [%lld, %lld]", (long long)N,
                           (long long)K, (long long)q->max_n, (long long)q->max_k);
    if (!float_type(x_type) || !float_type(y_type))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "cuda: an 8-bit linear takes and gives f32, f16 or bf16, not %s -> %s",
                           llmrt_dtype_name(x_type), llmrt_dtype_name(y_type));
    if (M <= 0) return LLMRT_OK;
    const float static_scale = (h->flags & LLMRT_Q8_STATIC_INPUT) ? h->input_scale : 0.0f;
    const uint8_t *wq = (const uint8_t *)blob + LLMRT_Q8WEIGHT_HEADER_BYTES;
    const float *sw = (const float *)((const uint8_t *)blob + h->scales_offset);
    if ((want == CUDA_Q8_PATH_AUTO || want == CUDA_Q8_PATH_GEMV) && cuda_q8_gemv_fused_supported(M, K, x, wq)) {
        LLMRT_TRY(launched(cuda_q8_gemv_fused(y, y_type, x, x_type, static_scale, wq, sw, bias, kind, M, N, K, pdl,
                                              stream),
                           "8-bit GEMV"));
        if (used) *used = CUDA_Q8_PATH_GEMV;
        return LLMRT_OK;
    }
    if ((want == CUDA_Q8_PATH_AUTO || want == CUDA_Q8_PATH_GEMV || want == CUDA_Q8_PATH_GEMV_SPLIT) &&
        M <= q->chunk_rows && cuda_q8_gemv_supported(M, K, q->codes, wq)) {
        LLMRT_TRY(launched(cuda_q8_quantize(q->codes, q->row_scales, x, x_type, M, K, kind, static_scale, pdl, stream),
                           "8-bit activation quantization"));
        LLMRT_TRY(launched(cuda_q8_gemv(y, y_type, q->codes, q->row_scales, wq, sw, bias, kind, M, N, K, pdl, stream),
                           "8-bit GEMV"));
        if (used) *used = CUDA_Q8_PATH_GEMV;
        return LLMRT_OK;
    }
    const size_t x_row = (size_t)K * llmrt_dtype_size(x_type), y_row = (size_t)N * llmrt_dtype_size(y_type);
    for (int64_t m0 = 0; m0 < M; m0 += q->chunk_rows) {
        const int64_t rows = M - m0 < q->chunk_rows ? M - m0 : q->chunk_rows;
        const void *xc = (const unsigned char *)x + (size_t)m0 * x_row;
        void *yc = (unsigned char *)y + (size_t)m0 * y_row;
        LLMRT_TRY(launched(cuda_q8_quantize(q->codes, q->row_scales, xc, x_type, rows, K, kind, static_scale, pdl,
                                            stream),
                           "8-bit activation quantization"));
        cuda_q8_path path = CUDA_Q8_PATH_TILED;
        llmrt_status s = LLMRT_ERR_UNSUPPORTED;
        if (want != CUDA_Q8_PATH_TILED && K % 16 == 0)
            s = run_cublaslt(q, yc, y_type, rows, N, K, kind, wq, sw, bias, want, &path, stream);
        if (s == LLMRT_ERR_UNSUPPORTED) {
            path = CUDA_Q8_PATH_TILED;
            s = launched(cuda_q8_matmul_tiled(yc, y_type, q->codes, q->row_scales, wq, sw, bias, kind, rows, N, K,
                                              stream),
                         "8-bit tiled product");
        }
        if (s != LLMRT_OK) return s;
        if (used) *used = path;
    }
    return LLMRT_OK;
}
