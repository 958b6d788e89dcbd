/* The OpenAI-compatible API: /v1/models, /v1/completions and
 * /v1/chat/completions, non-streaming and streaming (server-sent events, one
 * chunk per choice per engine step that produced text, then data: [DONE]).
 * Completions with echo and logprobs score the prompt too, as evaluation
 * harnesses ask (lm-evaluation-harness's loglikelihood).
 *
 * Unknown fields are ignored, as clients send many; fields the server cannot
 * honour (response_format json_object/json_schema, tools) are refused with
 * a 400 that names them. */
#include <math.h>
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server.h"

enum { OA_MAX_PROMPTS = 64, OA_MAX_N = 128 };

static atomic_ullong request_counter;

static void make_id(char *out, size_t cap, const char *prefix) {
    unsigned long long n = atomic_fetch_add(&request_counter, 1) + 1;
    snprintf(out, cap, "%s-%08llx%08llx", prefix, (unsigned long long)time(NULL) & 0xffffffffULL, n);
}

static const char *finish_name(const char *reason) {
    if (!reason) return "stop";
    if (strcmp(reason, "cancelled") == 0) return "abort";
    return reason; /* "stop", "length", "error" */
}

/* ---- parsed requests ---------------------------------------------------------- */

typedef struct oa_request {
    srv_server *server;
    json_t *body;
    int chat;
    int stream, include_usage, echo;
    int logprobs;      /* chat: logprobs true; completions: the logprobs field given */
    int top_logprobs;  /* alternatives per token */
    int n;
    char id[64];
    int64_t created;
    char *echo_text[OA_MAX_PROMPTS]; /* completions with echo: each prompt's text */
} oa_request;

static void oa_request_free(oa_request *r) {
    json_decref(r->body);
    for (int i = 0; i < OA_MAX_PROMPTS; i++) free(r->echo_text[i]);
}

/* Fields every generation request shares; 0 with the reply filled on error. */
static int read_common(srv_http_request *req, oa_request *r, srv_reply *reply) {
    json_error_t jerr;
    r->server = req->server;
    r->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r->body) {
        srv_reply_error(reply, 400, NULL, "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                        jerr.column);
        return 0;
    }
    json_t *b = r->body;
    if (!json_is_object(b)) return srv_reply_error(reply, 400, NULL, "the body must be a JSON object"), 0;
    json_t *model = json_object_get(b, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) return srv_reply_error(reply, 400, "model", "'model' must be a string"), 0;
        if (strcmp(json_string_value(model), req->server->model_name) != 0) {
            srv_reply_error(reply, 404, "model", "the model '%s' does not exist; this server serves '%s'",
                            json_string_value(model), req->server->model_name);
            return 0;
        }
    }
    json_t *format = json_object_get(b, "response_format");
    if (format && !json_is_null(format)) {
        json_t *type = json_is_object(format) ? json_object_get(format, "type") : NULL;
        if (!json_is_string(type))
            return srv_reply_error(reply, 400, "response_format", "'response_format' must be an object with a 'type'"), 0;
        if (strcmp(json_string_value(type), "text") != 0) {
            srv_reply_error(reply, 400, "response_format",
                            "response_format type '%s' is not supported by this server (only 'text')",
                            json_string_value(type));
            return 0;
        }
    }
    static const char *const unsupported[] = {"tools", "functions", "tool_choice", "function_call"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        json_t *v = json_object_get(b, unsupported[i]);
        if (!v || json_is_null(v)) continue;
        if (json_is_array(v) && json_array_size(v) == 0) continue;
        if (json_is_string(v) && strcmp(json_string_value(v), "none") == 0) continue;
        srv_reply_error(reply, 400, unsupported[i], "'%s' (tool calling) is not supported by this server",
                        unsupported[i]);
        return 0;
    }
    json_t *v = json_object_get(b, "stream");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return srv_reply_error(reply, 400, "stream", "'stream' must be true or false"), 0;
    r->stream = json_is_true(v);
    v = json_object_get(b, "stream_options");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            return srv_reply_error(reply, 400, "stream_options", "'stream_options' must be an object"), 0;
        json_t *u = json_object_get(v, "include_usage");
        if (u && !json_is_null(u) && !json_is_boolean(u))
            return srv_reply_error(reply, 400, "stream_options", "'stream_options.include_usage' must be true or false"), 0;
        r->include_usage = json_is_true(u);
    }
    v = json_object_get(b, "n");
    r->n = 1;
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > OA_MAX_N)
            return srv_reply_error(reply, 400, "n", "'n' must be an integer in [1, %d]", OA_MAX_N), 0;
        r->n = (int)json_integer_value(v);
    }
    v = json_object_get(b, "user");
    if (v && !json_is_null(v) && !json_is_string(v))
        return srv_reply_error(reply, 400, "user", "'user' must be a string"), 0;
    return 1;
}

static int read_logprobs(oa_request *r, srv_reply *reply) {
    json_t *b = r->body, *v = json_object_get(b, "logprobs");
    if (r->chat) {
        if (v && !json_is_null(v) && !json_is_boolean(v))
            return srv_reply_error(reply, 400, "logprobs", "'logprobs' must be true or false"), 0;
        r->logprobs = json_is_true(v);
        json_t *top = json_object_get(b, "top_logprobs");
        if (top && !json_is_null(top)) {
            if (!json_is_integer(top) || json_integer_value(top) < 0 || json_integer_value(top) > LLMRT_MAX_LOGPROBS)
                return srv_reply_error(reply, 400, "top_logprobs", "'top_logprobs' must be an integer in [0, %d]",
                                       LLMRT_MAX_LOGPROBS), 0;
            if (!r->logprobs)
                return srv_reply_error(reply, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true"), 0;
            r->top_logprobs = (int)json_integer_value(top);
        }
    } else if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > LLMRT_MAX_LOGPROBS)
            return srv_reply_error(reply, 400, "logprobs", "'logprobs' must be an integer in [0, %d]",
                                   LLMRT_MAX_LOGPROBS), 0;
        r->logprobs = 1;
        r->top_logprobs = (int)json_integer_value(v);
    }
    return 1;
}

/* ---- logprobs ------------------------------------------------------------------- */

static char *token_text(const llmrt_tokenizer *tok, int32_t id) {
    char *text = NULL;
    size_t len = 0;
    if (tok && llmrt_tokenizer_decode(tok, &id, 1, LLMRT_DECODE_PLAIN, &text, &len) == LLMRT_OK) return text;
    free(text);
    char buf[32];
    snprintf(buf, sizeof buf, "token_id:%d", id);
    return strdup(buf);
}

static json_t *text_json(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    return j ? j : json_string("\xef\xbf\xbd");
}

static json_t *bytes_json(const char *s) {
    json_t *a = json_array();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) json_array_append_new(a, json_integer(*p));
    return a;
}

/* Logprobs of `count` tokens, in the completions shape (tokens,
 * token_logprobs, top_logprobs, text_offset) or the chat one (content). */
typedef struct oa_logprobs {
    json_t *root, *tokens, *token_logprobs, *top, *offsets, *content;
} oa_logprobs;

static void logprobs_begin(oa_logprobs *l, int chat) {
    memset(l, 0, sizeof *l);
    l->root = json_object();
    if (chat) {
        l->content = json_array();
        json_object_set_new(l->root, "content", l->content);
    } else {
        l->tokens = json_array();
        l->token_logprobs = json_array();
        l->top = json_array();
        l->offsets = json_array();
        json_object_set_new(l->root, "tokens", l->tokens);
        json_object_set_new(l->root, "token_logprobs", l->token_logprobs);
        json_object_set_new(l->root, "top_logprobs", l->top);
        json_object_set_new(l->root, "text_offset", l->offsets);
    }
}

/* A NaN logprob (the prompt's first token, which nothing predicts) is
 * null, with null alternatives. */
static void logprobs_add(oa_logprobs *l, const llmrt_tokenizer *tok, int32_t id, float logprob, int32_t num_top,
                         const int32_t *top_ids, const float *top_logprobs, size_t *offset) {
    char *text = token_text(tok, id);
    if (!text) return;
    if (isnan(logprob) && !l->content) {
        json_array_append_new(l->tokens, text_json(text, strlen(text)));
        json_array_append_new(l->token_logprobs, json_null());
        json_array_append_new(l->top, json_null());
        json_array_append_new(l->offsets, json_integer((json_int_t)*offset));
        *offset += strlen(text);
        free(text);
        return;
    }
    if (l->content) {
        json_t *entry = json_object(), *alts = json_array();
        json_object_set_new(entry, "token", text_json(text, strlen(text)));
        json_object_set_new(entry, "logprob", json_real(logprob));
        json_object_set_new(entry, "bytes", bytes_json(text));
        for (int32_t k = 0; k < num_top; k++) {
            char *alt = token_text(tok, top_ids[k]);
            if (!alt) continue;
            json_array_append_new(alts, json_pack("{s:o, s:f, s:o}", "token", text_json(alt, strlen(alt)), "logprob",
                                                  (double)top_logprobs[k], "bytes", bytes_json(alt)));
            free(alt);
        }
        json_object_set_new(entry, "top_logprobs", alts);
        json_array_append_new(l->content, entry);
    } else {
        json_array_append_new(l->tokens, text_json(text, strlen(text)));
        json_array_append_new(l->token_logprobs, json_real(logprob));
        json_t *alts = json_object();
        for (int32_t k = 0; k < num_top; k++) {
            char *alt = token_text(tok, top_ids[k]);
            if (!alt) continue;
            json_object_set_new(alts, srv_utf8_valid(alt, strlen(alt)) ? alt : "\xef\xbf\xbd",
                                json_real(top_logprobs[k]));
            free(alt);
        }
        json_array_append_new(l->top, alts);
        json_array_append_new(l->offsets, json_integer((json_int_t)*offset));
        *offset += strlen(text);
    }
    free(text);
}

/* The scored prompt's tokens, ahead of the generated ones (echo). */
static void prompt_logprobs_add(oa_logprobs *l, const llmrt_tokenizer *tok, const llmrt_prompt_logprobs *p,
                                size_t *offset) {
    for (int32_t k = 0; k < p->num_tokens; k++)
        logprobs_add(l, tok, p->ids[k], p->logprobs[k], p->num_top, p->top_ids + (size_t)k * (size_t)p->num_top,
                     p->top_logprobs + (size_t)k * (size_t)p->num_top, offset);
}

/* ---- building jobs ---------------------------------------------------------------- */

static int fill_sub(oa_request *r, srv_job *job, int index, int32_t *ids, int32_t n, srv_reply *reply) {
    int32_t vocab = llmrt_engine_vocab_size(srv_engine_model(r->server->engine));
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) {
            srv_reply_error(reply, 400, "prompt", "prompt token %d at index %d is outside the vocabulary [0, %d)", ids[i],
                            i, vocab);
            free(ids);
            return 0;
        }
    job->subs[index].prompt_ids = ids;
    job->subs[index].num_prompt_ids = n;
    job->subs[index].req.prompt_ids = ids;
    job->subs[index].req.num_prompt_ids = n;
    return 1;
}

static int ids_from_json(json_t *a, int32_t **out, int32_t *count, srv_reply *reply) {
    size_t n = json_array_size(a);
    if (n == 0) return srv_reply_error(reply, 400, "prompt", "a prompt of token ids must not be empty"), 0;
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return srv_reply_error(reply, 500, NULL, "out of memory"), 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) {
            free(ids);
            srv_reply_error(reply, 400, "prompt", "prompt token ids must be integers (index %zu is not)", i);
            return 0;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    *out = ids;
    *count = (int32_t)n;
    return 1;
}

/* Completions: prompt as a string, a list of strings, a list of ids, or a
 * list of lists of ids. */
static srv_job *completion_job(oa_request *r, srv_reply *reply) {
    json_t *prompt = json_object_get(r->body, "prompt");
    json_t *items[OA_MAX_PROMPTS];
    int count = 0;
    if (json_is_string(prompt)) items[count++] = prompt;
    else if (json_is_array(prompt) && json_array_size(prompt) > 0) {
        json_t *first = json_array_get(prompt, 0);
        if (json_is_integer(first)) {
            items[count++] = prompt;
        } else {
            if (json_array_size(prompt) > OA_MAX_PROMPTS)
                return srv_reply_error(reply, 400, "prompt", "at most %d prompts in one request", OA_MAX_PROMPTS), NULL;
            for (size_t i = 0; i < json_array_size(prompt); i++) {
                json_t *p = json_array_get(prompt, i);
                if (!json_is_string(p) && !json_is_array(p))
                    return srv_reply_error(reply, 400, "prompt",
                                           "'prompt' must be a string, a list of strings, a list of token ids or a "
                                           "list of lists of token ids"), NULL;
                items[count++] = p;
            }
        }
    } else {
        return srv_reply_error(reply, 400, "prompt",
                               "'prompt' is required: a string, a list of strings, a list of token ids or a list of "
                               "lists of token ids"), NULL;
    }
    srv_job *job = srv_job_new(r->server->engine, count, r->n);
    if (!job) return srv_reply_error(reply, 500, NULL, "out of memory"), NULL;
    srv_params_error err = {{0}, {0}};
    int32_t longest = 0;
    for (int i = 0; i < count; i++) {
        int32_t *ids = NULL, n = 0;
        if (json_is_string(items[i])) {
            if (!srv_encode(r->server, json_string_value(items[i]), json_string_length(items[i]),
                            LLMRT_ENCODE_ADD_SPECIAL, &ids, &n, &err)) {
                srv_reply_error(reply, 400, err.param, "%s", err.message);
                goto fail;
            }
            if (r->echo) r->echo_text[i] = strdup(json_string_value(items[i]));
        } else {
            if (!ids_from_json(items[i], &ids, &n, reply)) goto fail;
            if (r->echo) {
                size_t len = 0;
                const llmrt_tokenizer *tok = srv_engine_tokenizer(r->server->engine);
                if (!tok || llmrt_tokenizer_decode(tok, ids, (size_t)n, LLMRT_DECODE_PLAIN, &r->echo_text[i], &len) != LLMRT_OK)
                    r->echo_text[i] = strdup("");
            }
        }
        if (!fill_sub(r, job, i, ids, n, reply)) goto fail;
        if (n > longest) longest = n;
    }
    static const char *const keys[] = {"max_tokens", "max_completion_tokens", NULL};
    int32_t max_tokens = 0;
    int fallback = srv_params_generation_max(r->server);
    if (!srv_params_max_tokens(r->server, r->body, keys, longest, fallback > 0 ? fallback : 16, &max_tokens, &err)) {
        srv_reply_error(reply, 400, err.param, "%s", err.message);
        goto fail;
    }
    if (!srv_params_read(r->server, r->body, &job->subs[0].req, job, &err)) {
        srv_reply_error(reply, 400, err.param, "%s", err.message);
        goto fail;
    }
    llmrt_request base = job->subs[0].req;
    for (int i = 0; i < count; i++) {
        llmrt_request *q = &job->subs[i].req;
        const int32_t *ids = q->prompt_ids;
        int32_t n = q->num_prompt_ids;
        *q = base;
        q->prompt_ids = ids;
        q->num_prompt_ids = n;
        q->sampling.max_tokens = max_tokens;
        q->n = r->n;
        q->logprobs = r->top_logprobs;
        q->prompt_logprobs = r->echo && r->logprobs;
        q->sampling.seed = base.sampling.seed + (uint64_t)i; /* each prompt of a list has its own stream */
    }
    return job;
fail:
    srv_job_release(job);
    return NULL;
}

/* The content of a chat message: a string, or a list of text parts. */
static int message_content(json_t *content, text_buffer *out, srv_reply *reply, size_t index) {
    if (json_is_null(content)) return 1;
    if (json_is_string(content)) {
        text_buffer_append(out, json_string_value(content), json_string_length(content));
        return 1;
    }
    if (!json_is_array(content)) {
        srv_reply_error(reply, 400, "messages", "messages[%zu].content must be a string or a list of parts", index);
        return 0;
    }
    for (size_t k = 0; k < json_array_size(content); k++) {
        json_t *part = json_array_get(content, k), *type = json_object_get(part, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0) {
            srv_reply_error(reply, 400, "messages", "messages[%zu].content[%zu]: only parts of type 'text' are supported",
                            index, k);
            return 0;
        }
        json_t *text = json_object_get(part, "text");
        if (!json_is_string(text)) {
            srv_reply_error(reply, 400, "messages", "messages[%zu].content[%zu].text must be a string", index, k);
            return 0;
        }
        text_buffer_append(out, json_string_value(text), json_string_length(text));
    }
    return 1;
}

/* The conversation as text: the engine's chat template, or, for a model
 * without one (the demo model), "role: content" lines and "assistant:". */
static char *render_chat(oa_request *r, srv_reply *reply, int *plain) {
    json_t *messages = json_object_get(r->body, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return srv_reply_error(reply, 400, "messages", "'messages' must be a non-empty list"), NULL;
    json_t *normal = json_array();
    text_buffer fallback = {0};
    for (size_t i = 0; i < json_array_size(messages); i++) {
        json_t *m = json_array_get(messages, i), *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            srv_reply_error(reply, 400, "messages", "messages[%zu] must be an object with a string 'role'", i);
            goto fail;
        }
        text_buffer content = {0};
        if (!message_content(json_object_get(m, "content"), &content, reply, i)) {
            text_buffer_free(&content);
            goto fail;
        }
        json_array_append_new(normal, json_pack("{s:s, s:s#}", "role", json_string_value(role), "content",
                                                content.data ? content.data : "", content.len));
        text_buffer_printf(&fallback, "%s: %s\n", json_string_value(role), content.data ? content.data : "");
        text_buffer_free(&content);
    }
    const llmrt_tokenizer *tok = srv_engine_tokenizer(r->server->engine);
    if (!tok) {
        srv_reply_error(reply, 400, "messages", "the engine has no tokenizer, so it cannot chat");
        goto fail;
    }
    char *text = NULL;
    if (llmrt_tokenizer_chat_template_family(tok)) {
        char *dump = json_dumps(normal, JSON_COMPACT);
        llmrt_chat_options chat = {.add_generation_prompt = 1, .enable_thinking = -1};
        llmrt_status s = dump ? llmrt_tokenizer_apply_chat_template(tok, dump, &chat, &text) : LLMRT_ERR_OUT_OF_MEMORY;
        free(dump);
        if (s != LLMRT_OK) {
            srv_reply_error(reply, 400, "messages", "the chat template: %s", llmrt_last_error());
            goto fail;
        }
        *plain = 1;
    } else {
        text_buffer_printf(&fallback, "assistant:");
        text = fallback.failed ? NULL : strdup(fallback.data);
        *plain = 0;
    }
    json_decref(normal);
    text_buffer_free(&fallback);
    return text;
fail:
    json_decref(normal);
    text_buffer_free(&fallback);
    return NULL;
}

static srv_job *chat_job(oa_request *r, srv_reply *reply) {
    int plain = 0;
    char *text = render_chat(r, reply, &plain);
    if (!text) return NULL;
    srv_params_error err = {{0}, {0}};
    int32_t *ids = NULL, n = 0;
    int ok = srv_encode(r->server, text, strlen(text), plain ? LLMRT_ENCODE_PLAIN : LLMRT_ENCODE_ADD_SPECIAL, &ids, &n,
                        &err);
    free(text);
    if (!ok) return srv_reply_error(reply, 400, "messages", "%s", err.message), NULL;
    srv_job *job = srv_job_new(r->server->engine, 1, r->n);
    if (!job) {
        free(ids);
        return srv_reply_error(reply, 500, NULL, "out of memory"), NULL;
    }
    if (!fill_sub(r, job, 0, ids, n, reply)) goto fail;
    static const char *const keys[] = {"max_completion_tokens", "max_tokens", NULL};
    int32_t max_tokens = 0;
    if (!srv_params_max_tokens(r->server, r->body, keys, n, srv_params_generation_max(r->server), &max_tokens, &err) ||
        !srv_params_read(r->server, r->body, &job->subs[0].req, job, &err)) {
        srv_reply_error(reply, 400, err.param, "%s", err.message);
        goto fail;
    }
    job->subs[0].req.sampling.max_tokens = max_tokens;
    job->subs[0].req.n = r->n;
    job->subs[0].req.logprobs = r->top_logprobs;
    return job;
fail:
    srv_job_release(job);
    return NULL;
}

/* ---- responses ------------------------------------------------------------------ */

static json_t *usage_json(srv_job *job) {
    int64_t prompt = 0, completion = 0, cached = 0;
    for (int i = 0; i < job->num_subs; i++) {
        const llmrt_result *res = &job->subs[i].result;
        prompt += res->prompt_tokens;
        cached += res->cached_prompt_tokens;
        for (int32_t s = 0; s < res->num_sequences; s++) completion += res->sequences[s].num_output;
    }
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                     (json_int_t)completion, "total_tokens", (json_int_t)(prompt + completion), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)cached);
}

static json_t *envelope(oa_request *r, const char *object) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", r->id, "object", object, "created", (json_int_t)r->created, "model",
                     r->server->model_name);
}

static void reply_complete(oa_request *r, srv_job *job, srv_reply *reply) {
    const llmrt_tokenizer *tok = srv_engine_tokenizer(r->server->engine);
    json_t *o = envelope(r, r->chat ? "chat.completion" : "text_completion"), *choices = json_array();
    for (int i = 0; i < job->num_subs; i++) {
        const llmrt_result *res = &job->subs[i].result;
        for (int32_t s = 0; s < job->n && s < res->num_sequences; s++) {
            const llmrt_sequence_output *seq = &res->sequences[s];
            json_t *c = json_object();
            json_object_set_new(c, "index", json_integer(i * job->n + s));
            text_buffer text = {0};
            if (r->echo && r->echo_text[i]) text_buffer_append(&text, r->echo_text[i], strlen(r->echo_text[i]));
            if (seq->text) text_buffer_append(&text, seq->text, seq->text_len);
            json_t *t = text_json(text.data ? text.data : "", text.len);
            size_t offset = text.len - (seq->text ? seq->text_len : 0);
            text_buffer_free(&text);
            if (r->chat) json_object_set_new(c, "message", json_pack("{s:s, s:o}", "role", "assistant", "content", t));
            else json_object_set_new(c, "text", t);
            if (r->logprobs && seq->logprobs) {
                oa_logprobs l;
                logprobs_begin(&l, r->chat);
                if (r->echo) {
                    size_t prompt_offset = 0;
                    prompt_logprobs_add(&l, tok, &res->prompt, &prompt_offset);
                }
                for (int32_t k = 0; k < seq->num_output; k++)
                    logprobs_add(&l, tok, seq->output_ids[k], seq->logprobs[k], seq->num_top,
                                 seq->top_ids + (size_t)k * (size_t)seq->num_top,
                                 seq->top_logprobs + (size_t)k * (size_t)seq->num_top, &offset);
                json_object_set_new(c, "logprobs", l.root);
            } else {
                json_object_set_new(c, "logprobs", json_null());
            }
            json_object_set_new(c, "finish_reason", json_string(finish_name(seq->finish_reason)));
            json_array_append_new(choices, c);
        }
    }
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage_json(job));
    srv_reply_json(reply, 200, o);
}

/* ---- streaming -------------------------------------------------------------------- */

typedef struct oa_stream {
    oa_request r;
    int *reported, *started;
    size_t *offsets;
} oa_stream;

static void oa_stream_free(void *p) {
    oa_stream *s = p;
    oa_request_free(&s->r);
    free(s->reported);
    free(s->started);
    free(s->offsets);
    free(s);
}

static void send_event(text_buffer *out, json_t *o) {
    char *dump = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!dump) {
        out->failed = 1;
        return;
    }
    text_buffer_append(out, "data: ", 6);
    text_buffer_append(out, dump, strlen(dump));
    text_buffer_append(out, "\n\n", 2);
    free(dump);
}

static json_t *chunk(oa_stream *s, int index, json_t *delta_or_text, json_t *logprobs, const char *finish) {
    oa_request *r = &s->r;
    json_t *o = envelope(r, r->chat ? "chat.completion.chunk" : "text_completion");
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(index));
    json_object_set_new(c, r->chat ? "delta" : "text", delta_or_text);
    json_object_set_new(c, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *choices = json_array();
    json_array_append_new(choices, c);
    json_object_set_new(o, "choices", choices);
    if (r->include_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

static int oa_produce(void *ctx, srv_job *job, text_buffer *out) {
    oa_stream *s = ctx;
    oa_request *r = &s->r;
    srv_taken t;
    if (!srv_job_take(job, &t, s->reported)) {
        out->failed = 1;
        return 1;
    }
    const llmrt_tokenizer *tok = srv_engine_tokenizer(r->server->engine);
    for (int i = 0; i < t.num_choices; i++) {
        srv_taken_choice *c = &t.choices[i];
        /* echo with logprobs: the prompt's chunk waits for its scores */
        const int wait_scores = r->echo && r->logprobs && !c->prompt && !t.job_over;
        if (!s->started[i] && !wait_scores) {
            s->started[i] = 1;
            if (r->chat) send_event(out, chunk(s, i, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL));
            else if (r->echo && r->echo_text[i / job->n]) {
                const char *e = r->echo_text[i / job->n];
                json_t *lp = NULL;
                if (r->logprobs && c->prompt) {
                    oa_logprobs l;
                    size_t prompt_offset = 0;
                    logprobs_begin(&l, 0);
                    prompt_logprobs_add(&l, tok, c->prompt, &prompt_offset);
                    lp = l.root;
                }
                send_event(out, chunk(s, i, text_json(e, strlen(e)), lp, NULL));
                s->offsets[i] = strlen(e);
            }
        }
        /* a chunk per step that generated: tokens whose text is held back
         * (an incomplete character, a possible stop string) or that have
         * none (an engine without a tokenizer) give an empty one */
        if (c->text_len || c->new_tokens) {
            json_t *lp = NULL;
            if (r->logprobs && c->num_tokens) {
                oa_logprobs l;
                logprobs_begin(&l, r->chat);
                for (int32_t k = 0; k < c->num_tokens; k++)
                    logprobs_add(&l, tok, c->tokens[k].id, c->tokens[k].logprob, c->tokens[k].num_top,
                                 c->tokens[k].top_ids, c->tokens[k].top_logprobs, &s->offsets[i]);
                lp = l.root;
            }
            json_t *t_json = text_json(c->text ? c->text : "", c->text_len);
            send_event(out, chunk(s, i, r->chat ? json_pack("{s:o}", "content", t_json) : t_json, lp, NULL));
        }
        if (c->finished_now && strcmp(c->finish_reason ? c->finish_reason : "", "error") != 0)
            send_event(out, chunk(s, i, r->chat ? json_object() : json_string(""), NULL, finish_name(c->finish_reason)));
    }
    int over = t.job_over;
    srv_taken_free(&t);
    if (!over) return 0;
    if (job->state == SRV_JOB_FAILED) {
        json_t *e = json_pack("{s:{s:s, s:s, s:n, s:i}}", "error", "message", job->error, "type", "internal_error",
                              "param", "code", job->error_status ? job->error_status : 500);
        if (e) send_event(out, e);
    } else if (r->include_usage) {
        json_t *o = envelope(r, r->chat ? "chat.completion.chunk" : "text_completion");
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", usage_json(job));
        send_event(out, o);
    }
    text_buffer_append(out, "data: [DONE]\n\n", 14);
    return 1;
}

/* ---- the endpoints ------------------------------------------------------------------ */

static void generate(srv_http_request *req, srv_reply *reply, int chat) {
    oa_request r;
    memset(&r, 0, sizeof r);
    r.chat = chat;
    r.created = (int64_t)time(NULL);
    make_id(r.id, sizeof r.id, chat ? "chatcmpl" : "cmpl");
    srv_job *job = NULL;
    if (!read_common(req, &r, reply) || !read_logprobs(&r, reply)) goto done;
    if (!chat) {
        json_t *echo = json_object_get(r.body, "echo");
        if (echo && !json_is_null(echo) && !json_is_boolean(echo)) {
            srv_reply_error(reply, 400, "echo", "'echo' must be true or false");
            goto done;
        }
        r.echo = json_is_true(echo);
        json_t *suffix = json_object_get(r.body, "suffix");
        if (suffix && !json_is_null(suffix)) {
            srv_reply_error(reply, 400, "suffix", "'suffix' is not supported by this server");
            goto done;
        }
    }
    job = chat ? chat_job(&r, reply) : completion_job(&r, reply);
    if (!job) goto done;
    job->want_tokens = r.logprobs;
    job->stream = r.stream;
    if (!srv_submit_job(req, job, reply)) goto done;
    if (r.stream) {
        oa_stream *s = calloc(1, sizeof *s);
        int choices = job->num_subs * job->n;
        if (s) {
            s->reported = calloc((size_t)choices, sizeof *s->reported);
            s->started = calloc((size_t)choices, sizeof *s->started);
            s->offsets = calloc((size_t)choices, sizeof *s->offsets);
        }
        if (!s || !s->reported || !s->started || !s->offsets) {
            if (s) oa_stream_free(s);
            srv_reply_error(reply, 500, NULL, "out of memory");
            goto done;
        }
        s->r = r; /* the stream owns the parsed request now */
        memset(&r, 0, sizeof r);
        reply->stream = srv_stream_new(req, job, oa_produce, s, oa_stream_free);
        if (!reply->stream) {
            oa_stream_free(s);
            srv_reply_error(reply, 500, NULL, "out of memory");
            goto done;
        }
        reply->status = 200;
        reply->content_type = "text/event-stream";
        return; /* the stream holds the job's reference */
    }
    if (!srv_wait_job(req, job)) {
        srv_reply_error(reply, 499, NULL, "the client closed the connection");
        goto done;
    }
    if (job->state == SRV_JOB_FAILED) srv_reply_error(reply, job->error_status ? job->error_status : 500, NULL, "%s", job->error);
    else reply_complete(&r, job, reply);
done:
    if (job) srv_job_release(job);
    oa_request_free(&r);
}

/* An encoder engine has no text generation: a clear 400 before parsing. */
static int refuse_encoder(srv_http_request *req, srv_reply *reply) {
    if (!srv_engine_is_encoder(req->server->engine)) return 0;
    srv_reply_error(reply, 400, NULL, "this engine is an encoder: it serves /v1/embeddings, not completions");
    return 1;
}

void srv_openai_completions(srv_http_request *req, srv_reply *reply) {
    if (!refuse_encoder(req, reply)) generate(req, reply, 0);
}
void srv_openai_chat(srv_http_request *req, srv_reply *reply) {
    if (!refuse_encoder(req, reply)) generate(req, reply, 1);
}

void srv_openai_models(srv_http_request *req, srv_reply *reply) {
    srv_server *s = req->server;
    json_t *model = json_pack("{s:s, s:s, s:I, s:s, s:i}", "id", s->model_name, "object", "model", "created",
                              (json_int_t)s->created, "owned_by", "llmrt", "max_model_len",
                              llmrt_engine_max_seq_len(srv_engine_model(s->engine)));
    json_t *list = json_pack("{s:s, s:[o]}", "object", "list", "data", model);
    srv_reply_json(reply, 200, list);
}
