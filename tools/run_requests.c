/* llmrt run --requests FILE.jsonl: one request per line, all submitted at
 * once to one runtime (in-flight batching), results printed in input order.
 *
 * A line holds "prompt" (text) or "prompt_ids", and sampling parameters
 * under their OpenAI names (max_tokens, temperature, top_p, top_k, min_p,
 * seed, stop, n, presence_penalty, frequency_penalty, repetition_penalty,
 * logprobs) plus beams, length_penalty, early_stopping and ignore_eos; what a
 * line leaves out comes from the command line's options. A bad line is
 * reported on its own output line and the others still run. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_args.h"
#include "commands.h"
#include "llmrt/runtime.h"
#include "run_output.h"
#include "run_requests.h"

typedef struct line_request {
    json_t *json;              /* the parsed line (owns the strings the request borrows) */
    llmrt_request req;
    const char *stop[LLMRT_MAX_STOP_STRINGS];
    int32_t *prompt_ids;
    char error[512];
    llmrt_request_id id;
    llmrt_result result;
    int submitted, done;
} line_request;

static int get_number(json_t *o, const char *key, double min, double max, double *out, char *error, size_t cap) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 1;
    if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max) {
        char lo[32], hi[32];
        snprintf(error, cap, "\"%s\" must be a number in [%s, %s]", key, cli_format_number(lo, min),
                 cli_format_number(hi, max));
        return 0;
    }
    *out = json_number_value(v);
    return 1;
}

/* A count or id: 2.5 tokens would be cut to 2 without a word. */
static int get_integer(json_t *o, const char *key, double min, double max, double *out, char *error, size_t cap) {
    if (!get_number(o, key, min, max, out, error, cap)) return 0;
    json_t *v = json_object_get(o, key);
    if (v && json_is_real(v) && json_real_value(v) != floor(json_real_value(v))) {
        snprintf(error, cap, "\"%s\" must be an integer", key);
        return 0;
    }
    return 1;
}

/* Fills l->req from the line's JSON over the command line's defaults. */
static int parse_line(line_request *l, const run_settings *s, int32_t beams, size_t cap) {
    char *error = l->error;
    json_t *o = l->json;
    if (!json_is_object(o)) {
        snprintf(error, cap, "a line must be a JSON object");
        return 0;
    }
    /* a field the runtime does not implement (logit_bias, min_tokens,
     * best_of, ...) is refused rather than silently ignored */
    static const char *const known[] = {"prompt", "prompt_ids", "max_tokens", "temperature", "top_p", "top_k",
                                        "min_p", "seed", "stop", "n", "presence_penalty", "frequency_penalty",
                                        "repetition_penalty", "logprobs", "beams", "length_penalty",
                                        "early_stopping", "ignore_eos"};
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(key, known[k]) != 0) k++;
        if (k == sizeof known / sizeof known[0]) {
            snprintf(error, cap, "unsupported field \"%.100s\" (llmrt run --help lists the fields)", key);
            return 0;
        }
    }
    llmrt_request *r = &l->req;
    llmrt_request_init(r);
    r->sampling = s->params;
    r->num_stop = s->num_stop;
    for (int i = 0; i < s->num_stop; i++) l->stop[i] = s->stop[i];
    r->stop = l->stop;
    json_t *prompt = json_object_get(o, "prompt"), *ids = json_object_get(o, "prompt_ids");
    if ((prompt != NULL) == (ids != NULL)) {
        snprintf(error, cap, "give exactly one of \"prompt\" and \"prompt_ids\"");
        return 0;
    }
    if (prompt) {
        if (!json_is_string(prompt)) return snprintf(error, cap, "\"prompt\" must be a string"), 0;
        r->prompt_text = json_string_value(prompt);
    } else {
        size_t n = json_array_size(ids);
        if (!json_is_array(ids) || n == 0) return snprintf(error, cap, "\"prompt_ids\" must be a non-empty array"), 0;
        l->prompt_ids = malloc(n * sizeof *l->prompt_ids);
        if (!l->prompt_ids) return snprintf(error, cap, "out of memory"), 0;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(ids, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
                return snprintf(error, cap, "\"prompt_ids\"[%zu] must be a token id", i), 0;
            l->prompt_ids[i] = (int32_t)json_integer_value(v);
        }
        r->prompt_ids = l->prompt_ids;
        r->num_prompt_ids = (int32_t)n;
    }
    double x;
    x = r->sampling.max_tokens;
    if (!get_integer(o, "max_tokens", 0, 1 << 24, &x, error, cap)) return 0;
    r->sampling.max_tokens = (int32_t)x;
    x = r->sampling.temperature;
    if (!get_number(o, "temperature", 0, 100, &x, error, cap)) return 0;
    r->sampling.temperature = (float)x;
    x = r->sampling.top_p;
    if (!get_number(o, "top_p", 0, 1, &x, error, cap)) return 0;
    r->sampling.top_p = (float)x;
    x = r->sampling.top_k;
    if (!get_integer(o, "top_k", 0, 1 << 24, &x, error, cap)) return 0;
    r->sampling.top_k = (int32_t)x;
    x = (double)r->sampling.seed;
    if (!get_integer(o, "seed", 0, 9007199254740992.0, &x, error, cap)) return 0;
    r->sampling.seed = (uint64_t)x;
    struct { const char *key; float *field; double min, max; } floats[] = {
        {"min_p", &r->min_p, 0, 1},
        {"presence_penalty", &r->presence_penalty, -2, 2},
        {"frequency_penalty", &r->frequency_penalty, -2, 2},
        {"repetition_penalty", &r->repetition_penalty, 0, 100},
        {"length_penalty", &r->length_penalty, -100, 100},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        x = *floats[i].field;
        if (!get_number(o, floats[i].key, floats[i].min, floats[i].max, &x, error, cap)) return 0;
        *floats[i].field = (float)x;
    }
    x = 1;
    if (!get_integer(o, "n", 1, 1024, &x, error, cap)) return 0;
    r->n = (int32_t)x;
    x = beams;
    if (!get_integer(o, "beams", 0, 64, &x, error, cap)) return 0;
    r->num_beams = (int32_t)x;
    json_t *lp = json_object_get(o, "logprobs");
    if (json_is_boolean(lp)) r->logprobs = 0;
    else if (lp && !json_is_null(lp)) {
        x = 0;
        if (!get_integer(o, "logprobs", 0, LLMRT_MAX_LOGPROBS, &x, error, cap)) return 0;
        r->logprobs = (int32_t)x;
    }
    json_t *flag = json_object_get(o, "ignore_eos");
    if (flag && !json_is_boolean(flag)) return snprintf(error, cap, "\"ignore_eos\" must be true or false"), 0;
    if (flag) r->sampling.ignore_eos = json_is_true(flag);
    flag = json_object_get(o, "early_stopping");
    if (flag && !json_is_boolean(flag)) return snprintf(error, cap, "\"early_stopping\" must be true or false"), 0;
    if (flag) r->early_stopping = json_is_true(flag);
    json_t *stop = json_object_get(o, "stop");
    if (stop && !json_is_null(stop)) {
        r->num_stop = 0;
        if (json_is_string(stop)) l->stop[r->num_stop++] = json_string_value(stop);
        else if (json_is_array(stop) && json_array_size(stop) <= LLMRT_MAX_STOP_STRINGS) {
            for (size_t i = 0; i < json_array_size(stop); i++) {
                if (!json_is_string(json_array_get(stop, i)))
                    return snprintf(error, cap, "\"stop\"[%zu] must be a string", i), 0;
                l->stop[r->num_stop++] = json_string_value(json_array_get(stop, i));
            }
        } else {
            return snprintf(error, cap, "\"stop\" must be a string or an array of up to %d", LLMRT_MAX_STOP_STRINGS), 0;
        }
    }
    return 1;
}

/* Splits the file's text into one line_request per non-blank line, each
 * parsed (duplicate keys rejected, as a second "prompt" would silently win)
 * or holding its parse error. Returns 0 when out of memory. */
static int parse_request_lines(char *text, const char *path, line_request **out, size_t *out_count) {
    line_request *lines = NULL;
    size_t count = 0, cap = 0, line_no = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        line_no++;
        size_t start = strspn(line, " \t\r");
        if (line[start]) { /* blank lines are not requests */
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                line_request *grown = realloc(lines, cap * sizeof *grown);
                if (!grown) {
                    for (size_t i = 0; i < count; i++) json_decref(lines[i].json);
                    free(lines);
                    return 0;
                }
                lines = grown;
            }
            line_request *l = &lines[count++];
            memset(l, 0, sizeof *l);
            json_error_t jerr;
            l->json = json_loads(line + start, JSON_REJECT_DUPLICATES, &jerr);
            if (!l->json) snprintf(l->error, sizeof l->error, "%s:%zu: %s", path, line_no, jerr.text);
        }
        if (!end) break;
        line = end + 1;
    }
    *out = lines;
    *out_count = count;
    return 1;
}

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
    if (!parse_request_lines(buf, path, &lines, &count)) {
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
        if (!l->json || !parse_line(l, s, opts->beams, sizeof l->error)) continue;
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
    for (size_t i = 0; i < count; i++) {
        llmrt_result_free(&lines[i].result);
        free(lines[i].prompt_ids);
        json_decref(lines[i].json);
    }
    free(lines);
    free(buf);
    return code;
}
