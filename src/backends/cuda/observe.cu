// Column-wise max |x| for calibration (OBSERVE nodes). A block's threads
// take adjacent columns of one row at a time (coalesced reads), each keeps
// its column's maximum over the block's share of the rows, then merges it
// into amax with one atomicMax on the float's bits: for non-negative
// floats the integer order of the bits is the float order (and a NaN's
// bits, 0x7fc00000 once the sign is cleared, exceed +inf's, so it sticks).
#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/cuda_observe.h"

enum { OBSERVE_THREADS = 256, OBSERVE_ROWS_PER_BLOCK = 64 };

__global__ void column_amax_kernel(float *amax, const void *x, int x_type, int64_t rows, int64_t cols) {
    const int64_t k = blockIdx.x * (int64_t)OBSERVE_THREADS + threadIdx.x;
    if (k >= cols) return;
    int best = 0; // the bits of +0.0f
    for (int64_t r0 = blockIdx.y * (int64_t)OBSERVE_ROWS_PER_BLOCK; r0 < rows;
         r0 += (int64_t)gridDim.y * OBSERVE_ROWS_PER_BLOCK) {
        const int64_t r1 = r0 + OBSERVE_ROWS_PER_BLOCK < rows ? r0 + OBSERVE_ROWS_PER_BLOCK : rows;
        for (int64_t r = r0; r < r1; r++)
            best = max(best, __float_as_int(fabsf(load_as_float(x, x_type, r * cols + k))));
    }
    atomicMax((int *)amax + k, best);
}

extern "C" cudaError_t cuda_column_amax(float *amax, const void *x, llmrt_dtype x_type, int64_t rows, int64_t cols,
                                        cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    const int64_t col_blocks = (cols + OBSERVE_THREADS - 1) / OBSERVE_THREADS;
    int64_t row_blocks = (rows + OBSERVE_ROWS_PER_BLOCK - 1) / OBSERVE_ROWS_PER_BLOCK;
    if (row_blocks > 1024) row_blocks = 1024; // the blocks stride over the rest
    if (col_blocks > INT32_MAX) return cudaErrorInvalidValue;
    const dim3 grid((unsigned)col_blocks, (unsigned)row_blocks);
    column_amax_kernel<<<grid, OBSERVE_THREADS, 0, stream>>>(amax, x, x_type, rows, cols);
    return cudaGetLastError();
}
