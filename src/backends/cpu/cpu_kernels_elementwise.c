/* Activations, softmax and embedding lookup.
 * SiLU (the SwiGLU MLP of every LLaMA-family model, [T, intermediate] per
 * layer) is the only hot one and gets vectorised exp; GELU and softmax call
 * libm per element: they are cheap next to the GEMMs around them, and libm
 * is correctly rounded to within an ulp. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/dtype.h"

/* Fork/join costs ~5 µs; below this many elements one thread is faster. */
#define PARALLEL_MIN_ELEMENTS (1 << 15)

/* libm's M_* constants are not in strict C11. */
#define SQRT1_2 0.70710678118654752440
#define SQRT_2_OVER_PI 0.79788456080286535588

static void silu_portable(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

static void silu_mul_portable(float *y, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* This thread's share of n elements: contiguous, 64-aligned starts so the
 * vector bodies of neighbouring chunks do not share cache lines. */
static void thread_chunk(int64_t n, int64_t *begin, int64_t *end) {
    int64_t threads = omp_get_num_threads(), tid = omp_get_thread_num();
    int64_t per = ((n + threads - 1) / threads + 63) & ~(int64_t)63;
    *begin = per * tid;
    *end = *begin + per < n ? *begin + per : n;
}

void cpu_silu(float *y, const float *x, int64_t n) {
    const int level = cpu_isa_level();
#pragma omp parallel if (n >= PARALLEL_MIN_ELEMENTS)
    {
        int64_t begin, end;
        thread_chunk(n, &begin, &end);
        if (begin >= end) {
        } else if (level >= CPU_ISA_AVX512) cpu_silu_avx512(y + begin, x + begin, end - begin);
        else if (level == CPU_ISA_AVX2) cpu_silu_avx2(y + begin, x + begin, end - begin);
        else silu_portable(y + begin, x + begin, end - begin);
    }
}

void cpu_silu_mul_range(int level, float *y, const float *gate, const float *up, int64_t n) {
    if (n <= 0) return;
    if (level >= CPU_ISA_AVX512) cpu_silu_mul_avx512(y, gate, up, n);
    else if (level == CPU_ISA_AVX2) cpu_silu_mul_avx2(y, gate, up, n);
    else silu_mul_portable(y, gate, up, n);
}

void cpu_silu_mul(float *y, const float *gate, const float *up, int64_t n) {
    const int level = cpu_isa_level();
#pragma omp parallel if (n >= PARALLEL_MIN_ELEMENTS)
    {
        int64_t begin, end;
        thread_chunk(n, &begin, &end);
        cpu_silu_mul_range(level, y + begin, gate + begin, up + begin, end - begin);
    }
}

/* PyTorch: 0.5 · x · (1 + erf(x / √2)). */
void cpu_gelu_erf(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)SQRT1_2));
}

/* PyTorch's approximate='tanh': 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³))). */
void cpu_gelu_tanh(float *y, const float *x, int64_t n) {
    const float beta = (float)SQRT_2_OVER_PI, kappa = 0.044715f;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(beta * (v + kappa * v * v * v)));
    }
}

/* Max-subtracted; the sum is kept in double so a 150k-entry vocabulary row
 * loses nothing to accumulation order. */
void cpu_softmax(float *y, const float *x, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows * dim >= PARALLEL_MIN_ELEMENTS && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        float max = -INFINITY;
        for (int64_t i = 0; i < dim; i++) max = xr[i] > max ? xr[i] : max;
        double sum = 0.0;
        for (int64_t i = 0; i < dim; i++) {
            float e = expf(xr[i] - max);
            yr[i] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < dim; i++) yr[i] *= inv;
    }
}

int64_t cpu_embedding(float *out, const void *table, llmrt_dtype table_type, int64_t rows, int64_t dim,
                      const int32_t *ids, int64_t count) {
    int64_t first_invalid = -1;
    for (int64_t t = 0; t < count && first_invalid < 0; t++)
        if (ids[t] < 0 || ids[t] >= rows) first_invalid = t;
    const size_t esize = llmrt_dtype_size(table_type);
#pragma omp parallel for schedule(static) if (count * dim >= PARALLEL_MIN_ELEMENTS && count > 1)
    for (int64_t t = 0; t < count; t++) {
        float *dst = out + t * dim;
        if (ids[t] < 0 || ids[t] >= rows) {
            memset(dst, 0, sizeof(float) * (size_t)dim);
            continue;
        }
        const void *src = (const char *)table + (size_t)ids[t] * (size_t)dim * esize;
        if (llmrt_convert_to_f32(dst, src, table_type, (size_t)dim) != 0)
            memset(dst, 0, sizeof(float) * (size_t)dim);
    }
    return first_invalid;
}
