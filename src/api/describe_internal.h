/* Parts of llmrt_engine_describe kept in their own files. */
#ifndef LLMRT_API_DESCRIBE_INTERNAL_H
#define LLMRT_API_DESCRIBE_INTERNAL_H

#include "compiler/plan.h"

/* Lines for `llmrt inspect`: each layer's matrix dtypes (runs of alike
 * layers on one line, then the matrices outside the layers) and a "bytes"
 * line of the weight bytes by kind. Malloc'd; NULL when out of memory. */
char *llmrt_describe_precision(const llmrt_plan *plan);

#endif
