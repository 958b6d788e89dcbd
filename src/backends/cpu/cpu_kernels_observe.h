/* Calibration on the CPU: the OBSERVE op's statistics (graph/ops.h). */
#ifndef LLMRT_BACKENDS_CPU_KERNELS_OBSERVE_H
#define LLMRT_BACKENDS_CPU_KERNELS_OBSERVE_H

#include <stdint.h>

/* amax[k] = max(amax[k], max over rows of |x[r, k]|). A NaN sticks (as
 * the CUDA kernel's integer max of the float bits makes it), so the
 * calibration runner can name a LINEAR whose inputs went non-finite.
 * x: [rows, cols] f32, amax: [cols] */
void cpu_column_amax(float *amax, const float *x, int64_t rows, int64_t cols);

#endif
