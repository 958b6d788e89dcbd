/* The body of `llmrt run`: one request from prompt to printed output
 * (text, streamed text, or JSON), with stop strings and logits dumps. */
#ifndef LLMRT_TOOLS_RUN_OUTPUT_H
#define LLMRT_TOOLS_RUN_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt/llmrt.h"
#include "llmrt/runtime.h"

enum { RUN_MAX_STOP = 16 };

typedef struct run_settings {
    const char *engine_path;
    llmrt_sampling_params params;
    const char *stop[RUN_MAX_STOP];
    int num_stop;
    int stream, json, verbose;
    const char *dump_logits;
} run_settings;

typedef struct run_request {
    const char *prompt_text;
    int32_t *prompt_ids;
    int32_t num_prompt_ids;
    const char *chat_path;
} run_request;

void run_settings_init(run_settings *s);
/* Returns the exit code. */
int run_one(const run_settings *s, const llmrt_engine_options *eo, const run_request *r);
/* Text mode's note on stderr when request `index` (SIZE_MAX: the only one)
 * ended at the engine's window rather than at max_tokens (JSON says
 * finish_reason "length"). */
void note_if_cut(size_t index, int32_t prompt_tokens, const llmrt_sequence_output *g, int32_t max_tokens,
                 int32_t max_seq_len);
/* Writes a float32 .npy file of shape [rows, cols]. */
int write_npy_f32(const char *path, const float *data, int64_t rows, int64_t cols);

#endif
