/* 8-bit weight-and-activation matrices: fp8 (E4M3 codes) and w8a8 (int8
 * codes, SmoothQuant). The storage layout the engine file holds and every
 * backend reads, and the reference math the kernels are checked against.
 *
 * A matrix W [rows = N outputs, cols = K inputs] is one blob:
 *
 *   header   64 bytes (llmrt_q8weight_header, little-endian)
 *   codes    N rows of K one-byte codes, row-major (row n's K codes are
 *            contiguous: the "TN" layout cuBLASLt's FP8 and IMMA GEMMs
 *            read), then zero bytes up to a 64-byte boundary
 *   scales   f32 [N]: row n's weights are scales[n] · decode(code). A
 *            per-tensor matrix holds one value N times.
 *
 * Activations are quantized at run time, per token (each row m of x gets
 * scale max|x_m| / QMAX, 1 for an all-zero row) or, when the header has
 * LLMRT_Q8_STATIC_INPUT, with the calibrated input_scale for every row. A
 * LINEAR on such a weight computes
 *
 *   y[m, n] = sx[m] · scales[n] · Σ_k decode(xq[m, k]) · decode(wq[n, k]) + bias[n]
 *
 * with xq = encode(x / sx). fp8 codes are OCP E4M3 ("e4m3fn", as CUDA's
 * __nv_fp8_e4m3 and torch.float8_e4m3fn): max 448, no infinities, encoded
 * round-to-nearest-even and saturated to ±448 (CUDA's __NV_SATFINITE).
 * int8 codes are round-to-nearest-even, clamped to ±127 (−128 unused). */
#ifndef LLMRT_CORE_QUANT8_H
#define LLMRT_CORE_QUANT8_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

#define LLMRT_Q8WEIGHT_MAGIC 0x3851574cu /* "LWQ8" */
#define LLMRT_Q8WEIGHT_HEADER_BYTES 64
#define LLMRT_FP8_E4M3_MAX 448.0f
#define LLMRT_INT8_QMAX 127.0f

enum {
    LLMRT_Q8_FP8 = 1,  /* E4M3 codes */
    LLMRT_Q8_INT8 = 2, /* int8 codes */
};
enum {
    LLMRT_Q8_STATIC_INPUT = 1, /* activations use input_scale, not a per-token scale */
    LLMRT_Q8_PER_TENSOR = 2,   /* one weight scale for the whole matrix (informational) */
};

typedef struct llmrt_q8weight_header {
    uint32_t magic;
    uint16_t kind;          /* LLMRT_Q8_FP8 or LLMRT_Q8_INT8 */
    uint16_t flags;         /* LLMRT_Q8_STATIC_INPUT | LLMRT_Q8_PER_TENSOR */
    int64_t rows;           /* N */
    int64_t cols;           /* K */
    float input_scale;      /* static activation scale; 0 when per token */
    uint32_t scales_offset; /* from the blob's start */
    uint64_t total_bytes;
    uint8_t reserved[24];
} llmrt_q8weight_header;

/* 1 for LLMRT_DTYPE_FP8_W8A8 and LLMRT_DTYPE_INT8_W8A8. */
int llmrt_dtype_is_q8(llmrt_dtype dtype);
/* The largest code magnitude of a q8 dtype (448, 127); 0 otherwise. */
float llmrt_q8_qmax(llmrt_dtype dtype);

/* The layout of a [rows, cols] matrix of `dtype`. Fails on a non-q8 dtype,
 * non-positive sizes or a blob over 2^48 bytes. */
llmrt_status llmrt_q8weight_layout(llmrt_dtype dtype, int64_t rows, int64_t cols, llmrt_q8weight_header *out);
/* Bytes of that blob; 0 when the layout is invalid. */
size_t llmrt_q8weight_bytes(llmrt_dtype dtype, int64_t rows, int64_t cols);
/* Writes the header of `layout` (flags and input_scale as given there) at
 * the blob's start and zeroes the codes' padding. */
void llmrt_q8weight_init(void *blob, const llmrt_q8weight_header *layout);
/* Checks that `blob` (nbytes) holds a header for exactly this matrix, with
 * finite positive scales (and a finite positive input_scale when static),
 * so kernels may trust it; `what` names the weight in the error. */
llmrt_status llmrt_q8weight_check(const void *blob, size_t nbytes, llmrt_dtype dtype, int64_t rows, int64_t cols,
                                  const char *what);

static inline const uint8_t *llmrt_q8weight_codes(const void *blob) {
    return (const uint8_t *)blob + LLMRT_Q8WEIGHT_HEADER_BYTES;
}
static inline const float *llmrt_q8weight_scales(const void *blob) {
    const llmrt_q8weight_header *h = (const llmrt_q8weight_header *)blob;
    return (const float *)((const uint8_t *)blob + h->scales_offset);
}

/* E4M3 encode (round to nearest even, saturating to ±448; NaN → 0x7f) and
 * decode (exact). */
uint8_t llmrt_fp8_e4m3_encode(float x);
float llmrt_fp8_e4m3_decode(uint8_t code);
/* int8 encode: round to nearest even, clamped to ±127; NaN → 0. */
int8_t llmrt_int8_encode(float x);

/* Code of `x` (already divided by its scale) in the q8 `kind`, and back. */
static inline uint8_t llmrt_q8_encode(int kind, float x) {
    return kind == LLMRT_Q8_FP8 ? llmrt_fp8_e4m3_encode(x) : (uint8_t)llmrt_int8_encode(x);
}
static inline float llmrt_q8_decode(int kind, uint8_t code) {
    return kind == LLMRT_Q8_FP8 ? llmrt_fp8_e4m3_decode(code) : (float)(int8_t)code;
}

/* Quantizes the f32 matrix w [rows, cols] into an initialised blob: per
 * output channel (scale = max|w_n| / QMAX) or, per_tensor, one scale from
 * the whole matrix; an all-zero row (or matrix) gets scale 1. */
void llmrt_q8_quantize_matrix(void *blob, const float *w, int per_tensor);
/* Copies into `shard` (initialised with its own layout, same kind) its part
 * of the checked blob `full`: the pieces (offset, length) along `axis` (0:
 * rows, 1: inputs) of full, laid one after another; codes and row scales
 * are full's, flags and input_scale too. Fails naming `what` when the
 * pieces do not fit. */
llmrt_status llmrt_q8weight_cut(const void *full, void *shard, int axis, const int64_t (*pieces)[2],
                                int32_t num_pieces, const char *what);
/* Row n of a checked blob back to f32 (cols values). */
void llmrt_q8_dequantize_row(const void *blob, int64_t n, float *out);

/* Quantizes one activation row x [cols] for the blob's kind: with
 * static_scale > 0 that scale, else max|x| / QMAX (1 for an all-zero row).
 * Writes cols codes and returns the scale used. */
float llmrt_q8_quantize_activation(int kind, const float *x, int64_t cols, float static_scale, uint8_t *codes);

/* The reference LINEAR of the header comment: y [M, N] from x [M, K] (f32)
 * and a checked blob; bias (f32 [N]) may be NULL. Single-threaded, exact
 * (f64 accumulation): the kernels are checked against it. */
void llmrt_q8_linear_reference(float *y, const float *x, int64_t M, const void *blob, const float *bias);

#endif
