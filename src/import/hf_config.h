/* HF config.json → llmrt_model_config. Uses jansson. Accepts both dialects:
 * transformers 4 (top-level rope_theta / rope_scaling) and transformers 5
 * (rope_parameters), and the GPT-2 spellings (n_embd, n_layer, n_head,
 * n_positions, n_inner, layer_norm_epsilon, activation_function).
 * Every field is type- and range-checked; an error names the file and field. */
#ifndef LLMRT_IMPORT_HF_CONFIG_H
#define LLMRT_IMPORT_HF_CONFIG_H

#include <stddef.h>

#include "core/status.h"
#include "models/model_config.h"

/* Parses config.json text. `source_name` is used in error messages. */
llmrt_status llmrt_hf_config_parse(const char *json_text, size_t length, const char *source_name,
                                   llmrt_model_config *out);
/* Reads and parses a config.json file. */
llmrt_status llmrt_hf_config_load(const char *path, llmrt_model_config *out);

/* Reads generation_config.json if present (eos_token_id: int or list,
 * bos_token_id) and merges its token ids into `config` (generation config
 * wins). A missing file is not an error. */
llmrt_status llmrt_hf_generation_config_merge(const char *path, llmrt_model_config *config);

/* Serialises a model config to JSON text (malloc'd) and back, for the
 * engine file. Round-trips every field. */
char *llmrt_model_config_to_json(const llmrt_model_config *config);
llmrt_status llmrt_model_config_from_json(const char *json_text, size_t length,
                                          llmrt_model_config *out);

#endif
