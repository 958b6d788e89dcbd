/* Sampling fields shared by the OpenAI and KServe endpoints. What a request
 * leaves out comes from the engine's generation_config.json (temperature,
 * top_p, top_k, min_p, repetition_penalty), as vLLM does, then from the
 * runtime's defaults (greedy). Every value is type- and range-checked here,
 * so a bad one is a 400 naming the field, never a surprise in the engine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

int srv_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) n = 1, min = 0x80, c &= 0x1f;
        else if ((c & 0xf0) == 0xe0) n = 2, min = 0x800, c &= 0x0f;
        else if ((c & 0xf8) == 0xf0) n = 3, min = 0x10000, c &= 0x07;
        else return 0;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (p[i + k] & 0xc0) != 0x80) return 0;
            c = (c << 6) | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        i += n + 1;
    }
    return 1;
}

static int bad(srv_params_error *err, const char *param, const char *fmt, double lo, double hi) {
    snprintf(err->param, sizeof err->param, "%s", param);
    snprintf(err->message, sizeof err->message, fmt, param, lo, hi);
    return 0;
}

/* A number field in [lo, hi]: absent or null keeps *out. */
static int read_number(json_t *body, const char *key, double lo, double hi, double *out, srv_params_error *err) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 1;
    if (!json_is_number(v)) return bad(err, key, "'%s' must be a number in [%g, %g]", lo, hi);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return bad(err, key, "'%s' must be a number in [%g, %g]", lo, hi);
    *out = x;
    return 1;
}

static int read_integer(json_t *body, const char *key, double lo, double hi, double *out, srv_params_error *err) {
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 1;
    if (!json_is_integer(v) && !(json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))
        return bad(err, key, "'%s' must be an integer in [%g, %g]", lo, hi);
    return read_number(body, key, lo, hi, out, err);
}

enum { SRV_MAX_BAD_WORDS = 64 };

/* bad_words (Triton; vLLM's extra field): a string or a list of strings,
 * each tokenized as it stands (no special tokens) into a sequence the
 * output must not contain. */
static int read_bad_words(srv_server *s, json_t *body, srv_job *job, srv_params_error *err) {
    json_t *v = json_object_get(body, "bad_words");
    if (!v || json_is_null(v)) return 1;
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return bad(err, "bad_words", "'%s' must be a string or a list of strings", 0, 0);
    if (count > SRV_MAX_BAD_WORDS) return bad(err, "bad_words", "'%s' takes at most %g strings", SRV_MAX_BAD_WORDS, 0);
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(item)) return bad(err, "bad_words", "'%s' must hold strings", 0, 0);
        if (json_string_length(item) == 0) continue; /* Triton sends "" for none */
        int32_t *ids = NULL, n = 0;
        if (!srv_encode(s, json_string_value(item), json_string_length(item), LLMRT_ENCODE_PLAIN, &ids, &n, err)) {
            snprintf(err->param, sizeof err->param, "bad_words");
            return 0;
        }
        int ok = srv_job_add_bad_word(job, ids, n);
        free(ids);
        if (!ok) return bad(err, "bad_words", "out of memory", 0, 0);
    }
    return 1;
}

static double config_number(srv_server *s, const char *key, double fallback) {
    json_t *config = (json_t *)srv_engine_generation_config(s->engine);
    json_t *v = config ? json_object_get(config, key) : NULL;
    return v && json_is_number(v) ? json_number_value(v) : fallback;
}

int srv_params_read(srv_server *s, json_t *body, llmrt_request *r, srv_job *job, srv_params_error *err) {
    double x;
    x = config_number(s, "temperature", r->sampling.temperature);
    if (!read_number(body, "temperature", 0, 100, &x, err)) return 0;
    r->sampling.temperature = (float)x;
    x = config_number(s, "top_p", r->sampling.top_p);
    if (!read_number(body, "top_p", 0, 1, &x, err)) return 0;
    if (!(x > 0)) return bad(err, "top_p", "'%s' must be in (%g, %g]", 0, 1);
    r->sampling.top_p = (float)x;
    x = config_number(s, "top_k", r->sampling.top_k);
    if (!read_integer(body, "top_k", -1, 1 << 30, &x, err)) return 0;
    r->sampling.top_k = x < 0 ? 0 : (int32_t)x; /* vLLM: -1 = off */
    x = config_number(s, "min_p", r->min_p);
    if (!read_number(body, "min_p", 0, 1, &x, err)) return 0;
    r->min_p = (float)x;
    x = config_number(s, "repetition_penalty", r->repetition_penalty);
    if (!read_number(body, "repetition_penalty", 0, 100, &x, err)) return 0;
    if (!(x > 0)) return bad(err, "repetition_penalty", "'%s' must be in (%g, %g]", 0, 100);
    r->repetition_penalty = (float)x;
    x = 0;
    if (!read_number(body, "presence_penalty", -2, 2, &x, err)) return 0;
    r->presence_penalty = (float)x;
    x = 0;
    if (!read_number(body, "frequency_penalty", -2, 2, &x, err)) return 0;
    r->frequency_penalty = (float)x;
    x = 0;
    if (!read_integer(body, "seed", -9007199254740992.0, 9007199254740992.0, &x, err)) return 0;
    r->sampling.seed = (uint64_t)(int64_t)x;
    json_t *v = json_object_get(body, "ignore_eos");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) return bad(err, "ignore_eos", "'%s' must be true or false", 0, 0);
        r->sampling.ignore_eos = json_is_true(v);
    }
    json_t *stop = json_object_get(body, "stop");
    if (stop && !json_is_null(stop)) {
        if (json_is_string(stop)) {
            if (json_string_length(stop) == 0) return bad(err, "stop", "'%s' must not be empty", 0, 0);
            if (!srv_job_add_stop(job, json_string_value(stop))) return bad(err, "stop", "out of memory", 0, 0);
        } else if (json_is_array(stop)) {
            if (json_array_size(stop) > LLMRT_MAX_STOP_STRINGS)
                return bad(err, "stop", "'%s' takes at most %g strings", LLMRT_MAX_STOP_STRINGS, 0);
            for (size_t i = 0; i < json_array_size(stop); i++) {
                json_t *item = json_array_get(stop, i);
                if (!json_is_string(item) || json_string_length(item) == 0)
                    return bad(err, "stop", "'%s' must hold non-empty strings", 0, 0);
                if (!srv_job_add_stop(job, json_string_value(item))) return bad(err, "stop", "out of memory", 0, 0);
            }
        } else {
            return bad(err, "stop", "'%s' must be a string or a list of strings", 0, 0);
        }
    }
    return read_bad_words(s, body, job, err);
}

int srv_params_max_tokens(srv_server *s, json_t *body, const char *const *keys, int32_t prompt_len, int32_t fallback,
                          int32_t *out, srv_params_error *err) {
    int32_t limit = llmrt_engine_max_seq_len(srv_engine_model(s->engine));
    if (prompt_len >= limit) {
        snprintf(err->param, sizeof err->param, "prompt");
        snprintf(err->message, sizeof err->message,
                 "the prompt has %d tokens; this model's maximum context length is %d tokens", prompt_len, limit);
        return 0;
    }
    const char *given = NULL;
    double x = 0;
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (!v || json_is_null(v)) continue;
        if (!read_integer(body, keys[i], -9007199254740992.0, 9007199254740992.0, &x, err)) return 0;
        given = keys[i];
        break;
    }
    if (!given) {
        int32_t room = limit - prompt_len;
        *out = fallback > 0 && fallback < room ? fallback : room;
        return 1;
    }
    if (x < 1) return bad(err, given, "'%s' must be at least 1", 0, 0);
    if (x > limit - prompt_len) {
        snprintf(err->param, sizeof err->param, "%s", given);
        snprintf(err->message, sizeof err->message,
                 "this model's maximum context length is %d tokens; the request has %d prompt tokens and asks for "
                 "%.0f more ('%s')",
                 limit, prompt_len, x, given);
        return 0;
    }
    *out = (int32_t)x;
    return 1;
}

int srv_encode(srv_server *s, const char *text, size_t len, int flags, int32_t **ids, int32_t *n, srv_params_error *err) {
    const llmrt_tokenizer *tok = srv_engine_tokenizer(s->engine);
    if (!tok) {
        snprintf(err->param, sizeof err->param, "prompt");
        snprintf(err->message, sizeof err->message, "the engine has no tokenizer: give the prompt as token ids");
        return 0;
    }
    if (!srv_utf8_valid(text, len)) {
        snprintf(err->param, sizeof err->param, "prompt");
        snprintf(err->message, sizeof err->message, "the prompt is not valid UTF-8");
        return 0;
    }
    size_t count = 0;
    if (llmrt_tokenizer_encode(tok, text, len, flags, ids, &count) != LLMRT_OK) {
        snprintf(err->param, sizeof err->param, "prompt");
        snprintf(err->message, sizeof err->message, "%s", llmrt_last_error());
        return 0;
    }
    if (count == 0) {
        snprintf(err->param, sizeof err->param, "prompt");
        snprintf(err->message, sizeof err->message, "the prompt is empty");
        return 0;
    }
    *n = (int32_t)count;
    return 1;
}

int srv_params_generation_max(srv_server *s) {
    return (int)config_number(s, "max_new_tokens", 0);
}
