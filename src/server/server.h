/* llmrt serve — the HTTP server's internal interface.
 *
 * Files, one concern each:
 *   server.c      options, start-up, signals and the graceful drain
 *   http.c        libmicrohttpd glue: routing, auth, body limits, replies,
 *                 server-sent-event streams, the access log
 *   engine_loop.c the engine thread and the job handoff (engine_loop.h)
 *   params.c      sampling fields shared by the APIs, generation_config defaults
 *   openai.c      /v1/models, /v1/completions, /v1/chat/completions
 *   embeddings.c  /v1/embeddings (encoder engines)
 *   kserve.c      Triton / KServe v2: health, metadata, generate, infer
 *   metrics.c     /metrics in Prometheus text format (metrics.h)
 *   chat_page.c   the chat page served at GET /
 * No file here runs model code: generation goes through srv_job handed to
 * the engine thread. */
#ifndef LLMRT_SERVER_SERVER_H
#define LLMRT_SERVER_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/text_buffer.h"
#include "server/engine_loop.h"
#include "server/metrics.h"

typedef struct srv_options {
    const char *engine_path;    /* required (the CLI resolves the demo model) */
    const char *host;           /* default 127.0.0.1 */
    int port;                   /* default 8000; 0 = any free port (printed) */
    const char *api_key;        /* NULL: no auth */
    int32_t max_concurrent;     /* requests in the engine at once; 0 = 256 */
    int32_t max_queue;          /* jobs waiting beyond that; -1 = default 1024 */
    size_t max_body_bytes;      /* default 4 MiB */
    const char *served_model_name; /* default: the engine file's base name */
    double drain_timeout;       /* seconds to finish in-flight requests on SIGTERM; default 30 */
    double kv_cache_memory;     /* 0 default; (0, 1] fraction; > 1 bytes */
    int32_t num_threads;        /* CPU threads; 0 = all cores */
    int32_t device;             /* GPU ordinal; default 0 */
    int32_t max_seq_len, max_batch, max_num_tokens; /* the engine's load-time limits; 0 = the build's */
    const char *backend;        /* "cpu" / "cuda" to run on; NULL = the one the engine was built for */
    const char *cpu_precision;  /* "auto" / "fp32" (llmrt_engine_options.cpu_precision); NULL = auto */
    int access_log;             /* one line per request on stderr; default 1 */
} srv_options;

void srv_options_init(srv_options *o);
/* Runs until SIGTERM or SIGINT, then drains; returns the exit code. */
int srv_run(const srv_options *o);

typedef struct srv_server {
    srv_options options;
    const char *model_name;
    srv_engine *engine;
    srv_metrics metrics;
    int64_t created;            /* unix time at start-up */
    volatile int draining;      /* SIGTERM seen: not ready, no new requests */
    volatile int stopping;      /* streams end now */
} srv_server;

/* ---- requests and replies (http.c) ---------------------------------------- */

typedef struct srv_stream srv_stream;

typedef struct srv_http_request {
    srv_server *server;
    const char *method, *path;
    const char *body;
    size_t body_len;
    int fd;                     /* the client's socket, to notice it leave */
} srv_http_request;

typedef struct srv_reply {
    int status;
    char *body;                 /* malloc'd */
    size_t body_len;
    const char *content_type;
    int retry_after;            /* seconds; 0 = no header */
    srv_stream *stream;         /* set: a text/event-stream (or chunked) body */
} srv_reply;

/* Fills reply with a JSON body (steals `body`). */
void srv_reply_json(srv_reply *reply, int status, json_t *body);
/* The OpenAI error object {"error": {"message", "type", "param", "code"}}. */
void srv_reply_error(srv_reply *reply, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void srv_reply_text(srv_reply *reply, int status, const char *content_type, const char *text, size_t len);

/* 1 when the client has closed its connection. */
int srv_client_gone(const srv_http_request *req);

/* Hands a job to the engine and waits until it is admitted (1) or refused,
 * failed or abandoned (0, reply filled). The caller keeps its reference. */
int srv_submit_job(srv_http_request *req, srv_job *job, srv_reply *reply);
/* Waits until the job is done (1) or the client left (0; job cancelled). */
int srv_wait_job(srv_http_request *req, srv_job *job);

/* Streams: produce() appends the next bytes (SSE events) to `out` from what
 * the job has made since the last call, and returns 1 once the stream is
 * complete (its last bytes written). It runs on the HTTP thread without the
 * engine lock. free_ctx releases ctx. */
typedef int (*srv_stream_produce)(void *ctx, srv_job *job, text_buffer *out);
srv_stream *srv_stream_new(srv_http_request *req, srv_job *job, srv_stream_produce produce, void *ctx,
                           void (*free_ctx)(void *));

/* Takes the output a job made since the last take (text, tokens, whether
 * each choice has newly finished), under the engine lock. */
typedef struct srv_taken_choice {
    char *text;
    size_t text_len;
    srv_token *tokens;
    int32_t num_tokens;
    int32_t new_tokens;         /* generated since the last take (with or without text) */
    int finished_now;           /* finished, and not reported by an earlier take */
    const char *finish_reason;
    const llmrt_prompt_logprobs *prompt; /* the prompt's scores once known (prompt_logprobs) */
} srv_taken_choice;
typedef struct srv_taken {
    int num_choices;
    srv_taken_choice *choices;
    int job_over;               /* DONE or FAILED: nothing more will come */
} srv_taken;
int srv_job_take(srv_job *job, srv_taken *out, int *reported);
void srv_taken_free(srv_taken *t);

/* ---- handlers --------------------------------------------------------------- */

void srv_openai_models(srv_http_request *req, srv_reply *reply);
void srv_openai_completions(srv_http_request *req, srv_reply *reply);
void srv_openai_chat(srv_http_request *req, srv_reply *reply);
/* /v1/embeddings (embeddings.c): encoder engines only */
void srv_openai_embeddings(srv_http_request *req, srv_reply *reply);
/* path after "/v2" */
void srv_kserve_dispatch(srv_http_request *req, const char *path, srv_reply *reply);
void srv_chat_page(srv_http_request *req, srv_reply *reply);

/* ---- sampling fields (params.c) -------------------------------------------- */

typedef struct srv_params_error {
    char message[256];
    char param[64];
} srv_params_error;

/* Reads the sampling fields of a request body into `req` over the engine's
 * generation_config defaults: temperature, top_p, top_k, min_p, seed,
 * presence/frequency/repetition penalties, ignore_eos, stop (into the job).
 * The max_tokens names are read by the caller. 0 on a bad value. */
int srv_params_read(srv_server *s, json_t *body, llmrt_request *req, srv_job *job, srv_params_error *err);
/* max_tokens under the first of `keys` (NULL-ended) the body has, at least
 * 1 and within the engine's context after prompt_len tokens; absent: the
 * fallback (0 = the rest of the context), capped to fit. */
int srv_params_max_tokens(srv_server *s, json_t *body, const char *const *keys, int32_t prompt_len, int32_t fallback,
                          int32_t *out, srv_params_error *err);
/* generation_config.json's max_new_tokens, or 0. */
int srv_params_generation_max(srv_server *s);
/* Encodes UTF-8 text with the engine's tokenizer (malloc'd ids, n >= 1). */
int srv_encode(srv_server *s, const char *text, size_t len, int flags, int32_t **ids, int32_t *n, srv_params_error *err);
/* A string as the request gave it: 0 when it is not valid UTF-8. */
int srv_utf8_valid(const char *s, size_t len);

#endif
