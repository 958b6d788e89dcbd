/* Small helpers for the subcommands' option parsing: every value is checked
 * and a bad one is reported with the option's name. */
#ifndef LLMRT_TOOLS_CLI_ARGS_H
#define LLMRT_TOOLS_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

typedef struct cli_args {
    int argc;
    char **argv;
    int index;           /* next argument to read */
    const char *command; /* for messages: "llmrt build" */
    int failed;
} cli_args;

void cli_begin(cli_args *a, const char *command, int argc, char **argv);
/* Returns the next option name ("--model") or NULL at the end. Positional
 * arguments are returned as they are. */
const char *cli_next(cli_args *a);
/* The option's value (the next argument, or after '=' in --opt=value). */
const char *cli_value(cli_args *a, const char *option);
int cli_int(cli_args *a, const char *option, int64_t min, int64_t max, int64_t *out);
int cli_float(cli_args *a, const char *option, double min, double max, double *out);
/* Reports an error ("llmrt build: ...") and marks the parse failed. */
void cli_fail(cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads a whole regular file of at most LLMRT_READ_MAX bytes into a
 * malloc'd NUL-terminated buffer (size may be NULL); NULL if it cannot be
 * read, with llmrt_last_error() saying why. */
char *cli_read_file(const char *path, size_t *size);

/* x as messages print it: an integral value as an integer ("16777216", not
 * "1.67772e+07"), others with %g. Returns buf. */
const char *cli_format_number(char buf[32], double x);

/* The byte offset of the first invalid UTF-8 sequence, or SIZE_MAX. */
size_t cli_utf8_invalid_at(const char *text, size_t len);
/* 1 if text is valid UTF-8; else prints "COMMAND: WHAT: invalid UTF-8 at
 * byte offset N" and returns 0 (the policy of --requests, whose JSON parser
 * refuses such text). */
int cli_check_utf8(const char *command, const char *what, const char *text, size_t len);

/* The engine's load-time limits (llmrt_engine_options): consumes the
 * option and returns 1 if it is one of them. */
int cli_engine_limit(cli_args *a, const char *option, int32_t *max_seq_len, int32_t *max_batch,
                     int32_t *max_num_tokens);
#define CLI_ENGINE_LIMITS_HELP                                                                          \
    "  --max-seq-len N     tokens per sequence, up to the model's positions (default: the build's)\n" \
    "  --max-batch N       sequences per step (default: the build's)\n"                               \
    "  --max-num-tokens N  tokens per step, at least max-batch (default: the build's)\n"

/* --backend cpu|cuda: the backend an engine loads on
 * (llmrt_engine_options.backend); consumes the option and returns 1 if it
 * is --backend. Another value fails the parse, naming both. */
int cli_engine_backend(cli_args *a, const char *option, const char **backend);
#define CLI_ENGINE_BACKEND_HELP \
    "  --backend B         run on cpu or cuda (default: the backend the engine was built for)\n"

/* --cpu-precision auto|fp32 (llmrt_engine_options.cpu_precision); consumes
 * the option and returns 1 if it is --cpu-precision. */
int cli_engine_cpu_precision(cli_args *a, const char *option, const char **precision);
#define CLI_ENGINE_CPU_PRECISION_HELP \
    "  --cpu-precision P   16-bit engines on the CPU: auto (bf16 activations into bf16 linears where the\n" \
    "                      CPU has AVX512-BF16) or fp32 (exact; HF in fp32 on the same weights)\n"

/* --plugin LIB.so: loads the plugin library at once (llmrt_plugin_load);
 * consumes the option and returns 1 if it is --plugin. Repeatable. */
int cli_plugin(cli_args *a, const char *option);
#define CLI_PLUGIN_HELP "  --plugin LIB.so     load custom ops from a plugin library (repeatable)\n"

/* Parses "1,2,3" into a malloc'd array. */
int cli_int_list(cli_args *a, const char *option, const char *text, int32_t **out, int32_t *count);

#endif
