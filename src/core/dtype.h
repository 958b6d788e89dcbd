/* Scalar conversions between the floating-point storage types. These are the
 * reference (portable) versions; kernels use vector instructions where the
 * CPU has them. */
#ifndef LLMRT_CORE_DTYPE_H
#define LLMRT_CORE_DTYPE_H

#include <stdint.h>
#include <string.h>

#include "llmrt/dtype.h"

static inline float llmrt_bits_to_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint32_t llmrt_f32_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

static inline float llmrt_bf16_to_f32(uint16_t h) { return llmrt_bits_to_f32((uint32_t)h << 16); }

/* Round to nearest even, as PyTorch does; NaN stays a quiet NaN. */
static inline uint16_t llmrt_f32_to_bf16(float f) {
    uint32_t bits = llmrt_f32_to_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

float llmrt_f16_to_f32(uint16_t h);
uint16_t llmrt_f32_to_f16(float f);

/* Converts n elements of `src` (of type src_type) to float32. Supports F32,
 * F16, BF16, F64. Returns 0 on success, -1 for an unsupported type. */
int llmrt_convert_to_f32(float *dst, const void *src, llmrt_dtype src_type, size_t n);
/* Converts n float32 values to dst_type (F32, F16, BF16). */
int llmrt_convert_from_f32(void *dst, llmrt_dtype dst_type, const float *src, size_t n);

#endif
