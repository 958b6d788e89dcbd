/* Calibration on the GPU: the column-amax kernel of OBSERVE nodes against
 * its CPU twin (f32, f16, bf16 inputs, odd sizes, accumulation over calls,
 * a sticky NaN), and the calibration runner on the CUDA backend against the
 * CPU backend on the demo model (bf16 activations on the GPU: the
 * statistics agree within bf16's rounding). Without a GPU it exits 77. */
#include <math.h>

#include "api/calibrate.h"
#include "backends/cpu/cpu_kernels_observe.h"
#include "backends/cuda/cuda_observe.h"
#include "cuda_test_util.h"
#include "import/hf_config.h"

#define DEMO LLMRT_SOURCE_DIR "/models/demo"

static void test_kernel(llmrt_dtype type) {
    static const int64_t shapes[][2] = {{1, 1}, {5, 300}, {200, 257}, {4100, 64}};
    uint64_t rng = 5;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1];
        const size_t n = (size_t)(rows * cols);
        float *x = malloc(n * sizeof *x), *want = calloc((size_t)cols, sizeof *want);
        float *got = malloc((size_t)cols * sizeof *got);
        test_fill_random(x, n, &rng, 4.0f);
        x[n / 2] = 250.0f; /* one outlier */
        round_to(x, n, type);
        float *amax = NULL;
        void *dx = dev_from_f32(x, n, type);
        CUDA_CHECK(cudaMalloc((void **)&amax, (size_t)cols * sizeof(float)));
        CUDA_CHECK(cudaMemset(amax, 0, (size_t)cols * sizeof(float)));
        /* twice: the second call must keep the first's maxima */
        for (int call = 0; call < 2; call++) {
            CUDA_CHECK(cuda_column_amax(amax, dx, type, rows, cols, 0));
            cpu_column_amax(want, x, rows, cols);
        }
        CUDA_CHECK(cudaMemcpy(got, amax, (size_t)cols * sizeof(float), cudaMemcpyDeviceToHost));
        CHECK_MSG(memcmp(got, want, (size_t)cols * sizeof(float)) == 0, "%s [%lld, %lld]: GPU and CPU maxima differ",
                  llmrt_dtype_name(type), (long long)rows, (long long)cols);
        if (type == LLMRT_DTYPE_F32) {
            x[0] = NAN;
            void *dnan = dev_from_f32(x, n, type);
            CUDA_CHECK(cuda_column_amax(amax, dnan, type, rows, cols, 0));
            CUDA_CHECK(cuda_column_amax(amax, dx, type, rows, cols, 0));
            CUDA_CHECK(cudaMemcpy(got, amax, sizeof(float), cudaMemcpyDeviceToHost));
            CHECK(isnan(got[0]));
            cudaFree(dnan);
        }
        cudaFree(dx);
        cudaFree(amax);
        free(x), free(want), free(got);
    }
}

static void test_runner_matches_cpu(void) {
    llmrt_model_config config;
    llmrt_checkpoint *ck = NULL;
    CHECK_OK(llmrt_hf_config_load(DEMO "/config.json", &config));
    CHECK_OK(llmrt_checkpoint_open_dir(DEMO, &ck));
    if (!ck) return;
    llmrt_compile_options cpu = {.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_BF16,
                                 .max_num_tokens = 128, .max_batch = 1, .max_seq_len = 128};
    llmrt_compile_options gpu = cpu;
    gpu.target = "cuda";
    gpu.act_dtype = LLMRT_DTYPE_BF16;
    const llmrt_calibrate_options co = {.text_path = DEMO "/validation.txt", .tokenizer_path = DEMO "/tokenizer.json",
                                        .samples = 4, .sample_len = 128};
    llmrt_calibration *a = NULL, *b = NULL;
    CHECK_OK(llmrt_calibrate(&config, ck, &cpu, &co, &a));
    CHECK_OK(llmrt_calibrate(&config, ck, &gpu, &co, &b));
    CHECK(a && b && a->count == b->count && a->count > 0);
    for (int32_t i = 0; a && b && i < a->count; i++) {
        const llmrt_calib_entry *x = &a->entries[i], *y = llmrt_calibration_find(b, x->weight);
        CHECK_MSG(y && y->cols == x->cols, "no GPU entry for %s", x->weight);
        if (!y || y->cols != x->cols) continue;
        /* bf16 activations through 8 layers: a few roundings of 2^-8 */
        CHECK_MSG(fabsf(y->input_amax - x->input_amax) <= 0.05f * x->input_amax, "%s: input_amax cpu %g, cuda %g",
                  x->weight, (double)x->input_amax, (double)y->input_amax);
        double num = 0, den = 0;
        for (int64_t k = 0; k < x->cols; k++) {
            num += (double)(y->channel_amax[k] - x->channel_amax[k]) * (y->channel_amax[k] - x->channel_amax[k]);
            den += (double)x->channel_amax[k] * x->channel_amax[k];
        }
        CHECK_MSG(sqrt(num / den) <= 0.03, "%s: channel maxima differ by %g (relative L2)", x->weight, sqrt(num / den));
    }
    llmrt_calibration_free(a);
    llmrt_calibration_free(b);
    llmrt_checkpoint_close(ck);
}

int main(void) {
    const int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    RUN_TEST_ARG(test_kernel, LLMRT_DTYPE_F32);
    RUN_TEST_ARG(test_kernel, LLMRT_DTYPE_F16);
    RUN_TEST_ARG(test_kernel, LLMRT_DTYPE_BF16);
    RUN_TEST(test_runner_matches_cpu);
    return test_finish();
}
