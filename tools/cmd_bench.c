/* llmrt bench: serving throughput and latency through the runtime.
 *
 * Synthetic requests (random prompt ids of --input-len tokens, exactly
 * --output-len tokens each, EOS ignored) or a JSONL dataset; either a fixed
 * number in flight (--concurrency) or Poisson arrivals (--rate, optionally
 * capped by --concurrency). Warm-up requests run first and are not counted.
 * Reports request and token throughput, TTFT, TPOT (per request: decode time
 * / (tokens - 1)), ITL (every gap between tokens) and end-to-end latency as
 * min / mean / p50 / p90 / p99, and the KV cache's peak usage. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_url.h"
#include "cli_args.h"
#include "commands.h"
#include "launch.h"
#include "llmrt/runtime.h"
#include "run_requests.h"

static void bench_usage(FILE *out) {
    fprintf(out,
            "usage: llmrt bench (--engine FILE | --url URL) [--input-len N --output-len N | --dataset FILE.jsonl]\n"
            "                   [--concurrency C] [--rate R] [--requests N] [options]\n\n"
            "  --engine FILE       the engine to run\n"
            "  --url URL           instead, a live server (http://HOST:PORT) over the OpenAI streaming API\n"
            "                      (synthetic prompt ids are drawn below 1000; TTFT at the first SSE chunk)\n"
            "  --input-len N       prompt tokens of synthetic requests (default 128)\n"
            "  --output-len N      generated tokens per request (default 128)\n"
            "  --dataset FILE      JSONL requests (prompt or prompt_ids, max_tokens), used in turn\n"
            "                      (a regular file of at most 256 MiB)\n"
            "  --concurrency C     requests in flight (default 1; with --rate: a cap, 0 = none)\n"
            "  --rate R            Poisson arrivals at R requests/s (default: off)\n"
            "  --requests N        measured requests (default 32)\n"
            "  --warmup N          unmeasured requests first (default: the concurrency, at least 1)\n"
            "  --temperature T     sampling temperature (default 0: greedy)\n"
            "  --seed S            prompts and arrivals (default 0)\n"
            "  --threads N         CPU threads (default: all cores)\n"
            CLI_ENGINE_BACKEND_HELP
            CLI_ENGINE_CPU_PRECISION_HELP
            CLI_ENGINE_LIMITS_HELP
            CLI_PLUGIN_HELP
            "  --device N          GPU ordinal (default 0)\n"
            CLI_LAUNCH_HELP
            "  --json              print one JSON object\n");
}

/* Request ids whose last event arrived; the callback fills, main drains. */
typedef struct finish_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    llmrt_request_id *ids;
    int32_t count, cap;
} finish_queue;

static int on_event(void *user, const llmrt_token_event *ev) {
    finish_queue *q = user;
    if (!ev->finished) return 0;
    pthread_mutex_lock(&q->lock);
    if (q->count < q->cap) q->ids[q->count++] = ev->request;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

typedef struct series {
    double *v;
    size_t n, cap;
} series;

static int series_add(series *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *grown = realloc(s->v, cap * sizeof *grown);
        if (!grown) return 0;
        s->v = grown;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 1;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct summary {
    double min, mean, p50, p90, p99;
} summary;

/* Percentiles interpolated linearly between ranks (numpy's default). */
static summary summarize(series *s) {
    summary out = {0};
    if (s->n == 0) return out;
    qsort(s->v, s->n, sizeof *s->v, by_value);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) sum += s->v[i];
    out.min = s->v[0];
    out.mean = sum / (double)s->n;
    double q[3] = {0.5, 0.9, 0.99}, *dst[3] = {&out.p50, &out.p90, &out.p99};
    for (int k = 0; k < 3; k++) {
        double pos = q[k] * (double)(s->n - 1);
        size_t lo = (size_t)pos, hi = lo + 1 < s->n ? lo + 1 : lo;
        *dst[k] = s->v[lo] + (s->v[hi] - s->v[lo]) * (pos - (double)lo);
    }
    return out;
}

static json_t *summary_json(summary s) {
    return json_pack("{s:f, s:f, s:f, s:f, s:f}", "min", s.min * 1e3, "mean", s.mean * 1e3, "p50", s.p50 * 1e3, "p90",
                     s.p90 * 1e3, "p99", s.p99 * 1e3);
}

static void print_row(const char *name, summary s) {
    printf("  %-6s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, s.min * 1e3, s.mean * 1e3, s.p50 * 1e3, s.p90 * 1e3,
           s.p99 * 1e3);
}

static int load_dataset(const char *path, bench_prompt **out, int32_t *count, json_t **keep) {
    size_t size = 0, line_no = 0;
    char *text = cli_read_file(path, &size);
    if (!text) return report_failure("bench") && 0;
    json_t *all = json_array();
    int ok = all != NULL;
    if (strlen(text) != size) {
        fprintf(stderr, "llmrt bench: %s: a NUL byte at offset %zu\n", path, strlen(text));
        ok = 0;
    }
    for (char *line = text, *end = NULL; ok && line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        if (end) *end = '\0';
        line_no++;
        if (line[strspn(line, " \t\r")] == '\0') continue;
        json_error_t err;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(o)) {
            fprintf(stderr, "llmrt bench: %s:%zu: %s\n", path, line_no, o ? "a line must be an object" : err.text);
            ok = 0;
        }
        if (o && json_array_append_new(all, o) != 0) ok = 0;
    }
    free(text);
    size_t n = json_array_size(all);
    if (ok && n == 0) {
        fprintf(stderr, "llmrt bench: %s: no requests (one JSON object per line)\n", path);
        ok = 0;
    }
    *out = calloc(n + 1, sizeof **out);
    if (ok && !*out) fprintf(stderr, "llmrt bench: %s: out of memory\n", path);
    for (size_t i = 0; ok && *out && i < n; i++) {
        json_t *o = json_array_get(all, i), *ids = json_object_get(o, "prompt_ids");
        bench_prompt *p = &(*out)[i];
        /* the benchmark uses these three; a sampling field would be ignored */
        const char *key;
        json_t *value;
        json_object_foreach(o, key, value) {
            if (ok && strcmp(key, "prompt") != 0 && strcmp(key, "prompt_ids") != 0 && strcmp(key, "max_tokens") != 0) {
                fprintf(stderr, "llmrt bench: %s: request %zu: unsupported field \"%.100s\" (prompt, prompt_ids, "
                                "max_tokens)\n", path, i, key);
                ok = 0;
            }
        }
        json_t *max_tokens = json_object_get(o, "max_tokens");
        p->text = json_string_value(json_object_get(o, "prompt"));
        p->max_tokens = max_tokens ? (int32_t)json_integer_value(max_tokens) : 128;
        if (ok && max_tokens && (!json_is_integer(max_tokens) || json_integer_value(max_tokens) < 1 ||
                                 json_integer_value(max_tokens) > 1 << 24)) {
            fprintf(stderr, "llmrt bench: %s: request %zu: max_tokens must be an integer in [1, 16777216]\n", path, i);
            ok = 0;
        }
        if (json_is_array(ids)) {
            p->n = (int32_t)json_array_size(ids);
            p->ids = malloc(((size_t)p->n + 1) * sizeof *p->ids);
            for (int32_t k = 0; p->ids && k < p->n; k++) {
                json_t *id = json_array_get(ids, (size_t)k);
                if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX) {
                    fprintf(stderr, "llmrt bench: %s: request %zu: prompt_ids[%d] is not a token id\n", path, i, k);
                    ok = 0;
                    break;
                }
                p->ids[k] = (int32_t)json_integer_value(id);
            }
        }
        if (!p->text && !p->ids) {
            fprintf(stderr, "llmrt bench: %s: request %zu has no prompt or prompt_ids\n", path, i);
            ok = 0;
        }
    }
    *count = (int32_t)n;
    *keep = all;
    return ok && n > 0 && *out;
}

static double exponential(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(*state >> 11) * (1.0 / 9007199254740992.0);
    return -log(1.0 - u);
}

/* Waits for the next finished id, until `deadline` (0: none); returns 0 on timeout. */
static int next_finished(finish_queue *q, double deadline, llmrt_request_id *id) {
    pthread_mutex_lock(&q->lock);
    while (q->count == 0) {
        if (deadline > 0) {
            double left = deadline - cli_now_seconds();
            if (left <= 0) break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long ns = (long long)ts.tv_nsec + (long long)(left * 1e9);
            ts.tv_sec += (time_t)(ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            pthread_cond_timedwait(&q->cond, &q->lock, &ts);
        } else {
            pthread_cond_wait(&q->cond, &q->lock);
        }
    }
    int got = q->count > 0;
    if (got) {
        *id = q->ids[0];
        memmove(q->ids, q->ids + 1, (size_t)(--q->count) * sizeof *q->ids);
    }
    pthread_mutex_unlock(&q->lock);
    return got;
}

typedef struct bench_config {
    int32_t concurrency, requests, warmup;
    double rate;
    float temperature;
    uint64_t seed;
} bench_config;

typedef struct bench_totals {
    series ttft, tpot, itl, e2e;
    int64_t input_tokens, output_tokens;
    int32_t completed, failed;
    double seconds;
    double cpu_seconds;       /* this process's CPU over the measured requests */
} bench_totals;

/* User and system CPU of every thread of the process. With --url it is the
 * load generator's own, which shares the machine with a local server. */
static double process_cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec + 1e-6 * (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/* Runs `total` requests; measures them into t when t != NULL. */
static int drive(llmrt_runtime *rt, finish_queue *q, const bench_prompt *prompts, int32_t num_prompts,
                 const bench_config *c, int32_t total, int32_t first, bench_totals *t) {
    uint64_t arrivals = c->seed * 2654435761u + 17;
    int32_t cap = c->rate > 0 ? (c->concurrency > 0 ? c->concurrency : total) : (c->concurrency > 0 ? c->concurrency : 1);
    double start = cli_now_seconds(), next_arrival = start, last_finish = start;
    int32_t submitted = 0, in_flight = 0, finished = 0;
    while (finished < total) {
        while (submitted < total && in_flight < cap && (c->rate <= 0 || cli_now_seconds() >= next_arrival)) {
            const bench_prompt *p = &prompts[(first + submitted) % num_prompts];
            llmrt_request r;
            llmrt_request_init(&r);
            r.prompt_ids = p->ids;
            r.num_prompt_ids = p->n;
            r.prompt_text = p->ids ? NULL : p->text;
            r.sampling.max_tokens = p->max_tokens;
            r.sampling.ignore_eos = 1;
            r.sampling.temperature = c->temperature;
            r.sampling.seed = c->seed + (uint64_t)submitted;
            r.detokenize = 0;
            r.callback = on_event;
            r.user_data = q;
            llmrt_request_id id;
            if (llmrt_runtime_submit(rt, &r, &id) != LLMRT_OK) return report_failure("bench") && 0;
            submitted++;
            in_flight++;
            if (c->rate > 0) next_arrival += exponential(&arrivals) / c->rate;
        }
        llmrt_request_id id;
        double deadline = c->rate > 0 && submitted < total && in_flight < cap ? next_arrival : 0;
        if (!next_finished(q, deadline, &id)) continue;
        llmrt_result res;
        int done = 0;
        if (llmrt_runtime_wait(rt, id, -1, &res, &done) != LLMRT_OK) return report_failure("bench") && 0;
        in_flight--;
        finished++;
        last_finish = cli_now_seconds();
        if (t && res.status == LLMRT_OK && res.num_sequences == 1) {
            const llmrt_sequence_output *o = &res.sequences[0];
            t->completed++;
            t->input_tokens += res.prompt_tokens;
            t->output_tokens += o->num_output;
            int ok = series_add(&t->ttft, res.ttft_seconds) && series_add(&t->e2e, res.e2e_seconds);
            if (o->num_output > 1) ok = ok && series_add(&t->tpot, (res.e2e_seconds - res.ttft_seconds) / (o->num_output - 1));
            for (int32_t k = 1; k < res.num_token_times; k++)
                ok = ok && series_add(&t->itl, res.token_times[k] - res.token_times[k - 1]);
            if (!ok) return fprintf(stderr, "llmrt bench: out of memory\n"), llmrt_result_free(&res), 0;
        } else if (t) {
            t->failed++;
            fprintf(stderr, "llmrt bench: request failed: %s\n", res.error ? res.error : "?");
        }
        llmrt_result_free(&res);
    }
    if (t) t->seconds = last_finish - start;
    return 1;
}

/* One request of bench --url; user is the totals, NULL for warm-up. */
static void url_record(void *user, const bench_url_result *r) {
    bench_totals *t = user;
    if (!t) return;
    if (!r->ok) {
        t->failed++;
        fprintf(stderr, "llmrt bench: request failed: %s\n", r->error);
        return;
    }
    t->completed++;
    t->input_tokens += r->prompt_tokens;
    t->output_tokens += r->output_tokens;
    int ok = series_add(&t->ttft, r->ttft) && series_add(&t->e2e, r->e2e);
    if (r->output_tokens > 1) ok = ok && series_add(&t->tpot, (r->e2e - r->ttft) / (r->output_tokens - 1));
    for (int32_t k = 1; k < r->num_chunks; k++) ok = ok && series_add(&t->itl, r->chunk_times[k] - r->chunk_times[k - 1]);
    if (!ok) t->failed++;
}

int cmd_bench(int argc, char **argv) {
    cli_args a;
    cli_begin(&a, "llmrt bench", argc, argv);
    const char *engine_path = NULL, *dataset = NULL, *url = NULL;
    int64_t input_len = 128, output_len = 128;
    bench_config c = {.concurrency = 1, .requests = 32, .warmup = -1};
    int json = 0, concurrency_set = 0;
    llmrt_engine_options eo;
    llmrt_engine_options_init(&eo);
    cli_launch launch = {0};
    const char *opt;
    while ((opt = cli_next(&a))) {
        int64_t x;
        double f;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            bench_usage(stdout);
            return 0;
        } else if (strcmp(opt, "--engine") == 0) engine_path = cli_value(&a, opt);
        else if (strcmp(opt, "--dataset") == 0) dataset = cli_value(&a, opt);
        else if (strcmp(opt, "--url") == 0) url = cli_value(&a, opt);
        else if (strcmp(opt, "--input-len") == 0) cli_int(&a, opt, 1, 1 << 24, &input_len);
        else if (strcmp(opt, "--output-len") == 0) cli_int(&a, opt, 1, 1 << 24, &output_len);
        else if (strcmp(opt, "--concurrency") == 0) { if (cli_int(&a, opt, 0, 1 << 20, &x)) c.concurrency = (int32_t)x, concurrency_set = 1; }
        else if (strcmp(opt, "--requests") == 0) { if (cli_int(&a, opt, 1, 1 << 24, &x)) c.requests = (int32_t)x; }
        else if (strcmp(opt, "--warmup") == 0) { if (cli_int(&a, opt, 0, 1 << 20, &x)) c.warmup = (int32_t)x; }
        else if (strcmp(opt, "--rate") == 0) { if (cli_float(&a, opt, 0, 1e9, &f)) c.rate = f; }
        else if (strcmp(opt, "--temperature") == 0) { if (cli_float(&a, opt, 0, 100, &f)) c.temperature = (float)f; }
        else if (strcmp(opt, "--seed") == 0) { if (cli_int(&a, opt, 0, INT64_MAX, &x)) c.seed = (uint64_t)x; }
        else if (strcmp(opt, "--threads") == 0) { if (cli_int(&a, opt, 1, 1024, &x)) eo.num_threads = (int32_t)x; }
        else if (cli_engine_limit(&a, opt, &eo.max_seq_len, &eo.max_batch, &eo.max_num_tokens)) continue;
        else if (cli_engine_backend(&a, opt, &eo.backend)) continue;
        else if (cli_engine_cpu_precision(&a, opt, &eo.cpu_precision)) continue;
        else if (strcmp(opt, "--device") == 0) { if (cli_int(&a, opt, 0, 1024, &x)) eo.device = (int32_t)x; }
        else if (strcmp(opt, "--json") == 0) json = 1;
        else if (cli_plugin(&a, opt)) continue;
        else if (cli_launch_option(&a, opt, &launch)) continue;
        else cli_fail(&a, "unknown option '%s' (see llmrt bench --help)", opt);
    }
    if (a.failed) return 2;
    if (!engine_path == !url) {
        fprintf(stderr, "llmrt bench: give one of --engine FILE and --url URL\n");
        return 2;
    }
    if (url && eo.backend) {
        fprintf(stderr, "llmrt bench: --backend is for --engine (the server at --url runs on its own)\n");
        return 2;
    }
    if (url && (launch.ranks || launch.num_gpus)) {
        fprintf(stderr, "llmrt bench: --ranks and --gpus are for --engine (the server at --url has its own ranks)\n");
        return 2;
    }
    const int launched = cli_launch_ranks(&launch, "llmrt bench", argc, argv, engine_path, eo.backend, eo.num_threads);
    if (launched >= 0) return launched;
    if (c.rate > 0 && !concurrency_set) c.concurrency = 0;
    if (c.warmup < 0) c.warmup = c.concurrency > 0 ? c.concurrency : 1;
    llmrt_set_log_level(1);
    llmrt_engine *engine = NULL;
    llmrt_runtime *rt = NULL;
    bench_prompt *prompts = NULL;
    int32_t num_prompts = 0;
    json_t *dataset_json = NULL;
    finish_queue q = {.cap = c.requests + c.warmup + 1};
    bench_totals t = {0};
    int code = 1;
    pthread_mutex_init(&q.lock, NULL);
    pthread_cond_init(&q.cond, NULL);
    q.ids = malloc((size_t)q.cap * sizeof *q.ids);
    if (!q.ids) goto done;
    if (!url && llmrt_engine_load(engine_path, &eo, &engine) != LLMRT_OK) {
        code = report_failure("bench");
        goto done;
    }
    if (engine && llmrt_engine_rank(engine) > 0) { /* a tensor-parallel rank: rank 0 drives it */
        code = llmrt_engine_follow(engine) == LLMRT_OK ? 0 : report_failure("bench");
        goto done;
    }
    if (dataset) {
        if (!load_dataset(dataset, &prompts, &num_prompts, &dataset_json)) goto done;
    } else {
        if (engine && input_len >= llmrt_engine_max_seq_len(engine)) { /* a server checks its own */
            fprintf(stderr, "llmrt bench: --input-len %lld leaves no room to generate: the engine's max sequence "
                            "length is %d\n", (long long)input_len, llmrt_engine_max_seq_len(engine));
            goto done;
        }
        /* one prompt per request, so no prefix is shared by accident */
        num_prompts = c.requests + c.warmup;
        prompts = calloc((size_t)num_prompts, sizeof *prompts);
        uint64_t st = c.seed * 0x9e3779b97f4a7c15ull + 1;
        int32_t vocab = url ? 1000 : llmrt_engine_vocab_size(engine);
        for (int32_t i = 0; prompts && i < num_prompts; i++) {
            prompts[i].n = (int32_t)input_len;
            prompts[i].max_tokens = (int32_t)output_len;
            prompts[i].ids = malloc((size_t)input_len * sizeof *prompts[i].ids);
            if (!prompts[i].ids) goto done;
            for (int64_t k = 0; k < input_len; k++) {
                st ^= st << 13, st ^= st >> 7, st ^= st << 17;
                prompts[i].ids[k] = (int32_t)(st % (uint64_t)vocab);
            }
        }
        if (!prompts) goto done;
    }
    llmrt_runtime_stats st = {0};
    if (url) {
        int32_t warm_concurrency = c.concurrency > 0 ? c.concurrency : 1;
        /* the in-process run's arrival times: same seed, same draws */
        double *arrivals = c.rate > 0 ? malloc((size_t)c.requests * sizeof *arrivals) : NULL;
        uint64_t draws = c.seed * 2654435761u + 17;
        for (int32_t i = 0; arrivals && i < c.requests; i++)
            arrivals[i] = i ? arrivals[i - 1] + exponential(&draws) / c.rate : 0;
        int ok = (c.rate <= 0 || arrivals) &&
                 (c.warmup == 0 || bench_url_run(url, prompts, num_prompts, 0, c.warmup, warm_concurrency, NULL,
                                                 c.temperature, c.seed, url_record, NULL, &t.seconds));
        double cpu = process_cpu_seconds();
        ok = ok && bench_url_run(url, prompts, num_prompts, c.warmup, c.requests, c.rate > 0 ? c.concurrency : warm_concurrency,
                                 arrivals, c.temperature, c.seed, url_record, &t, &t.seconds);
        t.cpu_seconds = process_cpu_seconds() - cpu;
        free(arrivals);
        if (!ok) goto done;
        engine_path = url;
        goto report;
    }
    llmrt_runtime_options ro;
    llmrt_runtime_options_init(&ro);
    if (llmrt_runtime_create(engine, &ro, &rt) != LLMRT_OK) {
        code = report_failure("bench");
        goto done;
    }
    bench_config warm = c;
    warm.rate = 0;
    if (warm.concurrency == 0) warm.concurrency = c.warmup > 0 ? c.warmup : 1;
    if (c.warmup > 0 && !drive(rt, &q, prompts, num_prompts, &warm, c.warmup, 0, NULL)) goto done;
    double cpu = process_cpu_seconds();
    if (!drive(rt, &q, prompts, num_prompts, &c, c.requests, c.warmup, &t)) goto done;
    t.cpu_seconds = process_cpu_seconds() - cpu;
    llmrt_runtime_get_stats(rt, &st);
report:;
    summary ttft = summarize(&t.ttft), tpot = summarize(&t.tpot), itl = summarize(&t.itl), e2e = summarize(&t.e2e);
    double secs = t.seconds > 0 ? t.seconds : 1e-9;
    double kv_peak = st.kv_total_blocks ? (double)st.kv_peak_used_blocks / st.kv_total_blocks : 0;
    if (json) {
        json_t *o = json_pack("{s:i, s:i, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:i, s:i, s:o, s:o, s:o, s:o}", "requests",
                              t.completed, "failed", t.failed, "duration_s", t.seconds, "request_per_s",
                              t.completed / secs, "output_tokens_per_s", (double)t.output_tokens / secs,
                              "total_tokens_per_s", (double)(t.input_tokens + t.output_tokens) / secs,
                              "input_tokens", (json_int_t)t.input_tokens, "output_tokens", (json_int_t)t.output_tokens,
                              "kv_peak_usage", kv_peak, "kv_peak_blocks", st.kv_peak_used_blocks, "concurrency",
                              c.concurrency, "ttft_ms", summary_json(ttft), "tpot_ms", summary_json(tpot), "itl_ms",
                              summary_json(itl), "e2e_ms", summary_json(e2e));
        json_object_set_new(o, "rate", json_real(c.rate));
        json_object_set_new(o, "cpu_s", json_real(t.cpu_seconds));
        json_object_set_new(o, "cpu_us_per_output_token",
                            json_real(t.output_tokens ? t.cpu_seconds * 1e6 / (double)t.output_tokens : 0));
        json_object_set_new(o, "preemptions", json_integer(st.num_preemptions));
        char *dump = json_dumps(o, JSON_COMPACT);
        if (dump) puts(dump);
        free(dump);
        json_decref(o);
    } else {
        printf("llmrt bench: %s, %d requests (%d warm-up excluded), ", engine_path, t.completed, c.warmup);
        if (c.rate > 0) printf("rate %.2f req/s, concurrency cap %d\n", c.rate, c.concurrency);
        else printf("concurrency %d\n", c.concurrency);
        printf("  duration            %10.3f s\n", t.seconds);
        printf("  request throughput  %10.3f req/s\n", t.completed / secs);
        printf("  output throughput   %10.2f tokens/s\n", (double)t.output_tokens / secs);
        printf("  total throughput    %10.2f tokens/s (%lld in, %lld out)\n",
               (double)(t.input_tokens + t.output_tokens) / secs, (long long)t.input_tokens, (long long)t.output_tokens);
        printf("  CPU of this process %10.3f s (%.1f us per output token%s)\n", t.cpu_seconds,
               t.output_tokens ? t.cpu_seconds * 1e6 / (double)t.output_tokens : 0.0,
               url ? "; the client's own" : "");
        printf("  KV cache peak       %10.1f %% (%d of %d blocks of %d), %lld preemptions\n", 100 * kv_peak,
               st.kv_peak_used_blocks, st.kv_total_blocks, st.kv_block_size, (long long)st.num_preemptions);
        printf("  latency (ms)        %10s %10s %10s %10s %10s\n", "min", "mean", "p50", "p90", "p99");
        print_row("TTFT", ttft);
        print_row("TPOT", tpot);
        print_row("ITL", itl);
        print_row("E2E", e2e);
    }
    code = t.failed ? 1 : 0;
done:
    llmrt_runtime_free(rt);
    llmrt_engine_free(engine);
    for (int32_t i = 0; prompts && i < num_prompts; i++) free(prompts[i].ids);
    free(prompts);
    json_decref(dataset_json);
    free(q.ids);
    free(t.ttft.v);
    free(t.tpot.v);
    free(t.itl.v);
    free(t.e2e.v);
    pthread_mutex_destroy(&q.lock);
    pthread_cond_destroy(&q.cond);
    return code;
}
