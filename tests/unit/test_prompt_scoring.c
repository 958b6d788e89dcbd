/* Prompt log-probabilities and bad words in the runtime, on the CPU with a
 * real (tiny, fp32) LLaMA from the golden cases.
 *
 * A scored prompt's log-probabilities equal log-softmax of
 * llmrt_prompt_logits at every position, whatever the prompt's length
 * (several chunks and several steps of scoring rows), next to other
 * requests, and again when its prefix is cached; scoring changes nothing the
 * request generates. Bad words ban exactly the token that would complete a
 * sequence. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/llmrt.h"
#include "llmrt/runtime.h"
#include "test_util.h"

#define CASE_DIR LLMRT_SOURCE_DIR "/tests/golden/cases/llama_f32"
enum { VOCAB = 128, MAX_PROMPT = 300 };

static char engine_path[1024];

static int setup(void) {
    char *tmp = test_temp_dir();
    snprintf(engine_path, sizeof engine_path, "%s/llama.engine", tmp);
    free(tmp);
    llmrt_build_options bo;
    llmrt_build_options_init(&bo);
    bo.model_dir = CASE_DIR;
    bo.output_path = engine_path;
    bo.max_seq_len = 512;
    bo.max_batch = 8;
    bo.max_num_tokens = 128; /* a 300-token prompt prefills in chunks */
    llmrt_status s = llmrt_build(&bo);
    CHECK_MSG(s == LLMRT_OK, "build: %s", llmrt_last_error());
    return s == LLMRT_OK;
}

static void make_prompt(int32_t *ids, int32_t n, uint64_t seed) {
    uint64_t st = seed * 7919 + 1;
    for (int32_t i = 0; i < n; i++) ids[i] = (int32_t)(test_rand_u64(&st) % VOCAB);
}

/* log-softmax of the full-prompt logits: expect[k] scores token k (k >= 1). */
static void reference_scores(llmrt_engine *e, const int32_t *prompt, int32_t n, float *expect, int32_t *argmax) {
    float *logits = malloc((size_t)n * VOCAB * sizeof *logits);
    CHECK_OK(llmrt_prompt_logits(e, prompt, n, logits));
    for (int32_t k = 1; k < n; k++) {
        const float *row = logits + (size_t)(k - 1) * VOCAB;
        double m = row[0], sum = 0;
        int32_t best = 0;
        for (int32_t v = 1; v < VOCAB; v++)
            if (row[v] > m) m = row[v], best = v;
        for (int32_t v = 0; v < VOCAB; v++) sum += exp(row[v] - m);
        expect[k] = (float)(row[prompt[k]] - m - log(sum));
        argmax[k] = best;
    }
    free(logits);
}

/* The scores match the reference at every position; the alternatives are
 * best first and led by the argmax. */
static void check_scores(const llmrt_prompt_logprobs *p, const int32_t *prompt, int32_t n, const float *expect,
                         const int32_t *argmax, int32_t num_top) {
    CHECK_MSG(p->num_tokens == n, "%d scored tokens for a prompt of %d", p->num_tokens, n);
    if (p->num_tokens != n) return;
    CHECK(p->num_top == num_top && isnan(p->logprobs[0]));
    CHECK(memcmp(p->ids, prompt, (size_t)n * sizeof *prompt) == 0);
    int bad = 0, order = 0;
    for (int32_t k = 1; k < n; k++) {
        if (!(fabsf(p->logprobs[k] - expect[k]) <= 1e-4f * (1 + fabsf(expect[k])))) {
            if (bad++ < 3) fprintf(stderr, "  position %d: %g, expected %g\n", k, p->logprobs[k], expect[k]);
        }
        if (num_top > 0) {
            const int32_t *ids = p->top_ids + (size_t)k * num_top;
            const float *lp = p->top_logprobs + (size_t)k * num_top;
            if (ids[0] != argmax[k] && lp[0] - expect[k] > 1e-5f) order++;
            for (int32_t j = 1; j < num_top; j++) order += lp[j] > lp[j - 1];
            order += lp[0] + 1e-5f < p->logprobs[k];
        }
    }
    CHECK_MSG(bad == 0, "%d of %d positions off", bad, n - 1);
    CHECK_MSG(order == 0, "%d alternatives out of order", order);
}

typedef struct event_count {
    int with_prompt, events;
    int32_t prompt_tokens;
} event_count;

static int count_events(void *user, const llmrt_token_event *ev) {
    event_count *c = user;
    c->events++;
    if (ev->prompt) {
        c->with_prompt++;
        c->prompt_tokens = ev->prompt->num_tokens;
    }
    return 0;
}

/* Prompts of 5, 70 and 300 tokens scored next to a plain request, then the
 * 300-token one again with its prefix in the cache. */
static void test_prompt_logprobs(llmrt_engine *e) {
    static const int32_t lens[3] = {5, 70, MAX_PROMPT};
    static int32_t prompts[3][MAX_PROMPT], argmax[3][MAX_PROMPT];
    static float expect[3][MAX_PROMPT];
    int32_t greedy[3][8], plain[40];
    for (int i = 0; i < 3; i++) {
        make_prompt(prompts[i], lens[i], 31 + (uint64_t)i);
        reference_scores(e, prompts[i], lens[i], expect[i], argmax[i]);
        llmrt_sampling_params sp;
        llmrt_sampling_params_init(&sp);
        sp.max_tokens = 8;
        sp.ignore_eos = 1;
        llmrt_generation g;
        CHECK_OK(llmrt_generate(e, prompts[i], lens[i], &sp, NULL, NULL, &g));
        memcpy(greedy[i], g.output_ids, sizeof greedy[i]);
        llmrt_generation_free(&g);
    }
    make_prompt(plain, 40, 99);

    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(e, NULL, &rt));
    if (!rt) return;
    llmrt_request_id ids[4];
    event_count counts[3] = {{0}};
    for (int i = 0; i < 4; i++) {
        llmrt_request req;
        llmrt_request_init(&req);
        req.prompt_ids = i < 3 ? prompts[i] : plain;
        req.num_prompt_ids = i < 3 ? lens[i] : 40;
        req.sampling.max_tokens = i < 3 ? 8 : 30;
        req.sampling.ignore_eos = 1;
        req.detokenize = 0;
        if (i < 3) {
            req.prompt_logprobs = 1;
            req.logprobs = i == 2 ? 3 : 0;
            req.callback = count_events;
            req.user_data = &counts[i];
        }
        CHECK_OK(llmrt_runtime_submit(rt, &req, &ids[i]));
    }
    for (int i = 0; i < 4; i++) {
        llmrt_result res;
        int done = 0;
        CHECK_OK(llmrt_runtime_wait(rt, ids[i], -1, &res, &done));
        CHECK(done && res.status == LLMRT_OK);
        if (i < 3) {
            fprintf(stderr, "  prompt of %d tokens\n", lens[i]);
            check_scores(&res.prompt, prompts[i], lens[i], expect[i], argmax[i], i == 2 ? 3 : 0);
            CHECK(res.sequences[0].num_output == 8 &&
                  memcmp(res.sequences[0].output_ids, greedy[i], sizeof greedy[i]) == 0);
            CHECK(counts[i].with_prompt == 1 && counts[i].prompt_tokens == lens[i] && counts[i].events == 8);
        } else {
            CHECK(res.prompt.num_tokens == 0 && res.sequences[0].num_output == 30);
        }
        llmrt_result_free(&res);
    }
    /* the same long prompt again: its blocks are cached, yet it is scored whole */
    llmrt_request req;
    llmrt_request_init(&req);
    req.prompt_ids = prompts[2];
    req.num_prompt_ids = lens[2];
    req.sampling.max_tokens = 0; /* scoring only */
    req.prompt_logprobs = 1;
    req.detokenize = 0;
    llmrt_request_id id;
    CHECK_OK(llmrt_runtime_submit(rt, &req, &id));
    llmrt_result res;
    int done = 0;
    CHECK_OK(llmrt_runtime_wait(rt, id, -1, &res, &done));
    CHECK(done && res.status == LLMRT_OK && res.cached_prompt_tokens == 0);
    CHECK(res.num_sequences == 1 && res.sequences[0].num_output == 0 &&
          strcmp(res.sequences[0].finish_reason, "length") == 0);
    check_scores(&res.prompt, prompts[2], lens[2], expect[2], argmax[2], 0);
    llmrt_result_free(&res);
    llmrt_runtime_stats st;
    llmrt_runtime_get_stats(rt, &st);
    CHECK(st.kv_used_blocks == 0);
    llmrt_runtime_free(rt);
}

static int32_t generate_with(llmrt_runtime *rt, const int32_t *prompt, int32_t n, const int32_t *words,
                             const int32_t *lengths, int32_t num_words, int32_t *out) {
    llmrt_request req;
    llmrt_request_init(&req);
    req.prompt_ids = prompt;
    req.num_prompt_ids = n;
    req.sampling.max_tokens = 6;
    req.sampling.ignore_eos = 1;
    req.detokenize = 0;
    req.bad_word_ids = words;
    req.bad_word_lengths = lengths;
    req.num_bad_words = num_words;
    llmrt_request_id id;
    if (llmrt_runtime_submit(rt, &req, &id) != LLMRT_OK) return -1;
    llmrt_result res;
    int done = 0;
    CHECK_OK(llmrt_runtime_wait(rt, id, -1, &res, &done));
    int32_t count = done && res.status == LLMRT_OK ? res.sequences[0].num_output : -1;
    if (count > 0) memcpy(out, res.sequences[0].output_ids, (size_t)count * sizeof *out);
    llmrt_result_free(&res);
    return count;
}

/* Greedy g0 g1 g2 ...: banning [g0] changes the first token; banning
 * [g0 g1] keeps g0 and changes the second; banning [g1 g2] where the output
 * never reaches g1 first changes nothing before it. */
static void test_bad_words(llmrt_engine *e) {
    int32_t prompt[12], free_run[6], out[6];
    make_prompt(prompt, 12, 5);
    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(e, NULL, &rt));
    if (!rt) return;
    CHECK(generate_with(rt, prompt, 12, NULL, NULL, 0, free_run) == 6);
    int32_t one[1] = {free_run[0]}, len1[1] = {1};
    CHECK(generate_with(rt, prompt, 12, one, len1, 1, out) == 6 && out[0] != free_run[0]);
    int32_t two[2] = {free_run[0], free_run[1]}, len2[1] = {2};
    CHECK(generate_with(rt, prompt, 12, two, len2, 1, out) == 6 && out[0] == free_run[0] && out[1] != free_run[1]);
    /* two words back to back: the second one bans g2 after g1 */
    int32_t both[3] = {VOCAB - 1, free_run[1], free_run[2]}, lens[2] = {1, 2};
    int32_t expect_first = free_run[0] == VOCAB - 1 ? -1 : free_run[0];
    CHECK(generate_with(rt, prompt, 12, both, lens, 2, out) == 6 && out[0] == expect_first &&
          out[1] == free_run[1] && out[2] != free_run[2]);
    /* bad input is refused at submit, naming the problem */
    int32_t outside[1] = {VOCAB}, zero[1] = {0};
    CHECK(generate_with(rt, prompt, 12, outside, len1, 1, out) == -1 && strstr(llmrt_last_error(), "vocabulary"));
    CHECK(generate_with(rt, prompt, 12, one, zero, 1, out) == -1 && strstr(llmrt_last_error(), "length 0"));
    CHECK(generate_with(rt, prompt, 12, NULL, len1, 1, out) == -1 && strstr(llmrt_last_error(), "bad words"));
    llmrt_request req;
    llmrt_request_init(&req);
    req.prompt_ids = prompt;
    req.num_prompt_ids = 12;
    req.num_beams = 2;
    req.bad_word_ids = one;
    req.bad_word_lengths = len1;
    req.num_bad_words = 1;
    llmrt_request_id id;
    CHECK(llmrt_runtime_submit(rt, &req, &id) == LLMRT_ERR_UNSUPPORTED && strstr(llmrt_last_error(), "num_beams"));
    llmrt_runtime_free(rt);
}

int main(void) {
    if (!setup()) return test_finish();
    llmrt_engine *e = NULL;
    CHECK_OK(llmrt_engine_load(engine_path, NULL, &e));
    if (e) {
        RUN_TEST_ARG(test_prompt_logprobs, e);
        RUN_TEST_ARG(test_bad_words, e);
    }
    llmrt_engine_free(e);
    return test_finish();
}
