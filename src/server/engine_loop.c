/* The engine thread: the only caller of the runtime (background = 0), so
 * model code never runs on an HTTP thread and the runtime needs no thread of
 * its own. Lock order: the server's mutex may be held while calling the
 * runtime (whose callbacks run outside the runtime's own lock), never the
 * other way round. */
#define _GNU_SOURCE /* syscall */
#include "server/engine_loop.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_file.h"
#include "server/metrics.h"

struct srv_engine {
    pthread_mutex_t lock;
    pthread_cond_t work_cond;
    llmrt_engine *engine;
    llmrt_runtime *rt;
    llmrt_tokenizer *tokenizer;
    json_t *generation_config;
    srv_metrics *metrics;
    srv_job *queue_head, *queue_tail;
    int32_t queue_len;
    srv_job *running;          /* jobs with submitted requests */
    int32_t running_requests;
    int32_t max_concurrent, max_queue;
    int draining, stop;
    srv_engine_snapshot snapshot;
    /* Streams sleep here, all on one futex word, bumped once after each
     * step that gave any stream output: one wake-up syscall a step for
     * every stream, where a word per job took one per stream. */
    _Atomic uint32_t stream_seq;
    _Atomic int stream_sleepers;
    int streams_pending;       /* engine thread only: a stream got output this step */
};

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void deadline_after(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    long whole = (long)seconds;
    ts->tv_sec += whole;
    ts->tv_nsec += (long)((seconds - (double)whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- jobs ----------------------------------------------------------------- */

srv_job *srv_job_new(srv_engine *e, int num_subs, int n) {
    srv_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->engine = e;
    job->num_subs = num_subs;
    job->n = n;
    job->refs = 1;
    job->subs = calloc((size_t)num_subs, sizeof *job->subs);
    job->choices = calloc((size_t)num_subs * (size_t)n, sizeof *job->choices);
    if (!job->subs || !job->choices) {
        free(job->subs);
        free(job->choices);
        free(job);
        return NULL;
    }
    for (int i = 0; i < num_subs; i++) {
        job->subs[i].job = job;
        job->subs[i].index = i;
        llmrt_request_init(&job->subs[i].req);
    }
    return job;
}

int srv_job_add_stop(srv_job *job, const char *stop) {
    if (job->num_stop >= LLMRT_MAX_STOP_STRINGS) return 0;
    char *copy = strdup(stop);
    if (!copy) return 0;
    job->stop_strings[job->num_stop++] = copy;
    return 1;
}

int srv_job_add_bad_word(srv_job *job, const int32_t *ids, int32_t n) {
    int32_t *grown_ids = realloc(job->bad_word_ids, ((size_t)job->num_bad_word_ids + (size_t)n) * sizeof *grown_ids);
    if (!grown_ids) return 0;
    job->bad_word_ids = grown_ids;
    int32_t *grown_lengths = realloc(job->bad_word_lengths, ((size_t)job->num_bad_words + 1) * sizeof *grown_lengths);
    if (!grown_lengths) return 0;
    job->bad_word_lengths = grown_lengths;
    memcpy(job->bad_word_ids + job->num_bad_word_ids, ids, (size_t)n * sizeof *ids);
    job->num_bad_word_ids += n;
    job->bad_word_lengths[job->num_bad_words++] = n;
    return 1;
}

static void prompt_scores_free(llmrt_prompt_logprobs *p) {
    free(p->ids);
    free(p->logprobs);
    free(p->top_ids);
    free(p->top_logprobs);
}

/* The event's prompt scores are borrowed for the call: keep a copy. */
static int prompt_scores_keep(srv_sub *sub, const llmrt_prompt_logprobs *p) {
    llmrt_prompt_logprobs *q = &sub->prompt;
    const size_t n = (size_t)p->num_tokens, top = n * (size_t)p->num_top;
    q->ids = malloc(n * sizeof *q->ids);
    q->logprobs = malloc(n * sizeof *q->logprobs);
    q->top_ids = malloc((top + 1) * sizeof *q->top_ids);
    q->top_logprobs = malloc((top + 1) * sizeof *q->top_logprobs);
    if (!q->ids || !q->logprobs || !q->top_ids || !q->top_logprobs) return 0;
    memcpy(q->ids, p->ids, n * sizeof *q->ids);
    memcpy(q->logprobs, p->logprobs, n * sizeof *q->logprobs);
    if (top) memcpy(q->top_ids, p->top_ids, top * sizeof *q->top_ids);
    if (top) memcpy(q->top_logprobs, p->top_logprobs, top * sizeof *q->top_logprobs);
    q->num_tokens = p->num_tokens;
    q->num_top = p->num_top;
    sub->prompt_ready = 1;
    return 1;
}

static void job_free(srv_job *job) {
    for (int i = 0; i < job->num_subs; i++) {
        free(job->subs[i].prompt_ids);
        llmrt_result_free(&job->subs[i].result);
        prompt_scores_free(&job->subs[i].prompt);
        free(job->subs[i].embedding);
    }
    free(job->bad_word_ids);
    free(job->bad_word_lengths);
    for (int i = 0; i < job->num_subs * job->n; i++) {
        text_buffer_free(&job->choices[i].text);
        free(job->choices[i].tokens);
    }
    for (int i = 0; i < job->num_stop; i++) free(job->stop_strings[i]);
    free(job->subs);
    free(job->choices);
    free(job);
}

/* Drops one reference; called with the lock held. */
static void job_unref_locked(srv_job *job) {
    if (--job->refs == 0) job_free(job);
}

static void futex_wake_all(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Waking a sleeping HTTP thread is a futex syscall that, on a VM, costs the
 * waker ~20 µs (the IPI to the other vCPU): it is made only when someone
 * sleeps, and the streams' once per engine step, outside the lock. */
static void wake_stream_sleepers(srv_engine *e) {
    atomic_fetch_add_explicit(&e->stream_seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&e->stream_sleepers, memory_order_seq_cst) > 0) futex_wake_all(&e->stream_seq);
}

/* A change of state (admitted, done, failed): woken at once. */
static void job_changed(srv_job *job) {
    atomic_fetch_add_explicit(&job->changes, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&job->waiters, memory_order_seq_cst) > 0) futex_wake_all(&job->changes);
    if (job->stream) wake_stream_sleepers(job->engine);
}

void srv_job_cancel(srv_job *job) {
    srv_engine *e = job->engine;
    pthread_mutex_lock(&e->lock);
    if (job->state == SRV_JOB_QUEUED || job->state == SRV_JOB_RUNNING) {
        job->cancel = 1;
        pthread_cond_signal(&e->work_cond);
    }
    pthread_mutex_unlock(&e->lock);
}

void srv_job_release(srv_job *job) {
    srv_engine *e = job->engine;
    pthread_mutex_lock(&e->lock);
    if (job->state == SRV_JOB_QUEUED || job->state == SRV_JOB_RUNNING) {
        job->cancel = 1;
        pthread_cond_signal(&e->work_cond);
    }
    job_unref_locked(job);
    pthread_mutex_unlock(&e->lock);
}

/* Sleeps on the futex `word` (its sleepers counted in `sleepers`) until
 * job->changes differs from *seen or `timeout` seconds pass. The word is
 * read before the job's count: a change made after that read moves the
 * word too (it is the count itself, or the streams' word, bumped after). */
static int wait_for_change(srv_job *job, uint32_t *seen, double timeout, _Atomic uint32_t *word,
                           _Atomic int *sleepers) {
    uint32_t now = atomic_load_explicit(&job->changes, memory_order_acquire);
    if (now == *seen) {
        const double deadline = srv_now() + timeout;
        atomic_fetch_add_explicit(sleepers, 1, memory_order_seq_cst);
        for (;;) {
            const uint32_t value = atomic_load_explicit(word, memory_order_seq_cst);
            now = atomic_load_explicit(&job->changes, memory_order_seq_cst);
            const double left = deadline - srv_now();
            if (now != *seen || left <= 0) break;
            struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            /* returns at once if the word moved since it was read */
            syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, value, &ts, NULL, 0);
        }
        atomic_fetch_sub_explicit(sleepers, 1, memory_order_relaxed);
    }
    int changed = now != *seen;
    *seen = now;
    return changed;
}

int srv_job_wait_change(srv_job *job, uint32_t *seen, double timeout) {
    return wait_for_change(job, seen, timeout, &job->changes, &job->waiters);
}

int srv_stream_wait(srv_job *job, uint32_t *seen, double timeout) {
    srv_engine *e = job->engine;
    return wait_for_change(job, seen, timeout, &e->stream_seq, &e->stream_sleepers);
}

void srv_engine_lock(srv_engine *e) { pthread_mutex_lock(&e->lock); }
void srv_engine_unlock(srv_engine *e) { pthread_mutex_unlock(&e->lock); }

int srv_engine_enqueue(srv_engine *e, srv_job *job) {
    pthread_mutex_lock(&e->lock);
    int rc = SRV_ENQUEUE_OK;
    if (e->draining || e->stop) rc = SRV_ENQUEUE_DRAINING;
    else if (e->queue_len >= e->max_queue &&
             (e->running_requests + job->num_subs > e->max_concurrent || e->queue_len > 0))
        rc = SRV_ENQUEUE_FULL; /* a free slot still takes a job even with a zero-length queue */
    if (rc == SRV_ENQUEUE_OK) {
        job->refs++;
        job->state = SRV_JOB_QUEUED;
        job->enqueue_time = srv_now();
        job->next = NULL;
        if (e->queue_tail) e->queue_tail->next = job;
        else e->queue_head = job;
        e->queue_tail = job;
        e->queue_len++;
        pthread_cond_signal(&e->work_cond);
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* ---- the runtime's callback (engine thread, inside llmrt_runtime_step) ---- */

static int append_token(srv_choice *c, const llmrt_token_event *ev) {
    if (c->num_tokens == c->tokens_cap) {
        int32_t cap = c->tokens_cap ? c->tokens_cap * 2 : 16;
        srv_token *grown = realloc(c->tokens, (size_t)cap * sizeof *grown);
        if (!grown) return 0;
        c->tokens = grown;
        c->tokens_cap = cap;
    }
    srv_token *t = &c->tokens[c->num_tokens++];
    t->id = ev->token_id;
    t->logprob = ev->logprob;
    t->num_top = ev->num_top < LLMRT_MAX_LOGPROBS ? ev->num_top : LLMRT_MAX_LOGPROBS;
    for (int32_t k = 0; k < t->num_top; k++) {
        t->top_ids[k] = ev->top_ids[k];
        t->top_logprobs[k] = ev->top_logprobs[k];
    }
    return 1;
}

static int on_event(void *user, const llmrt_token_event *ev) {
    srv_sub *sub = user;
    srv_job *job = sub->job;
    srv_engine *e = job->engine;
    pthread_mutex_lock(&e->lock);
    int seq = ev->sequence >= 0 && ev->sequence < job->n ? ev->sequence : 0;
    srv_choice *c = &job->choices[sub->index * job->n + seq];
    int ok = 1;
    if (ev->text_len) ok = text_buffer_append(&c->text, ev->text, ev->text_len);
    if (ev->prompt && !sub->prompt_ready) ok = ok && prompt_scores_keep(sub, ev->prompt);
    if (ev->token_id >= 0) {
        c->total_tokens++;
        c->new_tokens++;
        if (job->want_tokens && ok) ok = append_token(c, ev);
    }
    if (ev->finished) {
        c->finished = 1;
        c->finish_reason = ev->finish_reason;
    }
    if (!ok) job->cancel = 1; /* out of memory for this client's output: give up on it alone */
    atomic_fetch_add_explicit(&job->changes, 1, memory_order_seq_cst);
    /* streams are woken after the step (wake_streams), when this thread no
     * longer needs the lock they take; others wait for their state */
    if (job->stream) e->streams_pending = 1;
    int cancel = job->cancel;
    pthread_mutex_unlock(&e->lock);
    return cancel;
}

/* ---- the engine thread ---------------------------------------------------- */

static int status_for(llmrt_status s) {
    switch (s) {
    case LLMRT_ERR_INVALID_ARGUMENT:
    case LLMRT_ERR_CAPACITY:
    case LLMRT_ERR_UNSUPPORTED:
    case LLMRT_ERR_NOT_FOUND: return 400;
    default: return 500;
    }
}

/* Submits every sub of a job; on a failure the job fails with that message
 * and the subs already submitted are cancelled (their results still come). */
static void admit_locked(srv_engine *e, srv_job *job) {
    job->state = SRV_JOB_RUNNING;
    job->run_next = e->running;
    e->running = job;
    e->running_requests += job->num_subs;
    for (int i = 0; i < job->num_subs; i++) {
        srv_sub *sub = &job->subs[i];
        sub->req.callback = on_event;
        sub->req.user_data = sub;
        sub->req.stop = (const char *const *)job->stop_strings;
        sub->req.num_stop = job->num_stop;
        sub->req.bad_word_ids = job->bad_word_ids;
        sub->req.bad_word_lengths = job->bad_word_lengths;
        sub->req.num_bad_words = job->num_bad_words;
        llmrt_status s = llmrt_runtime_submit(e->rt, &sub->req, &sub->id);
        if (s != LLMRT_OK) {
            job->state = SRV_JOB_FAILED;
            job->error_status = status_for(s);
            snprintf(job->error, sizeof job->error, "%s", llmrt_last_error());
            for (int k = 0; k < i; k++) llmrt_runtime_cancel(e->rt, job->subs[k].id);
            e->running_requests -= job->num_subs - i;
            break;
        }
        sub->submitted = 1;
    }
    job_changed(job);
}

/* Collects finished results; retires jobs whose every request is done. */
static void collect_locked(srv_engine *e) {
    srv_job **link = &e->running;
    while (*link) {
        srv_job *job = *link;
        int pending = 0;
        if (job->cancel && !job->cancel_sent) {
            for (int i = 0; i < job->num_subs; i++)
                if (job->subs[i].submitted && !job->subs[i].done) llmrt_runtime_cancel(e->rt, job->subs[i].id);
            job->cancel_sent = 1;
        }
        for (int i = 0; i < job->num_subs; i++) {
            srv_sub *sub = &job->subs[i];
            if (!sub->submitted || sub->done) continue;
            int done = 0;
            llmrt_result result;
            if (llmrt_runtime_wait(e->rt, sub->id, 0, &result, &done) != LLMRT_OK) {
                /* the id is gone: a bug, but this job alone must not hang */
                memset(&sub->result, 0, sizeof sub->result);
                sub->result.status = LLMRT_ERR_INTERNAL;
                sub->done = 1;
                e->running_requests--;
                continue;
            }
            if (!done) {
                pending++;
                continue;
            }
            sub->result = result;
            sub->done = 1;
            e->running_requests--;
            if (e->metrics) srv_metrics_record_result(e->metrics, &result);
            for (int32_t s = 0; s < result.num_sequences && s < job->n; s++) {
                srv_choice *c = &job->choices[i * job->n + s];
                if (!c->finished) {
                    c->finished = 1;
                    c->finish_reason = result.sequences[s].finish_reason;
                }
            }
            if (result.status != LLMRT_OK && job->state == SRV_JOB_RUNNING) {
                job->state = SRV_JOB_FAILED;
                job->error_status = 500;
                snprintf(job->error, sizeof job->error, "%s", result.error ? result.error : "generation failed");
            }
        }
        if (pending) {
            link = &job->run_next;
            continue;
        }
        *link = job->run_next;
        if (job->state == SRV_JOB_RUNNING) job->state = SRV_JOB_DONE;
        job_changed(job);
        job_unref_locked(job);
    }
}

static void fail_queued_locked(srv_engine *e, srv_job *job, int status, const char *message) {
    job->state = SRV_JOB_FAILED;
    job->error_status = status;
    snprintf(job->error, sizeof job->error, "%s", message);
    job_changed(job);
    job_unref_locked(job);
}

/* On shutdown: each job still queued fails (503), which wakes its waiter. */
static void fail_all_queued_locked(srv_engine *e) {
    while (e->queue_head) {
        srv_job *job = e->queue_head;
        e->queue_head = job->next;
        e->queue_len--;
        fail_queued_locked(e, job, 503, "the server is shutting down");
    }
    e->queue_tail = NULL;
}

/* An encoder engine's job, called with the lock held: its inputs packed
 * into as few forwards as the engine allows, run with the lock released so
 * HTTP threads are not held up (this thread is the engine's only user). */
static void run_encoder_job_locked(srv_engine *e, srv_job *job) {
    if (!job->embed) {
        fail_queued_locked(e, job, 400, "this engine is an encoder: it serves /v1/embeddings, not text generation");
        return;
    }
    job->state = SRV_JOB_RUNNING;
    job_changed(job);
    const int32_t width = llmrt_engine_hidden_size(e->engine), n = job->num_subs;
    const int32_t **ids = malloc((size_t)n * sizeof *ids);
    int32_t *counts = malloc((size_t)n * sizeof *counts);
    float *embeddings = malloc((size_t)n * (size_t)width * sizeof *embeddings);
    for (int i = 0; ids && counts && i < n; i++) ids[i] = job->subs[i].prompt_ids, counts[i] = job->subs[i].num_prompt_ids;
    pthread_mutex_unlock(&e->lock);
    llmrt_status s = ids && counts && embeddings
                         ? llmrt_embed_batch(e->engine, ids, counts, n, job->pooling, embeddings)
                         : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    pthread_mutex_lock(&e->lock);
    for (int i = 0; s == LLMRT_OK && i < n; i++) {
        job->subs[i].embedding = malloc((size_t)width * sizeof(float));
        if (!job->subs[i].embedding) {
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
            break;
        }
        memcpy(job->subs[i].embedding, embeddings + (size_t)i * width, (size_t)width * sizeof(float));
    }
    if (s != LLMRT_OK) {
        job->state = SRV_JOB_FAILED;
        job->error_status = status_for(s);
        snprintf(job->error, sizeof job->error, "%s", llmrt_last_error());
    } else {
        job->state = job->cancel ? SRV_JOB_FAILED : SRV_JOB_DONE;
        if (job->cancel) {
            job->error_status = 499;
            snprintf(job->error, sizeof job->error, "the request was cancelled");
        }
    }
    free(ids);
    free(counts);
    free(embeddings);
    job_changed(job);
    job_unref_locked(job);
}

/* The engine loop of an encoder engine: jobs in order, one at a time. */
static void run_encoder_loop(srv_engine *e) {
    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        if (!e->queue_head) {
            e->snapshot.queued_jobs = 0;
            pthread_cond_wait(&e->work_cond, &e->lock);
            continue;
        }
        srv_job *job = e->queue_head;
        e->queue_head = job->next;
        if (!e->queue_head) e->queue_tail = NULL;
        e->queue_len--;
        e->snapshot.queued_jobs = e->queue_len;
        if (job->cancel) {
            fail_queued_locked(e, job, 499, "the request was cancelled");
            continue;
        }
        /* listed as running while it runs: drains wait for it, cancel_all reaches it */
        job->run_next = NULL;
        e->running = job;
        e->running_requests = job->num_subs;
        e->snapshot.running_requests = e->running_requests;
        run_encoder_job_locked(e, job);
        e->running = NULL;
        e->running_requests = 0;
        e->snapshot.running_requests = 0;
    }
    fail_all_queued_locked(e);
    pthread_mutex_unlock(&e->lock);
}

/* Wakes the streams when the last step gave any of them output (those
 * without go back to sleep), without the lock. */
static void wake_streams(srv_engine *e) {
    if (!e->streams_pending) return;
    e->streams_pending = 0;
    wake_stream_sleepers(e);
}

void srv_engine_run(srv_engine *e) {
    if (srv_engine_is_encoder(e)) {
        run_encoder_loop(e);
        return;
    }
    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        /* queued jobs whose client left never start */
        srv_job **link = &e->queue_head, *prev = NULL;
        while (*link) {
            srv_job *job = *link;
            if (!job->cancel) {
                prev = job;
                link = &job->next;
                continue;
            }
            *link = job->next;
            if (e->queue_tail == job) e->queue_tail = prev;
            e->queue_len--;
            fail_queued_locked(e, job, 499, "the request was cancelled");
        }
        while (e->queue_head &&
               (e->running_requests + e->queue_head->num_subs <= e->max_concurrent || e->running_requests == 0)) {
            srv_job *job = e->queue_head;
            e->queue_head = job->next;
            if (!e->queue_head) e->queue_tail = NULL;
            e->queue_len--;
            admit_locked(e, job);
        }
        collect_locked(e);
        e->snapshot.queued_jobs = e->queue_len;
        e->snapshot.running_requests = e->running_requests;
        if (!e->running) {
            llmrt_runtime_get_stats(e->rt, &e->snapshot.stats);
            if (!e->queue_head && !e->stop) pthread_cond_wait(&e->work_cond, &e->lock);
            continue;
        }
        int busy = 0;
        pthread_mutex_unlock(&e->lock); /* the step's callbacks take it */
        wake_streams(e);
        llmrt_status s = llmrt_runtime_step(e->rt, &busy);
        pthread_mutex_lock(&e->lock);
        if (s != LLMRT_OK) fprintf(stderr, "llmrt serve: engine step: %s\n", llmrt_last_error());
        llmrt_runtime_get_stats(e->rt, &e->snapshot.stats);
        if (!busy) {
            /* running jobs but nothing to step: results are about to be
             * collected; do not spin while waiting for them */
            struct timespec ts;
            deadline_after(&ts, 0.001);
            pthread_cond_timedwait(&e->work_cond, &e->lock, &ts);
        }
    }
    /* shutting down: whatever is left is cancelled and collected */
    fail_all_queued_locked(e);
    for (srv_job *job = e->running; job; job = job->run_next) job->cancel = 1;
    for (int spins = 0; e->running && spins < 100000; spins++) {
        collect_locked(e);
        if (!e->running) break;
        int busy = 0;
        pthread_mutex_unlock(&e->lock);
        llmrt_runtime_step(e->rt, &busy);
        pthread_mutex_lock(&e->lock);
    }
    pthread_mutex_unlock(&e->lock);
}

/* ---- start and stop ------------------------------------------------------- */

static json_t *read_generation_config(const char *path) {
    llmrt_engine_image *img = NULL;
    if (llmrt_engine_image_open(path, 0, &img) != LLMRT_OK) return NULL;
    json_t *config = NULL;
    if (img->generation_config.data && img->generation_config.size) {
        json_error_t err;
        config = json_loadb(img->generation_config.data, img->generation_config.size, 0, &err);
        if (config && !json_is_object(config)) {
            json_decref(config);
            config = NULL;
        }
    }
    llmrt_engine_image_close(img);
    return config;
}

static int fail(char *error, size_t cap, const char *what) {
    snprintf(error, cap, "%s: %s", what, llmrt_last_error());
    return 0;
}

int srv_engine_start(const srv_engine_options *o, srv_metrics *metrics, srv_engine **out, char *error, size_t cap) {
    *out = NULL;
    srv_engine *e = calloc(1, sizeof *e);
    if (!e) return snprintf(error, cap, "out of memory"), 0;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->work_cond, NULL);
    e->metrics = metrics;
    llmrt_engine_options eo;
    llmrt_engine_options_init(&eo);
    if (o->num_threads > 0) eo.num_threads = o->num_threads;
    eo.device = o->device;
    eo.max_seq_len = o->max_seq_len;
    eo.max_batch = o->max_batch;
    eo.max_num_tokens = o->max_num_tokens;
    eo.backend = o->backend;
    eo.cpu_precision = o->cpu_precision;
    /* The backend sizes its KV pool at load: from a byte budget, or from a
     * fraction of free memory (GPU: 0.9 by default, of what weights and
     * activations leave; CPU: 0.5 of what is available). */
    if (o->kv_cache_memory > 1) eo.kv_cache_bytes = (uint64_t)o->kv_cache_memory;
    else if (o->kv_cache_memory > 0) eo.kv_cache_fraction = (float)o->kv_cache_memory;
    int ok = 0;
    if (llmrt_engine_load(o->engine_path, &eo, &e->engine) != LLMRT_OK) {
        fail(error, cap, "loading the engine");
        goto done;
    }
    if (llmrt_engine_rank(e->engine) > 0) { /* tensor parallelism: rank 0 serves, srv_engine_follow computes */
        ok = 1;
        goto done;
    }
    if (llmrt_engine_tokenizer_json(e->engine, NULL) && llmrt_engine_tokenizer(e->engine, &e->tokenizer) != LLMRT_OK) {
        fail(error, cap, "the engine's tokenizer");
        goto done;
    }
    e->generation_config = read_generation_config(o->engine_path);
    if (llmrt_engine_is_encoder(e->engine)) {
        fprintf(stderr, "llmrt serve: an encoder engine: /v1/embeddings (hidden size %d)\n",
                llmrt_engine_hidden_size(e->engine));
        e->max_concurrent = o->max_concurrent > 0 ? o->max_concurrent : 256;
        e->max_queue = o->max_queue >= 0 ? o->max_queue : 1024;
        e->snapshot.ready = 1;
        ok = 1;
        goto done;
    }
    llmrt_runtime_options ro;
    llmrt_runtime_options_init(&ro);
    ro.background = 0;
    if (llmrt_runtime_create(e->engine, &ro, &e->rt) != LLMRT_OK) {
        fail(error, cap, "creating the runtime");
        goto done;
    }
    llmrt_runtime_stats st;
    llmrt_runtime_get_stats(e->rt, &st);
    uint64_t kv_bytes = 0;
    llmrt_engine_memory(e->engine, NULL, NULL, &kv_bytes);
    fprintf(stderr, "llmrt serve: %s backend; KV cache: %d blocks of %d tokens (%.1f MiB; %s; %s)\n",
            llmrt_engine_backend(e->engine), st.kv_total_blocks, st.kv_block_size, kv_bytes / 1048576.0,
            o->kv_cache_memory > 0 ? "--kv-cache-memory" : "the backend's default",
            llmrt_dtype_name(llmrt_engine_kv_cache_dtype(e->engine)));
    e->snapshot.stats = st;
    e->max_concurrent = o->max_concurrent > 0 ? o->max_concurrent : 256;
    e->max_queue = o->max_queue >= 0 ? o->max_queue : 1024;
    e->snapshot.ready = 1;
    ok = 1;
done:
    if (!ok) {
        srv_engine_free(e);
        return 0;
    }
    *out = e;
    return 1;
}

int srv_engine_is_follower(const srv_engine *e) { return llmrt_engine_rank(e->engine) > 0; }

int srv_engine_follow(srv_engine *e, char *error, size_t cap) {
    if (llmrt_engine_follow(e->engine) == LLMRT_OK) return 1;
    fail(error, cap, "tensor-parallel rank");
    return 0;
}

void srv_engine_request_stop(srv_engine *e) {
    pthread_mutex_lock(&e->lock);
    e->stop = 1;
    pthread_cond_signal(&e->work_cond);
    pthread_mutex_unlock(&e->lock);
}

void srv_engine_free(srv_engine *e) {
    if (!e) return;
    if (e->rt) llmrt_runtime_free(e->rt);
    if (e->tokenizer) llmrt_tokenizer_free(e->tokenizer);
    if (e->engine) llmrt_engine_free(e->engine);
    json_decref(e->generation_config);
    pthread_cond_destroy(&e->work_cond);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int srv_engine_is_encoder(const srv_engine *e) { return llmrt_engine_is_encoder(e->engine); }
const llmrt_engine *srv_engine_model(const srv_engine *e) { return e->engine; }
const llmrt_tokenizer *srv_engine_tokenizer(const srv_engine *e) { return e->tokenizer; }
const void *srv_engine_generation_config(const srv_engine *e) { return e->generation_config; }

void srv_engine_set_draining(srv_engine *e) {
    pthread_mutex_lock(&e->lock);
    e->draining = 1;
    pthread_mutex_unlock(&e->lock);
}

int srv_engine_active_jobs(srv_engine *e) {
    pthread_mutex_lock(&e->lock);
    int n = e->queue_len;
    for (srv_job *j = e->running; j; j = j->run_next) n++;
    pthread_mutex_unlock(&e->lock);
    return n;
}

void srv_engine_cancel_all(srv_engine *e) {
    pthread_mutex_lock(&e->lock);
    for (srv_job *j = e->queue_head; j; j = j->next) j->cancel = 1;
    for (srv_job *j = e->running; j; j = j->run_next) j->cancel = 1;
    pthread_cond_signal(&e->work_cond);
    pthread_mutex_unlock(&e->lock);
}

void srv_engine_get_snapshot(srv_engine *e, srv_engine_snapshot *out) {
    pthread_mutex_lock(&e->lock);
    *out = e->snapshot;
    pthread_mutex_unlock(&e->lock);
}
