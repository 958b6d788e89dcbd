/* Plan ↔ JSON, for the engine file's "meta" section. Decoding validates
 * every field: ops, dtypes, ranks, input indices (inputs must precede their
 * node), arena offsets within the arena, weight slots within the table. */
#ifndef LLMRT_ENGINE_PLAN_JSON_H
#define LLMRT_ENGINE_PLAN_JSON_H

#include <jansson.h>

#include "compiler/plan.h"
#include "compiler/compiler.h"

json_t *llmrt_plan_to_json(const llmrt_plan *plan);
/* Weights get names, dtypes and shapes; their data and file offsets are
 * filled by the caller. `what` names the source in error messages. */
llmrt_status llmrt_plan_from_json(const json_t *json, const char *what, llmrt_plan **out);

#endif
