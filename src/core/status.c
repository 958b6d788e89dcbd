#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { ERROR_MESSAGE_CAPACITY = 2048 };
static _Thread_local char error_message[ERROR_MESSAGE_CAPACITY];

const char *llmrt_last_error(void) { return error_message; }

const char *llmrt_status_name(llmrt_status status) {
    switch (status) {
    case LLMRT_OK: return "ok";
    case LLMRT_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LLMRT_ERR_IO: return "i/o error";
    case LLMRT_ERR_FORMAT: return "format error";
    case LLMRT_ERR_UNSUPPORTED: return "unsupported";
    case LLMRT_ERR_OUT_OF_MEMORY: return "out of memory";
    case LLMRT_ERR_NOT_FOUND: return "not found";
    case LLMRT_ERR_BACKEND: return "backend error";
    case LLMRT_ERR_INTERNAL: return "internal error";
    case LLMRT_ERR_CANCELLED: return "cancelled";
    case LLMRT_ERR_CAPACITY: return "over capacity";
    }
    return "unknown status";
}

llmrt_status llmrt_error(llmrt_status status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, args);
    va_end(args);
    return status;
}

llmrt_status llmrt_error_context(llmrt_status status, const char *fmt, ...) {
    char previous[ERROR_MESSAGE_CAPACITY];
    memcpy(previous, error_message, sizeof previous);
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(error_message, sizeof error_message, fmt, args);
    va_end(args);
    if (n >= 0 && (size_t)n + 2 < sizeof error_message && previous[0]) {
        /* append ": <previous>", cut to fit */
        size_t used = (size_t)n, room = sizeof error_message - used - 1;
        size_t len = strlen(previous) + 2 < room ? strlen(previous) + 2 : room;
        memcpy(error_message + used, ": ", 2);
        memcpy(error_message + used + 2, previous, len - 2);
        error_message[used + len] = '\0';
    }
    return status;
}

void llmrt_error_clear(void) { error_message[0] = '\0'; }
