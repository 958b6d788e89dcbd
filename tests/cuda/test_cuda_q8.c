/* LINEARs with 8-bit weights and activations (fp8, w8a8) on the GPU
 * against llmrt_q8_linear_reference: fp8 and int8, per-token and static
 * activation scales (static: per-tensor weights, a scale that clips some
 * of x), with and without bias, f32 and bf16 activations, outputs f32 and
 * the activation type, M ∈ {1, 3, 8, 9, 64, 300} (300 also through a
 * small scratch, in chunks of rows), (N, K) ∈ {(64, 64), (96, 4096), (4096, 1024), (33, 40)}
 * ((33, 40): K % 16 ≠ 0, the tiled kernel). Each shape runs the path the
 * LINEAR chooses (GEMV for M ≤ 8, cuBLASLt above) and the tiled kernel,
 * and fp8 also the unscaled cuBLASLt GEMM + epilogue kernel that GPUs
 * without the outer-vector scale mode take. Weights have outlier rows and
 * an all-zero row, x an all-zero row, an outlier row and a row of exact
 * rounding ties; the activation-quantization kernel's codes and scales
 * (its vector and element-wise variants) must equal
 * llmrt_q8_quantize_activation's bit for bit.
 *
 * Bounds: codes match exactly, so the only differences are the order and
 * precision of the sums: fp32 accumulation of exact E4M3 products (the
 * GEMV, the tiled kernel), cuBLASLt's FP8 tensor-core accumulation
 * (partial sums of ~2^-14 relative precision promoted to fp32) and fp32
 * scaling, against the reference's f64. Over K ≤ 4096 terms that is far
 * below max |y − ref| ≤ 1e-3 · max |ref| (f32 out); int8 sums are exact.
 * A 16-bit output adds one rounding: ≤ 2^-8 |ref| (bf16), 2^-11 (f16).
 * Without a GPU it exits 77 (skipped). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_q8.h"
#include "core/dtype.h"
#include "core/quant8.h"
#include "cuda_test_util.h"

enum { MAX_M = 300, ZERO_ROW = 5, OUTLIER_ROW = 1, TIES_ROW = 2 };

static int device_cc; /* 10 · major + minor */

/* W [N, K]: random, every 7th row with one outlier column (×50), row 2 all zero. */
static float *make_weights(int64_t N, int64_t K, uint64_t *rng) {
    float *w = rand_floats((size_t)(N * K), rng, 0.1f);
    for (int64_t n = 0; n < N; n += 7) w[n * K + (n * 13) % K] *= 50.0f;
    if (N > 2) memset(w + 2 * K, 0, sizeof(float) * (size_t)K);
    return w;
}

/* x [MAX_M, K] as `act` holds it: random, one outlier row, one zero row,
 * and a row whose amax makes the per-token scale a power of two and whose
 * other values land exactly halfway between codes (ties to even, the
 * exponent carry at 248 → 256, subnormal codes, signed zeros). */
static float *make_x(int64_t K, int kind, llmrt_dtype act, uint64_t *rng) {
    float *x = rand_floats((size_t)(MAX_M * K), rng, 1.0f);
    for (int64_t k = 0; k < K; k += 5) x[OUTLIER_ROW * K + k] *= 30.0f;
    memset(x + ZERO_ROW * K, 0, sizeof(float) * (size_t)K);
    static const float fp8_ties[] = {1.0625f, 1.1875f, -1.0625f, 0x1p-10f, 3 * 0x1p-10f, -3 * 0x1p-10f,
                                     248.0f,  -248.0f, 13.5f,    0.0f,     -0.0f,        -13.5f};
    static const float int8_ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 126.5f, -126.5f, 3.25f, 0.0f, -1.5f};
    const int fp8 = kind == LLMRT_Q8_FP8;
    const float unit = fp8 ? 0x1p-8f : 0x1p-7f; /* the scale amax / QMAX comes out as */
    const int n_ties =
        fp8 ? (int)(sizeof fp8_ties / sizeof fp8_ties[0]) : (int)(sizeof int8_ties / sizeof int8_ties[0]);
    float *t = x + TIES_ROW * K;
    t[0] = (fp8 ? LLMRT_FP8_E4M3_MAX : LLMRT_INT8_QMAX) * unit;
    for (int64_t k = 1; k < K; k++) t[k] = (fp8 ? fp8_ties[k % n_ties] : int8_ties[k % n_ties]) * unit;
    round_to(x, (size_t)(MAX_M * K), act);
    return x;
}

static void *make_blob(llmrt_dtype dtype, const float *w, int64_t N, int64_t K, float input_scale) {
    llmrt_q8weight_header h;
    if (llmrt_q8weight_layout(dtype, N, K, &h) != LLMRT_OK) return NULL;
    if (input_scale > 0) {
        h.flags |= LLMRT_Q8_STATIC_INPUT;
        h.input_scale = input_scale;
    }
    void *blob = aligned_alloc(64, (size_t)h.total_bytes);
    llmrt_q8weight_init(blob, &h);
    llmrt_q8_quantize_matrix(blob, w, input_scale > 0); /* static: per-tensor weights */
    return blob;
}

/* The reference over MAX_M rows, in parallel blocks of rows (each call is
 * the single-threaded reference on its rows). */
static void reference(float *ref, const float *x, int64_t K, const void *blob, int64_t N) {
    const int64_t block = 10;
#pragma omp parallel for schedule(dynamic)
    for (int64_t m0 = 0; m0 < MAX_M; m0 += block)
        llmrt_q8_linear_reference(ref + m0 * N, x + m0 * K, block, blob, NULL);
}

static float max_abs(const float *a, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i]));
    return m;
}

static const char *path_name(cuda_q8_path p) {
    static const char *names[] = {"auto", "gemv", "cublaslt-scaled", "cublaslt+epilogue", "tiled"};
    return (unsigned)p < 5 ? names[p] : "?";
}

/* The activation-quantization kernel against llmrt_q8_quantize_activation:
 * `shifted` reads x one element past a 16-byte boundary, which takes the
 * kernel's element-wise variant instead of the vector one. */
static void check_quantize(const void *d_x, const float *x, int64_t K, int kind, llmrt_dtype act, float static_scale,
                           int shifted) {
    uint8_t *d_codes = dev_poisoned((size_t)(MAX_M * K)), *codes = malloc((size_t)(MAX_M * K)),
            *want = malloc((size_t)K);
    float *d_scales = dev_poisoned(sizeof(float) * MAX_M), scales[MAX_M];
    const size_t es = llmrt_dtype_size(act), x_bytes = (size_t)(MAX_M * K) * es;
    unsigned char *d_shifted = shifted ? dev_poisoned(x_bytes + es) : NULL;
    if (shifted) CUDA_CHECK(cudaMemcpy(d_shifted + es, d_x, x_bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cuda_q8_quantize(d_codes, d_scales, shifted ? (const void *)(d_shifted + es) : d_x, act, MAX_M, K,
                                kind, static_scale, 0, NULL));
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaMemcpy(codes, d_codes, (size_t)(MAX_M * K), cudaMemcpyDeviceToHost);
    cudaMemcpy(scales, d_scales, sizeof scales, cudaMemcpyDeviceToHost);
    int bad_rows = 0;
    for (int64_t m = 0; m < MAX_M; m++) {
        const float s = llmrt_q8_quantize_activation(kind, x + m * K, K, static_scale, want);
        if (memcmp(&s, &scales[m], sizeof s) != 0 || memcmp(want, codes + m * K, (size_t)K) != 0) {
            if (bad_rows++ < 3) {
                int64_t k = 0;
                while (k < K && want[k] == codes[m * K + k]) k++;
                fprintf(stderr, "   row %lld: scale %a (want %a), first differing code at %lld: %#x (want %#x)\n",
                        (long long)m, (double)scales[m], (double)s, (long long)k, k < K ? codes[m * K + k] : 0,
                        k < K ? want[k] : 0);
            }
        }
    }
    CHECK_MSG(bad_rows == 0, "%s quantization of %s x [%d, %lld]%s%s: %d rows differ from the reference",
              kind == LLMRT_Q8_FP8 ? "fp8" : "int8", llmrt_dtype_name(act), MAX_M, (long long)K,
              static_scale > 0 ? " (static scale)" : "", shifted ? " (unaligned)" : "", bad_rows);
    cudaFree(d_codes), cudaFree(d_scales), cudaFree(d_shifted);
    free(codes), free(want);
}

/* One forward of the first M rows against ref + bias; returns the path used. */
static cuda_q8_path check_forward(cuda_q8linear *q, const void *d_x, llmrt_dtype act, llmrt_dtype ty, int64_t M,
                                  const void *d_blob, const llmrt_q8weight_header *h, const float *d_bias,
                                  const float *want, cuda_q8_path force, const char *label) {
    const int64_t N = h->rows;
    const size_t n = (size_t)(M * N);
    void *d_y = dev_poisoned(n * sizeof(float));
    float *got = malloc(n * sizeof(float));
    cuda_q8_path used = CUDA_Q8_PATH_AUTO;
    CHECK_OK(cuda_q8linear_forward(q, d_y, ty, d_x, act, M, d_blob, h, d_bias, 0, NULL, force, &used));
    dev_to_f32(got, d_y, n, ty);
    const double bound = 1e-3 * max_abs(want, n);
    const double rel16 = ty == LLMRT_DTYPE_BF16 ? 0x1p-8 : ty == LLMRT_DTYPE_F16 ? 0x1p-11 : 0.0;
    double worst = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - want[i]), allowed = bound + rel16 * fabs(want[i]);
        if (!(err <= allowed) && bad++ == 0) first_bad = i;
        if (err > worst || err != err) worst = err;
    }
    CHECK_MSG(bad == 0,
              "%s M=%lld -> %s via %s: %zu of %zu outputs off (worst %.3g, bound %.3g; first [%zu, %zu] %g, want %g)",
              label, (long long)M, llmrt_dtype_name(ty), path_name(used), bad, n, worst, bound, first_bad / (size_t)N,
              first_bad % (size_t)N, (double)got[first_bad], (double)want[first_bad]);
    if (getenv("LLMRT_TEST_VERBOSE"))
        fprintf(stderr, "   %s M=%lld -> %s via %s: max err %.3g (bound %.3g)\n", label, (long long)M,
                llmrt_dtype_name(ty), path_name(used), worst, bound);
    cudaFree(d_y);
    free(got);
    return used;
}

/* q: the default scratch; q_small: 128 KiB of it, so that 300 rows run in
 * chunks (of 64 or 128 rows) on the larger shapes. */
static void check_case(cuda_q8linear *q, cuda_q8linear *q_small, llmrt_dtype dtype, int64_t N, int64_t K,
                       int static_input, llmrt_dtype act, uint64_t *rng) {
    const int kind = dtype == LLMRT_DTYPE_FP8_W8A8 ? LLMRT_Q8_FP8 : LLMRT_Q8_INT8;
    char label[160];
    snprintf(label, sizeof label, "%s [%lld, %lld] %s x %s", llmrt_dtype_name(dtype), (long long)N, (long long)K,
             static_input ? "static" : "per-token", llmrt_dtype_name(act));
    float *w = make_weights(N, K, rng), *x = make_x(K, kind, act, rng), *bias = rand_floats((size_t)N, rng, 0.5f);
    /* a static scale that clips the largest 20% of the range */
    const float static_scale = static_input ? 0.8f * max_abs(x, (size_t)(MAX_M * K)) / llmrt_q8_qmax(dtype) : 0.0f;
    void *blob = make_blob(dtype, w, N, K, static_scale);
    const llmrt_q8weight_header *h = blob;
    float *ref = malloc(sizeof(float) * (size_t)(MAX_M * N)), *refb = malloc(sizeof(float) * (size_t)(MAX_M * N));
    reference(ref, x, K, blob, N);
    /* The reference ends with (float)(acc · sx · sw) + bias[n]: adding the
     * bias to its unbiased output in f32 is the same operation; check that
     * on a few rows, then use it for every M. */
    for (int64_t i = 0; i < MAX_M * N; i++) refb[i] = ref[i] + bias[i % N];
    float *few = malloc(sizeof(float) * (size_t)(3 * N));
    llmrt_q8_linear_reference(few, x, 3, blob, bias);
    CHECK_MSG(memcmp(few, refb, sizeof(float) * (size_t)(3 * N)) == 0, "%s: the biased reference differs", label);
    free(few);

    void *d_x = dev_from_f32(x, (size_t)(MAX_M * K), act), *d_blob = dev_from_bytes(blob, (size_t)h->total_bytes);
    float *d_bias = dev_from_f32(bias, (size_t)N, LLMRT_DTYPE_F32);
    check_quantize(d_x, x, K, kind, act, static_scale, 0);
    check_quantize(d_x, x, K, kind, act, static_scale, 1);

    static const int64_t Ms[] = {1, 3, 8, 9, 64, MAX_M};
    const llmrt_dtype outs[2] = {LLMRT_DTYPE_F32, act};
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        const int64_t M = Ms[mi];
        for (int with_bias = 0; with_bias < 2; with_bias++)
            for (int o = 0; o < (act == LLMRT_DTYPE_F32 ? 1 : 2); o++) {
                const float *want = with_bias ? refb : ref;
                const float *db = with_bias ? d_bias : NULL;
                const cuda_q8_path used =
                    check_forward(q, d_x, act, outs[o], M, d_blob, h, db, want, CUDA_Q8_PATH_AUTO, label);
                /* the path: GEMV at decode sizes, cuBLASLt above where the GPU has it */
                const int aligned = K % 16 == 0;
                const int lt_expected = aligned && device_cc >= (kind == LLMRT_Q8_FP8 ? 89 : 75);
                if (M <= CUDA_Q8_GEMV_MAX_M && aligned)
                    CHECK_MSG(used == CUDA_Q8_PATH_GEMV, "%s M=%lld ran %s, not the GEMV", label, (long long)M,
                              path_name(used));
                else if (lt_expected)
                    CHECK_MSG(used != CUDA_Q8_PATH_TILED, "%s M=%lld: cuBLASLt refused it", label, (long long)M);
                if (M > CUDA_Q8_GEMV_MAX_M && lt_expected && kind == LLMRT_Q8_FP8 && device_cc == 90)
                    CHECK_MSG(used == CUDA_Q8_PATH_LT_SCALED,
                              "%s M=%lld: cuBLASLt refused the outer-vector scales on sm_90 (ran %s)", label,
                              (long long)M, path_name(used));
                /* the other paths on the same data */
                if (M <= CUDA_Q8_GEMV_MAX_M && aligned)
                    check_forward(q, d_x, act, outs[o], M, d_blob, h, db, want, CUDA_Q8_PATH_GEMV_SPLIT, label);
                check_forward(q, d_x, act, outs[o], M, d_blob, h, db, want, CUDA_Q8_PATH_TILED, label);
                if (kind == LLMRT_Q8_FP8 && lt_expected)
                    check_forward(q, d_x, act, outs[o], M, d_blob, h, db, want, CUDA_Q8_PATH_LT_EPILOGUE, label);
                if (M == MAX_M) {
                    char chunked[200];
                    snprintf(chunked, sizeof chunked, "%s (chunked)", label);
                    check_forward(q_small, d_x, act, outs[o], M, d_blob, h, db, want, CUDA_Q8_PATH_AUTO, chunked);
                    check_forward(q_small, d_x, act, outs[o], M, d_blob, h, db, want, CUDA_Q8_PATH_TILED, chunked);
                    if (kind == LLMRT_Q8_FP8 && lt_expected)
                        check_forward(q_small, d_x, act, outs[o], M, d_blob, h, db, want, CUDA_Q8_PATH_LT_EPILOGUE,
                                      chunked);
                }
            }
    }
    cudaFree(d_x), cudaFree(d_blob), cudaFree(d_bias);
    free(w), free(x), free(bias), free(blob), free(ref), free(refb);
}

static void test_q8_linears(void) {
    cuda_gemm *gemm = NULL;
    cuda_q8linear *q = NULL, *q_small = NULL;
    CHECK_OK(cuda_gemm_create(&gemm, 32 << 20, 0));
    if (gemm) CHECK_OK(cuda_q8linear_create(&q, gemm, MAX_M, 4096, 4096, 0));
    if (q) CHECK_OK(cuda_q8linear_create(&q_small, gemm, MAX_M, 4096, 4096, 128 << 10));
    if (!q_small) {
        cuda_q8linear_destroy(q);
        cuda_gemm_free(gemm);
        return;
    }
    uint64_t rng = 24;
    static const llmrt_dtype dtypes[] = {LLMRT_DTYPE_FP8_W8A8, LLMRT_DTYPE_INT8_W8A8};
    static const llmrt_dtype acts[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_BF16};
    static const int64_t shapes[][2] = {{64, 64}, {96, 4096}, {4096, 1024}, {33, 40}};
    for (int d = 0; d < 2; d++)
        for (int st = 0; st < 2; st++)
            for (int a = 0; a < 2; a++)
                for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                    check_case(q, q_small, dtypes[d], shapes[s][0], shapes[s][1], st, acts[a], &rng);
    cuda_q8linear_destroy(q);
    cuda_q8linear_destroy(q_small);
    cuda_gemm_free(gemm);
}

int main(void) {
    const int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
    device_cc = 10 * major + minor;
    RUN_TEST(test_q8_linears);
    return test_finish();
}
