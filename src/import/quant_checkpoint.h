/* Pre-quantized checkpoints as they ship: AWQ ("gemm" version), GPTQ and
 * compressed-tensors fp8 (compressed_tensors.h).
 * The quantization settings come from config.json's quantization_config,
 * else quant_config.json (AutoAWQ) or quantize_config.json (AutoGPTQ /
 * GPTQModel); the packed tensors (qweight, qzeros, scales, g_idx) are
 * repacked into llmrt's int4-wo / int8-wo layout (core/quant.h) code by
 * code, never through 16-bit weights. */
#ifndef LLMRT_IMPORT_QUANT_CHECKPOINT_H
#define LLMRT_IMPORT_QUANT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "import/safetensors.h"
#include "llmrt/dtype.h"

typedef enum llmrt_quant_method {
    LLMRT_QUANT_METHOD_NONE = 0,
    LLMRT_QUANT_METHOD_AWQ,
    LLMRT_QUANT_METHOD_GPTQ,
    LLMRT_QUANT_METHOD_COMPRESSED_TENSORS, /* fp8 weights (E4M3 codes, f32 scales) */
} llmrt_quant_method;

typedef struct llmrt_quant_config {
    llmrt_quant_method method;
    int32_t bits;            /* AWQ 4; GPTQ 4 or 8; compressed-tensors 8 */
    int64_t group_size;      /* inputs per scale; 0 = per channel (group_size -1) */
    int32_t zeros_minus_one; /* GPTQ checkpoint_format "gptq": stored zeros are the true zero − 1 */
    int32_t desc_act;        /* GPTQ act-order: g_idx may permute the groups */
    /* compressed-tensors: how many config groups have static (input_scale)
     * or dynamic / no activation quantization; any per-channel weights */
    int32_t ct_static_groups, ct_dynamic_groups;
    int32_t ct_weight_only;        /* a group without input_activations */
    int32_t ct_weight_per_channel; /* a group with weights strategy "channel" */
    char source[256];        /* the file the settings came from, for messages */
} llmrt_quant_config;

/* Reads the quantization settings of a checkpoint directory. A checkpoint
 * without any is method NONE (not an error); a method or layout this reader
 * does not support is an error naming the file and field. */
llmrt_status llmrt_quant_config_load(const char *model_dir, llmrt_quant_config *out);

/* The storage dtype of the config's weights (int4-wo, int8-wo, fp8). */
llmrt_dtype llmrt_quant_config_dtype(const llmrt_quant_config *config);
/* One line for the build log: "4-bit AWQ weights, group 128", ... */
void llmrt_quant_config_describe(const llmrt_quant_config *config, char *buf, size_t size);

/* 1 if the checkpoint holds `weight_name` ("….weight") packed: a tensor
 * "….qweight" beside it (AWQ / GPTQ), or the weight stored as E4M3 codes
 * (compressed-tensors fp8). */
int llmrt_quant_checkpoint_has(const llmrt_checkpoint *checkpoint, const char *weight_name);

/* 1 if the packed weight's g_idx orders its groups otherwise than k / group
 * (GPTQ act-order): its blob then stores the inputs sorted by group and
 * keeps the order (core/quant.h, LLMRT_QWEIGHT_PERMUTED). */
int llmrt_quant_checkpoint_permuted(const llmrt_checkpoint *checkpoint, const llmrt_quant_config *config,
                                    const char *weight_name, int64_t cols);

/* Repacks the weight `weight_name` [rows, cols] (nn.Linear layout: rows
 * outputs) into `blob`, an int4-wo / int8-wo blob of the config's group
 * size (llmrt_qweight_bytes, permuted as llmrt_quant_checkpoint_permuted
 * says), or for compressed-tensors an fp8 blob (llmrt_q8weight_bytes,
 * llmrt_ct_read). Shapes, dtypes and codes are checked; an error names the
 * tensor. */
llmrt_status llmrt_quant_checkpoint_read(const llmrt_checkpoint *checkpoint, const llmrt_quant_config *config,
                                         const char *weight_name, int64_t rows, int64_t cols, void *blob);

#endif
