/* Shared by the tokenizer fuzz targets: FUZZ_CHECK names the broken
 * invariant before aborting (the driver then saves the input), and a
 * well-formed UTF-8 test. */
#ifndef LLMRT_TESTS_FUZZ_CHECK_H
#define LLMRT_TESTS_FUZZ_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                        \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant broken: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, "\n");                                                   \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* Is s[0, n) well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF)? Written apart from the tokenizer's tok_utf8_valid on purpose:
 * the decoder's lossy output goes through that code, so it cannot be its
 * own oracle. */
static inline int fuzz_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > n) return 0;
        unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        const unsigned min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

#endif
