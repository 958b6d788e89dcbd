/* Prometheus text exposition (version 0.0.4) of the server's metrics. */
#include "server/metrics.h"

#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buckets as vLLM's: latencies from milliseconds (CPU decode of a small
 * model) to minutes (long generations). */
static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                     0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
static const double tpot_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
                                     0.15,  0.2,    0.3,   0.4,  0.5,   0.75, 1.0,   2.5};
static const double e2e_bounds[] = {0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                                    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0};

static const char *const finish_names[5] = {"stop", "length", "cancelled", "error", "other"};

static void hist_init(srv_histogram *h, const double *bounds, int n) {
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->num_bounds = n;
}

static void hist_add(srv_histogram *h, double v) {
    int b = 0;
    while (b < h->num_bounds && v > h->bounds[b]) b++;
    if (b < h->num_bounds) h->counts[b]++;
    h->count++;
    h->sum += v;
}

void srv_metrics_init(srv_metrics *m, const char *model_name) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->model_name, sizeof m->model_name, "%s", model_name);
    hist_init(&m->ttft, ttft_bounds, (int)(sizeof ttft_bounds / sizeof ttft_bounds[0]));
    hist_init(&m->tpot, tpot_bounds, (int)(sizeof tpot_bounds / sizeof tpot_bounds[0]));
    hist_init(&m->e2e, e2e_bounds, (int)(sizeof e2e_bounds / sizeof e2e_bounds[0]));
    hist_init(&m->queue, e2e_bounds, (int)(sizeof e2e_bounds / sizeof e2e_bounds[0]));
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->lock); }

void srv_metrics_record_result(srv_metrics *m, const llmrt_result *r) {
    pthread_mutex_lock(&m->lock);
    int32_t generated = 0;
    for (int32_t i = 0; i < r->num_sequences; i++) {
        const char *reason = r->sequences[i].finish_reason ? r->sequences[i].finish_reason : "other";
        int k = 4;
        for (int j = 0; j < 4; j++)
            if (strcmp(reason, finish_names[j]) == 0) k = j;
        m->finished[r->status != LLMRT_OK ? 3 : k]++;
        generated += r->sequences[i].num_output;
    }
    if (r->num_sequences == 0) m->finished[r->status != LLMRT_OK ? 3 : 4]++;
    m->prompt_tokens += (uint64_t)(r->prompt_tokens > 0 ? r->prompt_tokens : 0);
    m->generation_tokens += (uint64_t)generated;
    if (r->ttft_seconds > 0) hist_add(&m->ttft, r->ttft_seconds);
    if (r->num_token_times > 1 && r->token_times)
        hist_add(&m->tpot, (r->token_times[r->num_token_times - 1] - r->token_times[0]) / (r->num_token_times - 1));
    hist_add(&m->e2e, r->e2e_seconds);
    hist_add(&m->queue, r->queue_seconds);
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_record_status(srv_metrics *m, int status) {
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < SRV_MAX_STATUS_CODES; i++) {
        if (m->status_codes[i] == status || m->status_codes[i] == 0) {
            m->status_codes[i] = status;
            m->status_counts[i]++;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

static void header(text_buffer *b, const char *name, const char *type, const char *help) {
    text_buffer_printf(b, "# HELP llmrt:%s %s\n# TYPE llmrt:%s %s\n", name, help, name, type);
}

static void gauge(text_buffer *b, const char *model, const char *name, const char *help, double v) {
    header(b, name, "gauge", help);
    text_buffer_printf(b, "llmrt:%s{model_name=\"%s\"} %.17g\n", name, model, v);
}

static void counter(text_buffer *b, const char *model, const char *name, const char *help, double v) {
    header(b, name, "counter", help);
    text_buffer_printf(b, "llmrt:%s{model_name=\"%s\"} %.17g\n", name, model, v);
}

static void histogram(text_buffer *b, const char *model, const char *name, const char *help, const srv_histogram *h) {
    header(b, name, "histogram", help);
    uint64_t cumulative = 0;
    for (int i = 0; i < h->num_bounds; i++) {
        cumulative += h->counts[i];
        text_buffer_printf(b, "llmrt:%s_bucket{model_name=\"%s\",le=\"%g\"} %llu\n", name, model, h->bounds[i],
            (unsigned long long)cumulative);
    }
    text_buffer_printf(b, "llmrt:%s_bucket{model_name=\"%s\",le=\"+Inf\"} %llu\n", name, model, (unsigned long long)h->count);
    text_buffer_printf(b, "llmrt:%s_sum{model_name=\"%s\"} %.17g\n", name, model, h->sum);
    text_buffer_printf(b, "llmrt:%s_count{model_name=\"%s\"} %llu\n", name, model, (unsigned long long)h->count);
}

/* A label value: backslash, quote and newline escaped. */
static void escape_label(const char *in, char *out, size_t cap) {
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') out[o++] = '\\', out[o++] = *in;
        else if (*in == '\n') out[o++] = '\\', out[o++] = 'n';
        else out[o++] = *in;
    }
    out[o] = 0;
}

char *srv_metrics_render(srv_metrics *m, const srv_engine_snapshot *snap) {
    text_buffer b = {0};
    char model[600];
    escape_label(m->model_name, model, sizeof model);
    const llmrt_runtime_stats *st = &snap->stats;
    gauge(&b, model, "num_requests_running", "Requests in the engine's running batch.", snap->running_requests);
    gauge(&b, model, "num_requests_waiting", "Requests waiting for a slot (server queue and runtime queue).",
          snap->queued_jobs + st->num_waiting);
    gauge(&b, model, "kv_cache_usage_perc", "Fraction of KV cache blocks held by sequences (0..1).",
          st->kv_total_blocks ? (double)st->kv_used_blocks / st->kv_total_blocks : 0.0);
    gauge(&b, model, "kv_cache_used_blocks", "KV cache blocks held by sequences.", st->kv_used_blocks);
    gauge(&b, model, "kv_cache_total_blocks", "KV cache blocks in the pool.", st->kv_total_blocks);
    counter(&b, model, "prefix_cache_queries_total", "Full prompt KV blocks looked up in the prefix cache.",
            (double)st->prefix_queried_blocks);
    counter(&b, model, "prefix_cache_hits_total", "Full prompt KV blocks found in the prefix cache.",
            (double)st->prefix_hit_blocks);
    gauge(&b, model, "prefix_cache_hit_rate", "Prefix cache hits over queries, in blocks (0..1).",
          st->prefix_queried_blocks ? (double)st->prefix_hit_blocks / (double)st->prefix_queried_blocks : 0.0);
    counter(&b, model, "num_preemptions_total", "Sequences preempted (KV blocks freed, recomputed later).",
            (double)st->num_preemptions);
    pthread_mutex_lock(&m->lock);
    counter(&b, model, "prompt_tokens_total", "Prompt tokens of finished requests.", (double)m->prompt_tokens);
    counter(&b, model, "generation_tokens_total", "Generated tokens of finished requests.", (double)m->generation_tokens);
    header(&b, "request_success_total", "counter", "Finished sequences by finish reason.");
    for (int i = 0; i < 5; i++)
        text_buffer_printf(&b, "llmrt:request_success_total{model_name=\"%s\",finished_reason=\"%s\"} %llu\n", model, finish_names[i],
            (unsigned long long)m->finished[i]);
    header(&b, "http_requests_total", "counter", "HTTP responses by status code.");
    for (int i = 0; i < SRV_MAX_STATUS_CODES && m->status_codes[i]; i++)
        text_buffer_printf(&b, "llmrt:http_requests_total{model_name=\"%s\",status=\"%d\"} %llu\n", model, m->status_codes[i],
            (unsigned long long)m->status_counts[i]);
    histogram(&b, model, "time_to_first_token_seconds", "Time to first token (submit to first token).", &m->ttft);
    histogram(&b, model, "time_per_output_token_seconds", "Mean time between output tokens, per request.", &m->tpot);
    histogram(&b, model, "e2e_request_latency_seconds", "End-to-end request latency in the engine.", &m->e2e);
    histogram(&b, model, "request_queue_time_seconds", "Time from submit to first scheduled.", &m->queue);
    pthread_mutex_unlock(&m->lock);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
