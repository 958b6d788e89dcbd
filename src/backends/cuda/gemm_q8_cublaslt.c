/* The prefill GEMMs of 8-bit LINEARs through cuBLASLt (cuda_q8.h), with a
 * per-shape cache of descriptors and the heuristic's first answer, as
 * gemm_cublaslt.c (whose handle and workspace these borrow).
 *
 * Row-major y [M, N] is column-major yᵀ [N, M]: cuBLASLt computes
 * D = op(A) · B with A = the blob's codes W [N, K] row-major, i.e. a
 * column-major K × N matrix (lda = K) used transposed, and B = the
 * activation codes [M, K] row-major, column-major K × M (ldb = K), not
 * transposed: the "TN" layout both the FP8 and the IMMA kernels require.
 *
 * What the cuBLAS documentation says and this file relies on
 * (https://docs.nvidia.com/cuda/cublas/#cublasltmatmul, "FP8" and
 * "IMMA" requirements; #cublasltmatmulmatrixscale-t for the scale modes):
 *  - FP8 E4M3 × E4M3: CUBLAS_COMPUTE_32F with CUDA_R_32F scales, A
 *    transposed and B not ("TN"), 16-byte aligned pointers and leading
 *    dimensions; D bf16, f16 or f32 with C of D's type. FAST_ACCUM stays
 *    0: the tensor cores' partial sums are promoted to fp32 periodically.
 *  - A_SCALE_POINTER / B_SCALE_POINTER default to NULL, a scale of 1.
 *  - CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F (cuBLAS 12.9+): "vectors
 *    of CUDA_R_32F values ... M and N elements respectively, and each
 *    (i, j)-th element of the product of A and B is multiplied by the i-th
 *    element of A scale and the j-th element of B scale" (cublasLt.h).
 *    Supported on sm_90 only (the scale-mode table of the docs; NVIDIA's
 *    answer in NVIDIA/CUDALibrarySamples#270). Here cuBLAS's i runs over
 *    our N and j over our M: A's vector is W's per-row scales, B's the
 *    activation rows' scales. So on Hopper the whole LINEAR but the bias
 *    is one cublasLtMatmul; elsewhere the heuristic refuses the mode and
 *    the caller runs the unscaled product and its own epilogue kernel.
 *  - INT8: CUBLAS_COMPUTE_32I with CUDA_R_32I scales, A and B CUDA_R_8I,
 *    C and D CUDA_R_32I, "TN" (IMMA kernels); the int32 sums are exact.
 * An unsupported combination shows up as no heuristic answer or as
 * NOT_SUPPORTED / INVALID_VALUE from cublasLtMatmul (the docs: "if set for
 * an unsupported ... combination, calling cublasLtMatmul() will return
 * CUBLAS_STATUS_INVALID_VALUE"): either marks the shape unsupported, and
 * the caller falls back to a kernel of its own, which gives the same
 * results. */
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_q8.h"

enum { Q8_GEMM_CACHE_SIZE = 128 };

typedef struct q8_gemm_key {
    int64_t M, N, K;
    int32_t kind;      /* LLMRT_Q8_FP8 / LLMRT_Q8_INT8 */
    int32_t d_type;    /* llmrt_dtype of D (int8: i32) */
    int32_t outer_vec; /* fp8 with the scale vectors in the epilogue */
    int32_t align;     /* min pointer alignment in bytes (≤ 256) */
} q8_gemm_key;

typedef struct q8_gemm_entry {
    q8_gemm_key key;
    int used;
    int supported; /* 0: cuBLASLt refused this shape; the caller falls back */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} q8_gemm_entry;

struct cuda_q8_gemm {
    cublasLtHandle_t handle; /* borrowed */
    void *workspace;         /* borrowed */
    size_t workspace_bytes;
    q8_gemm_entry cache[Q8_GEMM_CACHE_SIZE];
    int next_evict;
};

static llmrt_status lt_status(cublasStatus_t st, const char *what) {
    return llmrt_error(st == CUBLAS_STATUS_ALLOC_FAILED ? LLMRT_ERR_OUT_OF_MEMORY : LLMRT_ERR_BACKEND,
                       "cublasLt (8-bit GEMM): %s failed with status %d", what, (int)st);
}

#define LT_TRY(call, what)                                                     \
    do {                                                                       \
        cublasStatus_t lt_st_ = (call);                                        \
        if (lt_st_ != CUBLAS_STATUS_SUCCESS) return lt_status(lt_st_, (what)); \
    } while (0)

llmrt_status cuda_q8_gemm_create(cuda_q8_gemm **out, cuda_gemm *gemm) {
    *out = NULL;
    cuda_q8_gemm *g = calloc(1, sizeof *g);
    if (!g) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda 8-bit gemm: out of host memory");
    void *handle = NULL;
    cuda_gemm_borrow(gemm, &handle, &g->workspace, &g->workspace_bytes);
    g->handle = (cublasLtHandle_t)handle;
    *out = g;
    return LLMRT_OK;
}

static void entry_release(q8_gemm_entry *e) {
    if (e->desc) cublasLtMatmulDescDestroy(e->desc);
    if (e->a) cublasLtMatrixLayoutDestroy(e->a);
    if (e->b) cublasLtMatrixLayoutDestroy(e->b);
    if (e->d) cublasLtMatrixLayoutDestroy(e->d);
    memset(e, 0, sizeof *e);
}

void cuda_q8_gemm_free(cuda_q8_gemm *g) {
    if (!g) return;
    for (int i = 0; i < Q8_GEMM_CACHE_SIZE; i++) entry_release(&g->cache[i]);
    free(g);
}

static int pointer_alignment(const void *p) {
    const uintptr_t v = (uintptr_t)p;
    int align = 256;
    while (align > 1 && (v % (uintptr_t)align)) align /= 2;
    return align;
}

static cudaDataType_t lt_type(llmrt_dtype t) {
    switch (t) {
    case LLMRT_DTYPE_F16: return CUDA_R_16F;
    case LLMRT_DTYPE_BF16: return CUDA_R_16BF;
    case LLMRT_DTYPE_I32: return CUDA_R_32I;
    default: return CUDA_R_32F;
    }
}

/* Descriptors and the heuristic's answer for k (with this call's scale
 * vectors set, as the call will have them); e->supported = 0 when cuBLASLt
 * has none (not an error). */
static llmrt_status entry_build(cuda_q8_gemm *g, q8_gemm_entry *e, const q8_gemm_key *k, const float *sx,
                                const float *sw) {
    memset(e, 0, sizeof *e);
    e->used = 1;
    e->key = *k;
    const int fp8 = k->kind == LLMRT_Q8_FP8;
    const cudaDataType_t in = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_8I;
    LT_TRY(cublasLtMatmulDescCreate(&e->desc, fp8 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32I,
                                    fp8 ? CUDA_R_32F : CUDA_R_32I),
           "cublasLtMatmulDescCreate");
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "set TRANSA");
    LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "set TRANSB");
    if (k->outer_vec) {
        const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        if (cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode) !=
                CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode) !=
                CUBLAS_STATUS_SUCCESS)
            return LLMRT_OK; /* a library without the mode: unsupported */
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sw, sizeof sw),
               "set A_SCALE_POINTER");
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx, sizeof sx),
               "set B_SCALE_POINTER");
    }
    LT_TRY(cublasLtMatrixLayoutCreate(&e->a, in, (uint64_t)k->K, (uint64_t)k->N, k->K), "layout A");
    LT_TRY(cublasLtMatrixLayoutCreate(&e->b, in, (uint64_t)k->K, (uint64_t)k->M, k->K), "layout B");
    LT_TRY(cublasLtMatrixLayoutCreate(&e->d, lt_type((llmrt_dtype)k->d_type), (uint64_t)k->N, (uint64_t)k->M, k->N),
           "layout D");

    cublasLtMatmulPreference_t pref = cuda_gemm_preference(g->workspace_bytes, (uint32_t)k->align);
    if (!pref) return llmrt_error(LLMRT_ERR_INTERNAL, "cublasLt: cublasLtMatmulPreferenceCreate failed");
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(g->handle, e->desc, e->a, e->b, e->d, e->d, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
        e->algo = result.algo;
        e->supported = 1;
    }
    return LLMRT_OK;
}

static q8_gemm_entry *entry_find(cuda_q8_gemm *g, const q8_gemm_key *key) {
    for (int i = 0; i < Q8_GEMM_CACHE_SIZE; i++)
        if (g->cache[i].used && memcmp(&g->cache[i].key, key, sizeof *key) == 0) return &g->cache[i];
    return NULL;
}

static q8_gemm_entry *entry_slot(cuda_q8_gemm *g) {
    for (int i = 0; i < Q8_GEMM_CACHE_SIZE; i++)
        if (!g->cache[i].used) return &g->cache[i];
    q8_gemm_entry *e = &g->cache[g->next_evict];
    g->next_evict = (g->next_evict + 1) % Q8_GEMM_CACHE_SIZE;
    entry_release(e);
    return e;
}

static llmrt_status run(cuda_q8_gemm *g, const q8_gemm_key *k, void *d, const uint8_t *xq, const uint8_t *wq,
                        const float *sx, const float *sw, cudaStream_t stream) {
    if (k->M <= 0 || k->N <= 0) return LLMRT_OK;
    q8_gemm_entry *e = entry_find(g, k);
    if (!e) {
        e = entry_slot(g);
        llmrt_status s = entry_build(g, e, k, sx, sw);
        if (s != LLMRT_OK) {
            entry_release(e);
            return s;
        }
    }
    if (!e->supported) return LLMRT_ERR_UNSUPPORTED;
    if (k->outer_vec) {
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sw, sizeof sw),
               "set A_SCALE_POINTER");
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx, sizeof sx),
               "set B_SCALE_POINTER");
    }
    const float alpha_f = 1.0f, beta_f = 0.0f;
    const int32_t alpha_i = 1, beta_i = 0;
    const int fp8 = k->kind == LLMRT_Q8_FP8;
    const cublasStatus_t st =
        cublasLtMatmul(g->handle, e->desc, fp8 ? (const void *)&alpha_f : (const void *)&alpha_i, wq, e->a, xq, e->b,
                       fp8 ? (const void *)&beta_f : (const void *)&beta_i, d, e->d, d, e->d, &e->algo, g->workspace,
                       g->workspace_bytes, stream);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) {
        e->supported = 0; /* refused before launching anything: the caller's fallback runs instead */
        return LLMRT_ERR_UNSUPPORTED;
    }
    if (st != CUBLAS_STATUS_SUCCESS) return lt_status(st, "cublasLtMatmul");
    return LLMRT_OK;
}

static int min_alignment(const void *a, const void *b, const void *c) {
    int al = pointer_alignment(a), x = pointer_alignment(b), y = pointer_alignment(c);
    if (x < al) al = x;
    if (y < al) al = y;
    return al;
}

llmrt_status cuda_q8_gemm_fp8(cuda_q8_gemm *g, void *d, llmrt_dtype d_type, const uint8_t *xq, const uint8_t *wq,
                              const float *sx, const float *sw, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
    if (d_type != LLMRT_DTYPE_F32 && d_type != LLMRT_DTYPE_F16 && d_type != LLMRT_DTYPE_BF16)
        return LLMRT_ERR_UNSUPPORTED;
    q8_gemm_key k;
    memset(&k, 0, sizeof k);
    k.M = M, k.N = N, k.K = K;
    k.kind = LLMRT_Q8_FP8;
    k.d_type = d_type;
    k.outer_vec = sx && sw;
    k.align = min_alignment(d, xq, wq);
    return run(g, &k, d, xq, wq, sx, sw, stream);
}

llmrt_status cuda_q8_gemm_int8(cuda_q8_gemm *g, int32_t *d, const uint8_t *xq, const uint8_t *wq, int64_t M,
                               int64_t N, int64_t K, cudaStream_t stream) {
    q8_gemm_key k;
    memset(&k, 0, sizeof k);
    k.M = M, k.N = N, k.K = K;
    k.kind = LLMRT_Q8_INT8;
    k.d_type = LLMRT_DTYPE_I32;
    k.align = min_alignment(d, xq, wq);
    return run(g, &k, d, xq, wq, NULL, NULL, stream);
}
