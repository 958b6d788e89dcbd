/* The runtime on the GPU with device sampling: a mixed workload (greedy,
 * seeded top-k/top-p/min-p sampling, logprobs, penalties, n = 2, beams) in
 * one batch, with chunked prefill mixed with decodes. Checks that the
 * device-sampled run is deterministic, that greedy rows sampled on the
 * device give exactly the tokens the host sampler picks from the same
 * logits (LLMRT_DEVICE_SAMPLING=0), with the same log-probabilities, and
 * that rows left to the host (logprobs, penalties, beams) are unchanged. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_test_util.h"
#include "llmrt/llmrt.h"
#include "llmrt/runtime.h"
#include "test_util.h"

/* the checkpoint: argv[1], else the source tree's golden case */
static const char *case_dir = LLMRT_SOURCE_DIR "/tests/golden/cases/llama_f32";
enum { NUM_REQ = 12, VOCAB = 128, MAX_NEW = 24 };

static char engine_path[1024];

static int build_engine(void) {
    char *tmp = test_temp_dir();
    snprintf(engine_path, sizeof engine_path, "%s/llama_cuda.engine", tmp);
    free(tmp);
    llmrt_build_options bo;
    llmrt_build_options_init(&bo);
    bo.model_dir = case_dir;
    bo.output_path = engine_path;
    bo.backend = "cuda";
    bo.dtype = LLMRT_DTYPE_BF16; /* the decode GEMV path */
    bo.max_seq_len = 512;
    bo.max_batch = 16;
    bo.max_num_tokens = 96; /* long prompts prefill in chunks, mixed with decodes */
    llmrt_status s = llmrt_build(&bo);
    CHECK_MSG(s == LLMRT_OK, "build: %s", llmrt_last_error());
    return s == LLMRT_OK;
}

typedef struct run_result {
    llmrt_result res[NUM_REQ];
} run_result;

static void request_for(int i, llmrt_request *r, int32_t *prompt, int32_t *len) {
    llmrt_request_init(r);
    *len = 5 + 13 * i;
    uint64_t st = 977 * (uint64_t)i + 3;
    for (int32_t k = 0; k < *len; k++) prompt[k] = (int32_t)(test_rand_u64(&st) % VOCAB);
    r->prompt_ids = prompt;
    r->num_prompt_ids = *len;
    r->sampling.max_tokens = MAX_NEW;
    r->sampling.ignore_eos = 1;
    r->detokenize = 0;
    if (i >= 4 && i < 8) { /* seeded sampling on the device */
        r->sampling.temperature = 0.9f;
        r->sampling.top_k = 20;
        r->sampling.top_p = 0.9f;
        r->min_p = 0.02f;
        r->sampling.seed = 100 + (uint64_t)i;
    } else if (i == 8) {
        r->logprobs = 3; /* host row: top alternatives */
    } else if (i == 9) {
        r->sampling.temperature = 0.8f;
        r->sampling.seed = 7;
        r->presence_penalty = 0.5f; /* host row: penalties */
    } else if (i == 10) {
        r->n = 2; /* the shared first row on the host, then one row each on the device */
        r->sampling.temperature = 1.0f;
        r->sampling.seed = 11;
    } else if (i == 11) {
        r->num_beams = 2; /* host rows: beams */
    }
}

static int run_workload(int device_sampling, run_result *out) {
    setenv("LLMRT_DEVICE_SAMPLING", device_sampling ? "1" : "0", 1);
    llmrt_engine *engine = NULL;
    llmrt_runtime *rt = NULL;
    llmrt_status s = llmrt_engine_load(engine_path, NULL, &engine);
    CHECK_MSG(s == LLMRT_OK, "load: %s", llmrt_last_error());
    if (s != LLMRT_OK) return 0;
    s = llmrt_runtime_create(engine, NULL, &rt);
    CHECK_MSG(s == LLMRT_OK, "runtime: %s", llmrt_last_error());
    int ok = s == LLMRT_OK;
    llmrt_request_id ids[NUM_REQ] = {0};
    static int32_t prompts[NUM_REQ][256];
    for (int i = 0; ok && i < NUM_REQ; i++) {
        llmrt_request r;
        int32_t len;
        request_for(i, &r, prompts[i], &len);
        s = llmrt_runtime_submit(rt, &r, &ids[i]);
        CHECK_MSG(s == LLMRT_OK, "submit %d: %s", i, llmrt_last_error());
        ok = s == LLMRT_OK;
    }
    for (int i = 0; ok && i < NUM_REQ; i++) {
        int done = 0;
        s = llmrt_runtime_wait(rt, ids[i], -1, &out->res[i], &done);
        CHECK_MSG(s == LLMRT_OK && done && out->res[i].status == LLMRT_OK, "request %d: %s", i,
                  out->res[i].error ? out->res[i].error : llmrt_last_error());
        ok = s == LLMRT_OK && done;
    }
    llmrt_runtime_free(rt);
    llmrt_engine_free(engine);
    return ok;
}

static void free_run(run_result *r) {
    for (int i = 0; i < NUM_REQ; i++) llmrt_result_free(&r->res[i]);
}

static int same_tokens(const llmrt_sequence_output *a, const llmrt_sequence_output *b) {
    return a->num_output == b->num_output &&
           memcmp(a->output_ids, b->output_ids, (size_t)a->num_output * sizeof *a->output_ids) == 0;
}

static void test_device_sampling(void) {
    if (!build_engine()) return;
    static run_result dev1, dev2, host;
    if (!run_workload(1, &dev1) || !run_workload(1, &dev2) || !run_workload(0, &host)) return;
    for (int i = 0; i < NUM_REQ; i++) {
        CHECK_MSG(dev1.res[i].num_sequences == dev2.res[i].num_sequences, "request %d: sequences", i);
        for (int q = 0; q < dev1.res[i].num_sequences && q < dev2.res[i].num_sequences; q++) {
            const llmrt_sequence_output *a = &dev1.res[i].sequences[q], *b = &dev2.res[i].sequences[q];
            CHECK_MSG(same_tokens(a, b), "request %d seq %d: two device runs differ", i, q);
            CHECK_MSG(a->num_output == MAX_NEW, "request %d seq %d: %d tokens", i, q, a->num_output);
            for (int32_t k = 0; k < a->num_output; k++) {
                CHECK_MSG(a->output_ids[k] >= 0 && a->output_ids[k] < VOCAB, "request %d: id %d", i, a->output_ids[k]);
                CHECK_MSG(isfinite(a->logprobs[k]) && a->logprobs[k] <= 1e-6f, "request %d: logprob %g", i,
                          a->logprobs[k]);
            }
        }
    }
    /* greedy on the device = greedy on the host; host rows unchanged */
    const int compare[] = {0, 1, 2, 3, 8, 9, 11};
    for (size_t c = 0; c < sizeof compare / sizeof compare[0]; c++) {
        const int i = compare[c];
        const llmrt_sequence_output *d = &dev1.res[i].sequences[0], *h = &host.res[i].sequences[0];
        CHECK_MSG(same_tokens(d, h), "request %d: device and host sampling chose different tokens", i);
        for (int32_t k = 0; k < d->num_output && k < h->num_output; k++)
            CHECK_MSG(fabsf(d->logprobs[k] - h->logprobs[k]) < 1e-3f, "request %d token %d: logprob %g vs %g", i, k,
                      d->logprobs[k], h->logprobs[k]);
    }
    CHECK_MSG(dev1.res[8].sequences[0].num_top == 3, "logprobs request: %d alternatives",
              dev1.res[8].sequences[0].num_top);
    free_run(&dev1);
    free_run(&dev2);
    free_run(&host);
}

int main(int argc, char **argv) {
    if (argc > 1) case_dir = argv[1];
    int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    llmrt_set_log_level(0);
    RUN_TEST(test_device_sampling);
    return test_finish();
}
