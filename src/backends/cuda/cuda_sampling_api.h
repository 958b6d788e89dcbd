/* Device-side greedy sampling for the runtime, outside the backend vtable
 * (backend.h) until the runtime wires it in: after a CUDA forward step run
 * with `logits` NULL (no logits download), the argmax of each of the step's
 * logits rows is taken on the GPU and only the token ids (4 bytes per row)
 * come back to the host. */
#ifndef LLMRT_BACKENDS_CUDA_SAMPLING_API_H
#define LLMRT_BACKENDS_CUDA_SAMPLING_API_H

#include <stdint.h>

#include "core/status.h"

/* state: a CUDA backend state (llmrt_cuda_backend_ops.create); out_ids:
 * host array of at least the last step's num_logits entries, filled with
 * the index of each row's largest logit (lowest index on ties, as the CPU
 * greedy sampler). Synchronises the backend's stream. Errors: INVALID_ARGUMENT
 * without a previous step that produced logits. */
llmrt_status llmrt_cuda_argmax_last_logits(void *state, int32_t *out_ids);

#endif
