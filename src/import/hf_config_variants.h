/* The attention-variant fields of HF config.json (hf_config_variants.c),
 * read by hf_config.c's parser: layer_types, query_pre_attn_scalar,
 * soft-caps, Gemma 3's local RoPE base, MPT's attn_config, BLOOM's ALiBi. */
#ifndef LLMRT_IMPORT_HF_CONFIG_VARIANTS_H
#define LLMRT_IMPORT_HF_CONFIG_VARIANTS_H

#include <jansson.h>

#include "core/status.h"
#include "models/model_config.h"

/* Fills the variant fields of c (its common fields already read). */
llmrt_status llmrt_hf_config_parse_variants(const char *source, const json_t *root, llmrt_model_config *c);
/* 1 for families with ALiBi instead of RoPE (no rope fields read). */
int llmrt_hf_config_uses_alibi(const llmrt_model_config *c);

#endif
