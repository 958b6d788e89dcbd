/* Internal to src/import: hf_config.c's typed config.json readers and
 * sanity limits, shared with the parsers of RoPE (hf_config_rope.c) and of
 * the per-family layouts (hf_config_layouts.c), and those parsers' entry
 * points. Each reader names the field at fault in its error. */
#ifndef LLMRT_IMPORT_HF_CONFIG_FIELDS_H
#define LLMRT_IMPORT_HF_CONFIG_FIELDS_H

#include <jansson.h>
#include <stdint.h>

#include "core/status.h"
#include "models/model_config.h"

/* Sanity limits: far above any real model, low enough that products of them
 * (hidden * intermediate, vocab * hidden) cannot overflow 64 bits. */
#define MAX_HIDDEN (1LL << 17)
#define MAX_LAYERS 1024LL
#define MAX_HEADS 1024LL
#define MAX_VOCAB (1LL << 22)
#define MAX_HEAD_DIM 1024LL
#define MAX_INTERMEDIATE (1LL << 20)
#define MAX_POSITIONS (1LL << 26)
#define MAX_TOKEN_ID 0x7fffffffLL
#define MAX_EXPERTS 1024LL
#define MAX_LABELS 65536LL

/* A NULL-terminated alias list for the readers: ALIASES("n_embd", "d_model"). */
#define ALIASES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The first alias (NULL-terminated list) present and non-null, range-checked;
 * `fallback` when none is (an error instead when `required`). */
llmrt_status llmrt_hf_get_int(const char *source, const json_t *object, const char *const *aliases, int required,
                              long long fallback, long long min, long long max, int32_t *out);
llmrt_status llmrt_hf_get_float(const char *source, const json_t *object, const char *const *aliases, float fallback,
                                float *out);
llmrt_status llmrt_hf_get_bool(const char *source, const json_t *object, const char *field, int32_t fallback,
                               int32_t *out);
/* One value, already looked up: an integer in [min, max] (an integral real
 * is accepted), or a finite number that fits a float. */
llmrt_status llmrt_hf_int_value(const char *source, const char *field, const json_t *value, long long min,
                                long long max, long long *out);
llmrt_status llmrt_hf_float_value(const char *source, const char *field, const json_t *value, float *out);

/* config.json's RoPE fields (either transformers dialect) into config->rope;
 * `no_rope` for models without rotary embedding (learned positions, ALiBi).
 * Needs config->head_dim (for the rotary width). */
llmrt_status llmrt_hf_parse_rope(const char *source, const json_t *root, int no_rope, llmrt_model_config *config);

/* 1 for the families whose positions are learned tables, not RoPE (OPT,
 * GPTBigCode), known from the config's model_type or architecture. */
int llmrt_hf_layout_has_learned_positions(const json_t *root, const llmrt_model_config *config);
/* The block-layout fields and family defaults of GPT-J, GPT-NeoX, Falcon,
 * OPT, GPTBigCode, GLM and Phi-3 (LongRoPE factors); runs after the generic
 * fields and RoPE are parsed, and sets the neutral layout for the others. */
llmrt_status llmrt_hf_parse_layouts(const char *source, const json_t *root, llmrt_model_config *config);

/* The layout fields in the engine's config JSON: the block layout in the
 * root object, interleaving and LongRoPE in "rope". All optional on reading
 * (engines written before them load with the LLaMA/GPT-2 layout). */
int llmrt_layout_fields_to_json(json_t *root, json_t *rope_object, const llmrt_model_config *config);
llmrt_status llmrt_layout_fields_from_json(const char *source, const json_t *root, const json_t *rope_object,
                                           llmrt_model_config *config);

#endif
