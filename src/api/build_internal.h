/* What llmrt_build's two paths share: the native builder (build.c) and the
 * ONNX importer's (build_onnx.c). */
#ifndef LLMRT_API_BUILD_INTERNAL_H
#define LLMRT_API_BUILD_INTERNAL_H

#include <stddef.h>

#include "compiler/compiler.h"
#include "engine/engine_file.h"
#include "llmrt/llmrt.h"

/* The compile options for a build: backend, dtypes and the limits (the
 * backend's defaults where the options leave them 0). */
llmrt_status llmrt_build_compile_options(const llmrt_build_options *o, const llmrt_model_config *config,
                                         llmrt_dtype dtype, llmrt_compile_options *copts);
/* Writes o->output_path: the plan, its config and build info, and the
 * tokenizer and generation config files of `dir` (NULL: none) if present. */
llmrt_status llmrt_build_write(const llmrt_build_options *o, const llmrt_plan *plan, const llmrt_model_config *config,
                               const llmrt_engine_build_info *info, const char *dir);
/* llmrt_build for options with onnx_path. */
llmrt_status llmrt_build_onnx(const llmrt_build_options *o);

#endif
