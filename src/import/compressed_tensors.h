/* FP8 checkpoints in the compressed-tensors format (RedHatAI / neuralmagic
 * "…-FP8" and "…-FP8-dynamic" repositories on the HF hub), read into
 * llmrt's fp8 matrices (core/quant8.h) code by code: the stored E4M3 bytes
 * become the blob's codes, the stored scales its per-row scales, never
 * through 16-bit weights. The settings are config.json's
 * quantization_config with quant_method "compressed-tensors"; what this
 * reader accepts is described in compressed_tensors.c. */
#ifndef LLMRT_IMPORT_COMPRESSED_TENSORS_H
#define LLMRT_IMPORT_COMPRESSED_TENSORS_H

#include <jansson.h>
#include <stdint.h>

#include "import/quant_checkpoint.h"
#include "import/safetensors.h"

/* Fills config's compressed-tensors fields (method, bits 8, ct_*) from the
 * quantization_config object `q`; a scheme other than fp8 weights with
 * fp8 or no activations is an error naming the field and its value. */
llmrt_status llmrt_ct_parse(const json_t *q, llmrt_quant_config *config);

/* 1 if the checkpoint stores `weight_name` as E4M3 codes (an fp8 Linear). */
int llmrt_ct_has(const llmrt_checkpoint *checkpoint, const char *weight_name);

/* Writes the fp8 blob (LLMRT_DTYPE_FP8_W8A8, llmrt_q8weight_bytes bytes) of
 * the weight `weight_name` [rows, cols] from its codes, weight_scale
 * (per tensor: every row gets it; per channel: row n gets scale n) and,
 * with static activations, input_scale (header input_scale with
 * LLMRT_Q8_STATIC_INPUT). Dtypes, shapes, codes and scales are checked; an
 * error names the tensor. */
llmrt_status llmrt_ct_read(const llmrt_checkpoint *checkpoint, const llmrt_quant_config *config,
                           const char *weight_name, int64_t rows, int64_t cols, void *blob);

/* A weight llmrt keeps 16-bit (the LM head, a MoE expert) that the
 * checkpoint stores as E4M3 codes `t` [rows, cols]: its values, code ×
 * weight_scale, into f32 `out` (rows · cols). The layer's input_scale, if
 * any, is not used (and marked read). */
llmrt_status llmrt_ct_dequantize(const llmrt_checkpoint *checkpoint, const llmrt_st_tensor *t, float *out);

#endif
