/* Weight-only quantized matrices (int8-wo, int4-wo): the storage layout the
 * engine file holds and every backend reads, and the reference quantizer and
 * dequantizer.
 *
 * A quantized matrix W [rows = N outputs, cols = K inputs] is one blob:
 *
 *   header   64 bytes (llmrt_qweight_header, little-endian)
 *   codes    panels of 16 rows (N rounded up; the padding rows are zero),
 *            each panel_bytes long: K (rounded up to 32, padding codes 0)
 *            in steps of 4 inputs (int8) or 8 (int4), each step 64 bytes,
 *            4 bytes per row of the panel in row order. int8: byte j of a
 *            row's 4 is input 4q + j of step q. int4: byte j holds input
 *            8q + j in its low nibble and 8q + 4 + j in its high nibble.
 *   scales   f16 [panels][groups][16]: the panel's 16 rows side by side
 *   zeros    u8  [panels][groups][16]
 *   perm     i32 [K], only when flags has LLMRT_QWEIGHT_PERMUTED: stored
 *            input j is input perm[j] of x (GPTQ act-order: its groups
 *            are sets of inputs, made runs by sorting the inputs by group)
 *
 * Codes are unsigned. Input k of row n belongs to group k / group_size (the
 * last group may be shorter) and dequantizes to s · (code − z) of that
 * group. Symmetric quantization stores the midpoint as the zero (8, 128),
 * so one kernel serves both.
 *
 * Why panels: a 64-byte step is one SIMD register holding 4 (or 8) inputs
 * of 16 outputs, so one vpdpbusd against 4 broadcast bytes of x advances
 * 16 dot products at once, and the per-block scaling is one multiply for
 * 16 outputs rather than one per output. Every section starts 64-byte
 * aligned from the blob's start. */
#ifndef LLMRT_CORE_QUANT_H
#define LLMRT_CORE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

#define LLMRT_QWEIGHT_MAGIC 0x3157514cu /* "LQW1" */
#define LLMRT_QWEIGHT_HEADER_BYTES 64
#define LLMRT_QWEIGHT_PANEL 16 /* rows per panel */
#define LLMRT_QWEIGHT_BLOCK 32 /* K is padded to a multiple; also the activation block of the integer kernels */

enum { LLMRT_QWEIGHT_PERMUTED = 1 };

typedef struct llmrt_qweight_header {
    uint32_t magic;
    uint16_t bits;       /* 8 or 4 */
    uint16_t flags;      /* LLMRT_QWEIGHT_PERMUTED */
    int64_t rows;        /* N */
    int64_t cols;        /* K */
    int64_t group_size;  /* inputs per scale; cols for per-channel */
    int64_t groups;      /* ceil(cols / group_size) */
    int64_t panel_bytes; /* bytes of codes per panel of 16 rows */
    uint32_t scales_offset, zeros_offset; /* from the blob's start */
    uint64_t total_bytes;
} llmrt_qweight_header;

/* 1 for LLMRT_DTYPE_INT8_WO and LLMRT_DTYPE_INT4_WO. */
int llmrt_dtype_is_quantized(llmrt_dtype dtype);
/* 1 for every weight stored as a packed matrix blob whose size comes from
 * its layout: the weight-only dtypes and the 8-bit weight-and-activation
 * ones (core/quant8.h). Only a LINEAR may read such a weight. */
int llmrt_dtype_is_packed(llmrt_dtype dtype);
/* Bits per code of a quantized dtype (8, 4), 0 otherwise. */
int llmrt_quant_bits(llmrt_dtype dtype);

/* The layout of a [rows, cols] matrix of `dtype` in groups of group_size
 * (0 or >= cols: per channel), with a perm section when `permuted`. Fails
 * on a non-quantized dtype, non-positive sizes or a blob over 2^48 bytes. */
llmrt_status llmrt_qweight_layout(llmrt_dtype dtype, int64_t rows, int64_t cols, int64_t group_size, int permuted,
                                  llmrt_qweight_header *out);
/* Bytes of that blob; 0 when the layout is invalid. */
size_t llmrt_qweight_bytes(llmrt_dtype dtype, int64_t rows, int64_t cols, int64_t group_size, int permuted);
/* Checks that `blob` (nbytes) holds a header for exactly this matrix, and
 * a permutation of 0..cols-1 if permuted, so kernels may trust it: `what`
 * names the weight in the error. */
llmrt_status llmrt_qweight_check(const void *blob, size_t nbytes, llmrt_dtype dtype, int64_t rows, int64_t cols,
                                 int64_t group_size, int permuted, const char *what);
/* Writes the header of `layout` at the blob's start. */
void llmrt_qweight_init(void *blob, const llmrt_qweight_header *layout);

/* Section pointers of a checked blob. */
static inline const uint8_t *llmrt_qweight_codes(const void *blob) {
    return (const uint8_t *)blob + LLMRT_QWEIGHT_HEADER_BYTES;
}
static inline const uint16_t *llmrt_qweight_scales(const void *blob) {
    const llmrt_qweight_header *h = (const llmrt_qweight_header *)blob;
    return (const uint16_t *)((const uint8_t *)blob + h->scales_offset);
}
static inline const uint8_t *llmrt_qweight_zeros(const void *blob) {
    const llmrt_qweight_header *h = (const llmrt_qweight_header *)blob;
    return (const uint8_t *)blob + h->zeros_offset;
}
/* The perm section's offset (the blob's last 64-aligned run of cols i32). */
static inline uint64_t llmrt_qweight_perm_offset(const llmrt_qweight_header *h) {
    return h->total_bytes - (((uint64_t)h->cols * 4 + 63) & ~(uint64_t)63);
}
/* The permutation of a checked blob, or NULL when it has none. */
static inline const int32_t *llmrt_qweight_perm(const void *blob) {
    const llmrt_qweight_header *h = (const llmrt_qweight_header *)blob;
    if (!(h->flags & LLMRT_QWEIGHT_PERMUTED)) return NULL;
    return (const int32_t *)((const uint8_t *)blob + llmrt_qweight_perm_offset(h));
}

/* Byte offset of input k of row n in the codes section. */
static inline size_t llmrt_qweight_code_offset(const llmrt_qweight_header *h, int64_t n, int64_t k) {
    const int64_t per_step = h->bits == 8 ? 4 : 8;
    return (size_t)(n / LLMRT_QWEIGHT_PANEL * h->panel_bytes + k / per_step * 64 + n % LLMRT_QWEIGHT_PANEL * 4 +
                    k % per_step % 4);
}
/* Index of (row n, group g) in the scales and zeros sections. */
static inline size_t llmrt_qweight_group_index(const llmrt_qweight_header *h, int64_t n, int64_t g) {
    return (size_t)((n / LLMRT_QWEIGHT_PANEL * h->groups + g) * LLMRT_QWEIGHT_PANEL + n % LLMRT_QWEIGHT_PANEL);
}
/* The code of input k of row n. */
static inline unsigned llmrt_qweight_get(const void *blob, int64_t n, int64_t k) {
    const llmrt_qweight_header *h = (const llmrt_qweight_header *)blob;
    const uint8_t byte = llmrt_qweight_codes(blob)[llmrt_qweight_code_offset(h, n, k)];
    if (h->bits == 8) return byte;
    return k % 8 < 4 ? byte & 15u : byte >> 4;
}
static inline void llmrt_qweight_set(void *blob, int64_t n, int64_t k, unsigned code) {
    const llmrt_qweight_header *h = (const llmrt_qweight_header *)blob;
    uint8_t *byte = (uint8_t *)blob + LLMRT_QWEIGHT_HEADER_BYTES + llmrt_qweight_code_offset(h, n, k);
    if (h->bits == 8) *byte = (uint8_t)code;
    else if (k % 8 < 4) *byte = (uint8_t)((*byte & 0xf0u) | code);
    else *byte = (uint8_t)((*byte & 0x0fu) | (code << 4));
}

/* Round-to-nearest quantization of row n of W (f32, cols values, in stored
 * order: w[j] is the weight of stored input j) into an initialised blob: per group, symmetric (scale = max|w| / (2^(bits-1) − 1),
 * zero at the midpoint) or asymmetric (scale = (max − min) / (2^bits − 1),
 * zero = round(−min / scale), the range always holding 0). */
void llmrt_quantize_row(void *blob, int64_t n, const float *w, int asymmetric);
/* Copies into `shard` (initialised with its own layout, same dtype) its
 * part of the checked blob `full`: the pieces (offset, length) along `axis`
 * (0: rows, 1: inputs) of full, laid one after another. The codes, scales
 * and zeros are full's own, so the shard dequantizes to exactly full's
 * values; each of the shard's groups must lie inside one of full's (a
 * per-channel shard of inputs keeps the whole row's scale). A permuted
 * blob cuts only along rows. Fails naming `what` otherwise. */
llmrt_status llmrt_qweight_cut(const void *full, void *shard, int axis, const int64_t (*pieces)[2],
                               int32_t num_pieces, const char *what);
/* Row n of a checked blob back to f32 (cols values, in x's order: a
 * permuted blob's stored input j lands at out[perm[j]]). */
void llmrt_dequantize_row(const void *blob, int64_t n, float *out);

#endif
