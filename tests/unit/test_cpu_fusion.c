/* The CPU backend's runtime fusions (residual add + RMSNorm; q/k/v and
 * gate/up linears in one region, with the SiLU product folded in) give the
 * same bits as running every node alone (LLMRT_CPU_FUSE=0), for fp32 and
 * bf16 engines, prompts of 1 (decode-sized) to 37 tokens. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmrt/llmrt.h"
#include "test_util.h"

#define CASES LLMRT_SOURCE_DIR "/tests/golden/cases/"

static llmrt_engine *load(const char *path, const char *fuse) {
    if (fuse) setenv("LLMRT_CPU_FUSE", fuse, 1);
    else unsetenv("LLMRT_CPU_FUSE");
    llmrt_engine *e = NULL;
    llmrt_status s = llmrt_engine_load(path, NULL, &e);
    CHECK_MSG(s == LLMRT_OK, "load %s: %s", path, llmrt_last_error());
    unsetenv("LLMRT_CPU_FUSE");
    return s == LLMRT_OK ? e : NULL;
}

static void check_case(const char *name) {
    char *tmp = test_temp_dir(), model[1024], engine[1024];
    snprintf(model, sizeof model, "%s%s", CASES, name);
    snprintf(engine, sizeof engine, "%s/%s.engine", tmp, name);
    llmrt_build_options bo;
    llmrt_build_options_init(&bo);
    bo.model_dir = model;
    bo.output_path = engine;
    bo.max_seq_len = 128;
    bo.max_batch = 4;
    bo.max_num_tokens = 64;
    llmrt_status s = llmrt_build(&bo);
    CHECK_MSG(s == LLMRT_OK, "build %s: %s", name, llmrt_last_error());
    llmrt_engine *fused = s == LLMRT_OK ? load(engine, NULL) : NULL;
    llmrt_engine *plain = s == LLMRT_OK ? load(engine, "0") : NULL;
    if (fused && plain) {
        const int32_t vocab = llmrt_engine_vocab_size(fused);
        static const int32_t lengths[] = {1, 2, 9, 37};
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
            const int32_t n = lengths[i];
            int32_t ids[64];
            uint64_t rng = 99 + (uint64_t)n;
            for (int32_t t = 0; t < n; t++) ids[t] = (int32_t)(test_rand_u64(&rng) % (uint64_t)vocab);
            float *a = malloc(sizeof(float) * (size_t)n * (size_t)vocab);
            float *b = malloc(sizeof(float) * (size_t)n * (size_t)vocab);
            CHECK_OK(llmrt_prompt_logits(fused, ids, n, a));
            CHECK_OK(llmrt_prompt_logits(plain, ids, n, b));
            CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)n * (size_t)vocab) == 0,
                      "%s, %d tokens: fused and unfused logits differ (rel %g)", name, n,
                      test_rel_l2(a, b, (size_t)n * (size_t)vocab));
            free(a), free(b);
        }
    }
    llmrt_engine_free(fused);
    llmrt_engine_free(plain);
    remove(engine);
    rmdir(tmp);
    free(tmp);
}

int main(void) {
    check_case("llama_f32");
    check_case("llama_bf16");
    check_case("qwen2_bf16");    /* q/k/v biases */
    check_case("mistral_mqa_bf16");
    return test_finish();
}
