/* llmrt bench --url: the benchmark's requests sent to a live server over
 * the OpenAI streaming API (POST /v1/completions, stream with usage), C in
 * flight at once, one keep-alive HTTP/1.1 connection each, all driven by
 * one thread. */
#ifndef LLMRT_TOOLS_BENCH_URL_H
#define LLMRT_TOOLS_BENCH_URL_H

#include <stdint.h>

typedef struct bench_prompt {
    int32_t *ids;
    int32_t n;
    const char *text;
    int32_t max_tokens;
} bench_prompt;

/* One finished request as the client saw it. */
typedef struct bench_url_result {
    int ok;
    char error[256];
    int32_t prompt_tokens, output_tokens; /* from the usage chunk */
    double ttft;                          /* request sent -> first chunk with text */
    double e2e;                           /* request sent -> [DONE] */
    const double *chunk_times;            /* seconds after sending, of every content chunk */
    int32_t num_chunks;
} bench_url_result;

typedef void (*bench_url_record)(void *user, const bench_url_result *result);

/* Sends prompts[(first + i) % num_prompts] for i < total with `concurrency`
 * in flight; with `arrivals` (seconds after the start, one per request,
 * ascending) request i is not sent before its arrival, and concurrency is a
 * cap (0: none). Calls record (serialised) for each; *seconds is the wall
 * time from the start to the last finish. url is http://HOST:PORT. Returns
 * 0 when the server cannot be reached. */
int bench_url_run(const char *url, const bench_prompt *prompts, int32_t num_prompts, int32_t first, int32_t total,
                  int32_t concurrency, const double *arrivals, float temperature, uint64_t seed,
                  bench_url_record record, void *user, double *seconds);

#endif
