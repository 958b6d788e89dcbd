/* The interleaved layout of 16-bit linear weights (cpu_weight_interleave,
 * cpu_kernels.h; the addressing is cpu_w_row / cpu_w_col,
 * cpu_kernels_internal.h). */
#include <string.h>

#include "backends/cpu/cpu_kernels_internal.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

size_t cpu_weight_interleaved_bytes(int64_t N, int64_t K) {
    const int64_t groups = (N + CPU_IL_ROWS - 1) / CPU_IL_ROWS;
    return (size_t)groups * CPU_IL_ROWS * (size_t)cpu_il_padded_k(K) * sizeof(uint16_t);
}

typedef struct interleave_job {
    uint16_t *dst;
    const uint16_t *src;
    int64_t N, K;
} interleave_job;

/* Groups [begin, end): each written front to back, so the destination is
 * one sequential stream per thread (first touch of fresh memory). */
static void interleave_groups(void *ctx, int64_t begin, int64_t end) {
    const interleave_job *j = ctx;
    const int64_t padded = cpu_il_padded_k(j->K);
    for (int64_t g = begin; g < end; g++) {
        uint16_t *out = j->dst + g * CPU_IL_ROWS * padded;
        for (int64_t k = 0; k < padded; k += CPU_IL_CHUNK)
            for (int64_t r = 0; r < CPU_IL_ROWS; r++, out += CPU_IL_CHUNK) {
                const int64_t n = g * CPU_IL_ROWS + r, count = n < j->N && k < j->K ? j->K - k : 0;
                const int64_t take = count < CPU_IL_CHUNK ? count : CPU_IL_CHUNK;
                if (take > 0) memcpy(out, j->src + n * j->K + k, (size_t)take * sizeof *out);
                memset(out + take, 0, (size_t)(CPU_IL_CHUNK - take) * sizeof *out);
            }
    }
}

void cpu_weight_interleave(uint16_t *dst, const uint16_t *src, int64_t N, int64_t K) {
    interleave_job job = {.dst = dst, .src = src, .N = N, .K = K};
    const int64_t groups = (N + CPU_IL_ROWS - 1) / CPU_IL_ROWS;
    llmrt_parallel_for(groups, llmrt_parallel_chunk(groups, 1), groups >= 64, interleave_groups, &job);
}

void cpu_weight_row_f32(float *out, const uint16_t *w, llmrt_dtype type, int interleaved, int64_t n, int64_t K) {
    const uint16_t *row = w + cpu_w_row(interleaved, n, K);
    if (!interleaved) {
        llmrt_convert_to_f32(out, row, type, (size_t)K);
        return;
    }
    for (int64_t k = 0; k < K; k += CPU_IL_CHUNK)
        llmrt_convert_to_f32(out + k, row + cpu_w_col(1, k), type, (size_t)(K - k < CPU_IL_CHUNK ? K - k : CPU_IL_CHUNK));
}
