/* The lines of `llmrt run --requests FILE.jsonl`: one JSON object per line
 * holding "prompt" (text) or "prompt_ids", and sampling parameters under
 * their OpenAI names (max_tokens, temperature, top_p, top_k, min_p, seed,
 * stop, n, presence_penalty, frequency_penalty, repetition_penalty,
 * logprobs) plus beams, length_penalty, early_stopping and ignore_eos; what
 * a line leaves out comes from the command line's options. Any other field
 * is refused (a field the runtime does not implement must not be silently
 * ignored), and so is a key given twice. */
#include "request_lines.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"

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

int request_line_parse(line_request *l, const run_settings *s, int32_t beams, size_t cap) {
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
        /* an empty stop string would match at once: refused, as --stop "" is */
        if (json_is_string(stop)) {
            if (json_string_length(stop) == 0) return snprintf(error, cap, "\"stop\" must not be empty"), 0;
            l->stop[r->num_stop++] = json_string_value(stop);
        } else if (json_is_array(stop) && json_array_size(stop) <= LLMRT_MAX_STOP_STRINGS) {
            for (size_t i = 0; i < json_array_size(stop); i++) {
                json_t *item = json_array_get(stop, i);
                if (!json_is_string(item) || json_string_length(item) == 0)
                    return snprintf(error, cap, "\"stop\"[%zu] must be a non-empty string", i), 0;
                l->stop[r->num_stop++] = json_string_value(item);
            }
        } else {
            return snprintf(error, cap, "\"stop\" must be a string or an array of up to %d", LLMRT_MAX_STOP_STRINGS), 0;
        }
    }
    return 1;
}

int request_lines_split(char *text, const char *path, line_request **out, size_t *out_count) {
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

void request_lines_free(line_request *lines, size_t count) {
    for (size_t i = 0; i < count; i++) {
        free(lines[i].prompt_ids);
        json_decref(lines[i].json);
    }
    free(lines);
}
