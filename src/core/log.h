/* Logging to stderr with levels, and progress lines for long operations. */
#ifndef LLMRT_CORE_LOG_H
#define LLMRT_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum { LLMRT_LOG_ERROR = 0, LLMRT_LOG_WARN = 1, LLMRT_LOG_INFO = 2, LLMRT_LOG_DEBUG = 3 } llmrt_log_level;

void llmrt_log_set_level(llmrt_log_level level);
llmrt_log_level llmrt_log_get_level(void);
void llmrt_log(llmrt_log_level level, const char *fmt, ...) LLMRT_PRINTF(2, 3);

#define LLMRT_INFO(...) llmrt_log(LLMRT_LOG_INFO, __VA_ARGS__)
#define LLMRT_WARN(...) llmrt_log(LLMRT_LOG_WARN, __VA_ARGS__)
#define LLMRT_DEBUG(...) llmrt_log(LLMRT_LOG_DEBUG, __VA_ARGS__)

/* A progress line on stderr ("label  42% (123/456 MiB)"), redrawn at most a
 * few times a second when stderr is a terminal, and printed at 25% steps
 * otherwise. Silent below LLMRT_LOG_INFO and for totals under 64 MiB. */
typedef struct llmrt_progress {
    const char *label;
    uint64_t total;
    uint64_t done;
    double last_print_time;
    int last_quarter;
    int is_tty;
} llmrt_progress;

void llmrt_progress_begin(llmrt_progress *p, const char *label, uint64_t total);
void llmrt_progress_add(llmrt_progress *p, uint64_t amount);
void llmrt_progress_end(llmrt_progress *p);

/* Monotonic seconds. */
double llmrt_now_seconds(void);

#endif
