/* The CPU backend's runtime fusions (residual add + RMSNorm; q/k/v and
 * gate/up linears in one region, with the SiLU product folded in) give the
 * same bits as running every node alone (LLMRT_CPU_FUSE=0), for fp32 and
 * bf16 engines; and 16-bit weights in the interleaved layout the backend
 * gives them at load the same bits as the engine's rows, read in place
 * (LLMRT_CPU_WEIGHTS=map), tied embedding tables (gathered from the LM
 * head's layout) and MoE expert stacks (kept in rows) included. Prompts of
 * 1 (decode-sized) to 37 tokens. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmrt/llmrt.h"
#include "test_util.h"

#define CASES LLMRT_SOURCE_DIR "/tests/golden/cases/"

/* The engine loaded with the environment variable `var` set to `value`
 * (or unset, with value NULL). */
static llmrt_engine *load(const char *path, const char *var, const char *value) {
    if (value) setenv(var, value, 1);
    else unsetenv(var);
    llmrt_engine *e = NULL;
    llmrt_status s = llmrt_engine_load(path, NULL, &e);
    CHECK_MSG(s == LLMRT_OK, "load %s: %s", path, llmrt_last_error());
    unsetenv(var);
    return s == LLMRT_OK ? e : NULL;
}

/* The logits with `var` unset and with var=value: the same bits. */
static void check_case(const char *name, const char *var, const char *value) {
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
    llmrt_engine *fused = s == LLMRT_OK ? load(engine, var, NULL) : NULL;
    llmrt_engine *plain = s == LLMRT_OK ? load(engine, var, value) : NULL;
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
                      "%s, %d tokens: logits differ with %s=%s (rel %g)", name, n, var, value,
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
    check_case("llama_f32", "LLMRT_CPU_FUSE", "0");
    check_case("llama_bf16", "LLMRT_CPU_FUSE", "0");
    check_case("qwen2_bf16", "LLMRT_CPU_FUSE", "0"); /* q/k/v biases */
    check_case("mistral_mqa_bf16", "LLMRT_CPU_FUSE", "0");
    check_case("llama3_rope_f16", "LLMRT_CPU_WEIGHTS", "map");
    check_case("llama_bf16", "LLMRT_CPU_WEIGHTS", "map");
    check_case("gpt2_f16", "LLMRT_CPU_WEIGHTS", "map");    /* tied table, biases */
    check_case("gemma2_bf16", "LLMRT_CPU_WEIGHTS", "map"); /* tied table */
    check_case("mixtral_bf16", "LLMRT_CPU_WEIGHTS", "map"); /* expert stacks */
    return test_finish();
}
