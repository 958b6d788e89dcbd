// Embedding gather: one block per token row, ids validated on the device
// (a bad id zero-fills its row and is reported, never read out of bounds).
#include <limits.h>

#include "backends/cuda/cuda_device.cuh"

__global__ void embedding_kernel(void *out, int out_type, const void *table, int table_type, int64_t rows,
                                 int64_t dim, const int32_t *ids, int64_t first_row, int32_t *bad_index) {
    const int64_t t = blockIdx.x;
    const int64_t id = (int64_t)ids[t] - first_row;
    const bool valid = id >= 0 && id < rows;
    if (!valid && threadIdx.x == 0 && bad_index) atomicMin(bad_index, (int32_t)t);
    const int64_t src = valid ? (int64_t)id * dim : 0, dst = t * dim;
    if (out_type == table_type && out_type != LLMRT_DTYPE_F32 && dim % 8 == 0 &&
        (((uintptr_t)out | (uintptr_t)table) & 15) == 0) {
        // Same 16-bit type both sides: a 16-byte copy per thread.
        const uint4 *s = reinterpret_cast<const uint4 *>((const uint16_t *)table + src);
        uint4 *d = reinterpret_cast<uint4 *>((uint16_t *)out + dst);
        for (int64_t i = threadIdx.x; i < dim / 8; i += blockDim.x) d[i] = valid ? s[i] : make_uint4(0, 0, 0, 0);
        return;
    }
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
        store_from_float(out, out_type, dst + i, valid ? load_as_float(table, table_type, src + i) : 0.0f);
}

extern "C" cudaError_t cuda_embedding(void *out, llmrt_dtype out_type, const void *table, llmrt_dtype table_type,
                                      int64_t rows, int64_t dim, const int32_t *ids, int64_t count,
                                      int32_t *bad_index, cudaStream_t stream) {
    if (count <= 0) return cudaSuccess;
    embedding_kernel<<<(unsigned)count, 256, 0, stream>>>(out, out_type, table, table_type, rows, dim, ids, 0,
                                                          bad_index);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_embedding_shard(void *out, llmrt_dtype out_type, const void *table,
                                            llmrt_dtype table_type, int64_t rows, int64_t dim, const int32_t *ids,
                                            int64_t count, int64_t first_row, cudaStream_t stream) {
    if (count <= 0) return cudaSuccess;
    embedding_kernel<<<(unsigned)count, 256, 0, stream>>>(out, out_type, table, table_type, rows, dim, ids,
                                                          first_row, NULL);
    return cudaGetLastError();
}
