#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static llmrt_log_level current_level = LLMRT_LOG_WARN;

void llmrt_log_set_level(llmrt_log_level level) { current_level = level; }
llmrt_log_level llmrt_log_get_level(void) { return current_level; }

void llmrt_log(llmrt_log_level level, const char *fmt, ...) {
    if (level > current_level) return;
    static const char *const prefix[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "llmrt %s: ", prefix[level]);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
}

double llmrt_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress_print(llmrt_progress *p, int final) {
    double pct = p->total ? 100.0 * (double)p->done / (double)p->total : 100.0;
    const double mib = 1024.0 * 1024.0;
    if (p->is_tty)
        fprintf(stderr, "\r%s %5.1f%% (%.0f/%.0f MiB)%s", p->label, pct, (double)p->done / mib,
                (double)p->total / mib, final ? "\n" : "");
    else
        fprintf(stderr, "%s %5.1f%% (%.0f/%.0f MiB)\n", p->label, pct, (double)p->done / mib,
                (double)p->total / mib);
    fflush(stderr);
}

void llmrt_progress_begin(llmrt_progress *p, const char *label, uint64_t total) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->last_print_time = llmrt_now_seconds();
    p->last_quarter = 0;
    p->is_tty = isatty(STDERR_FILENO);
}

/* Below this a long operation is not long: no progress lines. */
static const uint64_t PROGRESS_MIN_BYTES = (uint64_t)64 << 20;

void llmrt_progress_add(llmrt_progress *p, uint64_t amount) {
    p->done += amount;
    if (current_level < LLMRT_LOG_INFO || p->total < PROGRESS_MIN_BYTES) return;
    if (p->is_tty) {
        double now = llmrt_now_seconds();
        if (now - p->last_print_time < 0.2) return;
        p->last_print_time = now;
        progress_print(p, 0);
    } else {
        int quarter = p->total ? (int)(4 * p->done / p->total) : 4;
        if (quarter > p->last_quarter && quarter < 4) {
            p->last_quarter = quarter;
            progress_print(p, 0);
        }
    }
}

void llmrt_progress_end(llmrt_progress *p) {
    p->done = p->total;
    if (current_level >= LLMRT_LOG_INFO && p->total >= PROGRESS_MIN_BYTES) progress_print(p, 1);
}
