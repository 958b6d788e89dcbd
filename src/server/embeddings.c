/* POST /v1/embeddings (OpenAI format) for encoder engines: "input" is a
 * string, a list of strings, a list of token ids, or a list of such lists;
 * the reply lists one {"object": "embedding", "index", "embedding"} per
 * input, with "usage" counting the input tokens. Extra field "pooling"
 * ("cls", default, or "mean") picks how the last hidden state becomes one
 * vector; "encoding_format" may be "float" (the only one served). A decoder
 * engine answers 400. */
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

/* Token ids of one input: a string (the engine's tokenizer, with [CLS] and
 * [SEP]) or a list of ids. 0 with the reply filled on a bad input. */
static int read_input(srv_server *s, const json_t *item, int index, int32_t **ids, int32_t *n, srv_reply *reply) {
    srv_params_error err;
    if (json_is_string(item)) {
        const char *text = json_string_value(item);
        size_t len = json_string_length(item);
        if (len == 0) {
            srv_reply_error(reply, 400, "input", "input %d is empty", index);
            return 0;
        }
        if (!srv_encode(s, text, len, LLMRT_ENCODE_ADD_SPECIAL, ids, n, &err)) {
            srv_reply_error(reply, 400, "input", "input %d: %s", index, err.message);
            return 0;
        }
        return 1;
    }
    size_t count = json_array_size(item);
    if (!json_is_array(item) || count == 0) {
        srv_reply_error(reply, 400, "input", "input %d must be a non-empty string or list of token ids", index);
        return 0;
    }
    *ids = malloc(count * sizeof **ids);
    if (!*ids) {
        srv_reply_error(reply, 500, NULL, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *v = json_array_get(item, i);
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id > INT32_MAX) {
            srv_reply_error(reply, 400, "input", "input %d: token %zu is not a non-negative integer id", index, i);
            free(*ids);
            *ids = NULL;
            return 0;
        }
        (*ids)[i] = (int32_t)id;
    }
    *n = (int32_t)count;
    return 1;
}

/* The inputs as a JSON array of inputs: a lone string or a lone list of ids
 * is one input. */
static json_t *input_list(json_t *input) {
    if (json_is_string(input)) return json_pack("[O]", input);
    if (json_is_array(input) && json_array_size(input) > 0 && json_is_integer(json_array_get(input, 0)))
        return json_pack("[O]", input);
    return json_incref(input);
}

static void reply_embeddings(srv_server *s, srv_job *job, srv_reply *reply) {
    const int32_t width = llmrt_engine_hidden_size(srv_engine_model(s->engine));
    json_t *data = json_array();
    json_int_t tokens = 0;
    for (int i = 0; i < job->num_subs; i++) {
        json_t *vector = json_array();
        for (int32_t d = 0; d < width; d++) json_array_append_new(vector, json_real(job->subs[i].embedding[d]));
        json_array_append_new(data, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", i, "embedding", vector));
        tokens += job->subs[i].num_prompt_ids;
    }
    json_t *body = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data, "model", s->model_name,
                             "usage", "prompt_tokens", tokens, "total_tokens", tokens);
    if (!body) srv_reply_error(reply, 500, NULL, "out of memory");
    else srv_reply_json(reply, 200, body);
}

void srv_openai_embeddings(srv_http_request *req, srv_reply *reply) {
    srv_server *s = req->server;
    if (!srv_engine_is_encoder(s->engine)) {
        srv_reply_error(reply, 400, NULL, "this engine is a decoder: /v1/embeddings needs an encoder engine "
                                          "(BertModel, BertForSequenceClassification)");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, &jerr), *inputs = NULL;
    srv_job *job = NULL;
    if (!json_is_object(body)) {
        srv_reply_error(reply, 400, NULL, "the body must be a JSON object");
        goto done;
    }
    const json_t *model = json_object_get(body, "model");
    if (model && !json_is_null(model) && (!json_is_string(model) || strcmp(json_string_value(model), s->model_name))) {
        srv_reply_error(reply, 404, "model", "model '%s' is not served here (this server serves '%s')",
                        json_is_string(model) ? json_string_value(model) : "?", s->model_name);
        goto done;
    }
    const json_t *format = json_object_get(body, "encoding_format");
    if (format && !json_is_null(format) && (!json_is_string(format) || strcmp(json_string_value(format), "float"))) {
        srv_reply_error(reply, 400, "encoding_format", "'encoding_format' must be \"float\"");
        goto done;
    }
    llmrt_pooling pooling = LLMRT_POOLING_CLS;
    const json_t *pool = json_object_get(body, "pooling");
    if (pool && !json_is_null(pool)) {
        const char *name = json_is_string(pool) ? json_string_value(pool) : "";
        if (strcmp(name, "mean") == 0) pooling = LLMRT_POOLING_MEAN;
        else if (strcmp(name, "cls") != 0) {
            srv_reply_error(reply, 400, "pooling", "'pooling' must be \"cls\" or \"mean\"");
            goto done;
        }
    }
    json_t *input = json_object_get(body, "input");
    inputs = input ? input_list(input) : NULL;
    size_t count = json_array_size(inputs);
    if (!inputs || !json_is_array(inputs) || count == 0 || count > 2048) {
        srv_reply_error(reply, 400, "input", "'input' must be a string, a list of token ids, or a non-empty list "
                                             "of up to 2048 of them");
        goto done;
    }
    job = srv_job_new(s->engine, (int)count, 1);
    if (!job) {
        srv_reply_error(reply, 500, NULL, "out of memory");
        goto done;
    }
    job->embed = 1;
    job->pooling = pooling;
    for (size_t i = 0; i < count; i++)
        if (!read_input(s, json_array_get(inputs, i), (int)i, &job->subs[i].prompt_ids, &job->subs[i].num_prompt_ids,
                        reply))
            goto done;
    if (!srv_submit_job(req, job, reply)) goto done;
    if (!srv_wait_job(req, job)) {
        srv_reply_error(reply, 499, NULL, "the client closed the connection");
        goto done;
    }
    if (job->state == SRV_JOB_FAILED) srv_reply_error(reply, job->error_status ? job->error_status : 500, NULL, "%s",
                                                      job->error);
    else reply_embeddings(s, job, reply);
done:
    if (job) srv_job_release(job);
    json_decref(inputs);
    json_decref(body);
}
