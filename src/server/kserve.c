/* Triton / KServe v2: server and model health and metadata, Triton's
 * generate extension (generate, generate_stream) and the v2 tensor protocol
 * (infer) with a BYTES text_input and INT32 max_tokens in, a BYTES
 * text_output out. Errors follow the v2 protocol: {"error": "message"}. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/llmrt.h"
#include "server/server.h"

static void kserve_error(srv_reply *reply, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kserve_error(srv_reply *reply, int status, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_t *m = json_string(message);
    srv_reply_json(reply, status, json_pack("{s:o}", "error", m ? m : json_string("(message not UTF-8)")));
}

static json_t *model_metadata(srv_server *s) {
    return json_pack("{s:s, s:[s], s:s, s:[{s:s, s:s, s:[i]}, {s:s, s:s, s:[i]}], s:[{s:s, s:s, s:[i]}]}", "name",
                     s->model_name, "versions", "1", "platform", "llmrt", "inputs", "name", "text_input", "datatype",
                     "BYTES", "shape", 1, "name", "max_tokens", "datatype", "INT32", "shape", 1, "outputs", "name",
                     "text_output", "datatype", "BYTES", "shape", 1);
}

/* A one-prompt job from text and a JSON object of sampling fields. */
static srv_job *text_job(srv_server *s, const char *text, size_t len, json_t *fields, json_t *max_tokens_value,
                         srv_reply *reply) {
    srv_params_error err = {{0}, {0}};
    int32_t *ids = NULL, n = 0;
    if (!srv_encode(s, text, len, LLMRT_ENCODE_ADD_SPECIAL, &ids, &n, &err)) {
        kserve_error(reply, 400, "%s", err.message);
        return NULL;
    }
    srv_job *job = srv_job_new(s->engine, 1, 1);
    if (!job) {
        free(ids);
        kserve_error(reply, 500, "out of memory");
        return NULL;
    }
    job->subs[0].prompt_ids = ids;
    job->subs[0].num_prompt_ids = n;
    job->subs[0].req.prompt_ids = ids;
    job->subs[0].req.num_prompt_ids = n;
    json_t *probe = json_object();
    if (max_tokens_value) json_object_set(probe, "max_tokens", max_tokens_value);
    static const char *const keys[] = {"max_tokens", NULL};
    int32_t max_tokens = 0;
    int fallback = srv_params_generation_max(s);
    int ok = srv_params_max_tokens(s, probe, keys, n, fallback > 0 ? fallback : 16, &max_tokens, &err) &&
             srv_params_read(s, fields, &job->subs[0].req, job, &err);
    json_decref(probe);
    if (!ok) {
        kserve_error(reply, 400, "%s%s%s", err.param[0] ? err.param : "", err.param[0] ? ": " : "", err.message);
        srv_job_release(job);
        return NULL;
    }
    job->subs[0].req.sampling.max_tokens = max_tokens;
    return job;
}

/* Triton's generate extension: fields at the top level or under
 * "parameters"; stop_words and bad_words as a string or a list. */
static srv_job *generate_job(srv_server *s, json_t *body, srv_reply *reply) {
    json_t *fields = json_deep_copy(body);
    json_t *params = json_object_get(body, "parameters");
    if (json_is_object(params)) json_object_update(fields, params);
    srv_job *job = NULL;
    json_t *text = json_object_get(fields, "text_input");
    if (!json_is_string(text)) {
        kserve_error(reply, 400, "'text_input' must be a string");
        goto done;
    }
    json_t *stop = json_object_get(fields, "stop_words");
    if (stop) json_object_set(fields, "stop", stop);
    job = text_job(s, json_string_value(text), json_string_length(text), fields, json_object_get(fields, "max_tokens"),
                   reply);
done:
    json_decref(fields);
    return job;
}

typedef struct kserve_stream {
    srv_server *server;
    int reported[1];
} kserve_stream;

static int kserve_produce(void *ctx, srv_job *job, text_buffer *out) {
    kserve_stream *k = ctx;
    srv_taken t;
    if (!srv_job_take(job, &t, k->reported)) {
        out->failed = 1;
        return 1;
    }
    srv_taken_choice *c = &t.choices[0];
    if (c->text_len || c->finished_now) {
        json_t *text = json_stringn(c->text ? c->text : "", c->text_len);
        json_t *o = json_pack("{s:s, s:s, s:o}", "model_name", k->server->model_name, "model_version", "1",
                              "text_output", text ? text : json_string(""));
        if (c->finished_now) json_object_set_new(o, "finish_reason", json_string(c->finish_reason));
        char *dump = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (dump) text_buffer_printf(out, "data: %s\n\n", dump);
        free(dump);
    }
    int over = t.job_over;
    srv_taken_free(&t);
    if (over && job->state == SRV_JOB_FAILED) {
        json_t *e = json_pack("{s:s}", "error", job->error);
        char *dump = e ? json_dumps(e, JSON_COMPACT) : NULL;
        if (dump) text_buffer_printf(out, "data: %s\n\n", dump);
        free(dump);
        json_decref(e);
    }
    return over;
}

/* Waits for a non-streaming job; its text as JSON, or NULL with the reply
 * filled (the client left, or the request failed). */
static json_t *finished_text(srv_http_request *req, srv_job *job, srv_reply *reply, const llmrt_sequence_output **seq) {
    if (!srv_wait_job(req, job)) {
        kserve_error(reply, 499, "the client closed the connection");
        return NULL;
    }
    if (job->state == SRV_JOB_FAILED) {
        kserve_error(reply, job->error_status ? job->error_status : 500, "%s", job->error);
        return NULL;
    }
    *seq = job->subs[0].result.num_sequences ? &job->subs[0].result.sequences[0] : NULL;
    const char *text = *seq && (*seq)->text ? (*seq)->text : "";
    json_t *j = json_stringn(text, *seq && (*seq)->text ? (*seq)->text_len : 0);
    return j ? j : json_string("\xef\xbf\xbd");
}

static void run_generate(srv_http_request *req, json_t *body, int stream, srv_reply *reply) {
    srv_server *s = req->server;
    json_t *flag = json_object_get(body, "stream");
    if (flag && !json_is_null(flag) && !json_is_boolean(flag)) return kserve_error(reply, 400, "'stream' must be true or false");
    if (json_is_true(flag)) stream = 1;
    srv_job *job = generate_job(s, body, reply);
    if (!job) return;
    job->stream = stream;
    if (!srv_submit_job(req, job, reply)) goto done;
    if (stream) {
        kserve_stream *k = calloc(1, sizeof *k);
        if (!k) {
            kserve_error(reply, 500, "out of memory");
            goto done;
        }
        k->server = s;
        reply->stream = srv_stream_new(req, job, kserve_produce, k, free);
        if (!reply->stream) {
            free(k);
            kserve_error(reply, 500, "out of memory");
            goto done;
        }
        reply->status = 200;
        reply->content_type = "text/event-stream";
        return;
    }
    const llmrt_sequence_output *seq = NULL;
    json_t *text = finished_text(req, job, reply, &seq);
    if (!text) goto done;
    srv_reply_json(reply, 200,
                   json_pack("{s:s, s:s, s:o, s:s}", "model_name", s->model_name, "model_version", "1", "text_output",
                             text, "finish_reason",
                             seq && seq->finish_reason ? seq->finish_reason : "stop"));
done:
    srv_job_release(job);
}

/* The v2 tensor protocol: inputs text_input (BYTES) and optional max_tokens
 * (INT32), each of shape [1]; sampling fields under "parameters". */
static void run_infer(srv_http_request *req, json_t *body, srv_reply *reply) {
    srv_server *s = req->server;
    json_t *inputs = json_object_get(body, "inputs");
    if (!json_is_array(inputs)) return kserve_error(reply, 400, "'inputs' must be a list of tensors");
    json_t *text = NULL, *max_tokens = NULL;
    size_t i;
    json_t *t;
    json_array_foreach(inputs, i, t) {
        json_t *name = json_object_get(t, "name"), *type = json_object_get(t, "datatype"),
               *data = json_object_get(t, "data");
        if (!json_is_string(name) || !json_is_string(type) || !json_is_array(data))
            return kserve_error(reply, 400, "inputs[%zu] needs 'name', 'datatype' and 'data'", i);
        json_t *shape = json_object_get(t, "shape");
        if (shape && (!json_is_array(shape) || json_array_size(shape) < 1))
            return kserve_error(reply, 400, "inputs[%zu].shape must be a list of dimensions", i);
        if (json_array_size(data) != 1)
            return kserve_error(reply, 400, "inputs[%zu] ('%s') must hold exactly one element (batch 1)", i,
                                json_string_value(name));
        json_t *value = json_array_get(data, 0);
        if (json_is_array(value) && json_array_size(value) == 1) value = json_array_get(value, 0);
        if (strcmp(json_string_value(name), "text_input") == 0) {
            if (strcmp(json_string_value(type), "BYTES") != 0 || !json_is_string(value))
                return kserve_error(reply, 400, "'text_input' must be a BYTES tensor of one string");
            text = value;
        } else if (strcmp(json_string_value(name), "max_tokens") == 0) {
            if ((strcmp(json_string_value(type), "INT32") != 0 && strcmp(json_string_value(type), "INT64") != 0) ||
                !json_is_integer(value))
                return kserve_error(reply, 400, "'max_tokens' must be an INT32 tensor of one integer");
            max_tokens = value;
        } else {
            return kserve_error(reply, 400, "unknown input '%s' (text_input, max_tokens)", json_string_value(name));
        }
    }
    if (!text) return kserve_error(reply, 400, "the input 'text_input' is required");
    json_t *params = json_object_get(body, "parameters");
    if (params && !json_is_object(params)) return kserve_error(reply, 400, "'parameters' must be an object");
    json_t *fields = params ? json_incref(params) : json_object();
    srv_job *job = text_job(s, json_string_value(text), json_string_length(text), fields, max_tokens, reply);
    json_decref(fields);
    if (!job) return;
    if (!srv_submit_job(req, job, reply)) goto done;
    const llmrt_sequence_output *seq = NULL;
    json_t *out = finished_text(req, job, reply, &seq);
    if (!out) goto done;
    json_t *o = json_pack("{s:s, s:s, s:[{s:s, s:s, s:[i], s:[o]}]}", "model_name", s->model_name, "model_version", "1",
                          "outputs", "name", "text_output", "datatype", "BYTES", "shape", 1, "data", out);
    json_t *id = json_object_get(body, "id");
    if (json_is_string(id)) json_object_set(o, "id", id);
    srv_reply_json(reply, 200, o);
done:
    srv_job_release(job);
}

void srv_kserve_dispatch(srv_http_request *req, const char *path, srv_reply *reply) {
    srv_server *s = req->server;
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    int post = strcmp(req->method, "POST") == 0;
    if (path[0] == 0 || strcmp(path, "/") == 0) {
        if (!get) return kserve_error(reply, 405, "GET only");
        return srv_reply_json(reply, 200, json_pack("{s:s, s:s, s:[s]}", "name", "llmrt", "version", llmrt_version(),
                                                    "extensions", "generate"));
    }
    if (strcmp(path, "/health/live") == 0 || strcmp(path, "/health/ready") == 0) {
        if (!get) return kserve_error(reply, 405, "GET only");
        srv_engine_snapshot snap;
        srv_engine_get_snapshot(s->engine, &snap);
        int ready = path[8] == 'l' || (snap.ready && !s->draining);
        return srv_reply_text(reply, ready ? 200 : 503, "application/json", ready ? "{}" : "{\"error\":\"not ready\"}",
                              ready ? 2 : 21);
    }
    if (strncmp(path, "/models/", 8) != 0) return kserve_error(reply, 404, "no endpoint %s /v2%s", req->method, path);
    const char *name = path + 8, *rest = strchr(name, '/');
    size_t name_len = rest ? (size_t)(rest - name) : strlen(name);
    if (!rest) rest = "";
    /* /v2/models/{name}/versions/{v}/... is the same model */
    char model[256];
    if (name_len >= sizeof model) return kserve_error(reply, 404, "unknown model");
    memcpy(model, name, name_len);
    model[name_len] = 0;
    if (strncmp(rest, "/versions/", 10) == 0) {
        const char *after = strchr(rest + 10, '/');
        rest = after ? after : "";
    }
    if (strcmp(model, s->model_name) != 0)
        return kserve_error(reply, 404, "the model '%s' does not exist; this server serves '%s'", model, s->model_name);
    if (rest[0] == 0) {
        if (!get) return kserve_error(reply, 405, "GET only");
        return srv_reply_json(reply, 200, model_metadata(s));
    }
    if (strcmp(rest, "/ready") == 0) {
        if (!get) return kserve_error(reply, 405, "GET only");
        return srv_reply_text(reply, s->draining ? 503 : 200, "application/json", s->draining ? "{\"error\":\"draining\"}" : "{}",
                              s->draining ? 20 : 2);
    }
    int generate = strcmp(rest, "/generate") == 0, stream = strcmp(rest, "/generate_stream") == 0,
        infer = strcmp(rest, "/infer") == 0;
    if (!generate && !stream && !infer) return kserve_error(reply, 404, "no endpoint %s /v2%s", req->method, path);
    if (!post) return kserve_error(reply, 405, "POST only");
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) return kserve_error(reply, 400, "the body is not valid JSON: %s", jerr.text);
    if (!json_is_object(body)) kserve_error(reply, 400, "the body must be a JSON object");
    else if (infer) run_infer(req, body, reply);
    else run_generate(req, body, stream, reply);
    json_decref(body);
}
