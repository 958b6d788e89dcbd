/* llmrt serve: start-up, signals and the graceful drain.
 *
 * The main thread runs the engine loop (engine_loop.c); libmicrohttpd's
 * threads serve connections; a control thread waits for the signals.
 * SIGTERM and SIGINT are blocked in every thread and taken by sigwait on
 * the control thread, so no handler runs in an arbitrary thread. On the
 * first one the server stops accepting connections, answers new requests
 * on open connections with 503, lets in-flight requests finish for up to
 * --drain-timeout seconds, cancels what is left, and exits 0. */
#define _POSIX_C_SOURCE 200809L
#include "server/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/http.h"

void srv_options_init(srv_options *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8000;
    o->max_queue = -1;
    o->max_body_bytes = 4u << 20;
    o->drain_timeout = 30;
    o->access_log = 1;
}

static int resolve(const char *host, int port, struct sockaddr_storage *out) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || !res) return 0;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 1;
}

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static char *default_model_name(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = strdup(base);
    if (!name) return NULL;
    char *dot = strstr(name, ".engine");
    if (dot && dot[7] == 0 && dot != name) *dot = 0;
    return name;
}

typedef struct control {
    srv_server *server;
    struct MHD_Daemon *daemon;
    sigset_t signals;
} control;

/* Waits for SIGTERM or SIGINT, drains, stops the HTTP daemon, then the
 * engine loop. */
static void *control_main(void *arg) {
    control *c = arg;
    srv_server *s = c->server;
    int sig = 0;
    sigwait(&c->signals, &sig);
    fprintf(stderr, "llmrt serve: %s: draining (up to %.0f s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            s->options.drain_timeout);
    s->draining = 1;
    MHD_socket listener = MHD_quiesce_daemon(c->daemon);
    srv_engine_set_draining(s->engine);
    double deadline = srv_now() + s->options.drain_timeout;
    while (srv_engine_active_jobs(s->engine) > 0 && srv_now() < deadline) sleep_seconds(0.02);
    int left = srv_engine_active_jobs(s->engine);
    if (left > 0) {
        fprintf(stderr, "llmrt serve: drain timeout: cancelling %d requests\n", left);
        srv_engine_cancel_all(s->engine);
        double grace = srv_now() + 5;
        while (srv_engine_active_jobs(s->engine) > 0 && srv_now() < grace) sleep_seconds(0.02);
    }
    /* let the streams write their last events before the connections close */
    sleep_seconds(0.2);
    s->stopping = 1;
    MHD_stop_daemon(c->daemon);
    if (listener != MHD_INVALID_SOCKET) close(listener);
    srv_engine_request_stop(s->engine);
    return NULL;
}

int srv_run(const srv_options *o) {
    /* every thread started from here on inherits the blocked signals */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv_server *s = calloc(1, sizeof *s);
    if (!s) return 1;
    s->options = *o;
    s->created = (int64_t)time(NULL);
    char *model_name = o->served_model_name ? strdup(o->served_model_name) : default_model_name(o->engine_path);
    s->model_name = model_name ? model_name : "llmrt";
    srv_metrics_init(&s->metrics, s->model_name);
    int code = 1;
    struct MHD_Daemon *daemon = NULL;
    struct sockaddr_storage addr;
    if (!resolve(o->host, o->port, &addr)) {
        fprintf(stderr, "llmrt serve: cannot resolve --host %s\n", o->host);
        goto done;
    }
    srv_engine_options eo = {.engine_path = o->engine_path,
                             .num_threads = o->num_threads,
                             .device = o->device,
                             .max_concurrent = o->max_concurrent,
                             .max_queue = o->max_queue,
                             .kv_cache_memory = o->kv_cache_memory,
                             .max_seq_len = o->max_seq_len,
                             .max_batch = o->max_batch,
                             .max_num_tokens = o->max_num_tokens,
                             .backend = o->backend,
                             .cpu_precision = o->cpu_precision};
    char error[1024];
    if (!srv_engine_start(&eo, &s->metrics, &s->engine, error, sizeof error)) {
        fprintf(stderr, "llmrt serve: %s\n", error);
        goto done;
    }
    if (srv_engine_is_follower(s->engine)) { /* rank 0 owns HTTP; this rank computes its shard */
        code = srv_engine_follow(s->engine, error, sizeof error) ? 0 : 1;
        if (code) fprintf(stderr, "llmrt serve: %s\n", error);
        goto done;
    }
    int32_t max_concurrent = o->max_concurrent > 0 ? o->max_concurrent : 256;
    int32_t max_queue = o->max_queue >= 0 ? o->max_queue : 1024;
    s->options.max_concurrent = max_concurrent;
    /* room for every admitted and queued request, plus connections that are
     * only told 429 or ask for health and metrics */
    unsigned limit = (unsigned)(max_concurrent + max_queue + 64);
    daemon = srv_http_start(s, (const struct sockaddr *)&addr, limit);
    if (!daemon) {
        fprintf(stderr, "llmrt serve: cannot listen on %s:%d\n", o->host, o->port);
        goto done;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    int port = info ? (int)info->port : o->port;
    fprintf(stderr, "llmrt serve: serving '%s' on http://%s:%d (%d concurrent, queue %d, body limit %zu bytes%s)\n",
            s->model_name, o->host, port, max_concurrent, max_queue, o->max_body_bytes,
            o->api_key ? ", API key required" : "");
    fflush(stderr);

    control c = {.server = s, .daemon = daemon, .signals = signals};
    pthread_t control_thread;
    if (pthread_create(&control_thread, NULL, control_main, &c) != 0) {
        fprintf(stderr, "llmrt serve: cannot start the control thread\n");
        goto done;
    }
    srv_engine_run(s->engine); /* until the control thread has drained and stopped it */
    pthread_join(control_thread, NULL);
    daemon = NULL;
    fprintf(stderr, "llmrt serve: stopped\n");
    code = 0;
done:
    if (daemon) MHD_stop_daemon(daemon);
    srv_engine_free(s->engine);
    srv_metrics_destroy(&s->metrics);
    free(model_name);
    free(s);
    return code;
}
