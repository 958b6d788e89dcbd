#include "cli_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int cli_float(cli_args *a, const char *option, double min, double max, double *out) {
    const char *v = cli_value(a, option);
    if (!v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < min || x > max) {
        cli_fail(a, "%s '%s': expected a number in [%g, %g]", option, v, min, max);
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
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (!data) return NULL;
    data[n] = '\0';
    if (size) *size = (size_t)n;
    return data;
}
