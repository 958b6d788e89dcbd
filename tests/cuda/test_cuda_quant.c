/* Quantized linears on the GPU against their CPU twins: the GEMV that
 * dequantizes in registers (decode sizes) and the dequantization the
 * prefill GEMM reads, for int8-wo / int4-wo, groups of 32, 128 and per
 * channel, odd N (a partial panel) and K (a padded block), f32 / f16 / bf16
 * activations, inputs stored in order and permuted (GPTQ act-order); then
 * whole int4-wo / int8-wo engines on the cuda backend
 * against the same engines on the CPU (exact path), prompt and decode.
 * Without a GPU it exits 77 (skipped). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_quant.h"
#include "backends/cuda/cuda_quant.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "cuda_test_util.h"
#include "llmrt/llmrt.h"

/* `permuted`: inputs stored reversed (a GPTQ act-order blob). */
static void *make_blob(llmrt_dtype dtype, int64_t N, int64_t K, int64_t group, int permuted, float *deq,
                       uint64_t *rng) {
    llmrt_qweight_header h;
    if (llmrt_qweight_layout(dtype, N, K, group, permuted, &h) != LLMRT_OK) return NULL;
    void *blob = aligned_alloc(64, (size_t)h.total_bytes);
    llmrt_qweight_init(blob, &h);
    if (permuted) {
        int32_t *perm = (int32_t *)((uint8_t *)blob + llmrt_qweight_perm_offset(&h));
        for (int64_t k = 0; k < K; k++) perm[k] = (int32_t)(K - 1 - k);
    }
    float *row = malloc(sizeof(float) * (size_t)K);
    for (int64_t n = 0; n < N; n++) {
        test_fill_random(row, (size_t)K, rng, 0.2f);
        llmrt_quantize_row(blob, n, row, (int)(n % 2));
        llmrt_dequantize_row(blob, n, deq + n * K);
    }
    free(row);
    return blob;
}

static void check_kernels(llmrt_dtype dtype, llmrt_dtype act, int64_t M, int64_t N, int64_t K, int64_t group,
                          int permuted, uint64_t *rng) {
    float *deq = malloc(sizeof(float) * (size_t)(N * K)), *x = malloc(sizeof(float) * (size_t)(M * K));
    float *bias = malloc(sizeof(float) * (size_t)N), *ref = malloc(sizeof(float) * (size_t)(M * N));
    float *got = malloc(sizeof(float) * (size_t)(M * N)), *back = malloc(sizeof(float) * (size_t)(N * K));
    void *blob = make_blob(dtype, N, K, group, permuted, deq, rng);
    const llmrt_qweight_header *h = blob;
    test_fill_random(x, (size_t)(M * K), rng, 1.0f);
    test_fill_random(bias, (size_t)N, rng, 0.5f);
    round_to(x, (size_t)(M * K), act);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias[n];
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * deq[n * K + k];
            ref[m * N + n] = (float)s;
        }
    void *d_blob = dev_from_bytes(blob, (size_t)h->total_bytes), *d_x = dev_from_f32(x, (size_t)(M * K), act);
    void *d_bias = dev_from_f32(bias, (size_t)N, LLMRT_DTYPE_F32), *d_y = NULL, *d_w = NULL;
    CUDA_CHECK(cudaMalloc(&d_y, sizeof(float) * (size_t)(M * N)));
    CUDA_CHECK(cudaMalloc(&d_w, sizeof(float) * (size_t)(N * K)));
    /* the GEMV, into f32 and into the activation type */
    if (M <= CUDA_QGEMV_MAX_M) {
        for (int f32_out = 0; f32_out < 2; f32_out++) {
            const llmrt_dtype ty = f32_out ? LLMRT_DTYPE_F32 : act;
            CUDA_CHECK(cuda_qgemv(d_y, ty, d_x, act, d_blob, h, d_bias, M, 0, NULL));
            CUDA_CHECK(cudaDeviceSynchronize());
            void *host = malloc(sizeof(float) * (size_t)(M * N));
            cudaMemcpy(host, d_y, (size_t)(M * N) * llmrt_dtype_size(ty), cudaMemcpyDeviceToHost);
            llmrt_convert_to_f32(got, host, ty, (size_t)(M * N));
            free(host);
            const double err = test_rel_l2(got, ref, (size_t)(M * N));
            const double tol = ty == LLMRT_DTYPE_F32 ? 1e-5 : ty == LLMRT_DTYPE_F16 ? 2e-3 : 1e-2;
            CHECK_MSG(err < tol, "qgemv %s x %s -> %s M=%lld N=%lld K=%lld group=%lld permuted=%d: rel err %g",
                      llmrt_dtype_name(dtype), llmrt_dtype_name(act), llmrt_dtype_name(ty), (long long)M, (long long)N,
                      (long long)K, (long long)group, permuted, err);
        }
    }
    /* the dequantization: exactly the CPU's values, rounded to the type */
    CUDA_CHECK(cuda_qdequantize(d_w, act, d_blob, h, NULL));
    CUDA_CHECK(cudaDeviceSynchronize());
    void *host = malloc(sizeof(float) * (size_t)(N * K));
    cudaMemcpy(host, d_w, (size_t)(N * K) * llmrt_dtype_size(act), cudaMemcpyDeviceToHost);
    llmrt_convert_to_f32(back, host, act, (size_t)(N * K));
    free(host);
    round_to(deq, (size_t)(N * K), act);
    CHECK_MSG(memcmp(back, deq, sizeof(float) * (size_t)(N * K)) == 0,
              "qdequantize %s -> %s N=%lld K=%lld group=%lld permuted=%d", llmrt_dtype_name(dtype),
              llmrt_dtype_name(act), (long long)N, (long long)K, (long long)group, permuted);
    cudaFree(d_blob), cudaFree(d_x), cudaFree(d_bias), cudaFree(d_y), cudaFree(d_w);
    free(deq), free(x), free(bias), free(ref), free(got), free(back), free(blob);
}

static void test_kernels(void) {
    uint64_t rng = 3;
    const llmrt_dtype dtypes[] = {LLMRT_DTYPE_INT8_WO, LLMRT_DTYPE_INT4_WO};
    const llmrt_dtype acts[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    const int64_t shapes[][4] = {{1, 64, 64, 32},   {3, 40, 704, 128}, {8, 264, 4096, 128},
                                 {2, 17, 100, 0},   {5, 96, 256, 256}, {33, 48, 128, 32}};
    for (int t = 0; t < 2; t++)
        for (int a = 0; a < 3; a++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_kernels(dtypes[t], acts[a], shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], (int)(s % 2),
                              &rng);
}

static float *engine_logits(const char *path, const int32_t *ids, int32_t n, int32_t *vocab) {
    llmrt_engine *engine = NULL;
    CHECK_OK(llmrt_engine_load(path, NULL, &engine));
    if (!engine) return NULL;
    *vocab = llmrt_engine_vocab_size(engine);
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)*vocab);
    CHECK_OK(llmrt_prompt_logits(engine, ids, n, logits));
    llmrt_engine_free(engine);
    return logits;
}

/* Prompt logits through the GEMM path (24 rows) and one row at a time
 * through the GEMV: each must match the CPU engine of the same weights. */
static void test_engines(void) {
    char model[1024];
    snprintf(model, sizeof model, "%s/tests/golden/cases/llama_f32", LLMRT_SOURCE_DIR);
    char *tmp = test_temp_dir();
    const llmrt_dtype quants[] = {LLMRT_DTYPE_INT4_WO, LLMRT_DTYPE_INT8_WO};
    for (int q = 0; q < 2; q++) {
        char gpu[1200], cpu[1200];
        snprintf(gpu, sizeof gpu, "%s/gpu%d.engine", tmp, q);
        snprintf(cpu, sizeof cpu, "%s/cpu%d.engine", tmp, q);
        for (int b = 0; b < 2; b++) {
            llmrt_build_options o;
            llmrt_build_options_init(&o);
            o.model_dir = model;
            o.output_path = b ? cpu : gpu;
            o.backend = b ? "cpu" : "cuda";
            o.dtype = LLMRT_DTYPE_BF16;
            o.quant = quants[q];
            o.group_size = 32;
            o.max_batch = 2, o.max_num_tokens = 64, o.max_seq_len = 64;
            CHECK_OK(llmrt_build(&o));
        }
        int32_t ids[24], vocab = 0;
        for (int i = 0; i < 24; i++) ids[i] = (i * 29 + 3) % 100;
        float *want = engine_logits(cpu, ids, 24, &vocab), *got = engine_logits(gpu, ids, 24, &vocab);
        if (want && got) {
            const double err = test_rel_l2(got, want, (size_t)(24 * vocab));
            fprintf(stderr, "   %s engine, 24-token prompt: logits rel L2 %.3g against the CPU\n",
                    llmrt_dtype_name(quants[q]), err);
            CHECK_MSG(err < 3e-2, "%s engine: logits rel L2 %g against the CPU engine", llmrt_dtype_name(quants[q]), err);
        }
        free(want), free(got);
        want = engine_logits(cpu, ids, 1, &vocab), got = engine_logits(gpu, ids, 1, &vocab);
        if (want && got)
            CHECK_MSG(test_rel_l2(got, want, (size_t)vocab) < 3e-2, "%s engine: one-token logits differ",
                      llmrt_dtype_name(quants[q]));
        free(want), free(got);
    }
    free(tmp);
}

int main(void) {
    const int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    cpu_qlinear_set_integer(0); /* the CPU engines' exact path: x in f32 */
    RUN_TEST(test_kernels);
    RUN_TEST(test_engines);
    return test_finish();
}
