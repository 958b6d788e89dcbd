/* Fuzz target: `llmrt run --requests` files, through the code the program
 * runs (tools/request_lines.c). Every non-blank line must either parse into
 * a request whose every field lies in its documented range, or carry a
 * message saying what is wrong with it. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "request_lines.h"

static int in_range(double x, double lo, double hi) { return isfinite(x) && x >= lo && x <= hi; }

static void check_request(const line_request *l) {
    const llmrt_request *r = &l->req;
    FUZZ_CHECK((r->prompt_text != NULL) != (r->prompt_ids != NULL), "a request needs exactly one prompt");
    if (r->prompt_ids) {
        FUZZ_CHECK(r->num_prompt_ids > 0, "empty prompt_ids accepted");
        for (int32_t i = 0; i < r->num_prompt_ids; i++) FUZZ_CHECK(r->prompt_ids[i] >= 0, "negative token id accepted");
    }
    const llmrt_sampling_params *p = &r->sampling;
    FUZZ_CHECK(p->max_tokens >= 0 && p->max_tokens <= 1 << 24, "max_tokens %d", p->max_tokens);
    FUZZ_CHECK(in_range(p->temperature, 0, 100), "temperature %g", (double)p->temperature);
    FUZZ_CHECK(in_range(p->top_p, 0, 1), "top_p %g", (double)p->top_p);
    FUZZ_CHECK(p->top_k >= 0 && p->top_k <= 1 << 24, "top_k %d", p->top_k);
    FUZZ_CHECK(in_range(r->min_p, 0, 1), "min_p %g", (double)r->min_p);
    FUZZ_CHECK(in_range(r->presence_penalty, -2, 2) && in_range(r->frequency_penalty, -2, 2), "penalty out of range");
    FUZZ_CHECK(in_range(r->repetition_penalty, 0, 100), "repetition_penalty %g", (double)r->repetition_penalty);
    FUZZ_CHECK(in_range(r->length_penalty, -100, 100), "length_penalty %g", (double)r->length_penalty);
    FUZZ_CHECK(r->n >= 1 && r->n <= 1024, "n %d", r->n);
    FUZZ_CHECK(r->num_beams >= 0 && r->num_beams <= 64, "beams %d", r->num_beams);
    FUZZ_CHECK(r->logprobs >= 0 && r->logprobs <= LLMRT_MAX_LOGPROBS, "logprobs %d", r->logprobs);
    FUZZ_CHECK(r->num_stop >= 0 && r->num_stop <= LLMRT_MAX_STOP_STRINGS, "%d stop strings", r->num_stop);
    for (int32_t i = 0; i < r->num_stop; i++) FUZZ_CHECK(r->stop[i] && r->stop[i][0], "stop string %d is empty", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    line_request *lines = NULL;
    size_t count = 0;
    FUZZ_CHECK(request_lines_split(text, "fuzz.jsonl", &lines, &count), "out of memory splitting %zu bytes", size);
    size_t newlines = 0;
    for (size_t i = 0; i < size; i++) newlines += data[i] == '\n';
    FUZZ_CHECK(count <= newlines + 1, "%zu requests from %zu lines", count, newlines + 1);
    run_settings settings;
    memset(&settings, 0, sizeof settings);
    llmrt_sampling_params_init(&settings.params);
    for (size_t i = 0; i < count; i++) {
        line_request *l = &lines[i];
        if (!l->json) {
            FUZZ_CHECK(l->error[0], "line %zu: no JSON and no message", i);
            continue;
        }
        if (request_line_parse(l, &settings, (int32_t)(i % 3), sizeof l->error)) check_request(l);
        else FUZZ_CHECK(l->error[0], "line %zu refused without a message", i);
    }
    request_lines_free(lines, count);
    free(text);
    return 0;
}
