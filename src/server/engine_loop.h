/* The server's engine thread and the handoff between it and HTTP threads.
 *
 * One thread owns the runtime (created with background = 0) and is the only
 * one that calls into it: it admits queued jobs (llmrt_runtime_submit),
 * passes on cancellations, runs llmrt_runtime_step, and collects results.
 * HTTP threads never touch the runtime: they build a job, enqueue it, and
 * then sleep on the job's change counter (a futex word) until its state
 * changes or, for a stream, streamed text arrives.
 *
 * A job is one HTTP request: one or more prompts ("subs"), each generating
 * n sequences ("choices", numbered sub * n + sequence). Jobs are reference
 * counted: the HTTP side holds one reference, the engine one while the job is
 * queued or running; whoever drops the last frees it. Everything in a job
 * that both sides touch is guarded by the engine's one mutex, except the
 * change counter, which HTTP threads wait on without it. */
#ifndef LLMRT_SERVER_ENGINE_LOOP_H
#define LLMRT_SERVER_ENGINE_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/text_buffer.h"
#include "llmrt/runtime.h"

typedef struct srv_engine srv_engine;
typedef struct srv_metrics srv_metrics;

typedef struct srv_engine_options {
    const char *engine_path;
    int32_t num_threads;
    int32_t device;           /* GPU ordinal */
    int32_t max_concurrent;   /* runtime requests in flight; 0 = the engine's max_batch */
    int32_t max_queue;        /* jobs waiting for a slot beyond that */
    double kv_cache_memory;   /* 0 = default; <= 1 a fraction of the KV pool; > 1 bytes */
    int32_t max_seq_len, max_batch, max_num_tokens; /* the engine's load-time limits; 0 = the build's */
    const char *backend; /* NULL: the one the engine was built for */
    const char *cpu_precision; /* NULL: auto */
} srv_engine_options;

/* One generated token with its alternatives (logprobs). */
typedef struct srv_token {
    int32_t id;
    float logprob;
    int32_t num_top;
    int32_t top_ids[LLMRT_MAX_LOGPROBS];
    float top_logprobs[LLMRT_MAX_LOGPROBS];
} srv_token;

/* What one choice produced since the consumer last took it. */
typedef struct srv_choice {
    text_buffer text;         /* pending final text */
    srv_token *tokens;        /* pending tokens */
    int32_t num_tokens, tokens_cap;
    int32_t total_tokens;     /* generated so far */
    int32_t new_tokens;       /* generated since the consumer last took */
    int finished;
    const char *finish_reason; /* static, once finished */
} srv_choice;

typedef struct srv_sub {
    struct srv_job *job;
    int index;
    llmrt_request req;        /* prompt_ids and stop point into the job */
    int32_t *prompt_ids;
    int32_t num_prompt_ids;
    llmrt_request_id id;      /* 0 until submitted */
    int submitted, done;
    llmrt_result result;      /* valid once done */
    llmrt_prompt_logprobs prompt; /* prompt_logprobs: copied from the first event */
    int prompt_ready;
    float *embedding;         /* embedding jobs: [hidden size] once done */
} srv_sub;

enum srv_job_state { SRV_JOB_QUEUED, SRV_JOB_RUNNING, SRV_JOB_DONE, SRV_JOB_FAILED };

typedef struct srv_job {
    srv_engine *engine;
    int num_subs, n;          /* prompts, sequences per prompt */
    srv_sub *subs;
    srv_choice *choices;      /* [num_subs * n] */
    char *stop_strings[LLMRT_MAX_STOP_STRINGS]; /* owned copies the requests point at */
    int num_stop;
    int32_t *bad_word_ids, *bad_word_lengths; /* the requests' bad words, tokenized */
    int32_t num_bad_words, num_bad_word_ids;
    int want_tokens;          /* keep per-token data for the consumer (logprobs) */
    int stream;               /* the consumer streams: wake it for every step's output,
                                 not only for changes of state (set before enqueueing) */
    enum srv_job_state state;
    int error_status;         /* FAILED: the HTTP status (400, 500) */
    char error[512];
    int cancel;               /* asked by the HTTP side (client gone, drain timeout) */
    int cancel_sent;
    int refs;
    /* Bumped (under the lock) whenever anything changes, read without the
     * lock; the futex word srv_job_wait_change sleeps on. */
    _Atomic uint32_t changes;
    _Atomic int waiters;      /* threads asleep on `changes` */
    double enqueue_time;
    struct srv_job *next;     /* the queue */
    struct srv_job *run_next; /* the running list */
    /* An embedding job (encoder engines only): each sub's prompt_ids are
     * encoded and pooled into its embedding; no generation. */
    int embed;
    llmrt_pooling pooling;
} srv_job;

/* Loads the engine and creates its runtime; prints what it chose for the
 * KV cache to stderr. An encoder engine has no runtime: the engine thread
 * runs its embedding jobs one forward at a time, and fails any other job
 * with a 400. */
int srv_engine_start(const srv_engine_options *options, srv_metrics *metrics, srv_engine **out, char *error,
                     size_t error_cap);
/* Under mpirun, ranks other than 0 of a tensor-parallel engine start no
 * runtime: srv_engine_follow replays rank 0's steps until it stops. */
int srv_engine_is_follower(const srv_engine *e);
int srv_engine_follow(srv_engine *e, char *error, size_t error_cap);
/* The engine loop, on the calling thread (llmrt serve's main thread, whose
 * OpenMP pool then lives as long as the process), until
 * srv_engine_request_stop; what is left then is cancelled and collected. */
void srv_engine_run(srv_engine *e);
void srv_engine_request_stop(srv_engine *e);
/* After srv_engine_run has returned (or never ran). */
void srv_engine_free(srv_engine *e);

/* 1 when the engine is an encoder (serves embeddings, not generation). */
int srv_engine_is_encoder(const srv_engine *e);
/* Borrowed, valid while the engine lives; thread-safe to encode/decode. */
const llmrt_engine *srv_engine_model(const srv_engine *e);
const llmrt_tokenizer *srv_engine_tokenizer(const srv_engine *e);
/* The engine's generation_config.json as parsed JSON (borrowed; NULL if none). */
const void *srv_engine_generation_config(const srv_engine *e);

/* A new job of num_subs prompts and n sequences each (the caller fills
 * subs[i].req, prompt_ids and stop strings); NULL when out of memory. */
srv_job *srv_job_new(srv_engine *e, int num_subs, int n);
/* Copies a stop string into the job; 0 when there are too many. */
int srv_job_add_stop(srv_job *job, const char *stop);
/* Appends a tokenized bad word to the job; 0 when out of memory. */
int srv_job_add_bad_word(srv_job *job, const int32_t *ids, int32_t n);

enum { SRV_ENQUEUE_OK = 0, SRV_ENQUEUE_FULL = 1, SRV_ENQUEUE_DRAINING = 2 };
/* Hands the job to the engine thread (which takes its own reference). */
int srv_engine_enqueue(srv_engine *e, srv_job *job);

/* Drops the caller's reference; cancels the job first if it is unfinished. */
void srv_job_release(srv_job *job);
void srv_job_cancel(srv_job *job);

/* Waits up to timeout seconds until job->changes differs from *seen; then
 * *seen is updated. Returns 1 when it changed. */
int srv_job_wait_change(srv_job *job, uint32_t *seen, double timeout);
/* The same for a stream (job->stream set), woken once after each engine
 * step that gave any stream output rather than for its own. */
int srv_stream_wait(srv_job *job, uint32_t *seen, double timeout);
/* The job's change count, without the lock. */
static inline uint32_t srv_job_changes(srv_job *job) {
    return atomic_load_explicit(&job->changes, memory_order_acquire);
}

/* The consumer's view of pending streamed output: takes (moves out) the
 * pending text and tokens of choice c. Call with the lock held. */
void srv_engine_lock(srv_engine *e);
void srv_engine_unlock(srv_engine *e);

/* Draining: new jobs are refused (503); returns the number of jobs still
 * queued or running. */
void srv_engine_set_draining(srv_engine *e);
int srv_engine_active_jobs(srv_engine *e);
/* Cancels every queued and running job. */
void srv_engine_cancel_all(srv_engine *e);

typedef struct srv_engine_snapshot {
    llmrt_runtime_stats stats; /* as of the last step */
    int32_t queued_jobs;
    int32_t running_requests;
    int ready;
} srv_engine_snapshot;
void srv_engine_get_snapshot(srv_engine *e, srv_engine_snapshot *out);

double srv_now(void);

#endif
