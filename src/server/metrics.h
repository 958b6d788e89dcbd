/* Prometheus metrics of the server, named in the spirit of vLLM's with an
 * `llmrt:` prefix and a model_name label. Counters and histograms are
 * updated by the engine thread (per finished request) and the HTTP threads
 * (per response); the gauges are read from the engine's last snapshot when
 * /metrics is rendered. */
#ifndef LLMRT_SERVER_METRICS_H
#define LLMRT_SERVER_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "llmrt/runtime.h"
#include "server/engine_loop.h"

enum { SRV_HIST_MAX_BUCKETS = 24, SRV_MAX_STATUS_CODES = 16 };

typedef struct srv_histogram {
    const double *bounds; /* upper bounds, ascending; +Inf is implicit */
    int num_bounds;
    uint64_t counts[SRV_HIST_MAX_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
} srv_histogram;

struct srv_metrics {
    pthread_mutex_t lock;
    char model_name[256];
    uint64_t finished[5]; /* stop, length, cancelled, error, other */
    int status_codes[SRV_MAX_STATUS_CODES];
    uint64_t status_counts[SRV_MAX_STATUS_CODES];
    uint64_t prompt_tokens, generation_tokens;
    srv_histogram ttft, tpot, e2e, queue;
};

void srv_metrics_init(srv_metrics *m, const char *model_name);
void srv_metrics_destroy(srv_metrics *m);
/* One finished runtime request. */
void srv_metrics_record_result(srv_metrics *m, const llmrt_result *result);
/* One HTTP response. */
void srv_metrics_record_status(srv_metrics *m, int status);
/* The Prometheus text exposition; malloc'd. */
char *srv_metrics_render(srv_metrics *m, const srv_engine_snapshot *snapshot);

#endif
