/* Activations, softmax and embedding lookup.
 * SiLU (the SwiGLU MLP of every LLaMA-family model, [T, intermediate] per
 * layer) is the only hot one and gets vectorised exp; GELU and softmax call
 * libm per element: they are cheap next to the GEMMs around them, and libm
 * is correctly rounded to within an ulp. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/thread_pool.h"
#include "core/dtype.h"

/* Starting and joining the threads costs ~5 µs; below this many elements one thread is faster. */
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

/* Chunks start 64-aligned so the vector bodies of neighbouring chunks do
 * not share cache lines. */
#define ELEMENT_ALIGN 64

typedef struct unary_job {
    int level;
    float *y;
    const float *x, *up;
} unary_job;

static void silu_chunk(void *ctx, int64_t begin, int64_t end) {
    const unary_job *j = ctx;
    if (j->level >= CPU_ISA_AVX512) cpu_silu_avx512(j->y + begin, j->x + begin, end - begin);
    else if (j->level == CPU_ISA_AVX2) cpu_silu_avx2(j->y + begin, j->x + begin, end - begin);
    else silu_portable(j->y + begin, j->x + begin, end - begin);
}

void cpu_silu(float *y, const float *x, int64_t n) {
    unary_job job = {.level = cpu_isa_level(), .y = y, .x = x};
    llmrt_parallel_for(n, llmrt_parallel_chunk(n, ELEMENT_ALIGN), n >= PARALLEL_MIN_ELEMENTS, silu_chunk, &job);
}

void cpu_silu_mul_range(int level, float *y, const float *gate, const float *up, int64_t n) {
    if (n <= 0) return;
    if (level >= CPU_ISA_AVX512) cpu_silu_mul_avx512(y, gate, up, n);
    else if (level == CPU_ISA_AVX2) cpu_silu_mul_avx2(y, gate, up, n);
    else silu_mul_portable(y, gate, up, n);
}

static void silu_mul_chunk(void *ctx, int64_t begin, int64_t end) {
    const unary_job *j = ctx;
    cpu_silu_mul_range(j->level, j->y + begin, j->x + begin, j->up + begin, end - begin);
}

void cpu_silu_mul(float *y, const float *gate, const float *up, int64_t n) {
    unary_job job = {.level = cpu_isa_level(), .y = y, .x = gate, .up = up};
    llmrt_parallel_for(n, llmrt_parallel_chunk(n, ELEMENT_ALIGN), n >= PARALLEL_MIN_ELEMENTS, silu_mul_chunk, &job);
}

/* PyTorch: 0.5 · x · (1 + erf(x / √2)). */
static void gelu_erf_chunk(void *ctx, int64_t begin, int64_t end) {
    const unary_job *j = ctx;
    for (int64_t i = begin; i < end; i++) j->y[i] = 0.5f * j->x[i] * (1.0f + erff(j->x[i] * (float)SQRT1_2));
}

void cpu_gelu_erf(float *y, const float *x, int64_t n) {
    unary_job job = {.y = y, .x = x};
    llmrt_parallel_for(n, llmrt_parallel_chunk(n, ELEMENT_ALIGN), n >= PARALLEL_MIN_ELEMENTS, gelu_erf_chunk, &job);
}

/* PyTorch's approximate='tanh': 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³))). */
static void gelu_tanh_chunk(void *ctx, int64_t begin, int64_t end) {
    const unary_job *j = ctx;
    const float beta = (float)SQRT_2_OVER_PI, kappa = 0.044715f;
    for (int64_t i = begin; i < end; i++) {
        float v = j->x[i];
        j->y[i] = 0.5f * v * (1.0f + tanhf(beta * (v + kappa * v * v * v)));
    }
}

void cpu_gelu_tanh(float *y, const float *x, int64_t n) {
    unary_job job = {.y = y, .x = x};
    llmrt_parallel_for(n, llmrt_parallel_chunk(n, ELEMENT_ALIGN), n >= PARALLEL_MIN_ELEMENTS, gelu_tanh_chunk, &job);
}

/* Max-subtracted; the sum is kept in double so a 150k-entry vocabulary row
 * loses nothing to accumulation order. */
typedef struct rows_job {
    float *y;
    const float *x;
    int64_t dim;
} rows_job;

static void softmax_chunk(void *ctx, int64_t begin, int64_t end) {
    const rows_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        const float *xr = j->x + r * j->dim;
        float *yr = j->y + r * j->dim;
        float max = -INFINITY;
        for (int64_t i = 0; i < j->dim; i++) max = xr[i] > max ? xr[i] : max;
        double sum = 0.0;
        for (int64_t i = 0; i < j->dim; i++) {
            float e = expf(xr[i] - max);
            yr[i] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < j->dim; i++) yr[i] *= inv;
    }
}

void cpu_softmax(float *y, const float *x, int64_t rows, int64_t dim) {
    rows_job job = {.y = y, .x = x, .dim = dim};
    llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, 1), rows * dim >= PARALLEL_MIN_ELEMENTS && rows > 1, softmax_chunk,
                     &job);
}

typedef struct embedding_job {
    float *out;
    const void *table;
    llmrt_dtype table_type;
    int64_t rows, dim;
    const int32_t *ids;
} embedding_job;

static void embedding_chunk(void *ctx, int64_t begin, int64_t end) {
    const embedding_job *j = ctx;
    const size_t esize = llmrt_dtype_size(j->table_type);
    for (int64_t t = begin; t < end; t++) {
        float *dst = j->out + t * j->dim;
        if (j->ids[t] < 0 || j->ids[t] >= j->rows) {
            memset(dst, 0, sizeof(float) * (size_t)j->dim);
            continue;
        }
        const void *src = (const char *)j->table + (size_t)j->ids[t] * (size_t)j->dim * esize;
        if (llmrt_convert_to_f32(dst, src, j->table_type, (size_t)j->dim) != 0)
            memset(dst, 0, sizeof(float) * (size_t)j->dim);
    }
}

int64_t cpu_embedding(float *out, const void *table, llmrt_dtype table_type, int64_t rows, int64_t dim,
                      const int32_t *ids, int64_t count) {
    int64_t first_invalid = -1;
    for (int64_t t = 0; t < count && first_invalid < 0; t++)
        if (ids[t] < 0 || ids[t] >= rows) first_invalid = t;
    embedding_job job = {.out = out, .table = table, .table_type = table_type, .rows = rows, .dim = dim, .ids = ids};
    llmrt_parallel_for(count, llmrt_parallel_chunk(count, 1), count * dim >= PARALLEL_MIN_ELEMENTS && count > 1,
                     embedding_chunk, &job);
    return first_invalid;
}
