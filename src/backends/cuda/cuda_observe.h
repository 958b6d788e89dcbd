/* Calibration on the GPU: the OBSERVE op's statistics (graph/ops.h), the
 * twin of cpu_column_amax (backends/cpu/cpu_kernels_observe.h). */
#ifndef LLMRT_BACKENDS_CUDA_OBSERVE_H
#define LLMRT_BACKENDS_CUDA_OBSERVE_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "llmrt/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* amax[k] = max(amax[k], max over rows of |x[r, k]|), on `stream`.
 * x: [rows, cols] f32, f16 or bf16; amax: [cols] f32, non-negative (zero
 * it before the first call). A NaN sticks, as on the CPU. */
cudaError_t cuda_column_amax(float *amax, const void *x, llmrt_dtype x_type, int64_t rows, int64_t cols,
                             cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
