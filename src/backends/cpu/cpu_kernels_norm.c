/* RMSNorm, LayerNorm and the fused residual-add + RMSNorm.
 * Statistics are accumulated in double: a norm touches each element once
 * (~1 % of a layer's time next to its GEMMs), and double sums make the result
 * independent of dim and of summation order to well below float precision.
 * The per-element scaling is float, in HF's order: (x · inv_rms) · weight. */
#include <math.h>

#include "backends/cpu/cpu_kernels_internal.h"

#define PARALLEL_MIN_ELEMENTS (1 << 15)

/* Eight partial sums (one chain per i mod 8, added in a fixed order): the
 * compiler vectorises them, where one chain of double adds cost ~4 cycles
 * per element (3.8 µs per 8×256 norm in a decode step). Squares of floats
 * are exact in double, so FMA contraction cannot change the result. */
static void rmsnorm_row(float *y, const float *x, const float *weight, int64_t dim, float eps) {
    double part[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8)
        for (int j = 0; j < 8; j++) part[j] += (double)x[i + j] * x[i + j];
    for (; i < dim; i++) part[0] += (double)x[i] * x[i];
    const double sum_sq = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    float inv = (float)(1.0 / sqrt(sum_sq / (double)dim + (double)eps));
    for (i = 0; i < dim; i++) y[i] = x[i] * inv * weight[i];
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

void cpu_add_rmsnorm_to(float *y, float *sum, const float *a, const float *b, const float *weight, int64_t rows,
                        int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= PARALLEL_MIN_ELEMENTS && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        float *sr = sum + r * dim;
        const float *ar = a + r * dim, *br = b + r * dim;
        for (int64_t i = 0; i < dim; i++) sr[i] = ar[i] + br[i];
        rmsnorm_row(y + r * dim, sr, weight, dim, eps);
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
