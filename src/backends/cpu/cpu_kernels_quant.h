/* Shared by the cpu_kernels_quant*.c files only: linears with int8-wo /
 * int4-wo weights (core/quant.h).
 *
 * Two ways to compute y = x · dequant(W)ᵀ:
 *  - integer (default): each x row is quantized at run time in blocks of 32
 *    (int8, scale d_b = max|x| / 127, q = round(x / d_b), as llama.cpp's
 *    Q8_0), and a row of W in groups of g inputs gives
 *        y = Σ_b d_b · s_g(b) · Σ_{k∈b} code_k · q_k  −  Σ_g z_g · s_g · Σ_{b∈g} d_b · Σ_{k∈b} q_k
 *    The first sum is u8 × s8 dot products (vpdpbusd with AVX-512 VNNI,
 *    vpmaddubsw / vpmaddwd with AVX2); the second depends on W only through
 *    z_g · s_g, so its activation part is summed once per call.
 *  - exact: x stays f32 and each W row is dequantized to f32 first (the
 *    reference the accuracy tests use; also the path for K or g not a
 *    multiple of 32). LLMRT_CPU_QUANT_ACTIVATIONS=0 selects it. */
#ifndef LLMRT_BACKENDS_CPU_KERNELS_QUANT_H
#define LLMRT_BACKENDS_CPU_KERNELS_QUANT_H

#include <stdint.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/quant.h"

/* x quantized for the integer path. */
typedef struct cpu_qact {
    int64_t M, K, nb;    /* rows, inputs, blocks of 32 (K / 32) */
    int8_t *q;           /* [M, K] */
    float *d;            /* [M, nb] block scales */
    float *sd;           /* [M, nb] d_b · Σ q of the block */
    int64_t group;       /* the group size gsum was summed for */
    int64_t groups;
    float *gsum;         /* [M, groups] Σ sd over each group's blocks */
} cpu_qact;

/* Rows [n_begin, n_end) of y[M, N] = x · dequant(W)ᵀ + bias on the integer
 * path, all M rows of `a`; n_begin is a multiple of 16 (a panel). The
 * blob's group size is a multiple of 32 (or K), a->gsum is summed for it,
 * and a holds x in the blob's input order (gathered by its perm). */
typedef void cpu_qlinear_rows_fn(float *y, int64_t N, const void *blob, const float *bias, const cpu_qact *a,
                                 int64_t n_begin, int64_t n_end);
cpu_qlinear_rows_fn cpu_qlinear_rows_portable;
cpu_qlinear_rows_fn cpu_qlinear_rows_avx2;
cpu_qlinear_rows_fn cpu_qlinear_rows_avx512vnni;

/* Quantizes rows [m_begin, m_end) of x [M, K] (K a multiple of 32; x points
 * at row m_begin) into a (buffers allocated by the caller at the sizes
 * above), at ISA `level`. */
void cpu_qact_quantize_rows(cpu_qact *a, const float *x, int64_t m_begin, int64_t m_end, int level);

/* Which integer path: 2 AVX-512 VNNI, 1 AVX2, 0 portable (the ISA level,
 * and VNNI present). */
int cpu_qlinear_path(void);

/* cpu_linear_group for parts of which at least one is quantized (the
 * others run through cpu_linear); cpu_linear and cpu_linear_group hand
 * quantized weights here. */
void cpu_qlinear_group(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K, float *gated);

/* 1: the integer path where it applies (the default, unless
 * LLMRT_CPU_QUANT_ACTIVATIONS=0); 0: always the exact one. Tests. */
void cpu_qlinear_set_integer(int on);

#endif
