/* Fuzz target: the command line's option parsing (tools/cli_args.c), driven
 * the way the subcommands drive it. The input is split at NUL bytes into
 * arguments; options are taken from a table of every kind the subcommands
 * use (flags, strings, ranged integers and numbers, id lists, --backend,
 * "--opt=value" spellings). Whatever the arguments, a value handed back
 * lies in its range and a refusal sets `failed` (with its message on
 * stderr). The same bytes also check the UTF-8 policy of --prompt/--text
 * (cli_utf8_invalid_at) against the tokenizer's own validator and the fuzz
 * oracle. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "fuzz_check.h"

int tok_utf8_valid(const char *s, size_t len); /* src/tokenizer/unicode.c */

typedef enum { FLAG, VALUE, INT, FLOAT, LIST, BACKEND } option_kind;
typedef struct option {
    const char *name;
    option_kind kind;
    double min, max;
} option;

static const option options[] = {
    {"--quiet", FLAG, 0, 0},          {"--json", FLAG, 0, 0},
    {"--engine", VALUE, 0, 0},        {"--stop", VALUE, 0, 0},
    {"--max-tokens", INT, 0, 1 << 24}, {"--seed", INT, 0, (double)INT64_MAX},
    {"--threads", INT, 1, 1024},      {"--beams", INT, 1, 64},
    {"--temperature", FLOAT, 0, 100}, {"--top-p", FLOAT, 0, 1},
    {"--rate", FLOAT, 0, 1e9},        {"--prompt-ids", LIST, 0, 0},
    {"--backend", BACKEND, 0, 0},
};

enum { MAX_ARGS = 64 };

static void check_utf8(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    size_t bad = cli_utf8_invalid_at(s, size);
    int valid = bad == SIZE_MAX;
    FUZZ_CHECK(valid == fuzz_utf8_valid(s, size), "cli_utf8_invalid_at disagrees with the oracle");
    FUZZ_CHECK(valid == tok_utf8_valid(s, size), "cli_utf8_invalid_at disagrees with tok_utf8_valid");
    if (!valid) {
        FUZZ_CHECK(bad < size, "offset %zu past the end %zu", bad, size);
        FUZZ_CHECK(fuzz_utf8_valid(s, bad), "the text before offset %zu is not valid", bad);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_utf8(data, size);
    char *copy = malloc(size + 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (char *p = copy; argc < MAX_ARGS && p <= copy + size; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;

    cli_args a;
    cli_begin(&a, "llmrt fuzz", argc, argv);
    const char *name;
    int steps = 0;
    while ((name = cli_next(&a))) {
        FUZZ_CHECK(++steps <= argc, "cli_next returned more options than arguments");
        const option *o = NULL;
        for (size_t i = 0; i < sizeof options / sizeof options[0] && !o; i++)
            if (strcmp(name, options[i].name) == 0) o = &options[i];
        if (!o) {
            cli_fail(&a, "unknown option '%s'", name);
            FUZZ_CHECK(a.failed, "cli_fail did not mark the parse failed");
            break;
        }
        int64_t x = 0;
        double f = 0;
        int32_t *ids = NULL, count = -1;
        const char *v;
        switch (o->kind) {
        case FLAG:
            break;
        case VALUE:
            v = cli_value(&a, name);
            FUZZ_CHECK(v || a.failed, "%s: no value and no failure", name);
            break;
        case INT:
            if (cli_int(&a, name, (int64_t)o->min, o->max >= (double)INT64_MAX ? INT64_MAX : (int64_t)o->max, &x))
                FUZZ_CHECK(x >= (int64_t)o->min && (double)x <= o->max, "%s = %lld out of range", name, (long long)x);
            else FUZZ_CHECK(a.failed, "%s refused without a failure", name);
            break;
        case FLOAT:
            if (cli_float(&a, name, o->min, o->max, &f))
                FUZZ_CHECK(isfinite(f) && f >= o->min && f <= o->max, "%s = %g out of range", name, f);
            else FUZZ_CHECK(a.failed, "%s refused without a failure", name);
            break;
        case LIST:
            v = cli_value(&a, name);
            if (v && cli_int_list(&a, name, v, &ids, &count)) FUZZ_CHECK(ids && count > 0, "%s: an empty list", name);
            else FUZZ_CHECK(a.failed || !v, "%s refused without a failure", name);
            free(ids);
            break;
        case BACKEND: {
            const char *backend = NULL;
            FUZZ_CHECK(cli_engine_backend(&a, name, &backend), "--backend not taken");
            FUZZ_CHECK(a.failed || (backend && (strcmp(backend, "cpu") == 0 || strcmp(backend, "cuda") == 0)),
                       "--backend gave '%s' without a failure", backend ? backend : "(nothing)");
            break;
        }
        }
        if (a.failed) break;
    }
    char buf[32];
    double number = 0;
    memcpy(&number, data, size < sizeof number ? size : sizeof number);
    const char *text = cli_format_number(buf, number);
    FUZZ_CHECK(strlen(text) < sizeof buf, "cli_format_number overflowed");
    if (isfinite(number) && number == floor(number) && fabs(number) < 1e18)
        FUZZ_CHECK(strtod(text, NULL) == number, "cli_format_number(%.17g) = %s", number, text);
    free(copy);
    return 0;
}
