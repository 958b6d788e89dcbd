/* RMSNorm, LayerNorm and the fused residual-add + RMSNorm.
 * Statistics are accumulated in double: a norm touches each element once
 * (~1 % of a layer's time next to its GEMMs), and double sums make the result
 * independent of dim and of summation order to well below float precision.
 * The per-element scaling is float, in HF's order: (x · inv_rms) · weight. */
#include <math.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/thread_pool.h"

#define PARALLEL_MIN_ELEMENTS (1 << 15)

/* Eight partial sums (one chain per i mod 8, added in a fixed order): the
 * compiler vectorises them, where one chain of double adds cost ~4 cycles
 * per element (3.8 µs per 8×256 norm in a decode step). Squares of floats
 * are exact in double, so FMA contraction cannot change the result. */
static void rmsnorm_row(float *y, const float *x, const float *weight, int64_t dim, float eps, float offset) {
    double part[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8)
        for (int j = 0; j < 8; j++) part[j] += (double)x[i + j] * x[i + j];
    for (; i < dim; i++) part[0] += (double)x[i] * x[i];
    const double sum_sq = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    float inv = (float)(1.0 / sqrt(sum_sq / (double)dim + (double)eps));
    if (offset != 0.0f) /* Gemma: (1 + w) in float, as HF adds it */
        for (i = 0; i < dim; i++) y[i] = x[i] * inv * (weight[i] + offset);
    else
        for (i = 0; i < dim; i++) y[i] = x[i] * inv * weight[i];
}

/* One job for the four norms: rows [begin, end). */
typedef struct norm_job {
    float *y, *sum;
    const float *x, *b, *weight, *bias;
    int64_t dim;
    float eps;
    float offset; /* RMSNorm weight offset */
} norm_job;

#define PARALLEL_ROWS(rows, dim) ((rows) * (dim) >= PARALLEL_MIN_ELEMENTS && (rows) > 1)

static void rmsnorm_chunk(void *ctx, int64_t begin, int64_t end) {
    const norm_job *j = ctx;
    for (int64_t r = begin; r < end; r++)
        rmsnorm_row(j->y + r * j->dim, j->x + r * j->dim, j->weight, j->dim, j->eps, j->offset);
}

void cpu_rmsnorm(float *y, const float *x, const float *weight, int64_t rows, int64_t dim, float eps) {
    cpu_rmsnorm_offset(y, x, weight, rows, dim, eps, 0.0f);
}

void cpu_rmsnorm_offset(float *y, const float *x, const float *weight, int64_t rows, int64_t dim, float eps,
                        float offset) {
    norm_job job = {.y = y, .x = x, .weight = weight, .dim = dim, .eps = eps, .offset = offset};
    llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, 1), PARALLEL_ROWS(rows, dim), rmsnorm_chunk, &job);
}

/* sum += x (x in `x`), then y = rmsnorm(sum) */
static void add_rmsnorm_chunk(void *ctx, int64_t begin, int64_t end) {
    const norm_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        float *res = j->sum + r * j->dim;
        const float *xr = j->x + r * j->dim;
        for (int64_t i = 0; i < j->dim; i++) res[i] += xr[i];
        rmsnorm_row(j->y + r * j->dim, res, j->weight, j->dim, j->eps, 0.0f);
    }
}

void cpu_add_rmsnorm(float *y, float *residual, const float *x, const float *weight, int64_t rows,
                     int64_t dim, float eps) {
    norm_job job = {.y = y, .sum = residual, .x = x, .weight = weight, .dim = dim, .eps = eps};
    llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, 1), PARALLEL_ROWS(rows, dim), add_rmsnorm_chunk, &job);
}

/* sum = x + b, then y = rmsnorm(sum) */
static void add_rmsnorm_to_chunk(void *ctx, int64_t begin, int64_t end) {
    const norm_job *j = ctx;
    for (int64_t r = begin; r < end; r++) {
        float *sr = j->sum + r * j->dim;
        const float *ar = j->x + r * j->dim, *br = j->b + r * j->dim;
        for (int64_t i = 0; i < j->dim; i++) sr[i] = ar[i] + br[i];
        rmsnorm_row(j->y + r * j->dim, sr, j->weight, j->dim, j->eps, 0.0f);
    }
}

void cpu_add_rmsnorm_to(float *y, float *sum, const float *a, const float *b, const float *weight, int64_t rows,
                        int64_t dim, float eps) {
    norm_job job = {.y = y, .sum = sum, .x = a, .b = b, .weight = weight, .dim = dim, .eps = eps};
    llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, 1), PARALLEL_ROWS(rows, dim), add_rmsnorm_to_chunk, &job);
}

/* Two passes (mean, then centred variance): the one-pass E[x²] − E[x]²
 * formula cancels catastrophically when |mean| ≫ std. */
static void layernorm_chunk(void *ctx, int64_t begin, int64_t end) {
    const norm_job *j = ctx;
    const int64_t dim = j->dim;
    for (int64_t r = begin; r < end; r++) {
        const float *xr = j->x + r * dim;
        float *yr = j->y + r * dim;
        double sum = 0.0;
        for (int64_t i = 0; i < dim; i++) sum += xr[i];
        double mean = sum / (double)dim, var = 0.0;
        for (int64_t i = 0; i < dim; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        double inv = 1.0 / sqrt(var / (double)dim + (double)j->eps);
        for (int64_t i = 0; i < dim; i++) {
            float v = (float)(((double)xr[i] - mean) * inv) * j->weight[i];
            yr[i] = j->bias ? v + j->bias[i] : v;
        }
    }
}

void cpu_layernorm(float *y, const float *x, const float *weight, const float *bias, int64_t rows,
                   int64_t dim, float eps) {
    norm_job job = {.y = y, .x = x, .weight = weight, .bias = bias, .dim = dim, .eps = eps};
    llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, 1), PARALLEL_ROWS(rows, dim), layernorm_chunk, &job);
}
