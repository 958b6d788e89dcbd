/* Internal helpers for reporting errors as values. */
#ifndef LLMRT_CORE_STATUS_H
#define LLMRT_CORE_STATUS_H

#include "llmrt/status.h"

#if defined(__GNUC__)
#define LLMRT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LLMRT_PRINTF(a, b)
#endif

/* Records a message for llmrt_last_error() and returns `status`, so a
 * failure reads: return llmrt_error(LLMRT_ERR_FORMAT, "%s: ...", path); */
llmrt_status llmrt_error(llmrt_status status, const char *fmt, ...) LLMRT_PRINTF(2, 3);

/* Prepends context to the current message ("while loading X: <old>") and
 * returns `status` unchanged. */
llmrt_status llmrt_error_context(llmrt_status status, const char *fmt, ...) LLMRT_PRINTF(2, 3);

/* Clears the message of this thread. */
void llmrt_error_clear(void);

#define LLMRT_TRY(expr)                          \
    do {                                         \
        llmrt_status try_status_ = (expr);       \
        if (try_status_ != LLMRT_OK) return try_status_; \
    } while (0)

#endif
