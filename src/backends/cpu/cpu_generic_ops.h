/* Generic (unfused) op implementations for the CPU backend: broadcasting
 * elementwise ops, reductions, data movement. Fused and heavy ops live in
 * cpu_kernels*.c. Shapes are concrete here (symbols already resolved). */
#ifndef LLMRT_BACKENDS_CPU_GENERIC_OPS_H
#define LLMRT_BACKENDS_CPU_GENERIC_OPS_H

#include <stdint.h>

#include "graph/ops.h"

enum { CPU_MAX_DIMS = 6 };

typedef struct cpu_shape {
    int32_t ndim;
    int64_t dims[CPU_MAX_DIMS];
} cpu_shape;

int64_t cpu_shape_numel(const cpu_shape *s);

/* out = a ∘ b with numpy broadcasting (out has the broadcast shape). */
void cpu_binary(llmrt_op op, float *out, const cpu_shape *out_shape, const float *a, const cpu_shape *a_shape,
                const float *b, const cpu_shape *b_shape);
/* out = f(a), n elements; attr = exponent for POW. */
void cpu_unary(llmrt_op op, float *out, const float *a, int64_t n, float attr);
/* Last-axis sum or mean: rows × dim → rows. */
void cpu_reduce_last(llmrt_op op, float *out, const float *a, int64_t rows, int64_t dim);
/* Copies part of the last... any axis: out = a[..., start:start+len, ...] (axis `axis`). */
void cpu_slice(void *out, const void *a, const cpu_shape *a_shape, int32_t axis, int64_t start, int64_t length,
               unsigned elem_size);
/* out = concat(parts) along axis. */
void cpu_concat(void *out, const void *const *parts, const cpu_shape *part_shapes, int32_t count, int32_t axis,
                unsigned elem_size);
/* out[perm-permuted] */
void cpu_permute(void *out, const void *a, const cpu_shape *a_shape, const int64_t *perm, unsigned elem_size);

#endif
