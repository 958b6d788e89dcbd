#include "core/text_buffer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growth doubles what is needed, so appending n bytes one piece at a time
 * costs O(n) copies; small buffers start at this many bytes. */
#define TEXT_BUFFER_MIN_CAP 64

static int fail(text_buffer *b) {
    b->failed = 1;
    return 0;
}

int text_buffer_reserve(text_buffer *b, size_t extra) {
    if (b->failed) return 0;
    if (extra > SIZE_MAX - 1 - b->len) return fail(b);
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 1;
    size_t cap = need <= SIZE_MAX / 2 ? need * 2 : need;
    if (cap < TEXT_BUFFER_MIN_CAP) cap = TEXT_BUFFER_MIN_CAP;
    char *grown = realloc(b->data, cap);
    if (!grown) return fail(b);
    b->data = grown;
    b->cap = cap;
    b->data[b->len] = '\0'; /* a first allocation is a C string at once */
    return 1;
}

int text_buffer_append(text_buffer *b, const void *bytes, size_t n) {
    if (!text_buffer_reserve(b, n)) return 0;
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

int text_buffer_vprintf(text_buffer *b, const char *fmt, va_list ap) {
    if (b->failed) return 0;
    /* first into the room there is; a second pass only when it was short */
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    int ok = n >= 0;
    if (ok && (size_t)n >= room) {
        ok = text_buffer_reserve(b, (size_t)n);
        if (ok) n = vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    if (!ok || n < 0) {
        if (b->data) b->data[b->len] = '\0'; /* undo a partial write */
        return fail(b);
    }
    b->len += (size_t)n;
    return 1;
}

int text_buffer_printf(text_buffer *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int ok = text_buffer_vprintf(b, fmt, ap);
    va_end(ap);
    return ok;
}

void text_buffer_truncate(text_buffer *b, size_t len) {
    if (len >= b->len) return;
    b->len = len;
    b->data[len] = '\0';
}

void text_buffer_drop_front(text_buffer *b, size_t n) {
    if (n == 0) return;
    if (n > b->len) n = b->len;
    memmove(b->data, b->data + n, b->len - n + 1);
    b->len -= n;
}

void text_buffer_reset(text_buffer *b) {
    b->len = 0;
    b->failed = 0;
    if (b->data) b->data[0] = '\0';
}

void text_buffer_free(text_buffer *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
