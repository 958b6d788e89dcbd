// The 8-bit KV cache's element codes on the device (--kv-cache fp8|int8),
// the twins of core/quant8.h: E4M3 round-to-nearest-even saturating to
// ±448 (__NV_SATFINITE), int8 round-to-nearest-even clamped to ±127. A
// cached element is decode(code) · the f32 scale of its (token, kv head).
#pragma once

#include <cuda_fp8.h>
#include <stdint.h>

// Which elements a cache holds: the activation type, or 8-bit codes.
enum { KV_PLAIN = 0, KV_FP8 = 1, KV_INT8 = 2 };

template <int KIND>
__device__ __forceinline__ float kv8_decode(uint8_t code) {
    if (KIND == KV_FP8) return __half2float(__half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)code, __NV_E4M3)));
    return (float)(int8_t)code;
}

template <int KIND>
__device__ __forceinline__ uint8_t kv8_encode(float x) {
    if (KIND == KV_FP8) return (uint8_t)__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    if (isnan(x)) return 0; // as llmrt_int8_encode
    const float r = rintf(fminf(fmaxf(x, -127.0f), 127.0f));
    return (uint8_t)(int8_t)r;
}

template <int KIND>
__device__ __forceinline__ float kv8_qmax() {
    return KIND == KV_FP8 ? 448.0f : 127.0f;
}
