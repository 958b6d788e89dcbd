/* Weight-only quantized matrices (int8-wo, int4-wo): the storage layout the
 * engine file holds and every backend reads, and the reference quantizer and
 * dequantizer.
 *
 * A quantized matrix W [rows = N outputs, cols = K inputs] is one blob:
 *
 *   header   64 bytes (llmrt_qweight_header, little-endian)
 *   codes    rows × row_bytes: unsigned codes, int8-wo one byte per weight,
 *            int4-wo two per byte; int4 rows are cut in blocks of 32 inputs,
 *            byte j of a block holding input j in its low nibble and input
 *            j + 16 in its high nibble (so one 16-byte load unpacks to 32
 *            inputs in order); row_bytes = ceil(K / 32) · 16, padding codes 0
 *   scales   rows × groups f16
 *   zeros    rows × groups u8
 *
 * Input k of row n belongs to group k / group_size (the last group may be
 * shorter) and dequantizes to scales[n, g] · (code − zeros[n, g]). Symmetric
 * quantization stores the midpoint as the zero (8, 128), so one kernel
 * serves both. Every section starts 64-byte aligned from the blob's start. */
#ifndef LLMRT_CORE_QUANT_H
#define LLMRT_CORE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

#define LLMRT_QWEIGHT_MAGIC 0x3157514cu /* "LQW1" */
#define LLMRT_QWEIGHT_HEADER_BYTES 64
#define LLMRT_QWEIGHT_BLOCK 32 /* int4 nibble block; also the activation block of the integer kernels */

typedef struct llmrt_qweight_header {
    uint32_t magic;
    uint32_t bits;       /* 8 or 4 */
    int64_t rows;        /* N */
    int64_t cols;        /* K */
    int64_t group_size;  /* inputs per scale; cols for per-channel */
    int64_t groups;      /* ceil(cols / group_size) */
    int64_t row_bytes;   /* bytes of codes per row */
    uint32_t scales_offset, zeros_offset; /* from the blob's start */
    uint64_t total_bytes;
} llmrt_qweight_header;

/* 1 for LLMRT_DTYPE_INT8_WO and LLMRT_DTYPE_INT4_WO. */
int llmrt_dtype_is_quantized(llmrt_dtype dtype);
/* Bits per code of a quantized dtype (8, 4), 0 otherwise. */
int llmrt_quant_bits(llmrt_dtype dtype);

/* The layout of a [rows, cols] matrix of `dtype` in groups of group_size
 * (0 or >= cols: per channel). Fails on a non-quantized dtype, non-positive
 * sizes or a blob over 2^48 bytes. */
llmrt_status llmrt_qweight_layout(llmrt_dtype dtype, int64_t rows, int64_t cols, int64_t group_size,
                                  llmrt_qweight_header *out);
/* Bytes of that blob; 0 when the layout is invalid. */
size_t llmrt_qweight_bytes(llmrt_dtype dtype, int64_t rows, int64_t cols, int64_t group_size);
/* Checks that `blob` (nbytes) holds a header for exactly this matrix, so
 * kernels may trust it: `what` names the weight in the error. */
llmrt_status llmrt_qweight_check(const void *blob, size_t nbytes, llmrt_dtype dtype, int64_t rows, int64_t cols,
                                 int64_t group_size, const char *what);
/* Writes the header of `layout` at the blob's start. */
void llmrt_qweight_init(void *blob, const llmrt_qweight_header *layout);

/* Section pointers of a checked blob. */
static inline const uint8_t *llmrt_qweight_codes(const void *blob) {
    return (const uint8_t *)blob + LLMRT_QWEIGHT_HEADER_BYTES;
}
static inline const uint16_t *llmrt_qweight_scales(const void *blob) {
    const llmrt_qweight_header *h = blob;
    return (const uint16_t *)((const uint8_t *)blob + h->scales_offset);
}
static inline const uint8_t *llmrt_qweight_zeros(const void *blob) {
    const llmrt_qweight_header *h = blob;
    return (const uint8_t *)blob + h->zeros_offset;
}

/* Code of input k in a row's codes (either width). */
static inline unsigned llmrt_qweight_code(const uint8_t *row, int bits, int64_t k) {
    if (bits == 8) return row[k];
    const uint8_t byte = row[k / 32 * 16 + k % 16];
    return k % 32 < 16 ? byte & 15u : byte >> 4;
}
static inline void llmrt_qweight_set_code(uint8_t *row, int bits, int64_t k, unsigned code) {
    if (bits == 8) {
        row[k] = (uint8_t)code;
        return;
    }
    uint8_t *byte = &row[k / 32 * 16 + k % 16];
    *byte = k % 32 < 16 ? (uint8_t)((*byte & 0xf0u) | code) : (uint8_t)((*byte & 0x0fu) | (code << 4));
}

/* Round-to-nearest quantization of row n of W (f32, cols values) into an
 * initialised blob: per group, symmetric (scale = max|w| / (2^(bits-1) − 1),
 * zero at the midpoint) or asymmetric (scale = (max − min) / (2^bits − 1),
 * zero = round(−min / scale), the range always holding 0). */
void llmrt_quantize_row(void *blob, int64_t n, const float *w, int asymmetric);
/* Row n of a checked blob back to f32 (cols values). */
void llmrt_dequantize_row(const void *blob, int64_t n, float *out);

#endif
