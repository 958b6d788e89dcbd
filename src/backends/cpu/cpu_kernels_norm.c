/* RMSNorm, LayerNorm and the fused residual-add + RMSNorm.
 * Statistics are accumulated in double: a norm touches each element once
 * (~1 % of a layer's time next to its GEMMs), and double sums make the result
 * independent of dim and of summation order to well below float precision.
 * The per-element scaling is float, in HF's order: (x · inv_rms) · weight. */
#include <math.h>

#include "backends/cpu/cpu_kernels_internal.h"

#define PARALLEL_MIN_ELEMENTS (1 << 15)

static void rmsnorm_row(float *y, const float *x, const float *weight, int64_t dim, float eps) {
    double sum_sq = 0.0;
    for (int64_t i = 0; i < dim; i++) sum_sq += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(sum_sq / (double)dim + (double)eps));
    for (int64_t i = 0; i < dim; i++) y[i] = x[i] * inv * weight[i];
}

void cpu_rmsnorm(float *y, const float *x, const float *weight, int64_t rows, int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= PARALLEL_MIN_ELEMENTS && rows > 1)
    for (int64_t r = 0; r < rows; r++) rmsnorm_row(y + r * dim, x + r * dim, weight, dim, eps);
}

void cpu_add_rmsnorm(float *y, float *residual, const float *x, const float *weight, int64_t rows,
                     int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= PARALLEL_MIN_ELEMENTS && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        float *res = residual + r * dim;
        const float *xr = x + r * dim;
        for (int64_t i = 0; i < dim; i++) res[i] += xr[i];
        rmsnorm_row(y + r * dim, res, weight, dim, eps);
    }
}

/* Two passes (mean, then centred variance): the one-pass E[x²] − E[x]²
 * formula cancels catastrophically when |mean| ≫ std. */
void cpu_layernorm(float *y, const float *x, const float *weight, const float *bias, int64_t rows,
                   int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= PARALLEL_MIN_ELEMENTS && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double sum = 0.0;
        for (int64_t i = 0; i < dim; i++) sum += xr[i];
        double mean = sum / (double)dim, var = 0.0;
        for (int64_t i = 0; i < dim; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        double inv = 1.0 / sqrt(var / (double)dim + (double)eps);
        for (int64_t i = 0; i < dim; i++) {
            float v = (float)(((double)xr[i] - mean) * inv) * weight[i];
            yr[i] = bias ? v + bias[i] : v;
        }
    }
}
