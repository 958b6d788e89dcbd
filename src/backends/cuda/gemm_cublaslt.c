/* cuBLASLt GEMM with a per-shape cache of descriptors and heuristic choice.
 * For large products (prefill) the heuristic's first answer is often not the
 * fastest on H100: the first call of such a shape times up to
 * AUTOTUNE_CANDIDATES of its answers on the real operands and keeps the
 * fastest, when asked to (`autotune`: the backend's gemm_autotune setting,
 * cuda_settings.h). Off by default: the cache is per exact shape, so every
 * new prompt length would pay the timing again (bench_cuda_kernels reports
 * prefill both ways). Never while a stream is
 * being captured: there the heuristic's first answer is kept. */
#include "backends/cuda/cuda_gemm.h"

#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_common.h"
#include "backends/cuda/cuda_kernels.h"
#include "graph/ops.h"

enum { GEMM_CACHE_SIZE = 512, AUTOTUNE_CANDIDATES = 8 };
/* 2·M·N·K below this (≈ 15 µs at 700 TFLOP/s) is not worth timing; prefill of
 * 128 tokens of a 7B model is just above it. */
static const double AUTOTUNE_MIN_FLOPS = 1e10;

typedef struct gemm_key {
    int64_t M, N, K;
    int32_t type, transpose_b, has_bias, align; /* align: min pointer alignment in bytes (≤ 256) */
    int32_t y_type;                             /* type, or f32 (logits straight from the fp32 accumulators) */
    int32_t pad_;                               /* keys are memset and compared whole */
} gemm_key;

typedef struct gemm_entry {
    gemm_key key;
    int used;
    int bias_fused; /* the epilogue adds the bias; else a separate add */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} gemm_entry;

struct cuda_gemm {
    cublasLtHandle_t handle;
    void *workspace;
    size_t workspace_bytes;
    gemm_entry cache[GEMM_CACHE_SIZE];
    int next_evict;
    int autotune;
    cudaEvent_t ev[2];
};

static llmrt_status lt_status(cublasStatus_t st, const char *what) {
    return llmrt_error(st == CUBLAS_STATUS_ALLOC_FAILED ? LLMRT_ERR_OUT_OF_MEMORY : LLMRT_ERR_BACKEND,
                       "cublasLt: %s failed with status %d", what, (int)st);
}

#define LT_TRY(call, what)                                     \
    do {                                                       \
        cublasStatus_t lt_st_ = (call);                        \
        if (lt_st_ != CUBLAS_STATUS_SUCCESS) return lt_status(lt_st_, (what)); \
    } while (0)

llmrt_status cuda_gemm_create(cuda_gemm **out, size_t workspace_bytes, int autotune) {
    *out = NULL;
    cuda_gemm *g = calloc(1, sizeof *g);
    if (!g) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda gemm: out of host memory");
    cublasStatus_t st = cublasLtCreate(&g->handle);
    if (st != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return lt_status(st, "cublasLtCreate");
    }
    g->workspace_bytes = workspace_bytes;
    g->autotune = autotune != 0;
    if (g->autotune && (cudaEventCreate(&g->ev[0]) != cudaSuccess || cudaEventCreate(&g->ev[1]) != cudaSuccess)) {
        cudaGetLastError();
        g->autotune = 0;
    }
    if (workspace_bytes) {
        cudaError_t err = cudaMalloc(&g->workspace, workspace_bytes);
        if (err != cudaSuccess) {
            cublasLtDestroy(g->handle);
            free(g);
            return llmrt_cuda_status(err, "cuBLASLt workspace allocation");
        }
    }
    *out = g;
    return LLMRT_OK;
}

static void entry_release(gemm_entry *e) {
    if (!e->used) return;
    if (e->desc) cublasLtMatmulDescDestroy(e->desc);
    if (e->a) cublasLtMatrixLayoutDestroy(e->a);
    if (e->b) cublasLtMatrixLayoutDestroy(e->b);
    if (e->c) cublasLtMatrixLayoutDestroy(e->c);
    memset(e, 0, sizeof *e);
}

void cuda_gemm_free(cuda_gemm *g) {
    if (!g) return;
    for (int i = 0; i < GEMM_CACHE_SIZE; i++) entry_release(&g->cache[i]);
    if (g->workspace) cudaFree(g->workspace);
    if (g->ev[0]) cudaEventDestroy(g->ev[0]);
    if (g->ev[1]) cudaEventDestroy(g->ev[1]);
    cublasLtDestroy(g->handle);
    free(g);
}

void cuda_gemm_borrow(const cuda_gemm *g, void **handle, void **workspace, size_t *workspace_bytes) {
    *handle = g->handle;
    *workspace = g->workspace;
    *workspace_bytes = g->workspace_bytes;
}

void *cuda_gemm_preference(size_t workspace_bytes, uint32_t align) {
    cublasLtMatmulPreference_t pref;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return NULL;
    const uint64_t ws = workspace_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align, sizeof align);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align, sizeof align);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, sizeof align);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, sizeof align);
    return pref;
}

int cuda_gemm_cached_shapes(const cuda_gemm *g) {
    int n = 0;
    for (int i = 0; i < GEMM_CACHE_SIZE; i++) n += g->cache[i].used;
    return n;
}

static int pointer_alignment(const void *p) {
    uintptr_t v = (uintptr_t)p;
    int align = 256;
    while (align > 1 && (v % (uintptr_t)align)) align /= 2;
    return align;
}

static cudaDataType_t cuda_type(llmrt_dtype t) {
    return t == LLMRT_DTYPE_F16 ? CUDA_R_16F : t == LLMRT_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* The operands of the first call, for timing candidates on real data. */
typedef struct gemm_operands {
    void *y;
    const void *x, *w;
    const float *bias;
    cudaStream_t stream;
} gemm_operands;

/* Median-free quick timing: one warm-up, then one timed run per candidate
 * (the shapes timed take ≥ 15 µs, above event resolution). Returns
 * the index of the fastest candidate that ran, or 0. */
static int pick_fastest(cuda_gemm *g, gemm_entry *e, const cublasLtMatmulHeuristicResult_t *res, int found,
                        const gemm_operands *op) {
    const float alpha = 1.0f, beta = 0.0f;
    int best = 0;
    float best_ms = 1e30f;
    for (int i = 0; i < found; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > g->workspace_bytes) continue;
        float ms = 0;
        int ok = 1;
        for (int rep = 0; rep < 2 && ok; rep++) {
            if (rep == 1 && cudaEventRecord(g->ev[0], op->stream) != cudaSuccess) ok = 0;
            if (ok && cublasLtMatmul(g->handle, e->desc, &alpha, op->w, e->a, op->x, e->b, &beta, op->y, e->c, op->y,
                                     e->c, &res[i].algo, g->workspace, g->workspace_bytes,
                                     op->stream) != CUBLAS_STATUS_SUCCESS)
                ok = 0;
        }
        if (ok && cudaEventRecord(g->ev[1], op->stream) == cudaSuccess && cudaEventSynchronize(g->ev[1]) == cudaSuccess &&
            cudaEventElapsedTime(&ms, g->ev[0], g->ev[1]) == cudaSuccess && ms < best_ms) {
            best_ms = ms;
            best = i;
        }
        cudaGetLastError();
    }
    return best;
}

/* Builds descriptors and asks the heuristic, with the bias epilogue if
 * `fuse_bias`; returns UNSUPPORTED when the heuristic has no algorithm. */
static llmrt_status entry_build(cuda_gemm *g, gemm_entry *e, const gemm_key *k, int fuse_bias,
                                const gemm_operands *op) {
    memset(e, 0, sizeof *e);
    e->used = 1;
    e->key = *k;
    const cudaDataType_t dt = cuda_type((llmrt_dtype)k->type);
    LT_TRY(cublasLtMatmulDescCreate(&e->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    /* Row-major y[M,N] is column-major yᵀ [N,M]: compute yᵀ = op(W) · xᵀ. */
    const cublasOperation_t ta = k->transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "set TRANSA");
    LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "set TRANSB");
    if (fuse_bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        const int32_t bias_type = CUDA_R_32F;
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "set EPILOGUE");
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                              sizeof bias_type),
               "set BIAS_DATA_TYPE");
    }
    if (k->transpose_b)
        LT_TRY(cublasLtMatrixLayoutCreate(&e->a, dt, (uint64_t)k->K, (uint64_t)k->N, k->K), "layout A");
    else
        LT_TRY(cublasLtMatrixLayoutCreate(&e->a, dt, (uint64_t)k->N, (uint64_t)k->K, k->N), "layout A");
    LT_TRY(cublasLtMatrixLayoutCreate(&e->b, dt, (uint64_t)k->K, (uint64_t)k->M, k->K), "layout B");
    LT_TRY(cublasLtMatrixLayoutCreate(&e->c, cuda_type((llmrt_dtype)k->y_type), (uint64_t)k->N, (uint64_t)k->M, k->N),
           "layout C");

    cublasLtMatmulPreference_t pref = cuda_gemm_preference(g->workspace_bytes, (uint32_t)k->align);
    if (!pref) return llmrt_error(LLMRT_ERR_INTERNAL, "cublasLt: cublasLtMatmulPreferenceCreate failed");
    cublasLtMatmulHeuristicResult_t result[AUTOTUNE_CANDIDATES];
    int found = 0;
    enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(op->stream, &capture) != cudaSuccess) {
        cudaGetLastError();
        capture = cudaStreamCaptureStatusActive;
    }
    const int tune = g->autotune && capture == cudaStreamCaptureStatusNone &&
                     2.0 * (double)k->M * (double)k->N * (double)k->K >= AUTOTUNE_MIN_FLOPS;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g->handle, e->desc, e->a, e->b, e->c, e->c, pref,
                                                       tune ? AUTOTUNE_CANDIDATES : 1, result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
        entry_release(e);
        return LLMRT_ERR_UNSUPPORTED; /* no message: the caller has a fallback */
    }
    if (fuse_bias)
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &op->bias, sizeof op->bias),
               "set BIAS_POINTER");
    const int pick = tune && found > 1 ? pick_fastest(g, e, result, found, op) : 0;
    e->algo = result[pick].algo;
    e->bias_fused = fuse_bias;
    return LLMRT_OK;
}

llmrt_status cuda_gemm_run(cuda_gemm *g, void *y, const void *x, const void *w, llmrt_dtype type, int transpose_b,
                           const float *bias, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
    return cuda_gemm_run_out(g, y, type, x, w, type, transpose_b, bias, M, N, K, stream);
}

llmrt_status cuda_gemm_run_out(cuda_gemm *g, void *y, llmrt_dtype y_type, const void *x, const void *w,
                               llmrt_dtype type, int transpose_b, const float *bias, int64_t M, int64_t N, int64_t K,
                               cudaStream_t stream) {
    if (M <= 0 || N <= 0) return LLMRT_OK;
    if (type != LLMRT_DTYPE_F16 && type != LLMRT_DTYPE_BF16 && type != LLMRT_DTYPE_F32) return LLMRT_ERR_UNSUPPORTED;
    if (y_type != type && y_type != LLMRT_DTYPE_F32) return LLMRT_ERR_UNSUPPORTED;
    gemm_key key;
    memset(&key, 0, sizeof key);
    key.M = M;
    key.N = N;
    key.K = K;
    key.type = type;
    key.y_type = y_type;
    key.transpose_b = transpose_b ? 1 : 0;
    key.has_bias = bias != NULL;
    int align = pointer_alignment(y);
    int a2 = pointer_alignment(x), a3 = pointer_alignment(w);
    if (a2 < align) align = a2;
    if (a3 < align) align = a3;
    key.align = align;

    gemm_entry *e = NULL;
    for (int i = 0; i < GEMM_CACHE_SIZE; i++)
        if (g->cache[i].used && memcmp(&g->cache[i].key, &key, sizeof key) == 0) {
            e = &g->cache[i];
            break;
        }
    if (!e) {
        for (int i = 0; i < GEMM_CACHE_SIZE && !e; i++)
            if (!g->cache[i].used) e = &g->cache[i];
        if (!e) {
            e = &g->cache[g->next_evict];
            g->next_evict = (g->next_evict + 1) % GEMM_CACHE_SIZE;
            entry_release(e);
        }
        const gemm_operands op = {y, x, w, bias, stream};
        llmrt_status s = key.has_bias ? entry_build(g, e, &key, 1, &op) : LLMRT_ERR_UNSUPPORTED;
        if (s != LLMRT_OK) s = entry_build(g, e, &key, 0, &op);
        if (s != LLMRT_OK) return s;
    }
    if (e->bias_fused)
        LT_TRY(cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
               "set BIAS_POINTER");
    const float alpha = 1.0f, beta = 0.0f;
    LT_TRY(cublasLtMatmul(g->handle, e->desc, &alpha, w, e->a, x, e->b, &beta, y, e->c, y, e->c, &e->algo,
                          g->workspace, g->workspace_bytes, stream),
           "cublasLtMatmul");
    if (bias && !e->bias_fused) {
        cuda_broadcast bc;
        const int64_t out_dims[2] = {M, N}, bias_dims[1] = {N};
        cuda_broadcast_init(&bc, 2, out_dims, 2, out_dims, 1, bias_dims);
        LLMRT_CUDA_TRY(cuda_binary(LLMRT_OP_ADD, y, y_type, y, y_type, bias, LLMRT_DTYPE_F32, &bc, stream),
                       "gemm bias add");
    }
    return LLMRT_OK;
}
