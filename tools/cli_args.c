#include "cli_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/llmrt.h"
#include "llmrt/plugin.h"

static const char *pending_inline_value;

void cli_begin(cli_args *a, const char *command, int argc, char **argv) {
    a->argc = argc;
    a->argv = argv;
    a->index = 1;
    a->command = command;
    a->failed = 0;
    pending_inline_value = NULL;
}

void cli_fail(cli_args *a, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "%s: ", a->command);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    a->failed = 1;
}

const char *cli_next(cli_args *a) {
    static char name[128];
    pending_inline_value = NULL;
    if (a->failed || a->index >= a->argc) return NULL;
    const char *arg = a->argv[a->index++];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (!eq) return arg;
    size_t len = (size_t)(eq - arg);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, arg, len);
    name[len] = '\0';
    pending_inline_value = eq + 1;
    return name;
}

const char *cli_value(cli_args *a, const char *option) {
    if (pending_inline_value) {
        const char *v = pending_inline_value;
        pending_inline_value = NULL;
        return v;
    }
    if (a->index >= a->argc) {
        cli_fail(a, "%s needs a value", option);
        return NULL;
    }
    return a->argv[a->index++];
}

int cli_int(cli_args *a, const char *option, int64_t min, int64_t max, int64_t *out) {
    const char *v = cli_value(a, option);
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        cli_fail(a, "%s '%s': expected an integer in [%lld, %lld]", option, v, (long long)min, (long long)max);
        return 0;
    }
    *out = x;
    return 1;
}

const char *cli_format_number(char buf[32], double x) {
    if (x == floor(x) && fabs(x) < 1e18) snprintf(buf, 32, "%.0f", x);
    else snprintf(buf, 32, "%g", x);
    return buf;
}

int cli_float(cli_args *a, const char *option, double min, double max, double *out) {
    const char *v = cli_value(a, option);
    if (!v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < min || x > max) {
        char lo[32], hi[32];
        cli_fail(a, "%s '%s': expected a number in [%s, %s]", option, v, cli_format_number(lo, min),
                 cli_format_number(hi, max));
        return 0;
    }
    *out = x;
    return 1;
}

int cli_int_list(cli_args *a, const char *option, const char *text, int32_t **out, int32_t *count) {
    *out = NULL;
    *count = 0;
    size_t capacity = 16;
    int32_t *ids = malloc(capacity * sizeof *ids);
    if (!ids) return 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (errno || end == p || x < INT32_MIN || x > INT32_MAX || (*end && *end != ',')) {
            cli_fail(a, "%s: '%s' is not a comma-separated list of integers", option, text);
            free(ids);
            return 0;
        }
        if ((size_t)*count == capacity) {
            capacity *= 2;
            int32_t *grown = realloc(ids, capacity * sizeof *ids);
            if (!grown) {
                free(ids);
                return 0;
            }
            ids = grown;
        }
        ids[(*count)++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (*count == 0) {
        cli_fail(a, "%s: empty list", option);
        free(ids);
        return 0;
    }
    *out = ids;
    return 1;
}

char *cli_read_file(const char *path, size_t *size) {
    char *data = NULL;
    return llmrt_read_file(path, LLMRT_READ_MAX, &data, size) == LLMRT_OK ? data : NULL;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or code points past
 * U+10FFFF. */
size_t cli_utf8_invalid_at(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || i + n > len) return i;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min_for_length[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for_length[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += n;
    }
    return SIZE_MAX;
}

int cli_check_utf8(const char *command, const char *what, const char *text, size_t len) {
    size_t bad = cli_utf8_invalid_at(text, len);
    if (bad == SIZE_MAX) return 1;
    fprintf(stderr, "%s: %s: invalid UTF-8 at byte offset %zu\n", command, what, bad);
    return 0;
}

int cli_plugin(cli_args *a, const char *option) {
    if (strcmp(option, "--plugin") != 0) return 0;
    const char *path = cli_value(a, option);
    if (path && llmrt_plugin_load(path) != LLMRT_OK) cli_fail(a, "--plugin: %s", llmrt_last_error());
    return 1;
}

int cli_engine_limit(cli_args *a, const char *option, int32_t *max_seq_len, int32_t *max_batch,
                     int32_t *max_num_tokens) {
    int32_t *target = strcmp(option, "--max-seq-len") == 0      ? max_seq_len
                      : strcmp(option, "--max-batch") == 0      ? max_batch
                      : strcmp(option, "--max-num-tokens") == 0 ? max_num_tokens
                                                                : NULL;
    if (!target) return 0;
    int64_t x;
    if (cli_int(a, option, 1, 1 << 24, &x)) *target = (int32_t)x;
    return 1;
}

int cli_engine_backend(cli_args *a, const char *option, const char **backend) {
    if (strcmp(option, "--backend") != 0) return 0;
    const char *v = cli_value(a, option);
    if (v && strcmp(v, "cpu") != 0 && strcmp(v, "cuda") != 0) cli_fail(a, "--backend '%s': expected cpu or cuda", v);
    else if (v) *backend = v;
    return 1;
}

int cli_engine_cpu_precision(cli_args *a, const char *option, const char **precision) {
    if (strcmp(option, "--cpu-precision") != 0) return 0;
    const char *v = cli_value(a, option);
    if (v && strcmp(v, "auto") != 0 && strcmp(v, "fp32") != 0)
        cli_fail(a, "--cpu-precision '%s': expected auto or fp32", v);
    else if (v) *precision = v;
    return 1;
}
