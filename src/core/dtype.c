#include "core/dtype.h"

#include <stddef.h>
#include <strings.h>

unsigned llmrt_dtype_size(llmrt_dtype dtype) {
    switch (dtype) {
    case LLMRT_DTYPE_F32: case LLMRT_DTYPE_I32: return 4;
    case LLMRT_DTYPE_F16: case LLMRT_DTYPE_BF16: case LLMRT_DTYPE_I16: return 2;
    case LLMRT_DTYPE_F64: case LLMRT_DTYPE_I64: return 8;
    case LLMRT_DTYPE_I8: case LLMRT_DTYPE_U8: case LLMRT_DTYPE_BOOL:
    case LLMRT_DTYPE_FP8_E4M3: case LLMRT_DTYPE_FP8_E5M2: return 1;
    default: return 0;
    }
}

static const char *const dtype_names[LLMRT_DTYPE_COUNT] = {
    [LLMRT_DTYPE_INVALID] = "invalid", [LLMRT_DTYPE_F32] = "f32", [LLMRT_DTYPE_F16] = "f16",
    [LLMRT_DTYPE_BF16] = "bf16", [LLMRT_DTYPE_F64] = "f64", [LLMRT_DTYPE_I8] = "i8",
    [LLMRT_DTYPE_U8] = "u8", [LLMRT_DTYPE_I16] = "i16", [LLMRT_DTYPE_I32] = "i32",
    [LLMRT_DTYPE_I64] = "i64", [LLMRT_DTYPE_BOOL] = "bool",
    [LLMRT_DTYPE_FP8_E4M3] = "fp8_e4m3", [LLMRT_DTYPE_FP8_E5M2] = "fp8_e5m2",
    [LLMRT_DTYPE_INT8_WO] = "int8-wo", [LLMRT_DTYPE_INT4_WO] = "int4-wo",
    [LLMRT_DTYPE_FP8_W8A8] = "fp8", [LLMRT_DTYPE_INT8_W8A8] = "w8a8",
};

const char *llmrt_dtype_name(llmrt_dtype dtype) {
    if ((unsigned)dtype >= LLMRT_DTYPE_COUNT) return "invalid";
    return dtype_names[dtype];
}

llmrt_dtype llmrt_dtype_from_name(const char *name) {
    static const struct { const char *name; llmrt_dtype dtype; } aliases[] = {
        {"fp32", LLMRT_DTYPE_F32}, {"float32", LLMRT_DTYPE_F32}, {"float", LLMRT_DTYPE_F32},
        {"fp16", LLMRT_DTYPE_F16}, {"float16", LLMRT_DTYPE_F16}, {"half", LLMRT_DTYPE_F16},
        {"bfloat16", LLMRT_DTYPE_BF16}, {"fp64", LLMRT_DTYPE_F64}, {"float64", LLMRT_DTYPE_F64},
    };
    if (!name) return LLMRT_DTYPE_INVALID;
    for (int i = 1; i < LLMRT_DTYPE_COUNT; i++)
        if (strcasecmp(name, dtype_names[i]) == 0) return (llmrt_dtype)i;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(name, aliases[i].name) == 0) return aliases[i].dtype;
    return LLMRT_DTYPE_INVALID;
}

float llmrt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return llmrt_bits_to_f32(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        if (mantissa == 0) return llmrt_bits_to_f32(sign);
        /* subnormal: value = mantissa * 2^-24 */
        float value = (float)mantissa * (1.0f / 16777216.0f);
        return sign ? -value : value;
    }
    return llmrt_bits_to_f32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

uint16_t llmrt_f32_to_f16(float f) {
    uint32_t bits = llmrt_f32_to_bits(f);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t abs_bits = bits & 0x7fffffffu;
    if (abs_bits > 0x7f800000u) return sign | 0x7e00u;          /* NaN */
    if (abs_bits >= 0x477ff000u) return sign | 0x7c00u;         /* overflow → inf */
    if (abs_bits < 0x38800000u) {                               /* subnormal or zero */
        /* value * 2^24 rounded to nearest even gives the subnormal mantissa */
        float value = llmrt_bits_to_f32(abs_bits) * 16777216.0f;
        uint32_t m = (uint32_t)value;
        float frac = value - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1u))) m++;
        return sign | (uint16_t)m;
    }
    uint32_t exponent = (abs_bits >> 23) - 112u;
    uint32_t mantissa = abs_bits & 0x7fffffu;
    uint32_t half = (exponent << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return sign | (uint16_t)half;
}

int llmrt_convert_to_f32(float *dst, const void *src, llmrt_dtype src_type, size_t n) {
    switch (src_type) {
    case LLMRT_DTYPE_F32: memmove(dst, src, n * sizeof(float)); return 0;
    /* Checkpoint tensors need not be aligned to their element size
     * (safetensors does not require it): load through memcpy. */
    case LLMRT_DTYPE_F16: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, sizeof h);
            dst[i] = llmrt_f16_to_f32(h);
        }
        return 0;
    }
    case LLMRT_DTYPE_BF16: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, sizeof h);
            dst[i] = llmrt_bf16_to_f32(h);
        }
        return 0;
    }
    case LLMRT_DTYPE_F64: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, sizeof d);
            dst[i] = (float)d;
        }
        return 0;
    }
    default: return -1;
    }
}

int llmrt_convert_from_f32(void *dst, llmrt_dtype dst_type, const float *src, size_t n) {
    switch (dst_type) {
    case LLMRT_DTYPE_F32: memmove(dst, src, n * sizeof(float)); return 0;
    case LLMRT_DTYPE_F16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = llmrt_f32_to_f16(src[i]);
        return 0;
    }
    case LLMRT_DTYPE_BF16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = llmrt_f32_to_bf16(src[i]);
        return 0;
    }
    default: return -1;
    }
}
