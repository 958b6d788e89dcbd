/* The runtime on a sliding-window engine (mistral_window_f32: window 16,
 * 16-token blocks) built past the window: requests far longer than the
 * window run in a KV pool far smaller than their length, because each
 * sequence releases the blocks behind its window, and give the same tokens
 * as in a pool that holds everything; long cached prefixes are released at
 * admission too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/llmrt.h"
#include "llmrt/runtime.h"
#include "test_util.h"

#define CASE_DIR LLMRT_SOURCE_DIR "/tests/golden/cases/mistral_window_f32"

static llmrt_engine *build_and_load(const char *path) {
    llmrt_build_options bo;
    llmrt_build_options_init(&bo);
    bo.model_dir = CASE_DIR;
    bo.output_path = path;
    bo.max_seq_len = 1024; /* far past the window: no longer capped */
    bo.max_batch = 4;
    bo.max_num_tokens = 64;
    llmrt_status s = llmrt_build(&bo);
    CHECK_MSG(s == LLMRT_OK, "build: %s", llmrt_last_error());
    llmrt_engine *e = NULL;
    if (s == LLMRT_OK) CHECK_OK(llmrt_engine_load(path, NULL, &e));
    return e;
}

enum { REQS = 3, PROMPT = 300, NEW = 200 };

/* Runs REQS requests (prompts sharing their first 160 tokens) at once. */
static void run(llmrt_engine *e, int32_t kv_max_blocks, int prefix_caching, int32_t out[REQS][NEW],
                llmrt_runtime_stats *st) {
    llmrt_runtime_options o;
    llmrt_runtime_options_init(&o);
    o.kv_max_blocks = kv_max_blocks;
    o.prefix_caching = prefix_caching;
    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(e, &o, &rt));
    if (!rt) return;
    static int32_t prompts[REQS][PROMPT];
    llmrt_request req[REQS];
    llmrt_request_id ids[REQS];
    for (int r = 0; r < REQS; r++) {
        uint64_t seed = 1000 + (uint64_t)r;
        for (int i = 0; i < PROMPT; i++) prompts[r][i] = (int32_t)(test_rand_u64(&seed) % 128);
        if (r > 0) memcpy(prompts[r], prompts[0], 160 * sizeof(int32_t));
        llmrt_request_init(&req[r]);
        req[r].prompt_ids = prompts[r];
        req[r].num_prompt_ids = PROMPT;
        req[r].sampling.max_tokens = NEW;
        req[r].sampling.ignore_eos = 1;
        req[r].detokenize = 0;
        CHECK_OK(llmrt_runtime_submit(rt, &req[r], &ids[r]));
    }
    for (int r = 0; r < REQS; r++) {
        llmrt_result res;
        int done = 0;
        CHECK_OK(llmrt_runtime_wait(rt, ids[r], -1, &res, &done));
        CHECK(done && res.status == LLMRT_OK && res.num_sequences == 1 && res.sequences[0].num_output == NEW);
        if (done && res.num_sequences == 1 && res.sequences[0].num_output == NEW)
            memcpy(out[r], res.sequences[0].output_ids, sizeof(int32_t) * NEW);
        llmrt_result_free(&res);
    }
    llmrt_runtime_get_stats(rt, st);
    CHECK_MSG(st->kv_used_blocks == 0, "%d KV blocks still held", st->kv_used_blocks);
    llmrt_runtime_free(rt);
}

static void test_window_frees_blocks(void) {
    char *tmp = test_temp_dir(), path[1024];
    snprintf(path, sizeof path, "%s/window.engine", tmp);
    llmrt_engine *e = build_and_load(path);
    free(tmp);
    if (!e) return;
    static int32_t roomy[REQS][NEW], tight[REQS][NEW], tight_cached[REQS][NEW];
    llmrt_runtime_stats st;
    run(e, 0, 0, roomy, &st);
    /* 500 tokens need 32 blocks a sequence; with the window each holds
     * about (16 + 64) / 16 + 2 */
    run(e, 24, 0, tight, &st);
    CHECK_MSG(st.kv_peak_used_blocks <= 24, "peak %d blocks", st.kv_peak_used_blocks);
    CHECK(memcmp(roomy, tight, sizeof roomy) == 0);
    run(e, 24, 1, tight_cached, &st);
    CHECK(memcmp(roomy, tight_cached, sizeof roomy) == 0);
    llmrt_engine_free(e);
}

int main(void) {
    RUN_TEST(test_window_frees_blocks);
    return test_finish();
}
