/* A growable byte buffer for text being assembled: generated text, HTTP
 * bodies, server-sent events, metrics pages.
 *
 * The bytes are kept NUL-terminated (once anything is allocated), so that
 * text in the buffer is also a C string; the NUL is not counted in `len`.
 * The buffer owns `data` until text_buffer_free, or until a caller takes
 * `data` and sets the buffer back to {0}.
 *
 * Running out of memory, or a length past SIZE_MAX, is reported twice: the
 * call returns 0 and `failed` is set. `failed` sticks, and later appends do
 * nothing, so a run of appends may be checked once at its end; the contents
 * stay as they were before the failing call. text_buffer_reset clears it. */
#ifndef LLMRT_CORE_TEXT_BUFFER_H
#define LLMRT_CORE_TEXT_BUFFER_H

#include <stdarg.h>
#include <stddef.h>

#include "core/status.h"

/* {0} is an empty buffer that has allocated nothing. */
typedef struct text_buffer {
    char *data; /* NULL until something is allocated */
    size_t len; /* bytes, without the NUL */
    size_t cap; /* bytes allocated, the NUL included */
    int failed; /* an append or reserve failed: see above */
} text_buffer;

/* Makes room for `extra` more bytes (and the NUL) without a further
 * allocation. Returns 1, or 0 on failure. */
int text_buffer_reserve(text_buffer *b, size_t extra);
/* Appends n bytes (which may include NULs). Returns 1, or 0 on failure. */
int text_buffer_append(text_buffer *b, const void *bytes, size_t n);
/* Appends printf-formatted text. Returns 1, or 0 on failure (an encoding
 * error of vsnprintf counts as one). */
int text_buffer_printf(text_buffer *b, const char *fmt, ...) LLMRT_PRINTF(2, 3);
int text_buffer_vprintf(text_buffer *b, const char *fmt, va_list ap);
/* Keeps the first `len` bytes (len ≤ b->len). */
void text_buffer_truncate(text_buffer *b, size_t len);
/* Removes the first n bytes (n ≤ b->len), moving the rest to the front. */
void text_buffer_drop_front(text_buffer *b, size_t n);
/* Empties the buffer and clears `failed`, keeping its memory for reuse. */
void text_buffer_reset(text_buffer *b);
/* Frees the memory; the buffer is {0} again. */
void text_buffer_free(text_buffer *b);

#endif
