/* What the runtime needs from a loaded engine beyond the public API: its
 * backend instance, and exclusive use of the backend's KV cache (one
 * runtime, or one llmrt_generate / llmrt_prompt_logits call, at a time). */
#ifndef LLMRT_API_ENGINE_INTERNAL_H
#define LLMRT_API_ENGINE_INTERNAL_H

#include "backends/backend.h"
#include "llmrt/llmrt.h"

llmrt_backend *llmrt_engine_backend_instance(llmrt_engine *engine);
/* Takes the engine's KV cache for the caller; fails with "engine busy"
 * while another holder has it. */
llmrt_status llmrt_engine_acquire(llmrt_engine *engine, const char *who);
void llmrt_engine_release(llmrt_engine *engine);

#endif
