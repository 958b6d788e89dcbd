/* llmrt bench --url over libcurl: see bench_url.h. TTFT is taken at the
 * first server-sent event of a step that generated, as a client sees it. */
#define _POSIX_C_SOURCE 200809L
#include "bench_url.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run_requests.h"

#ifdef LLMRT_HAVE_CURL
#include <curl/curl.h>

typedef struct url_run {
    const char *url;
    const bench_prompt *prompts;
    int32_t num_prompts, first, total;
    const double *arrivals;
    double start;
    float temperature;
    uint64_t seed;
    char model[256];
    atomic_int next;
    pthread_mutex_t lock;
    bench_url_record record;
    void *user;
    double last_finish;
} url_run;

/* The state of one streamed response. */
typedef struct stream_state {
    char *buf;
    size_t len, cap;
    double start;
    bench_url_result result;
    double *times;
    int32_t times_cap;
    int done;
} stream_state;

static void on_event_data(stream_state *s, const char *data) {
    if (strcmp(data, "[DONE]") == 0) {
        s->done = 1;
        s->result.e2e = cli_now_seconds() - s->start;
        return;
    }
    json_error_t err;
    json_t *o = json_loads(data, 0, &err);
    if (!o) {
        snprintf(s->result.error, sizeof s->result.error, "a malformed event: %.100s", data);
        return;
    }
    json_t *choices = json_object_get(o, "choices"), *usage = json_object_get(o, "usage"), *error = json_object_get(o, "error");
    if (error) snprintf(s->result.error, sizeof s->result.error, "%.200s", json_string_value(json_object_get(error, "message")));
    /* every step's chunk counts, text or not (held back, or no tokenizer);
     * the last one, with a finish_reason, carries no token */
    json_t *choice = json_array_get(choices, 0);
    const char *text = json_string_value(json_object_get(choice, "text"));
    if (text && json_is_null(json_object_get(choice, "finish_reason"))) {
        double t = cli_now_seconds() - s->start;
        if (s->result.num_chunks == 0) s->result.ttft = t;
        if (s->result.num_chunks == s->times_cap) {
            s->times_cap = s->times_cap ? s->times_cap * 2 : 256;
            double *grown = realloc(s->times, (size_t)s->times_cap * sizeof *grown);
            if (grown) s->times = grown;
            else s->times_cap = s->result.num_chunks;
        }
        if (s->result.num_chunks < s->times_cap) s->times[s->result.num_chunks++] = t;
    }
    if (json_is_object(usage)) {
        s->result.prompt_tokens = (int32_t)json_integer_value(json_object_get(usage, "prompt_tokens"));
        s->result.output_tokens = (int32_t)json_integer_value(json_object_get(usage, "completion_tokens"));
    }
    json_decref(o);
}

static size_t on_body(char *data, size_t size, size_t count, void *user) {
    stream_state *s = user;
    size_t n = size * count;
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *grown = realloc(s->buf, cap);
        if (!grown) return 0;
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = 0;
    char *end;
    while ((end = strstr(s->buf, "\n\n"))) {
        *end = 0;
        if (strncmp(s->buf, "data: ", 6) == 0) on_event_data(s, s->buf + 6);
        size_t used = (size_t)(end + 2 - s->buf);
        memmove(s->buf, s->buf + used, s->len - used + 1);
        s->len -= used;
    }
    return n;
}

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

static void *worker(void *arg) {
    url_run *r = arg;
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    char endpoint[1024];
    snprintf(endpoint, sizeof endpoint, "%s/v1/completions", r->url);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    stream_state s = {0};
    for (;;) {
        int32_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->total) break;
        if (r->arrivals) { /* Poisson arrivals: not before its time */
            double wait = r->start + r->arrivals[i] - cli_now_seconds();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        char *body = request_body(r, i);
        s.len = 0;
        s.done = 0;
        memset(&s.result, 0, sizeof s.result);
        curl_easy_setopt(h, CURLOPT_URL, endpoint);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "{}");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        s.start = cli_now_seconds();
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        free(body);
        if (rc != CURLE_OK) snprintf(s.result.error, sizeof s.result.error, "%s", curl_easy_strerror(rc));
        else if (status != 200) snprintf(s.result.error, sizeof s.result.error, "HTTP %ld: %.200s", status, s.buf ? s.buf : "");
        else if (!s.done && !s.result.error[0]) snprintf(s.result.error, sizeof s.result.error, "the stream ended without [DONE]");
        s.result.ok = !s.result.error[0];
        s.result.chunk_times = s.times;
        pthread_mutex_lock(&r->lock);
        r->last_finish = cli_now_seconds();
        r->record(r->user, &s.result);
        pthread_mutex_unlock(&r->lock);
    }
    free(s.buf);
    free(s.times);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return NULL;
}

/* The served model's name, from GET /v1/models. */
static int fetch_model(url_run *r) {
    CURL *h = curl_easy_init();
    if (!h) return 0;
    char endpoint[1024];
    snprintf(endpoint, sizeof endpoint, "%s/v1/models", r->url);
    stream_state s = {0};
    curl_easy_setopt(h, CURLOPT_URL, endpoint);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body); /* no blank lines in JSON: it accumulates */
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    json_error_t err;
    json_t *o = rc == CURLE_OK && s.buf ? json_loads(s.buf, 0, &err) : NULL;
    const char *id = json_string_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "id"));
    if (id) snprintf(r->model, sizeof r->model, "%s", id);
    else fprintf(stderr, "llmrt bench: GET %s failed: %s\n", endpoint, rc != CURLE_OK ? curl_easy_strerror(rc) : "no model");
    json_decref(o);
    free(s.buf);
    return id != NULL;
}

static void init_curl(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int bench_url_run(const char *url, const bench_prompt *prompts, int32_t num_prompts, int32_t first, int32_t total,
                  int32_t concurrency, const double *arrivals, float temperature, uint64_t seed,
                  bench_url_record record, void *user, double *seconds) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_curl);
    url_run r = {.url = url, .prompts = prompts, .num_prompts = num_prompts, .first = first, .total = total,
                 .arrivals = arrivals, .temperature = temperature, .seed = seed, .record = record, .user = user};
    if (!fetch_model(&r)) return 0;
    pthread_mutex_init(&r.lock, NULL);
    /* one client thread per request in flight */
    int32_t n = concurrency > 0 ? concurrency : arrivals ? total : 1;
    if (n > total) n = total;
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    if (!threads) return 0;
    double start = cli_now_seconds();
    r.start = start;
    r.last_finish = start;
    int32_t started = 0;
    for (; started < n; started++)
        if (pthread_create(&threads[started], NULL, worker, &r) != 0) break;
    for (int32_t i = 0; i < started; i++) pthread_join(threads[i], NULL);
    free(threads);
    pthread_mutex_destroy(&r.lock);
    *seconds = r.last_finish - start;
    return started > 0;
}
#else
int bench_url_run(const char *url, const bench_prompt *prompts, int32_t num_prompts, int32_t first, int32_t total,
                  int32_t concurrency, const double *arrivals, float temperature, uint64_t seed,
                  bench_url_record record, void *user, double *seconds) {
    fprintf(stderr, "llmrt bench: --url needs libcurl (Debian libcurl4-openssl-dev); this build has none\n");
    return 0;
}
#endif
