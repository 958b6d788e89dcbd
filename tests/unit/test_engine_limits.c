/* Load-time limits: an engine built with small limits (64 tokens per
 * sequence, 2 sequences and 16 tokens per step) loads with larger ones and
 * then computes what an engine built with those computes, bit for bit;
 * without them it keeps its build's; limits beyond the model or
 * inconsistent with each other are refused naming the problem. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/llmrt.h"
#include "llmrt/runtime.h"
#include "test_util.h"

#define CASE_DIR LLMRT_SOURCE_DIR "/tests/golden/cases/llama_f32"
enum { VOCAB = 128, PROMPT = 300 };

static char small_path[1024], large_path[1024];

static int build(const char *out, int32_t seq_len, int32_t batch, int32_t tokens) {
    llmrt_build_options bo;
    llmrt_build_options_init(&bo);
    bo.model_dir = CASE_DIR;
    bo.output_path = out;
    bo.max_seq_len = seq_len;
    bo.max_batch = batch;
    bo.max_num_tokens = tokens;
    llmrt_status s = llmrt_build(&bo);
    CHECK_MSG(s == LLMRT_OK, "build %s: %s", out, llmrt_last_error());
    return s == LLMRT_OK;
}

static llmrt_engine *load(const char *path, int32_t seq_len, int32_t batch, int32_t tokens) {
    llmrt_engine_options eo;
    llmrt_engine_options_init(&eo);
    eo.max_seq_len = seq_len;
    eo.max_batch = batch;
    eo.max_num_tokens = tokens;
    llmrt_engine *e = NULL;
    if (llmrt_engine_load(path, &eo, &e) != LLMRT_OK) return NULL;
    return e;
}

static void test_raised_limits_compute_as_built(void) {
    int32_t prompt[PROMPT];
    uint64_t st = 77;
    for (int i = 0; i < PROMPT; i++) prompt[i] = (int32_t)(test_rand_u64(&st) % VOCAB);
    llmrt_engine *raised = load(small_path, 400, 8, 128), *built = load(large_path, 0, 0, 0);
    CHECK_MSG(raised && built, "%s", llmrt_last_error());
    if (!raised || !built) goto done;
    CHECK(llmrt_engine_max_seq_len(raised) == 400);
    float *a = malloc((size_t)PROMPT * VOCAB * sizeof *a), *b = malloc((size_t)PROMPT * VOCAB * sizeof *b);
    CHECK_OK(llmrt_prompt_logits(raised, prompt, PROMPT, a));
    CHECK_OK(llmrt_prompt_logits(built, prompt, PROMPT, b));
    CHECK(memcmp(a, b, (size_t)PROMPT * VOCAB * sizeof *a) == 0);
    free(a);
    free(b);
    /* 8 sequences a step: n = 8 is accepted (the build's 2 would refuse it) */
    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(raised, NULL, &rt));
    if (rt) {
        llmrt_request req;
        llmrt_request_init(&req);
        req.prompt_ids = prompt;
        req.num_prompt_ids = 200;
        req.n = 8;
        req.sampling.max_tokens = 4;
        req.sampling.temperature = 1;
        req.sampling.ignore_eos = 1;
        req.detokenize = 0;
        llmrt_request_id id;
        CHECK_OK(llmrt_runtime_submit(rt, &req, &id));
        llmrt_result res;
        int done = 0;
        CHECK_OK(llmrt_runtime_wait(rt, id, -1, &res, &done));
        CHECK(done && res.status == LLMRT_OK && res.num_sequences == 8 && res.sequences[7].num_output == 4);
        llmrt_result_free(&res);
        llmrt_runtime_free(rt);
    }
done:
    llmrt_engine_free(raised);
    llmrt_engine_free(built);
}

static void test_build_limits_by_default(void) {
    llmrt_engine *e = load(small_path, 0, 0, 0);
    CHECK(e && llmrt_engine_max_seq_len(e) == 64);
    int32_t prompt[100] = {0};
    float *logits = malloc(100 * VOCAB * sizeof *logits);
    CHECK(e && llmrt_prompt_logits(e, prompt, 100, logits) != LLMRT_OK);
    free(logits);
    llmrt_engine_free(e);
}

static void test_bad_limits(void) {
    CHECK(load(small_path, 2000, 0, 0) == NULL && strstr(llmrt_last_error(), "max_position_embeddings"));
    CHECK(load(small_path, 0, 8, 4) == NULL && strstr(llmrt_last_error(), "below max_batch"));
    CHECK(load(small_path, 0, 32, 0) == NULL && strstr(llmrt_last_error(), "below max_batch")); /* 16 tokens */
    CHECK(load(small_path, -1, 0, 0) == NULL && strstr(llmrt_last_error(), ">= 0"));
}

int main(void) {
    char *tmp = test_temp_dir();
    snprintf(small_path, sizeof small_path, "%s/small.engine", tmp);
    snprintf(large_path, sizeof large_path, "%s/large.engine", tmp);
    free(tmp);
    if (!build(small_path, 64, 2, 16) || !build(large_path, 400, 8, 128)) return test_finish();
    RUN_TEST(test_raised_limits_compute_as_built);
    RUN_TEST(test_build_limits_by_default);
    RUN_TEST(test_bad_limits);
    return test_finish();
}
