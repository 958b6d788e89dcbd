/* Helpers for the CUDA tests: typed device buffers filled from f32 host
 * arrays, poisoned outputs, the skip-without-GPU convention. */
#ifndef LLMRT_TESTS_CUDA_TEST_UTIL_H
#define LLMRT_TESTS_CUDA_TEST_UTIL_H

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "test_util.h"

/* 77 = skipped (ctest SKIP_RETURN_CODE); with LLMRT_REQUIRE_GPU=1 a missing
 * GPU is a failure instead. Returns -1 when a GPU is present. */
static inline int cuda_test_skip_code(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0) return -1;
    const char *req = getenv("LLMRT_REQUIRE_GPU");
    if (req && atoi(req)) {
        fprintf(stderr, "FAIL: LLMRT_REQUIRE_GPU=1 but no CUDA device is available\n");
        return 1;
    }
    printf("no CUDA device: skipped\n");
    return 77;
}

#define CUDA_CHECK(call)                                                                                 \
    do {                                                                                                 \
        cudaError_t cc_err_ = (call);                                                                    \
        CHECK_MSG(cc_err_ == cudaSuccess, "%s -> %s", #call, cudaGetErrorString(cc_err_));               \
    } while (0)

/* Rounds x in place to what `type` can hold (so CPU references see exactly the GPU's inputs). */
static inline void round_to(float *x, size_t n, llmrt_dtype type) {
    if (type == LLMRT_DTYPE_F32) return;
    for (size_t i = 0; i < n; i++)
        x[i] = type == LLMRT_DTYPE_BF16 ? llmrt_bf16_to_f32(llmrt_f32_to_bf16(x[i]))
                                         : llmrt_f16_to_f32(llmrt_f32_to_f16(x[i]));
}

/* Device copy of n f32 values stored as `type` (f32/f16/bf16; i32 copies ints). */
static inline void *dev_from_f32(const float *x, size_t n, llmrt_dtype type) {
    size_t es = llmrt_dtype_size(type);
    void *tmp = malloc(n * es + 16), *d = NULL;
    llmrt_convert_from_f32(tmp, type, x, n);
    if (cudaMalloc(&d, n * es + 16) != cudaSuccess) {
        free(tmp);
        return NULL;
    }
    cudaMemcpy(d, tmp, n * es, cudaMemcpyHostToDevice);
    free(tmp);
    return d;
}

static inline void *dev_from_bytes(const void *x, size_t bytes) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes + 16) != cudaSuccess) return NULL;
    cudaMemcpy(d, x, bytes, cudaMemcpyHostToDevice);
    return d;
}

/* A poisoned (all-ones bits: NaN in every float type) device buffer. */
static inline void *dev_poisoned(size_t bytes) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes + 16) != cudaSuccess) return NULL;
    cudaMemset(d, 0xff, bytes + 16);
    return d;
}

static inline void dev_poison(void *d, size_t bytes) { cudaMemset(d, 0xff, bytes); }

/* Synchronises and converts n device values of `type` to f32 on the host. */
static inline void dev_to_f32(float *out, const void *d, size_t n, llmrt_dtype type) {
    CUDA_CHECK(cudaDeviceSynchronize());
    size_t es = llmrt_dtype_size(type);
    void *tmp = malloc(n * es + 16);
    cudaMemcpy(tmp, d, n * es, cudaMemcpyDeviceToHost);
    llmrt_convert_to_f32(out, tmp, type, n);
    free(tmp);
}

static inline double tol_for(llmrt_dtype type) {
    return type == LLMRT_DTYPE_F32 ? 1e-5 : type == LLMRT_DTYPE_F16 ? 5e-3 : 1e-2;
}

static inline float *rand_floats(size_t n, uint64_t *rng, float scale) {
    float *x = malloc(n * sizeof(float) + 16);
    test_fill_random(x, n, rng, scale);
    return x;
}

/* Checks rel L2(got, ref) ≤ tol, printing the error and a label. */
#define CHECK_CLOSE(got, ref, n, tol, fmt, ...)                                                    \
    do {                                                                                           \
        double rel_ = test_rel_l2((got), (ref), (n));                                               \
        CHECK_MSG(rel_ <= (tol), "rel L2 %.3g > %.3g: " fmt, rel_, (double)(tol), __VA_ARGS__);    \
        if (getenv("LLMRT_TEST_VERBOSE")) fprintf(stderr, "   rel L2 %.3g: " fmt "\n", rel_, __VA_ARGS__); \
    } while (0)

#endif
