/* Linears with 8-bit weights and activations (fp8 E4M3, w8a8 int8; the
 * blob of core/quant8.h). Each row of x is quantized once, as
 * llmrt_q8_quantize_activation does; int8 products are summed exactly in
 * int32, fp8 ones (exact in f32) in f32 from a 256-entry decode table. The
 * result matches llmrt_q8_linear_reference: bit for bit for w8a8, within
 * f32 summation rounding for fp8. */
#ifndef LLMRT_CPU_KERNELS_Q8_H
#define LLMRT_CPU_KERNELS_Q8_H

#include <stdint.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_kernels_internal.h"

/* y = x · Wᵀ (+ bias) for the parts of a linear group sharing x [M, K]
 * (count 1..3); parts of other dtypes run through cpu_linear. With
 * `gated`, gated = silu(parts[0].y) · parts[1].y afterwards. */
void cpu_q8linear_group(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K, float *gated);

/* The dot products the row loops need. int8: mt ≤ 4 rows of x (row i at
 * x + i · stride), out[i] = Σ_k w[k] · x_i[k]. f32: nt ≤ 2 rows of w and
 * mt ≤ 4 of x, each K apart, out[r · 4 + i] = Σ_k w_r[k] · x_i[k]. The
 * AVX2 bodies live in cpu_kernels_q8_avx2.c, portable ones in
 * cpu_kernels_q8.c. */
void cpu_q8_dot_i8_avx2(const int8_t *w, const int8_t *x, int64_t stride, int mt, int64_t K, int32_t *out);
void cpu_q8_dot_f32_avx2(const float *w, int nt, const float *x, int mt, int64_t K, float *out);
/* The f32 dot of one row of E4M3 codes w, decoded on the fly, with mt ≤ 4
 * rows of x (K apart): out[i]. For steps of at most 4 tokens. */
void cpu_q8_dot_fp8_avx2(const float *table, const uint8_t *w, const float *x, int mt, int64_t K, float *out);
/* out[k] = table[codes[k]] for K codes. */
void cpu_q8_decode_avx2(const float *table, const uint8_t *codes, int64_t K, float *out);

/* 1 (default): the AVX2 bodies where the CPU has them; 0: the portable
 * ones (tests compare the two). */
void cpu_q8linear_set_simd(int on);

#endif
