/* libmicrohttpd glue: one thread per connection (so a handler may block on
 * its job's change counter while the engine thread works), routing, auth,
 * body limits, replies, server-sent-event streams and the access log.
 *
 * A client that leaves is noticed by polling its socket for a hang-up while
 * its handler or stream waits (at most every 100 ms, not per streamed
 * token: a stream's writes fail once the client is gone), and its job is
 * cancelled at once, which frees its KV blocks at the engine's next step. */
#define _GNU_SOURCE
#include "server/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "llmrt/llmrt.h"

/* ---- replies ---------------------------------------------------------------- */

void srv_reply_json(srv_reply *reply, int status, json_t *body) {
    reply->status = status;
    reply->content_type = "application/json";
    reply->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    reply->body_len = reply->body ? strlen(reply->body) : 0;
    json_decref(body);
    if (!reply->body) {
        reply->status = 500;
        reply->body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"internal_error\",\"param\":null,\"code\":500}}");
        reply->body_len = reply->body ? strlen(reply->body) : 0;
    }
}

static const char *error_type(int status) {
    switch (status) {
    case 400: case 413: case 422: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "internal_error" : "invalid_request_error";
    }
}

void srv_reply_error(srv_reply *reply, int status, const char *param, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_t *e = json_object();
    json_t *m = json_string(message);
    json_object_set_new(e, "message", m ? m : json_string("(message not UTF-8)"));
    json_object_set_new(e, "type", json_string(error_type(status)));
    json_object_set_new(e, "param", param ? json_string(param) : json_null());
    json_object_set_new(e, "code", json_integer(status));
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    srv_reply_json(reply, status, o);
}

void srv_reply_text(srv_reply *reply, int status, const char *content_type, const char *text, size_t len) {
    reply->status = status;
    reply->content_type = content_type;
    reply->body = malloc(len + 1);
    if (reply->body) {
        memcpy(reply->body, text, len);
        reply->body[len] = 0;
    }
    reply->body_len = reply->body ? len : 0;
}

int srv_client_gone(const srv_http_request *req) {
    if (req->fd < 0) return 0;
    struct pollfd p = {.fd = req->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    return 0;
}

#define CLIENT_CHECK_SECONDS 0.1

/* srv_client_gone at most every CLIENT_CHECK_SECONDS (*last: when it was
 * last asked). Asked before every streamed token, its poll was a third of
 * the HTTP thread's syscalls. */
static int client_gone_lately(const srv_http_request *req, double *last) {
    const double now = srv_now();
    if (now - *last < CLIENT_CHECK_SECONDS) return 0;
    *last = now;
    return srv_client_gone(req);
}

/* ---- jobs from an HTTP thread ---------------------------------------------- */

int srv_submit_job(srv_http_request *req, srv_job *job, srv_reply *reply) {
    int rc = srv_engine_enqueue(req->server->engine, job);
    if (rc == SRV_ENQUEUE_FULL) {
        srv_reply_error(reply, 429, NULL, "the server is at capacity (%d requests in flight, queue full); retry later",
                        req->server->options.max_concurrent);
        reply->retry_after = 1;
        return 0;
    }
    if (rc == SRV_ENQUEUE_DRAINING) {
        srv_reply_error(reply, 503, NULL, "the server is shutting down");
        return 0;
    }
    uint32_t seen = 0;
    double checked = 0;
    enum srv_job_state state;
    for (;;) {
        srv_engine_lock(job->engine);
        state = job->state;
        srv_engine_unlock(job->engine);
        if (state != SRV_JOB_QUEUED) break;
        if (req->server->stopping || client_gone_lately(req, &checked)) {
            srv_job_cancel(job);
            srv_reply_error(reply, 499, NULL, "the client closed the connection");
            return 0;
        }
        srv_job_wait_change(job, &seen, CLIENT_CHECK_SECONDS);
    }
    if (state == SRV_JOB_FAILED) { /* final: the engine no longer writes the job */
        srv_reply_error(reply, job->error_status ? job->error_status : 500, NULL, "%s", job->error);
        return 0;
    }
    return 1;
}

int srv_wait_job(srv_http_request *req, srv_job *job) {
    uint32_t seen = 0;
    double checked = 0;
    for (;;) {
        srv_engine_lock(job->engine);
        enum srv_job_state state = job->state;
        srv_engine_unlock(job->engine);
        if (state == SRV_JOB_DONE || state == SRV_JOB_FAILED) return 1;
        if (client_gone_lately(req, &checked)) {
            srv_job_cancel(job);
            return 0;
        }
        srv_job_wait_change(job, &seen, CLIENT_CHECK_SECONDS);
    }
}

int srv_job_take(srv_job *job, srv_taken *out, int *reported) {
    int n = job->num_subs * job->n;
    memset(out, 0, sizeof *out);
    out->choices = calloc((size_t)n, sizeof *out->choices);
    if (!out->choices) return 0;
    out->num_choices = n;
    srv_engine_lock(job->engine);
    for (int i = 0; i < n; i++) {
        srv_choice *c = &job->choices[i];
        srv_taken_choice *t = &out->choices[i];
        t->text = c->text.data; /* the taker owns it now */
        t->text_len = c->text.len;
        t->tokens = c->tokens;
        t->num_tokens = c->num_tokens;
        t->new_tokens = c->new_tokens;
        c->new_tokens = 0;
        c->text = (text_buffer){0};
        c->tokens = NULL;
        c->num_tokens = c->tokens_cap = 0;
        const srv_sub *sub = &job->subs[i / job->n];
        t->prompt = sub->prompt_ready ? &sub->prompt : NULL; /* fixed once ready */
        if (c->finished && !reported[i]) {
            t->finished_now = 1;
            t->finish_reason = c->finish_reason;
            reported[i] = 1;
        }
    }
    out->job_over = job->state == SRV_JOB_DONE || job->state == SRV_JOB_FAILED;
    srv_engine_unlock(job->engine);
    return 1;
}

void srv_taken_free(srv_taken *t) {
    for (int i = 0; i < t->num_choices; i++) {
        free(t->choices[i].text);
        free(t->choices[i].tokens);
    }
    free(t->choices);
    memset(t, 0, sizeof *t);
}

/* ---- streams ------------------------------------------------------------------ */

struct srv_stream {
    srv_http_request req;       /* a copy; body and path are not used after the handler */
    srv_job *job;
    srv_stream_produce produce;
    void *ctx;
    void (*free_ctx)(void *);
    text_buffer out;
    size_t out_pos;
    int complete;
    int produced;               /* produce() has run; produced_at is set */
    uint32_t produced_at;       /* the job's change count just before that */
    double checked;             /* when the client's socket was last polled */
};

srv_stream *srv_stream_new(srv_http_request *req, srv_job *job, srv_stream_produce produce, void *ctx,
                           void (*free_ctx)(void *)) {
    srv_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->req = *req;
    s->req.body = NULL;
    s->req.path = NULL;
    s->req.method = NULL;
    s->job = job;
    s->produce = produce;
    s->ctx = ctx;
    s->free_ctx = free_ctx;
    return s;
}

static void stream_free(srv_stream *s) {
    if (!s) return;
    if (s->free_ctx) s->free_ctx(s->ctx);
    if (s->job) srv_job_release(s->job); /* cancels it when unfinished: the client left */
    text_buffer_free(&s->out);
    free(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->out_pos < s->out.len) {
            size_t n = s->out.len - s->out_pos;
            if (n > max) n = max;
            memcpy(buf, s->out.data + s->out_pos, n);
            s->out_pos += n;
            if (s->out_pos == s->out.len) s->out_pos = s->out.len = 0;
            return (ssize_t)n;
        }
        if (s->complete || s->out.failed) return MHD_CONTENT_READER_END_OF_STREAM;
        if (s->req.server->stopping || client_gone_lately(&s->req, &s->checked)) {
            srv_job_cancel(s->job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        /* nothing changed since the last take: sleep, not take nothing
         * (the engine lock) after every chunk sent */
        const uint32_t changes = srv_job_changes(s->job);
        if (s->produced && changes == s->produced_at) {
            uint32_t seen = changes;
            srv_stream_wait(s->job, &seen, CLIENT_CHECK_SECONDS);
            continue;
        }
        s->produced = 1;
        s->produced_at = changes; /* read before the take: a change after it shows as a new count */
        s->complete = s->produce(s->ctx, s->job, &s->out);
    }
}

static void stream_free_cb(void *cls) { stream_free(cls); }

/* ---- connections ------------------------------------------------------------ */

typedef struct conn_state {
    text_buffer body;
    int too_large;
    int status;
    size_t bytes_out;
    double start;
    char method[16];
    char path[256];
} conn_state;

static int is_health_path(const char *path) {
    return strcmp(path, "/health") == 0 || strcmp(path, "/v2/health/live") == 0 ||
           strcmp(path, "/v2/health/ready") == 0 || strcmp(path, "/") == 0;
}

static void route(srv_http_request *req, srv_reply *reply) {
    srv_server *s = req->server;
    const char *path = req->path, *method = req->method;
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(path, "/health") == 0) {
        if (!get) goto not_allowed;
        srv_reply_text(reply, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (strcmp(path, "/version") == 0) {
        if (!get) goto not_allowed;
        srv_reply_json(reply, 200, json_pack("{s:s}", "version", llmrt_version()));
    } else if (strcmp(path, "/metrics") == 0) {
        if (!get) goto not_allowed;
        srv_engine_snapshot snap;
        srv_engine_get_snapshot(s->engine, &snap);
        char *text = srv_metrics_render(&s->metrics, &snap);
        if (!text) return srv_reply_error(reply, 500, NULL, "out of memory");
        reply->status = 200;
        reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
        reply->body = text;
        reply->body_len = strlen(text);
    } else if (strcmp(path, "/v1/models") == 0) {
        if (!get) goto not_allowed;
        srv_openai_models(req, reply);
    } else if (strcmp(path, "/v1/completions") == 0) {
        if (!post) goto not_allowed;
        srv_openai_completions(req, reply);
    } else if (strcmp(path, "/v1/chat/completions") == 0) {
        if (!post) goto not_allowed;
        srv_openai_chat(req, reply);
    } else if (strcmp(path, "/v1/embeddings") == 0) {
        if (!post) goto not_allowed;
        srv_openai_embeddings(req, reply);
    } else if (strncmp(path, "/v2", 3) == 0 && (path[3] == 0 || path[3] == '/')) {
        srv_kserve_dispatch(req, path + 3, reply);
    } else if (strcmp(path, "/") == 0) {
        if (!get) goto not_allowed;
        srv_chat_page(req, reply);
    } else {
        srv_reply_error(reply, 404, NULL, "no endpoint %s %s", method, path);
    }
    return;
not_allowed:
    srv_reply_error(reply, 405, NULL, "%s does not take %s", path, method);
}

static enum MHD_Result queue_reply(struct MHD_Connection *conn, conn_state *st, srv_reply *reply) {
    struct MHD_Response *resp;
    if (reply->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, reply->stream, stream_free_cb);
        if (!resp) {
            stream_free(reply->stream);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    } else {
        resp = MHD_create_response_from_buffer(reply->body_len, reply->body ? reply->body : (char *)"",
                                               reply->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
            free(reply->body);
            return MHD_NO;
        }
        st->bytes_out = reply->body_len;
    }
    if (reply->content_type) MHD_add_response_header(resp, "Content-Type", reply->content_type);
    if (reply->retry_after > 0) {
        char value[16];
        snprintf(value, sizeof value, "%d", reply->retry_after);
        MHD_add_response_header(resp, "Retry-After", value);
    }
    if (reply->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    st->status = reply->status;
    /* 499 (client closed) is never seen by the client; send something valid */
    enum MHD_Result rc = MHD_queue_response(conn, reply->status == 499 ? 400 : (unsigned)reply->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static int authorized(srv_server *s, struct MHD_Connection *conn) {
    const char *key = s->options.api_key;
    if (!key || !*key) return 1;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
    const char *given = auth + 7;
    while (*given == ' ') given++;
    /* constant-time comparison */
    size_t a = strlen(given), b = strlen(key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)given[i] ^ (unsigned char)key[i];
    return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    srv_server *s = cls;
    (void)version;
    conn_state *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st) return MHD_NO;
        *con_cls = st;
        st->start = srv_now();
        snprintf(st->method, sizeof st->method, "%s", method);
        snprintf(st->path, sizeof st->path, "%s", url);
        const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (length && strtoull(length, NULL, 10) > s->options.max_body_bytes) {
            srv_reply reply = {0};
            srv_reply_error(&reply, 413, NULL, "the body has %s bytes; the limit is %zu (--max-body-bytes)", length,
                            s->options.max_body_bytes);
            return queue_reply(conn, st, &reply);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (st->body.len + *upload_data_size > s->options.max_body_bytes) st->too_large = 1;
        if (!st->too_large) text_buffer_append(&st->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    srv_reply reply = {0};
    srv_http_request req = {.server = s, .method = method, .path = url, .body = st->body.data ? st->body.data : "",
                            .body_len = st->body.len, .fd = -1};
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info) req.fd = info->connect_fd;
    if (st->too_large)
        srv_reply_error(&reply, 413, NULL, "the body is over the limit of %zu bytes (--max-body-bytes)",
                        s->options.max_body_bytes);
    else if (st->body.failed) srv_reply_error(&reply, 500, NULL, "out of memory for the body");
    else if (!is_health_path(url) && !authorized(s, conn))
        srv_reply_error(&reply, 401, NULL, "a valid 'Authorization: Bearer <key>' header is required");
    else route(&req, &reply);
    text_buffer_free(&st->body);
    return queue_reply(conn, st, &reply);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode code) {
    srv_server *s = cls;
    conn_state *st = *con_cls;
    if (!st) return;
    *con_cls = NULL;
    if (st->status) srv_metrics_record_status(&s->metrics, st->status);
    if (s->options.access_log) {
        char addr[64] = "-";
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (info && info->client_addr) {
            const struct sockaddr *sa = info->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
        }
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(stderr, "%s %s \"%s %s\" %d %zu %.1fms%s\n", when, addr, st->method, st->path, st->status,
                st->bytes_out, (srv_now() - st->start) * 1e3,
                code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    }
    text_buffer_free(&st->body);
    free(st);
}

struct MHD_Daemon *srv_http_start(srv_server *s, const struct sockaddr *addr, unsigned connection_limit) {
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (addr->sa_family == AF_INET6) flags |= MHD_USE_IPv6;
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
                            connection_limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
}
