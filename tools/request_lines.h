/* Parsing `llmrt run --requests` files: lines → llmrt_request values. Kept
 * apart from running them so the fuzz target (tests/fuzz/fuzz_requests.c)
 * drives exactly the code the program runs. */
#ifndef LLMRT_TOOLS_REQUEST_LINES_H
#define LLMRT_TOOLS_REQUEST_LINES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "llmrt/runtime.h"
#include "run_output.h"

typedef struct line_request {
    json_t *json;              /* the parsed line (owns the strings the request borrows) */
    llmrt_request req;
    const char *stop[LLMRT_MAX_STOP_STRINGS];
    int32_t *prompt_ids;
    char error[512];
    llmrt_request_id id;
    llmrt_result result;
    int submitted, done;
} line_request;

/* Splits a file's text (modified in place: newlines become NULs) into one
 * line_request per non-blank line, each holding its parsed JSON or its
 * parse error. `path` names the file in errors. Returns 0 when out of
 * memory. Free with request_lines_free. */
int request_lines_split(char *text, const char *path, line_request **out, size_t *out_count);
/* Fills l->req from l->json over the command line's defaults `s` and
 * `beams`; on a bad line returns 0 with l->error (of capacity cap) saying
 * why. */
int request_line_parse(line_request *l, const run_settings *s, int32_t beams, size_t cap);
void request_lines_free(line_request *lines, size_t count);

#endif
