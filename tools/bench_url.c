/* llmrt bench --url: see bench_url.h. TTFT is taken at the first
 * server-sent event of a step that generated, as a client sees it.
 *
 * The client shares the machine with the server it measures, so it is made
 * to cost little per streamed token: one thread drives every connection
 * through epoll (plain HTTP/1.1 over blocking sockets, read with
 * MSG_DONTWAIT when epoll says so). libcurl with a thread per connection
 * took 23-57 µs of CPU a token at concurrency 1 and 26-38 at 16 on the
 * 2-core VM (2.6 polls and a recv a token, a context switch per token and
 * thread); this takes 16-30 and 13-19. The events one wake-up finds are
 * stamped with the time of that wake-up, when the client learned of them. */
#define _GNU_SOURCE
#include "bench_url.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/text_buffer.h"
#include "run_requests.h"

/* ---- the server's address ---------------------------------------------------- */

typedef struct url_target {
    char host[256], port[16];
    char host_header[300];
} url_target;

/* http://HOST[:PORT][/], HOST a name, an IPv4 address or [IPv6]. */
static int parse_url(const char *url, url_target *t) {
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "llmrt bench: --url %s: only http://HOST:PORT is supported\n", url);
        return 0;
    }
    const char *p = url + 7, *end = p + strcspn(p, "/");
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close) goto bad;
        snprintf(t->host, sizeof t->host, "%.*s", (int)(close - p - 1), p + 1);
        if (close + 1 < end) {
            if (close[1] != ':') goto bad;
            colon = close + 1;
        }
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        snprintf(t->host, sizeof t->host, "%.*s", (int)((colon ? colon : end) - p), p);
    }
    snprintf(t->port, sizeof t->port, "%.*s", colon ? (int)(end - colon - 1) : 2, colon ? colon + 1 : "80");
    if (!t->host[0] || !t->port[0] || (*end && strcmp(end, "/") != 0)) goto bad;
    snprintf(t->host_header, sizeof t->host_header, "%.*s", (int)(end - p), p);
    return 1;
bad:
    fprintf(stderr, "llmrt bench: --url %s: expected http://HOST:PORT\n", url);
    return 0;
}

static int connect_to(const url_target *t, char *error, size_t cap) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *list = NULL;
    int rc = getaddrinfo(t->host, t->port, &hints, &list);
    if (rc != 0) {
        snprintf(error, cap, "%.200s: %s", t->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = list; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    if (fd < 0) snprintf(error, cap, "cannot connect to %.200s:%s: %s", t->host, t->port, strerror(err));
    return fd;
}

/* ---- one HTTP/1.1 response --------------------------------------------------- */

enum phase { HEAD, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILER, BY_LENGTH, TO_CLOSE, COMPLETE };

/* A connection and the request on it. */
typedef struct conn {
    int fd;                   /* -1: none */
    int32_t request;          /* the request in flight; -1: idle */
    int fresh;                /* the request went out on a new connection */
    text_buffer in, body;     /* received, not parsed; the body, not yet split into events */
    enum phase phase;
    long status;
    int chunked, close_after;
    int64_t left;             /* of the chunk or the Content-Length */
    int sse;                  /* split the body into server-sent events */
    /* the stream as the benchmark sees it */
    double start;
    bench_url_result result;
    double *times;
    int32_t times_cap;
    int done;                 /* data: [DONE] seen */
} conn;

static void conn_reset(conn *c) {
    text_buffer_reset(&c->in);
    text_buffer_reset(&c->body);
    c->phase = HEAD;
    c->status = 0;
    c->chunked = c->close_after = 0;
    c->left = 0;
    c->done = 0;
    memset(&c->result, 0, sizeof c->result);
}

static void on_event_data(conn *c, const char *data, double now) {
    if (strcmp(data, "[DONE]") == 0) {
        c->done = 1;
        c->result.e2e = now - c->start;
        return;
    }
    json_error_t err;
    json_t *o = json_loads(data, 0, &err);
    if (!o) {
        snprintf(c->result.error, sizeof c->result.error, "a malformed event: %.100s", data);
        return;
    }
    json_t *choices = json_object_get(o, "choices"), *usage = json_object_get(o, "usage"), *error = json_object_get(o, "error");
    if (error) snprintf(c->result.error, sizeof c->result.error, "%.200s", json_string_value(json_object_get(error, "message")));
    /* every step's chunk counts, text or not (held back, or no tokenizer);
     * the last one, with a finish_reason, carries no token */
    json_t *choice = json_array_get(choices, 0);
    const char *text = json_string_value(json_object_get(choice, "text"));
    if (text && json_is_null(json_object_get(choice, "finish_reason"))) {
        double t = now - c->start;
        if (c->result.num_chunks == 0) c->result.ttft = t;
        if (c->result.num_chunks == c->times_cap) {
            c->times_cap = c->times_cap ? c->times_cap * 2 : 256;
            double *grown = realloc(c->times, (size_t)c->times_cap * sizeof *grown);
            if (grown) c->times = grown;
            else c->times_cap = c->result.num_chunks;
        }
        if (c->result.num_chunks < c->times_cap) c->times[c->result.num_chunks++] = t;
    }
    if (json_is_object(usage)) {
        c->result.prompt_tokens = (int32_t)json_integer_value(json_object_get(usage, "prompt_tokens"));
        c->result.output_tokens = (int32_t)json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    json_decref(o);
}

/* Moves up to n body bytes from the front of `in` into the body and splits
 * off the events that are complete. */
static int take_body(conn *c, size_t n, double now) {
    if (!text_buffer_append(&c->body, c->in.data, n)) return 0;
    text_buffer_drop_front(&c->in, n);
    if (!c->sse || c->status != 200) return 1;
    char *end;
    while ((end = strstr(c->body.data, "\n\n"))) {
        *end = 0;
        if (strncmp(c->body.data, "data: ", 6) == 0) on_event_data(c, c->body.data + 6, now);
        text_buffer_drop_front(&c->body, (size_t)(end + 2 - c->body.data));
    }
    return 1;
}

/* The status line and headers; 0 when malformed. */
static int parse_head(conn *c, size_t head_len) {
    c->in.data[head_len - 2] = 0; /* the blank line's CR */
    int minor = 1;
    if (sscanf(c->in.data, "HTTP/1.%d %ld", &minor, &c->status) != 2) return 0;
    c->close_after = minor == 0;
    int64_t length = -1;
    for (char *line = strstr(c->in.data, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, "Transfer-Encoding:", 18) == 0) c->chunked = strstr(h, "chunked") != NULL;
        else if (strncasecmp(h, "Content-Length:", 15) == 0) length = strtoll(h + 15, NULL, 10);
        else if (strncasecmp(h, "Connection:", 11) == 0) {
            const char *v = h + 11 + strspn(h + 11, " \t");
            if (strncasecmp(v, "close", 5) == 0) c->close_after = 1;
        }
    }
    text_buffer_drop_front(&c->in, head_len);
    if (c->chunked) c->phase = CHUNK_SIZE;
    else if (length >= 0) c->phase = BY_LENGTH, c->left = length;
    else c->phase = TO_CLOSE, c->close_after = 1;
    return 1;
}

/* Parses what has arrived; returns -1 on a malformed response, else 1 once
 * the response is complete. eof: the server closed the connection. */
static int conn_parse(conn *c, int eof, double now) {
    for (;;) {
        char *line_end;
        switch (c->phase) {
        case HEAD:
            if (!(line_end = strstr(c->in.data ? c->in.data : "", "\r\n\r\n"))) return eof ? -1 : 0;
            if (!parse_head(c, (size_t)(line_end + 4 - c->in.data))) return -1;
            if (c->phase == BY_LENGTH && c->left == 0) c->phase = COMPLETE;
            break;
        case CHUNK_SIZE:
            if (!(line_end = strstr(c->in.data, "\r\n"))) return eof ? -1 : 0;
            c->left = (int64_t)strtoll(c->in.data, NULL, 16);
            text_buffer_drop_front(&c->in, (size_t)(line_end + 2 - c->in.data));
            if (c->left < 0) return -1;
            c->phase = c->left ? CHUNK_DATA : TRAILER;
            break;
        case CHUNK_DATA:
        case BY_LENGTH: {
            if (c->in.len == 0) return eof ? -1 : 0;
            size_t n = c->in.len < (size_t)c->left ? c->in.len : (size_t)c->left;
            if (!take_body(c, n, now)) return -1;
            c->left -= (int64_t)n;
            if (c->left == 0) c->phase = c->phase == CHUNK_DATA ? CHUNK_END : COMPLETE;
            break;
        }
        case CHUNK_END:
            if (c->in.len < 2) return eof ? -1 : 0;
            if (c->in.data[0] != '\r' || c->in.data[1] != '\n') return -1;
            text_buffer_drop_front(&c->in, 2);
            c->phase = CHUNK_SIZE;
            break;
        case TRAILER:
            if (!(line_end = strstr(c->in.data, "\r\n"))) return eof ? -1 : 0;
            if (line_end == c->in.data) c->phase = COMPLETE;
            text_buffer_drop_front(&c->in, (size_t)(line_end + 2 - c->in.data));
            break;
        case TO_CLOSE:
            if (c->in.len && !take_body(c, c->in.len, now)) return -1;
            if (!eof) return 0;
            c->phase = COMPLETE;
            break;
        case COMPLETE:
            return 1;
        }
    }
}

/* Reads what the socket holds (blocking: waits for something); returns -1
 * on an error, 1 once the response is complete, else 0. */
static int conn_read(conn *c, int blocking, double now) {
    char data[65536];
    ssize_t n = recv(c->fd, data, sizeof data, blocking ? 0 : MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    if (n < 0) return -1;
    if (n > 0 && !text_buffer_append(&c->in, data, (size_t)n)) return -1;
    return conn_parse(c, n == 0, now);
}

static void conn_close(conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        data += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Sends a request on c, connecting first when it has no connection. */
static int conn_send(conn *c, const url_target *t, const char *method, const char *path, const char *body,
                     char *error, size_t cap) {
    c->fresh = c->fd < 0;
    if (c->fd < 0 && (c->fd = connect_to(t, error, cap)) < 0) return 0;
    size_t body_len = body ? strlen(body) : 0;
    char head[640];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\n", method, path, t->host_header);
    if (body && n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      body_len);
    if (n > 0 && (size_t)n < sizeof head) n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    text_buffer req = {0};
    int ok = n > 0 && (size_t)n < sizeof head && text_buffer_append(&req, head, (size_t)n) &&
             (!body || text_buffer_append(&req, body, body_len)) && send_all(c->fd, req.data, req.len);
    text_buffer_free(&req);
    if (!ok) snprintf(error, cap, "sending the request: %s", strerror(errno));
    conn_reset(c);
    return ok;
}

/* ---- the run ------------------------------------------------------------------ */

typedef struct url_run {
    url_target target;
    const bench_prompt *prompts;
    int32_t num_prompts, first, total;
    float temperature;
    uint64_t seed;
    char model[256];
} url_run;

static char *request_body(const url_run *r, int32_t index) {
    const bench_prompt *p = &r->prompts[(r->first + index) % r->num_prompts];
    json_t *o = json_pack("{s:s, s:i, s:b, s:f, s:I, s:b, s:{s:b}}", "model", r->model, "max_tokens", p->max_tokens,
                          "ignore_eos", 1, "temperature", (double)r->temperature, "seed",
                          (json_int_t)(r->seed + (uint64_t)index), "stream", 1, "stream_options", "include_usage", 1);
    if (p->ids) {
        json_t *ids = json_array();
        for (int32_t k = 0; k < p->n; k++) json_array_append_new(ids, json_integer(p->ids[k]));
        json_object_set_new(o, "prompt", ids);
    } else {
        json_object_set_new(o, "prompt", json_string(p->text ? p->text : ""));
    }
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return body;
}

/* A blocking GET on a connection of its own; the body in c->body. */
static int http_get(const url_target *t, const char *path, conn *c, char *error, size_t cap) {
    c->fd = -1;
    c->sse = 0;
    if (!conn_send(c, t, "GET", path, NULL, error, cap)) return 0;
    int rc;
    while ((rc = conn_read(c, 1, cli_now_seconds())) == 0) {}
    conn_close(c);
    if (rc < 0) snprintf(error, cap, "a malformed or cut response");
    return rc > 0;
}

/* The served model's name, from GET /v1/models. */
static int fetch_model(url_run *r) {
    conn c = {0};
    char error[256] = "";
    json_t *o = NULL;
    if (http_get(&r->target, "/v1/models", &c, error, sizeof error) && c.status == 200) {
        json_error_t err;
        o = json_loads(c.body.data ? c.body.data : "", 0, &err);
    }
    const char *id = json_string_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "id"));
    if (id) snprintf(r->model, sizeof r->model, "%s", id);
    else fprintf(stderr, "llmrt bench: GET http://%s/v1/models failed: %s\n", r->target.host_header,
                 error[0] ? error : "no model");
    json_decref(o);
    text_buffer_free(&c.in);
    text_buffer_free(&c.body);
    return id != NULL;
}

/* Sends request i on c; on a reused connection that the server has closed
 * meanwhile, once more on a new one. Returns 0 when it cannot be sent
 * (c->result.error says why). */
static int start_request(url_run *r, conn *c, int32_t i, int epfd) {
    char *body = request_body(r, i);
    char error[200] = "";
    int ok = 0;
    for (int attempt = 0; attempt < 2 && !ok; attempt++) {
        if (c->fd >= 0 && attempt > 0) conn_close(c);
        int had = c->fd >= 0;
        c->start = cli_now_seconds();
        ok = body && conn_send(c, &r->target, "POST", "/v1/completions", body, error, sizeof error);
        if (ok && !had) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            ok = epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0;
        }
        if (!ok && !had) break; /* a new connection failed: no retry */
    }
    free(body);
    c->request = i;
    if (!ok) {
        conn_reset(c);
        snprintf(c->result.error, sizeof c->result.error, "%s", error[0] ? error : "out of memory");
        conn_close(c);
    }
    return ok;
}

/* The result of c's request, now that its response is complete (rc 1) or
 * broken (rc -1). */
static void finish_request(conn *c, int rc) {
    bench_url_result *res = &c->result;
    if (rc < 0 && !res->error[0]) snprintf(res->error, sizeof res->error, "the connection broke mid-response");
    else if (rc > 0 && c->status != 200)
        snprintf(res->error, sizeof res->error, "HTTP %ld: %.200s", c->status, c->body.data ? c->body.data : "");
    else if (rc > 0 && !c->done && !res->error[0])
        snprintf(res->error, sizeof res->error, "the stream ended without [DONE]");
    res->ok = !res->error[0];
    res->chunk_times = c->times;
    if (rc < 0 || c->close_after) conn_close(c);
    c->request = -1;
}

int bench_url_run(const char *url, const bench_prompt *prompts, int32_t num_prompts, int32_t first, int32_t total,
                  int32_t concurrency, const double *arrivals, float temperature, uint64_t seed,
                  bench_url_record record, void *user, double *seconds) {
    url_run r = {.prompts = prompts, .num_prompts = num_prompts, .first = first, .total = total,
                 .temperature = temperature, .seed = seed};
    if (!parse_url(url, &r.target) || !fetch_model(&r)) return 0;
    int32_t n = concurrency > 0 ? concurrency : arrivals ? total : 1;
    if (n > total) n = total;
    conn *conns = calloc((size_t)n, sizeof *conns);
    struct epoll_event *events = calloc((size_t)n + 1, sizeof *events);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    /* Poisson arrivals: a timer at the next one while a connection is free */
    int timer = arrivals ? timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK) : -1;
    int ok = conns && events && epfd >= 0 && (!arrivals || timer >= 0);
    if (ok && timer >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        ok = epoll_ctl(epfd, EPOLL_CTL_ADD, timer, &ev) == 0;
    }
    for (int32_t k = 0; ok && k < n; k++) conns[k].fd = -1, conns[k].request = -1, conns[k].sse = 1;
    const double start = cli_now_seconds();
    double last_finish = start;
    int32_t next = 0, finished = 0;
    while (ok && finished < total) {
        /* start what is due on the idle connections */
        double now = cli_now_seconds();
        for (int32_t k = 0; k < n && next < total; k++) {
            conn *c = &conns[k];
            if (c->request >= 0) continue;
            if (arrivals && start + arrivals[next] > now) break;
            if (!start_request(&r, c, next++, epfd)) {
                finish_request(c, -1);
                last_finish = cli_now_seconds();
                record(user, &c->result);
                finished++;
            }
        }
        int idle = 0;
        for (int32_t k = 0; k < n; k++) idle += conns[k].request < 0;
        if (finished >= total || (idle == n && next >= total)) break;
        if (idle == n && !arrivals) continue; /* a request failed to start: the next one */
        if (timer >= 0 && next < total && idle) {
            const double at = start + arrivals[next];
            struct itimerspec when = {.it_value = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)}};
            timerfd_settime(timer, TFD_TIMER_ABSTIME, &when, NULL);
        }
        int got = epoll_wait(epfd, events, n + 1, -1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        now = cli_now_seconds(); /* every event found now is stamped now */
        for (int e = 0; e < got; e++) {
            conn *c = events[e].data.ptr;
            if (!c) { /* the arrival timer */
                uint64_t expirations;
                if (read(timer, &expirations, sizeof expirations) < 0) {}
                continue;
            }
            if (c->request < 0) { /* an idle keep-alive connection: closed by the server */
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                conn_close(c);
                continue;
            }
            int rc = conn_read(c, 0, now);
            if (rc == 0) continue;
            if (rc < 0 && !c->fresh && c->phase == HEAD && c->in.len == 0) {
                /* a kept-alive connection the server had closed: once more on a new one */
                conn_close(c);
                if (start_request(&r, c, c->request, epfd)) continue;
            }
            finish_request(c, rc); /* a connection it closes leaves the epoll set with it */
            last_finish = now;
            record(user, &c->result);
            finished++;
        }
    }
    for (int32_t k = 0; conns && k < n; k++) {
        conn_close(&conns[k]);
        text_buffer_free(&conns[k].in);
        text_buffer_free(&conns[k].body);
        free(conns[k].times);
    }
    if (timer >= 0) close(timer);
    if (epfd >= 0) close(epfd);
    free(conns);
    free(events);
    *seconds = last_finish - start;
    return ok && finished == total;
}
