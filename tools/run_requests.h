/* llmrt run --requests FILE.jsonl: many requests through one runtime. */
#ifndef LLMRT_TOOLS_RUN_REQUESTS_H
#define LLMRT_TOOLS_RUN_REQUESTS_H

#include <stdint.h>

#include "llmrt/llmrt.h"
#include "run_output.h"

typedef struct run_requests_options {
    const char *path;  /* the JSONL file */
    int32_t beams;     /* --beams: the default for lines without "beams" (0 = off) */
} run_requests_options;

/* Returns the exit code: 0 when every request succeeded, 1 otherwise. */
int run_requests(const run_settings *s, const llmrt_engine_options *eo, const run_requests_options *ro);

/* Monotonic seconds. */
double cli_now_seconds(void);

#endif
