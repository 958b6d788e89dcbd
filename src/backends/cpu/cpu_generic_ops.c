#include "backends/cpu/cpu_generic_ops.h"

#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "core/thread_pool.h"

int64_t cpu_shape_numel(const cpu_shape *s) {
    int64_t n = 1;
    for (int32_t i = 0; i < s->ndim; i++) n *= s->dims[i];
    return n;
}

static inline float apply_binary(llmrt_op op, float x, float y) {
    switch (op) {
    case LLMRT_OP_ADD: return x + y;
    case LLMRT_OP_SUB: return x - y;
    case LLMRT_OP_MUL: return x * y;
    default: return x / y;
    }
}

/* Strides of `s` aligned to out's rank, 0 on broadcast dims. */
static void broadcast_strides(const cpu_shape *s, const cpu_shape *out, int64_t *strides) {
    int64_t stride = 1;
    for (int32_t i = out->ndim - 1; i >= 0; i--) {
        int32_t si = s->ndim - out->ndim + i;
        int64_t d = si >= 0 ? s->dims[si] : 1;
        strides[i] = d == 1 ? 0 : stride;
        stride *= d;
    }
}

/* The element-wise loops' arguments. */
typedef struct generic_job {
    llmrt_op op;
    float *out;
    const float *a, *b;
    int64_t dim;
    float attr;
} generic_job;

static void binary_chunk(void *ctx, int64_t begin, int64_t end) {
    const generic_job *j = ctx;
    for (int64_t i = begin; i < end; i++) j->out[i] = apply_binary(j->op, j->a[i], j->b[i]);
}

void cpu_binary(llmrt_op op, float *out, const cpu_shape *out_shape, const float *a, const cpu_shape *a_shape,
                const float *b, const cpu_shape *b_shape) {
    int64_t n = cpu_shape_numel(out_shape), na = cpu_shape_numel(a_shape), nb = cpu_shape_numel(b_shape);
    if (na == n && nb == n) {
        generic_job job = {.op = op, .out = out, .a = a, .b = b};
        llmrt_parallel_for(n, llmrt_parallel_chunk(n, 64), n > 65536, binary_chunk, &job);
        return;
    }
    /* Fast paths are chosen by shape, not by element count: a [T, 1]
     * statistic and a [D] gain have the same count when T == D. */
    int64_t last = out_shape->ndim ? out_shape->dims[out_shape->ndim - 1] : 1;
    int b_is_row_vector = nb == last && b_shape->ndim >= 1 && b_shape->dims[b_shape->ndim - 1] == last;
    for (int32_t i = 0; b_is_row_vector && i + 1 < b_shape->ndim; i++) b_is_row_vector = b_shape->dims[i] == 1;
    int b_is_column = b_shape->ndim == out_shape->ndim && b_shape->ndim >= 1 &&
                      b_shape->dims[b_shape->ndim - 1] == 1 && nb * last == n;
    if (na == n && b_is_row_vector) { /* per-row vector (bias, gain) */
        for (int64_t r = 0; r < n / last; r++)
            for (int64_t i = 0; i < last; i++) out[r * last + i] = apply_binary(op, a[r * last + i], b[i]);
        return;
    }
    if (na == n && nb == 1) {
        for (int64_t i = 0; i < n; i++) out[i] = apply_binary(op, a[i], b[0]);
        return;
    }
    if (nb == n && na == 1) {
        for (int64_t i = 0; i < n; i++) out[i] = apply_binary(op, a[0], b[i]);
        return;
    }
    if (na == n && b_is_column) { /* per-row scalar [.., 1] (a norm's statistic) */
        for (int64_t r = 0; r < nb; r++)
            for (int64_t i = 0; i < last; i++) out[r * last + i] = apply_binary(op, a[r * last + i], b[r]);
        return;
    }
    int64_t sa[CPU_MAX_DIMS], sb[CPU_MAX_DIMS], index[CPU_MAX_DIMS] = {0};
    broadcast_strides(a_shape, out_shape, sa);
    broadcast_strides(b_shape, out_shape, sb);
    int64_t ia = 0, ib = 0;
    for (int64_t i = 0; i < n; i++) {
        out[i] = apply_binary(op, a[ia], b[ib]);
        for (int32_t d = out_shape->ndim - 1; d >= 0; d--) {
            index[d]++;
            ia += sa[d];
            ib += sb[d];
            if (index[d] < out_shape->dims[d]) break;
            ia -= sa[d] * index[d];
            ib -= sb[d] * index[d];
            index[d] = 0;
        }
    }
}

static void unary_chunk(void *ctx, int64_t begin, int64_t end) {
    const generic_job *j = ctx;
    const float attr = j->attr;
    for (int64_t i = begin; i < end; i++) {
        float x = j->a[i];
        float y;
        switch (j->op) {
        case LLMRT_OP_POW: y = attr == 2.0f ? x * x : attr == 3.0f ? x * x * x : powf(x, attr); break;
        case LLMRT_OP_NEG: y = -x; break;
        case LLMRT_OP_EXP: y = expf(x); break;
        case LLMRT_OP_SQRT: y = sqrtf(x); break;
        case LLMRT_OP_RSQRT: y = 1.0f / sqrtf(x); break;
        case LLMRT_OP_TANH: y = tanhf(x); break;
        case LLMRT_OP_ERF: y = erff(x); break;
        case LLMRT_OP_SIGMOID: y = 1.0f / (1.0f + expf(-x)); break;
        case LLMRT_OP_RELU: y = x > 0 ? x : 0; break;
        default: y = x; break;
        }
        j->out[i] = y;
    }
}

void cpu_unary(llmrt_op op, float *out, const float *a, int64_t n, float attr) {
    switch (op) {
    case LLMRT_OP_SILU: cpu_silu(out, a, n); return;
    case LLMRT_OP_GELU: cpu_gelu_erf(out, a, n); return;
    case LLMRT_OP_GELU_TANH: cpu_gelu_tanh(out, a, n); return;
    default: break;
    }
    generic_job job = {.op = op, .out = out, .a = a, .attr = attr};
    llmrt_parallel_for(n, llmrt_parallel_chunk(n, 64), n > 65536, unary_chunk, &job);
}

static void reduce_chunk(void *ctx, int64_t begin, int64_t end) {
    const generic_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        double sum = 0;
        for (int64_t i = 0; i < j->dim; i++) sum += j->a[r * j->dim + i];
        j->out[r] = (float)(j->op == LLMRT_OP_MEAN ? sum / (double)j->dim : sum);
    }
}

void cpu_reduce_last(llmrt_op op, float *out, const float *a, int64_t rows, int64_t dim) {
    generic_job job = {.op = op, .out = out, .a = a, .dim = dim};
    llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, 1), rows * dim > 65536, reduce_chunk, &job);
}

/* (outer, axis, inner) factorisation of a shape around `axis`. */
static void split_axis(const cpu_shape *s, int32_t axis, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int32_t i = 0; i < axis; i++) *outer *= s->dims[i];
    for (int32_t i = axis + 1; i < s->ndim; i++) *inner *= s->dims[i];
}

void cpu_slice(void *out, const void *a, const cpu_shape *a_shape, int32_t axis, int64_t start, int64_t length,
               unsigned elem_size) {
    int64_t outer, inner;
    split_axis(a_shape, axis, &outer, &inner);
    size_t row = (size_t)(length * inner) * elem_size, src_row = (size_t)(a_shape->dims[axis] * inner) * elem_size;
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)out + (size_t)o * row, (const char *)a + (size_t)o * src_row + (size_t)(start * inner) * elem_size,
               row);
}

void cpu_concat(void *out, const void *const *parts, const cpu_shape *shapes, int32_t count, int32_t axis,
                unsigned elem_size) {
    int64_t outer, inner, total = 0;
    split_axis(&shapes[0], axis, &outer, &inner);
    for (int32_t p = 0; p < count; p++) total += shapes[p].dims[axis];
    size_t out_row = (size_t)(total * inner) * elem_size;
    for (int64_t o = 0; o < outer; o++) {
        size_t at = 0;
        for (int32_t p = 0; p < count; p++) {
            size_t row = (size_t)(shapes[p].dims[axis] * inner) * elem_size;
            memcpy((char *)out + (size_t)o * out_row + at, (const char *)parts[p] + (size_t)o * row, row);
            at += row;
        }
    }
}

void cpu_permute(void *out, const void *a, const cpu_shape *s, const int64_t *perm, unsigned elem_size) {
    int64_t in_strides[CPU_MAX_DIMS], stride = 1, out_dims[CPU_MAX_DIMS], index[CPU_MAX_DIMS] = {0};
    for (int32_t i = s->ndim - 1; i >= 0; i--) {
        in_strides[i] = stride;
        stride *= s->dims[i];
    }
    for (int32_t i = 0; i < s->ndim; i++) out_dims[i] = s->dims[perm[i]];
    int64_t n = cpu_shape_numel(s);
    for (int64_t i = 0; i < n; i++) {
        int64_t src = 0;
        for (int32_t d = 0; d < s->ndim; d++) src += index[d] * in_strides[perm[d]];
        memcpy((char *)out + (size_t)i * elem_size, (const char *)a + (size_t)src * elem_size, elem_size);
        for (int32_t d = s->ndim - 1; d >= 0; d--) {
            if (++index[d] < out_dims[d]) break;
            index[d] = 0;
        }
    }
}
