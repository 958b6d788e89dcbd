/* Quantized cpu_linear (int8-wo, int4-wo g128) against f16 on the
 * TinyLlama-1.1B shapes: one pass over the 154 linears of the 22 layers
 * (the LM head stays 16-bit and is left out), each with its own weights so
 * every pass streams them all from DRAM, at M = 1 (decode) and M = 128
 * (a 128-token prompt). The three storages run interleaved, so a busy
 * neighbour slows them alike. Not wired into CMake; from the repository root:
 *
 *   gcc -O3 -std=c11 -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *       bench/cpu_quant_bench.c src/backends/cpu/cpu_isa.c src/backends/cpu/cpu_kernels_*.c \
 *       src/core/dtype.c src/core/quant.c src/core/thread_pool.c src/core/status.c -lm -lpthread \
 *       -o build/cpu_quant_bench
 *   OMP_NUM_THREADS=2 build/cpu_quant_bench [runs]
 *
 * Reported: median ms per pass and the weight bytes it read per second. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/quant.h"

#define HIDDEN 2048
#define KV_DIM 256
#define INTER 5632
#define LAYERS 22
#define PROMPT 128

static double now(void) {
    struct timespec ts;
    clock_gettime(getenv("BENCH_CPU_TIME") ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct linear {
    int64_t N, K;
    void *w;
} linear;

static const int64_t shapes[7][2] = {{HIDDEN, HIDDEN}, {KV_DIM, HIDDEN}, {KV_DIM, HIDDEN}, {HIDDEN, HIDDEN},
                                     {INTER, HIDDEN},  {INTER, HIDDEN},  {HIDDEN, INTER}};

static linear *make(llmrt_dtype type, size_t *bytes) {
    linear *l = calloc(LAYERS * 7, sizeof *l);
    float *row = malloc(sizeof(float) * INTER);
    unsigned seed = 1;
    *bytes = 0;
    for (int i = 0; i < LAYERS * 7; i++) {
        l[i].N = shapes[i % 7][0], l[i].K = shapes[i % 7][1];
        const int64_t group = type == LLMRT_DTYPE_INT4_WO ? 128 : 0; /* int8-wo per channel */
        size_t size = llmrt_dtype_is_quantized(type) ? llmrt_qweight_bytes(type, l[i].N, l[i].K, group, 0)
                                                     : (size_t)(l[i].N * l[i].K) * 2;
        l[i].w = aligned_alloc(64, (size + 63) & ~(size_t)63);
        llmrt_qweight_header h;
        if (llmrt_dtype_is_quantized(type)) {
            llmrt_qweight_layout(type, l[i].N, l[i].K, group, 0, &h);
            llmrt_qweight_init(l[i].w, &h);
        }
        for (int64_t n = 0; n < l[i].N; n++) {
            for (int64_t k = 0; k < l[i].K; k++) row[k] = (float)((seed = seed * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
            if (llmrt_dtype_is_quantized(type)) llmrt_quantize_row(l[i].w, n, row, type == LLMRT_DTYPE_INT4_WO);
            else llmrt_convert_from_f32((uint16_t *)l[i].w + n * l[i].K, type, row, (size_t)l[i].K);
        }
        *bytes += size;
    }
    free(row);
    return l;
}

static double pass(const linear *l, llmrt_dtype type, const float *x, float *y, int64_t M) {
    const double t0 = now();
    for (int i = 0; i < LAYERS * 7; i++) cpu_linear(y, x, l[i].w, type, NULL, M, l[i].N, l[i].K);
    return now() - t0;
}

int main(int argc, char **argv) {
    const int runs = argc > 1 ? atoi(argv[1]) : 5;
    const llmrt_dtype types[3] = {LLMRT_DTYPE_F16, LLMRT_DTYPE_INT8_WO, LLMRT_DTYPE_INT4_WO};
    linear *l[3];
    size_t bytes[3];
    for (int t = 0; t < 3; t++) l[t] = make(types[t], &bytes[t]);
    float *x = malloc(sizeof(float) * PROMPT * INTER), *y = malloc(sizeof(float) * PROMPT * INTER);
    for (int i = 0; i < PROMPT * INTER; i++) x[i] = (float)(i % 97) / 97.0f - 0.5f;
    printf("TinyLlama-1.1B linears (no LM head), %d threads, ISA %s\n", omp_get_max_threads(), cpu_kernels_isa());
    const int64_t Ms[2] = {1, PROMPT};
    for (int mi = 0; mi < 2; mi++) {
        double *times = malloc(sizeof(double) * 3 * (size_t)runs);
        for (int r = 0; r < runs; r++)
            for (int t = 0; t < 3; t++) times[t * runs + r] = pass(l[t], types[t], x, y, Ms[mi]);
        for (int t = 0; t < 3; t++) {
            qsort(times + t * runs, (size_t)runs, sizeof(double), cmp_double);
            const double median = times[t * runs + runs / 2];
            printf("M=%-4lld %-8s %8.1f ms/pass  %6.1f GB/s of weights  %7.1f tokens/s\n", (long long)Ms[mi],
                   llmrt_dtype_name(types[t]), median * 1e3, (double)bytes[t] / median / 1e9, (double)Ms[mi] / median);
        }
        free(times);
    }
    return 0;
}
