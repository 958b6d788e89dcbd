#include "backends/cpu/cpu_kernels_observe.h"

#include <math.h>

/* Columns in blocks, so each thread owns its slice of amax and reads x
 * row by row within it (no reduction across threads). */
void cpu_column_amax(float *amax, const float *x, int64_t rows, int64_t cols) {
    enum { BLOCK = 256 };
    const int64_t blocks = (cols + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t k0 = b * BLOCK, k1 = k0 + BLOCK < cols ? k0 + BLOCK : cols;
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + r * cols;
            for (int64_t k = k0; k < k1; k++) {
                const float v = fabsf(row[k]);
                if (v > amax[k] || v != v) amax[k] = v;
            }
        }
    }
}
