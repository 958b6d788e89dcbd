/* llmrt — status codes and error messages.
 *
 * Every fallible llmrt call returns an llmrt_status. On failure the call also
 * records a message naming what was wrong (the file, tensor, field or request
 * at fault); llmrt_last_error() returns it. The message is per thread and
 * stays valid until the next failing llmrt call on that thread. */
#ifndef LLMRT_STATUS_H
#define LLMRT_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmrt_status {
    LLMRT_OK = 0,
    LLMRT_ERR_INVALID_ARGUMENT = 1, /* a caller passed a bad value */
    LLMRT_ERR_IO = 2,               /* a file could not be opened, read or written */
    LLMRT_ERR_FORMAT = 3,           /* a file's bytes are malformed or inconsistent */
    LLMRT_ERR_UNSUPPORTED = 4,      /* valid, but not something llmrt does (yet) */
    LLMRT_ERR_OUT_OF_MEMORY = 5,
    LLMRT_ERR_NOT_FOUND = 6,        /* a named tensor, field or file is missing */
    LLMRT_ERR_BACKEND = 7,          /* the device or its library failed */
    LLMRT_ERR_INTERNAL = 8,         /* a broken invariant inside llmrt: a bug */
    LLMRT_ERR_CANCELLED = 9,
    LLMRT_ERR_CAPACITY = 10,        /* a request exceeds the engine's limits */
} llmrt_status;

/* The message of the last failed llmrt call on this thread ("" if none). */
const char *llmrt_last_error(void);

/* A short constant name for a status code, e.g. "format error". */
const char *llmrt_status_name(llmrt_status status);

#ifdef __cplusplus
}
#endif
#endif
