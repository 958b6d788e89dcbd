/* llmrt — element types of tensors and weights. */
#ifndef LLMRT_DTYPE_H
#define LLMRT_DTYPE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmrt_dtype {
    LLMRT_DTYPE_INVALID = 0,
    LLMRT_DTYPE_F32 = 1,
    LLMRT_DTYPE_F16 = 2,
    LLMRT_DTYPE_BF16 = 3,
    LLMRT_DTYPE_F64 = 4,
    LLMRT_DTYPE_I8 = 5,
    LLMRT_DTYPE_U8 = 6,
    LLMRT_DTYPE_I16 = 7,
    LLMRT_DTYPE_I32 = 8,
    LLMRT_DTYPE_I64 = 9,
    LLMRT_DTYPE_BOOL = 10,
    LLMRT_DTYPE_FP8_E4M3 = 11,
    LLMRT_DTYPE_FP8_E5M2 = 12,
    /* weight-only quantized matrices (int8 / int4 codes with per-group f16
     * scales and zero points); engine weights only, never activations */
    LLMRT_DTYPE_INT8_WO = 13,
    LLMRT_DTYPE_INT4_WO = 14,
    /* 8-bit weights and activations: E4M3 (fp8) or int8 (w8a8, SmoothQuant)
     * codes with per-channel f32 scales, activations quantized per token or
     * with a calibrated static scale; engine weights only */
    LLMRT_DTYPE_FP8_W8A8 = 15,
    LLMRT_DTYPE_INT8_W8A8 = 16,
    LLMRT_DTYPE_COUNT
} llmrt_dtype;

/* Bytes per element (0 for INVALID and the quantized matrix formats, whose
 * size depends on their layout). */
unsigned llmrt_dtype_size(llmrt_dtype dtype);
/* Lower-case name: "f32", "f16", "bf16", ... */
const char *llmrt_dtype_name(llmrt_dtype dtype);
/* Parses "fp32"/"f32"/"float32", "fp16"/"f16"/"float16", "bf16"/"bfloat16", ...;
 * returns LLMRT_DTYPE_INVALID for anything else. */
llmrt_dtype llmrt_dtype_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
