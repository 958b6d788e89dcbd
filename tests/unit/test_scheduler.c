/* The runtime end to end on the CPU with a real (tiny, fp32) LLaMA from the
 * golden cases: in-flight batching gives each request exactly the tokens it
 * gets alone (greedy; and seeded sampling), under preemption too; prefix
 * reuse hits the cache and changes nothing; n > 1 shares the prompt's blocks;
 * beam search; stop strings cut the text exactly; cancellation and bad
 * requests leave the others alone and free every block. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmrt/llmrt.h"
#include "llmrt/runtime.h"
#include "test_util.h"

#define CASE_DIR LLMRT_SOURCE_DIR "/tests/golden/cases/llama_f32"
enum { MAX_REQ = 16, VOCAB = 128 };

static char engine_path[1024], text_engine_path[1024];

/* A 128-token vocabulary of printable characters and pairs, no merges, with
 * the Fuse decoder: text is the tokens' strings concatenated. */
static int write_tokenizer(const char *dir) {
    json_t *vocab = json_object();
    for (int i = 0; i < VOCAB; i++) {
        char t[3] = {0};
        if (i < 95) t[0] = (char)(32 + i);
        else t[0] = (char)('a' + (i - 95) % 26), t[1] = (char)('a' + (i - 95) / 26 + 10);
        json_object_set_new(vocab, t, json_integer(i));
    }
    json_t *root = json_pack("{s:{s:s, s:o, s:[]}, s:{s:s}}", "model", "type", "BPE", "vocab", vocab, "merges",
                             "decoder", "type", "Fuse");
    char path[2048];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    int ok = json_dump_file(root, path, 0) == 0;
    json_decref(root);
    return ok;
}

static int build(const char *model_dir, const char *out) {
    llmrt_build_options bo;
    llmrt_build_options_init(&bo);
    bo.model_dir = model_dir;
    bo.output_path = out;
    bo.max_seq_len = 512;
    bo.max_batch = 16;
    bo.max_num_tokens = 128; /* long prompts prefill in chunks, mixed with decodes */
    llmrt_status s = llmrt_build(&bo);
    CHECK_MSG(s == LLMRT_OK, "build %s: %s", out, llmrt_last_error());
    return s == LLMRT_OK;
}

static int setup(void) {
    char *tmp = test_temp_dir();
    snprintf(engine_path, sizeof engine_path, "%s/llama.engine", tmp);
    char model[1024], cmd[4096];
    snprintf(model, sizeof model, "%s/model", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/config.json '%s'/model.safetensors '%s'/generation_config.json '%s'/",
             model, CASE_DIR, CASE_DIR, CASE_DIR, model);
    int ok = system(cmd) == 0 && write_tokenizer(model);
    snprintf(text_engine_path, sizeof text_engine_path, "%s/llama_text.engine", tmp);
    ok = ok && build(CASE_DIR, engine_path) && build(model, text_engine_path);
    free(tmp);
    return ok;
}

static void make_prompt(int32_t *ids, int32_t n, uint64_t seed) {
    uint64_t st = seed * 7919 + 1;
    for (int32_t i = 0; i < n; i++) ids[i] = (int32_t)(test_rand_u64(&st) % VOCAB);
}

/* The request alone, through llmrt_generate (its own runtime). */
static int32_t alone(llmrt_engine *e, const int32_t *prompt, int32_t n, const llmrt_sampling_params *sp, int32_t *out) {
    llmrt_generation g;
    llmrt_status s = llmrt_generate(e, prompt, n, sp, NULL, NULL, &g);
    CHECK_MSG(s == LLMRT_OK, "generate: %s", llmrt_last_error());
    int32_t count = g.num_output;
    if (s == LLMRT_OK) memcpy(out, g.output_ids, (size_t)count * sizeof *out);
    llmrt_generation_free(&g);
    return s == LLMRT_OK ? count : -1;
}

typedef struct batch_case {
    int32_t prompt[400];
    int32_t n;
    llmrt_request req;
    int32_t expect[64];
    int32_t expect_n;
    llmrt_result result;
} batch_case;

/* Submits every case at once to one runtime and waits for all. */
static void run_all(llmrt_engine *e, const llmrt_runtime_options *o, batch_case *c, int count,
                    llmrt_runtime_stats *stats) {
    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(e, o, &rt));
    if (!rt) return;
    llmrt_request_id ids[MAX_REQ];
    for (int i = 0; i < count; i++) {
        c[i].req.prompt_ids = c[i].prompt;
        c[i].req.num_prompt_ids = c[i].n;
        CHECK_OK(llmrt_runtime_submit(rt, &c[i].req, &ids[i]));
    }
    for (int i = 0; i < count; i++) {
        int done = 0;
        CHECK_OK(llmrt_runtime_wait(rt, ids[i], -1, &c[i].result, &done));
        CHECK(done && c[i].result.status == LLMRT_OK);
    }
    if (stats) llmrt_runtime_get_stats(rt, stats);
    llmrt_runtime_stats st;
    llmrt_runtime_get_stats(rt, &st);
    CHECK_MSG(st.kv_used_blocks == 0, "%d KV blocks still held", st.kv_used_blocks);
    llmrt_runtime_free(rt);
}

static int same_as_alone(const batch_case *c) {
    const llmrt_sequence_output *o = &c->result.sequences[0];
    return c->result.num_sequences >= 1 && o->num_output == c->expect_n &&
           memcmp(o->output_ids, c->expect, (size_t)c->expect_n * sizeof(int32_t)) == 0;
}

static void prepare(llmrt_engine *e, batch_case *c, int count, uint64_t seed, int32_t min_len, int32_t max_len) {
    for (int i = 0; i < count; i++) {
        uint64_t st = seed + (uint64_t)i;
        c[i].n = min_len + (int32_t)(test_rand_u64(&st) % (uint64_t)(max_len - min_len + 1));
        make_prompt(c[i].prompt, c[i].n, seed * 100 + (uint64_t)i);
        llmrt_request_init(&c[i].req);
        c[i].req.sampling.max_tokens = 8 + (int32_t)(test_rand_u64(&st) % 40);
        c[i].req.sampling.ignore_eos = 1;
        c[i].req.detokenize = 0;
        c[i].expect_n = alone(e, c[i].prompt, c[i].n, &c[i].req.sampling, c[i].expect);
    }
}

static void free_cases(batch_case *c, int count) {
    for (int i = 0; i < count; i++) llmrt_result_free(&c[i].result);
}

static void test_concurrent_greedy(llmrt_engine *e) {
    static batch_case c[16];
    prepare(e, c, 16, 11, 3, 300);
    int64_t decode_tokens = 0;
    for (int i = 0; i < 16; i++) decode_tokens += c[i].expect_n;
    llmrt_runtime_options o;
    llmrt_runtime_options_init(&o); /* background thread */
    llmrt_runtime_stats st;
    run_all(e, &o, c, 16, &st);
    for (int i = 0; i < 16; i++) CHECK_MSG(same_as_alone(&c[i]), "request %d (prompt %d) differs from alone", i, c[i].n);
    CHECK(st.num_preemptions == 0 && st.tokens_generated == decode_tokens);
    free_cases(c, 16);
    /* Batched: far fewer steps than tokens generated one request at a time.
     * Counted without the background thread: with it, the thread steps the
     * first requests as soon as they are submitted, so on a loaded machine,
     * where the submitting thread loses the CPU between submits, the count
     * depends on the scheduler and not on the batching. Here all 16 are
     * queued before the first step (llmrt_runtime_wait drives the steps). */
    o.background = 0;
    run_all(e, &o, c, 16, &st);
    for (int i = 0; i < 16; i++) CHECK_MSG(same_as_alone(&c[i]), "request %d (prompt %d) differs from alone", i, c[i].n);
    CHECK_MSG(st.num_steps > 0 && st.num_steps < decode_tokens / 4, "%lld steps for %lld tokens",
              (long long)st.num_steps, (long long)decode_tokens);
    CHECK(st.num_preemptions == 0 && st.tokens_generated == decode_tokens);
    free_cases(c, 16);
}

static void test_preemption(llmrt_engine *e) {
    static batch_case c[12];
    prepare(e, c, 12, 23, 20, 60);
    llmrt_runtime_options o;
    llmrt_runtime_options_init(&o);
    o.background = 0;
    o.kv_max_blocks = 12; /* 16-token blocks: each request needs up to 7; 12 requests want ~60 */
    llmrt_runtime_stats st;
    run_all(e, &o, c, 12, &st);
    int preempted = 0;
    for (int i = 0; i < 12; i++) {
        CHECK_MSG(same_as_alone(&c[i]), "request %d differs from alone after preemption", i);
        preempted += c[i].result.num_preemptions;
    }
    CHECK_MSG(st.num_preemptions > 0 && preempted > 0, "no preemption happened");
    CHECK(st.kv_peak_used_blocks <= 12);
    free_cases(c, 12);
}

static void test_prefix_reuse(llmrt_engine *e) {
    static batch_case c[5];
    int32_t prefix[200];
    make_prompt(prefix, 200, 77);
    for (int i = 0; i < 5; i++) {
        c[i].n = 200 + 5 + 7 * i;
        memcpy(c[i].prompt, prefix, sizeof prefix);
        make_prompt(c[i].prompt + 200, c[i].n - 200, 500 + (uint64_t)i);
        llmrt_request_init(&c[i].req);
        c[i].req.sampling.max_tokens = 12;
        c[i].req.sampling.ignore_eos = 1;
        c[i].req.prompt_ids = c[i].prompt;
        c[i].req.num_prompt_ids = c[i].n;
        c[i].expect_n = alone(e, c[i].prompt, c[i].n, &c[i].req.sampling, c[i].expect);
    }
    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(e, NULL, &rt));
    if (!rt) return;
    /* the first request fills the cache; the next four find its 12 full blocks */
    llmrt_request_id ids[5];
    int done;
    CHECK_OK(llmrt_runtime_submit(rt, &c[0].req, &ids[0]));
    CHECK_OK(llmrt_runtime_wait(rt, ids[0], -1, &c[0].result, &done));
    for (int i = 1; i < 5; i++) CHECK_OK(llmrt_runtime_submit(rt, &c[i].req, &ids[i]));
    for (int i = 1; i < 5; i++) CHECK_OK(llmrt_runtime_wait(rt, ids[i], -1, &c[i].result, &done));
    llmrt_runtime_stats st;
    llmrt_runtime_get_stats(rt, &st);
    CHECK(c[0].result.cached_prompt_tokens == 0);
    for (int i = 0; i < 5; i++) CHECK_MSG(same_as_alone(&c[i]), "request %d changed by prefix reuse", i);
    for (int i = 1; i < 5; i++)
        CHECK_MSG(c[i].result.cached_prompt_tokens == 192, "request %d: %d cached tokens", i,
                  c[i].result.cached_prompt_tokens);
    CHECK_MSG(st.prefix_hit_blocks == 4 * 12, "%lld prefix hits", (long long)st.prefix_hit_blocks);
    CHECK(st.prefix_queried_blocks >= st.prefix_hit_blocks && st.kv_cached_blocks > 0);
    llmrt_runtime_free(rt);
    free_cases(c, 5);
}

static void test_sampling(llmrt_engine *e) {
    static batch_case c[6];
    prepare(e, c, 6, 31, 5, 80);
    /* seeded sampling: alone and batched give the same tokens */
    for (int i = 0; i < 6; i++) {
        c[i].req.sampling.temperature = 0.9f;
        c[i].req.sampling.top_p = 0.95f;
        c[i].req.sampling.top_k = i % 2 ? 20 : 0;
        c[i].req.min_p = i == 2 ? 0.05f : 0.0f;
        c[i].req.sampling.seed = 1000 + (uint64_t)i;
        c[i].expect_n = alone(e, c[i].prompt, c[i].n, &c[i].req.sampling, c[i].expect);
    }
    llmrt_runtime_options o;
    llmrt_runtime_options_init(&o);
    /* min-p is not in llmrt_sampling_params: request 2 alone goes through a runtime */
    run_all(e, &o, c + 2, 1, NULL);
    c[2].expect_n = c[2].result.sequences[0].num_output;
    memcpy(c[2].expect, c[2].result.sequences[0].output_ids, (size_t)c[2].expect_n * sizeof(int32_t));
    llmrt_result_free(&c[2].result);
    run_all(e, &o, c, 6, NULL);
    for (int i = 0; i < 6; i++) CHECK_MSG(same_as_alone(&c[i]), "seeded request %d differs batched", i);
    free_cases(c, 6);
    /* top-k = 1 is greedy whatever the temperature */
    batch_case *g = &c[0];
    prepare(e, g, 1, 41, 10, 30);
    g->req.sampling.temperature = 1.5f;
    g->req.sampling.top_k = 1;
    g->req.sampling.seed = 9;
    run_all(e, &o, g, 1, NULL);
    CHECK(same_as_alone(g)); /* expect was made greedy by prepare */
    free_cases(g, 1);
}

static void test_n_sequences(llmrt_engine *e) {
    /* greedy n = 4: every sequence equals the request alone, although they
     * share the prompt's blocks and copy the partial last one on write */
    batch_case *c = calloc(2, sizeof *c);
    prepare(e, c, 2, 51, 37, 37);
    c[0].req.n = 4;
    llmrt_runtime_options o;
    llmrt_runtime_options_init(&o);
    o.background = 0;
    run_all(e, &o, c, 2, NULL);
    CHECK(c[0].result.num_sequences == 4);
    for (int k = 0; k < c[0].result.num_sequences; k++) {
        const llmrt_sequence_output *s = &c[0].result.sequences[k];
        CHECK_MSG(s->num_output == c[0].expect_n && memcmp(s->output_ids, c[0].expect, (size_t)s->num_output * 4) == 0,
                  "sequence %d of n = 4 differs", k);
    }
    CHECK(same_as_alone(&c[1]));
    free_cases(c, 2);
    /* sampled n = 3: sequence 0 uses the request's seed; all reproducible */
    prepare(e, c, 1, 52, 20, 20);
    c[0].req.sampling.temperature = 1.0f;
    c[0].req.sampling.seed = 5;
    c[0].expect_n = alone(e, c[0].prompt, c[0].n, &c[0].req.sampling, c[0].expect);
    c[0].req.n = 3;
    c[1] = c[0];
    run_all(e, &o, c, 1, NULL);
    run_all(e, &o, c + 1, 1, NULL);
    CHECK(same_as_alone(&c[0]));
    int differ = 0;
    for (int k = 0; k < 3; k++) {
        const llmrt_sequence_output *a = &c[0].result.sequences[k], *b = &c[1].result.sequences[k];
        CHECK(a->num_output == b->num_output && memcmp(a->output_ids, b->output_ids, (size_t)a->num_output * 4) == 0);
        differ |= k > 0 && (a->num_output != c[0].expect_n || memcmp(a->output_ids, c[0].expect, (size_t)a->num_output * 4));
    }
    CHECK_MSG(differ, "the n sequences are all the same");
    free_cases(c, 2);
    free(c);
}

static void test_beam_search(llmrt_engine *e) {
    batch_case *c = calloc(4, sizeof *c);
    prepare(e, c, 1, 61, 15, 40);
    c[0].req.sampling.max_tokens = 12;
    c[0].expect_n = alone(e, c[0].prompt, c[0].n, &c[0].req.sampling, c[0].expect);
    for (int i = 1; i < 4; i++) c[i] = c[0];
    c[1].req.num_beams = 1; /* the beam search path with one beam */
    c[2].req.num_beams = 1;
    c[2].req.early_stopping = 1;
    c[3].req.num_beams = 4;
    c[3].req.n = 2;
    llmrt_runtime_options o;
    llmrt_runtime_options_init(&o);
    run_all(e, &o, c, 4, NULL); /* all at once: beams batch with the others */
    for (int i = 0; i < 3; i++) CHECK_MSG(same_as_alone(&c[i]), "case %d differs from greedy", i);
    double greedy = c[0].result.sequences[0].cumulative_logprob;
    CHECK(fabs(c[1].result.sequences[0].cumulative_logprob - greedy) < 1e-4);
    CHECK(c[3].result.num_sequences == 2);
    if (c[3].result.num_sequences == 2) {
        const llmrt_sequence_output *best = &c[3].result.sequences[0];
        CHECK(best->num_output == 12 && best->score >= c[3].result.sequences[1].score);
        CHECK_MSG(best->cumulative_logprob >= greedy - 1e-5, "best beam %.6f < greedy %.6f", best->cumulative_logprob,
                  greedy);
    }
    free_cases(c, 4);
    free(c);
}

typedef struct stream_log {
    char text[4096];
    size_t len;
    int tokens, finished;
    int cancel_after;
} stream_log;

static int on_event(void *user, const llmrt_token_event *ev) {
    stream_log *log = user;
    if (log->len + ev->text_len < sizeof log->text) {
        memcpy(log->text + log->len, ev->text, ev->text_len);
        log->len += ev->text_len;
    }
    log->tokens += ev->token_id >= 0;
    log->finished += ev->finished;
    return log->cancel_after > 0 && log->tokens >= log->cancel_after;
}

static void test_stop_strings(void) {
    llmrt_engine *e = NULL;
    CHECK_OK(llmrt_engine_load(text_engine_path, NULL, &e));
    if (!e) return;
    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(e, NULL, &rt));
    llmrt_request req;
    llmrt_request_init(&req);
    req.prompt_text = "In the beginning";
    req.sampling.max_tokens = 40;
    req.sampling.ignore_eos = 1;
    llmrt_request_id id;
    llmrt_result full = {0}, cut = {0};
    int done;
    CHECK_OK(llmrt_runtime_submit(rt, &req, &id));
    CHECK_OK(llmrt_runtime_wait(rt, id, -1, &full, &done));
    const char *text = full.sequences[0].text;
    CHECK(text && full.sequences[0].text_len >= 20);
    /* a stop string of 3 characters from the middle: usually across tokens */
    char stop[4] = {0};
    memcpy(stop, text + 10, 3);
    const char *stops[2] = {stop, "\x01never"};
    size_t expect = (size_t)(strstr(text, stop) - text);
    req.stop = stops;
    req.num_stop = 2;
    stream_log log = {0};
    req.callback = on_event;
    req.user_data = &log;
    CHECK_OK(llmrt_runtime_submit(rt, &req, &id));
    CHECK_OK(llmrt_runtime_wait(rt, id, -1, &cut, &done));
    const llmrt_sequence_output *o = &cut.sequences[0];
    CHECK_MSG(o->text_len == expect && memcmp(o->text, text, expect) == 0, "cut at %zu, want %zu ('%s' in '%s')",
              o->text_len, expect, stop, text);
    CHECK(strcmp(o->finish_reason, "stop") == 0);
    CHECK_MSG(log.len == o->text_len && memcmp(log.text, o->text, log.len) == 0, "streamed text differs");
    CHECK(log.finished == 1 && log.tokens == o->num_output);
    /* the ids: a prefix of the full run's, ending with the token that completed the stop string */
    CHECK(o->num_output <= full.sequences[0].num_output &&
          memcmp(o->output_ids, full.sequences[0].output_ids, (size_t)o->num_output * 4) == 0);
    llmrt_result_free(&full);
    llmrt_result_free(&cut);
    /* cancellation from the callback, and from another call */
    llmrt_request_init(&req);
    req.prompt_text = "cancel me";
    req.sampling.max_tokens = 200;
    req.sampling.ignore_eos = 1;
    stream_log log2 = {.cancel_after = 5};
    req.callback = on_event;
    req.user_data = &log2;
    CHECK_OK(llmrt_runtime_submit(rt, &req, &id));
    CHECK_OK(llmrt_runtime_wait(rt, id, -1, &cut, &done));
    CHECK(strcmp(cut.sequences[0].finish_reason, "cancelled") == 0 && cut.sequences[0].num_output == 5);
    CHECK(log2.finished == 1);
    llmrt_result_free(&cut);
    req.callback = NULL;
    req.sampling.max_tokens = 400;
    CHECK_OK(llmrt_runtime_submit(rt, &req, &id));
    llmrt_runtime_cancel(rt, id);
    CHECK_OK(llmrt_runtime_wait(rt, id, -1, &cut, &done));
    CHECK(strcmp(cut.sequences[0].finish_reason, "cancelled") == 0 && cut.sequences[0].num_output < 400);
    llmrt_result_free(&cut);
    llmrt_runtime_stats st;
    llmrt_runtime_get_stats(rt, &st);
    CHECK(st.kv_used_blocks == 0 && st.num_running == 0 && st.num_waiting == 0);
    llmrt_runtime_free(rt);
    llmrt_engine_free(e);
}

static void test_bad_requests(llmrt_engine *e) {
    llmrt_runtime *rt = NULL;
    CHECK_OK(llmrt_runtime_create(e, NULL, &rt));
    llmrt_runtime *second = NULL;
    CHECK(llmrt_runtime_create(e, NULL, &second) != LLMRT_OK && strstr(llmrt_last_error(), "busy"));
    int32_t ok_prompt[5] = {1, 2, 3, 4, 5}, bad_prompt[2] = {1, 4096};
    llmrt_request req;
    llmrt_request_init(&req);
    req.prompt_ids = ok_prompt;
    req.num_prompt_ids = 5;
    req.sampling.max_tokens = 6;
    req.sampling.ignore_eos = 1;
    llmrt_request_id good, bad;
    CHECK_OK(llmrt_runtime_submit(rt, &req, &good));
    llmrt_request b = req;
    b.prompt_ids = bad_prompt;
    b.num_prompt_ids = 2;
    CHECK(llmrt_runtime_submit(rt, &b, &bad) == LLMRT_ERR_INVALID_ARGUMENT && strstr(llmrt_last_error(), "4096"));
    b = req;
    b.sampling.top_p = 0;
    CHECK(llmrt_runtime_submit(rt, &b, &bad) == LLMRT_ERR_INVALID_ARGUMENT && strstr(llmrt_last_error(), "top_p"));
    b = req;
    b.num_beams = 2;
    b.sampling.temperature = 1;
    CHECK(llmrt_runtime_submit(rt, &b, &bad) == LLMRT_ERR_UNSUPPORTED);
    b = req;
    b.num_prompt_ids = 0;
    CHECK(llmrt_runtime_submit(rt, &b, &bad) == LLMRT_ERR_INVALID_ARGUMENT);
    b = req;
    b.prompt_text = "no tokenizer in this engine";
    b.prompt_ids = NULL;
    CHECK(llmrt_runtime_submit(rt, &b, &bad) == LLMRT_ERR_NOT_FOUND);
    llmrt_result res;
    int done;
    CHECK_OK(llmrt_runtime_wait(rt, good, -1, &res, &done));
    CHECK(done && res.status == LLMRT_OK && res.sequences[0].num_output == 6);
    CHECK(res.ttft_seconds > 0 && res.e2e_seconds >= res.ttft_seconds && res.num_token_times == 6);
    llmrt_result_free(&res);
    CHECK(llmrt_runtime_wait(rt, good, 0, &res, &done) == LLMRT_ERR_NOT_FOUND); /* retired */
    /* poll sees tokens as they come and the end */
    CHECK_OK(llmrt_runtime_submit(rt, &req, &good));
    int32_t got[16], total = 0;
    int finished = 0;
    for (int spins = 0; !finished && spins < 100000; spins++) {
        CHECK_OK(llmrt_runtime_poll(rt, good, 0, 0, got, 16, &total, &finished));
        if (!finished) nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    CHECK(finished && total == 6);
    CHECK_OK(llmrt_runtime_wait(rt, good, 0, &res, &done));
    CHECK(done && memcmp(res.sequences[0].output_ids, got, 6 * sizeof *got) == 0);
    llmrt_result_free(&res);
    /* an engine in use refuses llmrt_generate rather than corrupting the cache */
    llmrt_generation g;
    CHECK(llmrt_generate(e, ok_prompt, 5, NULL, NULL, NULL, &g) != LLMRT_OK);
    llmrt_runtime_free(rt);
}

/* The CPU KV cache is sized from memory: a tiny fraction gives one block, a
 * whole one at most max_batch (16) sequences of max_seq_len (512 = 32
 * blocks); a fraction outside 0..1 is refused at load. */
static void test_kv_cache_sizing(void) {
    llmrt_engine_options eo;
    llmrt_engine_options_init(&eo);
    int32_t want[] = {1, 16 * 32};
    float fractions[] = {1e-12f, 1.0f};
    uint64_t kv_bytes[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        eo.kv_cache_fraction = fractions[i];
        llmrt_engine *e = NULL;
        CHECK_OK(llmrt_engine_load(engine_path, &eo, &e));
        if (!e) continue;
        uint64_t w, act;
        llmrt_engine_memory(e, &w, &act, &kv_bytes[i]);
        llmrt_runtime *rt = NULL;
        CHECK_OK(llmrt_runtime_create(e, NULL, &rt));
        llmrt_runtime_stats st;
        if (rt) {
            llmrt_runtime_get_stats(rt, &st);
            CHECK_MSG(st.kv_total_blocks == want[i], "fraction %g: %d KV blocks, want %d", fractions[i],
                      st.kv_total_blocks, want[i]);
        }
        llmrt_runtime_free(rt);
        llmrt_engine_free(e);
    }
    CHECK(kv_bytes[0] > 0 && kv_bytes[1] == kv_bytes[0] * (uint64_t)want[1]);
    llmrt_engine *bad = NULL;
    eo.kv_cache_fraction = 1.5f;
    CHECK(llmrt_engine_load(engine_path, &eo, &bad) != LLMRT_OK && bad == NULL);
    CHECK(strstr(llmrt_last_error(), "kv cache fraction") != NULL);
}

int main(void) {
    if (!setup()) return test_finish();
    RUN_TEST(test_kv_cache_sizing);
    llmrt_engine *e = NULL;
    CHECK_OK(llmrt_engine_load(engine_path, NULL, &e));
    if (e) {
        RUN_TEST_ARG(test_concurrent_greedy, e);
        RUN_TEST_ARG(test_preemption, e);
        RUN_TEST_ARG(test_prefix_reuse, e);
        RUN_TEST_ARG(test_sampling, e);
        RUN_TEST_ARG(test_n_sequences, e);
        RUN_TEST_ARG(test_beam_search, e);
        RUN_TEST_ARG(test_bad_requests, e);
    }
    llmrt_engine_free(e);
    RUN_TEST(test_stop_strings);
    return test_finish();
}
