/* cpu_linear on the TinyLlama-1.1B shapes, next to the machine's read
 * bandwidth. Not wired into CMake (bench/ is not a CMake folder); build by
 * hand from the repository root:
 *
 *   gcc -O3 -std=c11 -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *       bench/cpu_kernels_bench.c src/backends/cpu/cpu_isa.c \
 *       src/backends/cpu/cpu_kernels_*.c src/core/dtype.c -lm -o build-cpu/cpu_kernels_bench
 *   OMP_NUM_THREADS=2 build-cpu/cpu_kernels_bench [runs]
 *
 * The whole model's 155 linears (22 layers × q,k,v,o,gate,up,down + lm_head)
 * get their own weights (2.07 GB in f16, 4.1 GB in f32), so every "token"
 * streams all of them from DRAM exactly as decode does; nothing fits in
 * cache. Reported: median over runs of one full pass. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cpu/cpu_kernels.h"

#define HIDDEN 2048
#define KV_DIM 256 /* 4 kv heads × 64 */
#define INTER 5632
#define VOCAB 32000
#define LAYERS 22
#define FLOOR_GBS 17.0 /* ANCHORS.md: 2-thread AVX-512 read bandwidth */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* --- read bandwidth: 2 threads summing 1 GB with AVX-512 loads ------------- */
__attribute__((target("avx512f"))) static double sum_avx512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* The same sum over 4 distant parts of the thread's half at once: one
 * sequential stream per core leaves DRAM idle between prefetcher requests,
 * while the GEMV reads 4 weight rows at a time. Reported next to the plain
 * sum so that the floor the GEMV is held to is the higher of the two. */
__attribute__((target("avx512f"))) static double sum4_avx512(const float *p, size_t n) {
    const size_t q = n / 4;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 16 <= q; i += 16) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + q + i));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + 2 * q + i));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + 3 * q + i));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static double read_bandwidth_gbs(int runs, int streams) {
    const size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
    float *buf = aligned_alloc(64, bytes);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    double t[16], sink = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
#pragma omp parallel reduction(+ : sink)
        {
            size_t per = n / (size_t)omp_get_num_threads();
            const float *part = buf + per * (size_t)omp_get_thread_num();
            sink += streams == 1 ? sum_avx512(part, per) : sum4_avx512(part, per);
        }
        t[r] = now() - t0;
    }
    if (sink == 42.0) printf(" ");
    free(buf);
    return bytes / median(t, runs) / 1e9;
}

/* --- the model's linears ----------------------------------------------------- */
typedef struct { const char *name; int64_t n, k; } shape;
static const shape layer_shapes[] = {{"q_proj", HIDDEN, HIDDEN}, {"k_proj", KV_DIM, HIDDEN},
                                     {"v_proj", KV_DIM, HIDDEN}, {"o_proj", HIDDEN, HIDDEN},
                                     {"gate_proj", INTER, HIDDEN}, {"up_proj", INTER, HIDDEN},
                                     {"down_proj", HIDDEN, INTER}};
#define NUM_KINDS 8 /* 7 per layer + lm_head */

typedef struct {
    void *w[LAYERS * 7 + 1];
    int kind[LAYERS * 7 + 1];
    int count;
    size_t bytes, params;
} model;

/* Random weights in [-0.5, 0.5) made from bits directly (converting 1e9
 * floats through the scalar helpers would take longer than the bench). */
static void fill_random(void *w, size_t n, llmrt_dtype type, uint64_t seed) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
        x ^= x >> 29, x *= 0xbf58476d1ce4e5b9ull, x ^= x >> 32;
        if (type == LLMRT_DTYPE_F16) ((uint16_t *)w)[i] = (uint16_t)((x & 0x83ff) | ((10 + (x >> 16) % 4) << 10));
        else if (type == LLMRT_DTYPE_BF16) ((uint16_t *)w)[i] = (uint16_t)((x & 0x807f) | ((122 + (x >> 16) % 4) << 7));
        else ((float *)w)[i] = (float)((int64_t)(x >> 40) - (1 << 23)) / (float)(1 << 24);
    }
}

static void model_create(model *m, llmrt_dtype type) {
    size_t esize = type == LLMRT_DTYPE_F32 ? 4 : 2;
    memset(m, 0, sizeof *m);
    for (int l = 0; l <= LAYERS; l++)
        for (int s = 0; s < 7; s++) {
            if (l == LAYERS && s > 0) break;
            int64_t n = l == LAYERS ? VOCAB : layer_shapes[s].n, k = l == LAYERS ? HIDDEN : layer_shapes[s].k;
            size_t count = (size_t)(n * k);
            m->w[m->count] = aligned_alloc(64, count * esize);
            fill_random(m->w[m->count], count, type, (uint64_t)m->count * 7919);
            m->kind[m->count++] = l == LAYERS ? 7 : s;
            m->bytes += count * esize, m->params += count;
        }
}

static void model_free(model *m) {
    for (int i = 0; i < m->count; i++) free(m->w[i]);
}

/* One pass over every linear with M rows; per-kind time accumulated. */
static double model_pass(const model *m, llmrt_dtype type, int64_t M, float *x, float *y, double kind_time[NUM_KINDS]) {
    double t0 = now();
    for (int i = 0; i < m->count; i++) {
        int kind = m->kind[i];
        int64_t n = kind == 7 ? VOCAB : layer_shapes[kind].n, k = kind == 7 ? HIDDEN : layer_shapes[kind].k;
        double t1 = now();
        cpu_linear(y, x, m->w[i], type, NULL, M, n, k);
        if (kind_time) kind_time[kind] += now() - t1;
    }
    return now() - t0;
}

/* Other work on a 2-core box wrecks OpenMP timings (a descheduled thread
 * stalls the other at the barrier), so the load is printed with the results. */
static void print_load(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char line[128] = "";
    if (f && fgets(line, sizeof line, f)) printf("load average %s: %s", when, line);
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 16) runs = 5;
    printf("isa %s, %d threads, median of %d runs (3 for M=128); best run in the last column\n", cpu_kernels_isa(),
           omp_get_max_threads(), runs);
    print_load("before");
    double bw1 = read_bandwidth_gbs(runs, 1), bw4 = read_bandwidth_gbs(runs, 4);
    double bw = bw1 > bw4 ? bw1 : bw4;
    printf("memory read bandwidth, AVX-512 sum over 1 GB: 1 stream/thread %.2f GB/s, 4 streams/thread %.2f GB/s "
           "(ANCHORS floor %.1f GB/s)\n\n", bw1, bw4, FLOOR_GBS);

    float *x = aligned_alloc(64, sizeof(float) * 128 * INTER), *y = aligned_alloc(64, sizeof(float) * 128 * VOCAB);
    for (int i = 0; i < 128 * INTER; i++) x[i] = (float)((i * 37) % 101 - 50) / 100.0f;
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16, LLMRT_DTYPE_F32};
    static const char *const type_names[] = {"f16", "bf16", "f32"};
    static const int64_t Ms[] = {1, 4, 8, 16, 128};
    printf("%-5s %4s %10s %9s %10s %12s %12s %10s\n", "w", "M", "s/pass", "GB/s", "GFLOP/s", "vs measured", "vs 17 GB/s",
           "best s");
    for (int t = 0; t < 3; t++) {
        model m;
        model_create(&m, types[t]);
        double kind_time[NUM_KINDS] = {0};
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            int64_t M = Ms[mi];
            if (types[t] != LLMRT_DTYPE_F16 && M != 1 && M != 128) continue;
            int r_count = M == 128 ? (runs < 3 ? runs : 3) : runs;
            double times[16];
            model_pass(&m, types[t], M, x, y, NULL); /* warm: page tables, scratch */
            for (int r = 0; r < r_count; r++) times[r] = model_pass(&m, types[t], M, x, y, M == 1 ? kind_time : NULL);
            double best = times[0];
            for (int r = 1; r < r_count; r++) best = times[r] < best ? times[r] : best;
            double s = median(times, r_count);
            double gbs = m.bytes / s / 1e9, gflops = 2.0 * M * m.params / s / 1e9;
            printf("%-5s %4lld %10.4f %9.2f %10.1f %11.1f%% %11.1f%% %10.4f\n", type_names[t], (long long)M, s, gbs,
                   gflops, 100 * gbs / bw, 100 * gbs / FLOOR_GBS, best);
        }
        printf("      M=1 per shape (mean over runs):");
        for (int k = 0; k < NUM_KINDS; k++) {
            int64_t n = k == 7 ? VOCAB : layer_shapes[k].n, kk = k == 7 ? HIDDEN : layer_shapes[k].k;
            double bytes = (double)n * kk * (types[t] == LLMRT_DTYPE_F32 ? 4 : 2) * (k == 7 ? 1 : LAYERS) * runs;
            printf(" %s %.1f", k == 7 ? "lm_head" : layer_shapes[k].name, bytes / kind_time[k] / 1e9);
        }
        printf(" GB/s\n");
        model_free(&m);
    }
    print_load("after");
    free(x), free(y);
    return 0;
}
