/* llmrt run --requests FILE.jsonl: one request per line, all submitted at
 * once to one runtime (in-flight batching), results printed in input order.
 * The lines are parsed by request_lines.c; a bad line is reported on its own
 * output line and the others still run. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_args.h"
#include "commands.h"
#include "llmrt/runtime.h"
#include "run_output.h"
#include "request_lines.h"
#include "run_requests.h"

static json_t *ids_json(const int32_t *ids, int32_t n) {
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static json_t *logprobs_json(const llmrt_sequence_output *o) {
    json_t *lp = json_object(), *values = json_array(), *top = json_array();
    for (int32_t i = 0; i < o->num_output; i++) {
        json_array_append_new(values, json_real(o->logprobs[i]));
        json_t *alts = json_array();
        for (int32_t k = 0; k < o->num_top; k++) {
            size_t at = (size_t)i * (size_t)o->num_top + (size_t)k;
            json_array_append_new(alts, json_pack("{s:i, s:f}", "id", o->top_ids[at], "logprob", o->top_logprobs[at]));
        }
        json_array_append_new(top, alts);
    }
    json_object_set_new(lp, "tokens", ids_json(o->output_ids, o->num_output));
    json_object_set_new(lp, "token_logprobs", values);
    json_object_set_new(lp, "top_logprobs", top);
    return lp;
}

/* The keys of `llmrt run --json`, for sequence 0, plus "choices" when n > 1. */
static void print_result(size_t index, const line_request *l) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)index));
    const llmrt_result *res = &l->result;
    if (!l->submitted || res->status != LLMRT_OK || res->num_sequences < 1) {
        const char *msg = l->submitted ? (res->error ? res->error : "failed") : l->error;
        json_object_set_new(o, "error", json_string(msg));
    } else {
        const llmrt_sequence_output *s0 = &res->sequences[0];
        if (l->req.prompt_ids) json_object_set_new(o, "prompt_ids", ids_json(l->req.prompt_ids, l->req.num_prompt_ids));
        json_object_set_new(o, "output_ids", ids_json(s0->output_ids, s0->num_output));
        json_object_set_new(o, "text", json_stringn(s0->text ? s0->text : "", s0->text ? s0->text_len : 0));
        json_object_set_new(o, "finish_reason", json_string(s0->finish_reason));
        if (json_object_get(l->json, "logprobs")) json_object_set_new(o, "logprobs", logprobs_json(s0));
        if (res->num_sequences > 1) {
            json_t *choices = json_array();
            for (int32_t i = 0; i < res->num_sequences; i++) {
                const llmrt_sequence_output *s = &res->sequences[i];
                json_t *c = json_pack("{s:i, s:o, s:s%, s:s, s:f}", "index", i, "output_ids",
                                      ids_json(s->output_ids, s->num_output), "text", s->text ? s->text : "",
                                      s->text ? s->text_len : (size_t)0, "finish_reason", s->finish_reason,
                                      "cumulative_logprob", s->cumulative_logprob);
                json_array_append_new(choices, c);
            }
            json_object_set_new(o, "choices", choices);
        }
        int32_t completion = 0;
        for (int32_t i = 0; i < res->num_sequences; i++) completion += res->sequences[i].num_output;
        json_object_set_new(o, "usage", json_pack("{s:i, s:i, s:i}", "prompt_tokens", res->prompt_tokens,
                                                  "completion_tokens", completion, "cached_tokens",
                                                  res->cached_prompt_tokens));
    }
    char *dump = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (dump) puts(dump);
    free(dump);
    json_decref(o);
}

static void print_plain(size_t index, const line_request *l, int32_t max_seq_len) {
    const llmrt_result *res = &l->result;
    if (!l->submitted || res->status != LLMRT_OK || res->num_sequences < 1) {
        printf("[%zu] error: %s\n", index, l->submitted ? (res->error ? res->error : "failed") : l->error);
        return;
    }
    for (int32_t i = 0; i < res->num_sequences; i++) {
        const llmrt_sequence_output *s = &res->sequences[i];
        printf(res->num_sequences > 1 ? "[%zu.%d] " : "[%zu] ", index, i);
        if (s->text) fwrite(s->text, 1, s->text_len, stdout);
        else
            for (int32_t k = 0; k < s->num_output; k++) printf("%s%d", k ? "," : "", s->output_ids[k]);
        putchar('\n');
        fflush(stdout);
        note_if_cut(index, res->prompt_tokens, s, l->req.sampling.max_tokens, max_seq_len);
    }
}

double cli_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int run_requests(const run_settings *s, const llmrt_engine_options *eo, const run_requests_options *opts) {
    const char *path = opts->path;
    line_request *lines = NULL;
    size_t count = 0;
    int code = 1;
    size_t size = 0;
    char *buf = cli_read_file(path, &size);
    if (!buf) return report_failure("run");
    if (strlen(buf) != size) {
        fprintf(stderr, "llmrt run: %s: a NUL byte at offset %zu (requests are JSON text, one per line)\n", path,
                strlen(buf));
        free(buf);
        return 1;
    }
    if (!request_lines_split(buf, path, &lines, &count)) {
        fprintf(stderr, "llmrt run: %s: out of memory\n", path);
        goto done;
    }
    if (count == 0) {
        fprintf(stderr, "llmrt run: %s: no requests (one JSON object per line)\n", path);
        goto done;
    }
    llmrt_engine *engine = NULL;
    llmrt_runtime *rt = NULL;
    if (llmrt_engine_load(s->engine_path, eo, &engine) != LLMRT_OK) {
        code = report_failure("run");
        goto done;
    }
    if (llmrt_engine_rank(engine) > 0) { /* a tensor-parallel rank: rank 0 drives it */
        code = llmrt_engine_follow(engine) == LLMRT_OK ? 0 : report_failure("run");
        llmrt_engine_free(engine);
        goto done;
    }
    llmrt_runtime_options ro;
    llmrt_runtime_options_init(&ro);
    if (llmrt_runtime_create(engine, &ro, &rt) != LLMRT_OK) {
        code = report_failure("run");
        llmrt_engine_free(engine);
        goto done;
    }
    double start = cli_now_seconds();
    for (size_t i = 0; i < count; i++) {
        line_request *l = &lines[i];
        if (!l->json || !request_line_parse(l, s, opts->beams, sizeof l->error)) continue;
        if (llmrt_runtime_submit(rt, &l->req, &l->id) != LLMRT_OK)
            snprintf(l->error, sizeof l->error, "%s", llmrt_last_error());
        else l->submitted = 1;
    }
    int failed = 0;
    for (size_t i = 0; i < count; i++) {
        line_request *l = &lines[i];
        if (l->submitted && llmrt_runtime_wait(rt, l->id, -1, &l->result, &l->done) != LLMRT_OK) {
            snprintf(l->error, sizeof l->error, "%s", llmrt_last_error());
            l->submitted = 0;
        }
        failed |= !l->submitted || l->result.status != LLMRT_OK;
        if (s->json) print_result(i, l);
        else print_plain(i, l, llmrt_engine_max_seq_len(engine));
        fflush(stdout);
    }
    if (s->verbose) {
        double seconds = cli_now_seconds() - start;
        llmrt_runtime_stats st;
        llmrt_runtime_get_stats(rt, &st);
        fprintf(stderr, "%zu requests in %.3f s: %lld prompt tokens computed, %lld generated (%.1f tokens/s), %lld steps\n",
                count, seconds, (long long)st.prompt_tokens_computed, (long long)st.tokens_generated,
                seconds > 0 ? (double)st.tokens_generated / seconds : 0.0, (long long)st.num_steps);
        fprintf(stderr, "KV cache: peak %d of %d blocks; prefix cache hits %lld of %lld blocks; %lld preemptions\n",
                st.kv_peak_used_blocks, st.kv_total_blocks, (long long)st.prefix_hit_blocks,
                (long long)st.prefix_queried_blocks, (long long)st.num_preemptions);
    }
    code = failed ? 1 : 0;
    llmrt_runtime_free(rt);
    llmrt_engine_free(engine);
done:
    for (size_t i = 0; i < count; i++) llmrt_result_free(&lines[i].result);
    request_lines_free(lines, count);
    free(buf);
    return code;
}
