/* cpu_linear on the TinyLlama-1.1B shapes, on every SIMD path the CPU has,
 * next to the machine's measured read bandwidth and FMA peak. Not wired into
 * CMake (bench/ is not a CMake folder); build by hand from the repository
 * root:
 *
 *   gcc -O3 -std=c11 -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *       bench/cpu_kernels_bench.c build/libllmrt.a -lm -o build/cpu_kernels_bench
 *   OMP_NUM_THREADS=2 build/cpu_kernels_bench [runs] [isa ...]
 *   OMP_NUM_THREADS=2 build/cpu_kernels_bench peaks [isa ...]
 *
 * isa: avx2, avx512, portable, or bf16 (AVX-512 with 16-bit compute:
 * bf16 weights take bf16 activations through vdpbf16ps; other dtypes are
 * skipped on it), each optionally suffixed -il: the 16-bit weights in the
 * interleaved layout the CPU backend gives them at load
 * (cpu_weight_interleave; f32 is skipped on it) (default: each of avx2,
 * avx512 and bf16 where the CPU has them, rows and -il). The paths
 * alternate within every run, so their ratios come from the same minutes
 * of a shared machine. `peaks` prints the read bandwidth
 * and FMA peaks alone (a model benchmark's floor, taken beside it).
 *
 * The whole model's 155 linears (22 layers × q,k,v,o,gate,up,down + lm_head)
 * get their own weights (2.07 GB in f16, 4.1 GB in f32), so every "token"
 * streams all of them from DRAM exactly as decode does; nothing fits in
 * cache. Reported: median over runs of one full pass; GB/s against the read
 * bandwidth (the floor of M = 1), GFLOP/s against the FMA peak of the path's
 * vector width (the ceiling of M ≥ 16). */
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
#define MAX_ISAS 6

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

static int has_avx512(void) { return __builtin_cpu_supports("avx512f"); }

/* --- read bandwidth: threads summing 1 GB with the widest loads --------------- */
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

__attribute__((target("avx2"))) static double sum_avx2(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    float s[8];
    _mm256_storeu_ps(s, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

/* The sum over 4 distant parts of the thread's share at once: one stream per
 * core can leave DRAM idle between prefetcher requests, while the kernels
 * read 8-16 weight rows at a time. The floor is the higher of the two. */
static double sum_streams(const float *p, size_t n, int streams) {
    double s = 0;
    const size_t q = n / (size_t)streams / 64 * 64;
    for (int i = 0; i < streams; i++) s += has_avx512() ? sum_avx512(p + i * q, q) : sum_avx2(p + i * q, q);
    return s;
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
            sink += sum_streams(buf + per * (size_t)omp_get_thread_num(), per, streams);
        }
        t[r] = now() - t0;
    }
    if (sink == 42.0) printf(" ");
    free(buf);
    return bytes / median(t, runs) / 1e9;
}

/* --- FMA peak: 12 independent chains per thread (enough to cover 2 pipes ×
 * 4-5 cycles of latency), no memory traffic ----------------------------------- */
#define PEAK_ITERS 20000000L
__attribute__((target("avx512f"))) static float fma_loop_avx512(float seed) {
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(seed + (float)i);
    for (long it = 0; it < PEAK_ITERS; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(float seed) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(seed + (float)i);
    for (long it = 0; it < PEAK_ITERS; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    float out[8];
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

/* vdpbf16ps: 64 FLOP an instruction (16 lanes × 2 products and 2 adds). */
__attribute__((target("avx512f,avx512bf16"))) static float dp_loop_bf16(float seed) {
    __m512 a[12];
    const __m512bh m = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3300);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(seed + (float)i);
    for (long it = 0; it < PEAK_ITERS; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_dpbf16_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

/* GFLOP/s of all threads together at `width` floats per FMA (8 or 16; 32:
 * vdpbf16ps, counted as 32 multiply-adds);
 * the portable path is held to the AVX2 figure (what its compiler could
 * reach at best). The best of 5 runs: a ceiling, which other jobs on the
 * cores can only lower. */
static double fma_peak_gflops(int width) {
    double best = 1e30, sink = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
#pragma omp parallel reduction(+ : sink)
        sink += width == 32   ? dp_loop_bf16((float)omp_get_thread_num())
                : width == 16 ? fma_loop_avx512((float)omp_get_thread_num())
                              : fma_loop_avx2((float)omp_get_thread_num());
        const double t = now() - t0;
        best = t < best ? t : best;
    }
    if (sink == 42.0) printf(" ");
    return 2.0 * width * 12 * PEAK_ITERS * omp_get_max_threads() / best / 1e9;
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
    void *il[LAYERS * 7 + 1]; /* the 16-bit weights interleaved, or NULL */
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
            if (esize == 2) {
                m->il[m->count] = aligned_alloc(64, cpu_weight_interleaved_bytes(n, k));
                cpu_weight_interleave(m->il[m->count], m->w[m->count], n, k);
            }
            m->kind[m->count++] = l == LAYERS ? 7 : s;
            m->bytes += count * esize, m->params += count;
        }
}

static void model_free(model *m) {
    for (int i = 0; i < m->count; i++) free(m->w[i]), free(m->il[i]);
}

/* One pass over every linear with M rows (interleaved weights with il);
 * per-kind time accumulated. */
static double model_pass(const model *m, llmrt_dtype type, int il, int64_t M, float *x, float *y,
                         double kind_time[NUM_KINDS]) {
    double t0 = now();
    for (int i = 0; i < m->count; i++) {
        int kind = m->kind[i];
        int64_t n = kind == 7 ? VOCAB : layer_shapes[kind].n, k = kind == 7 ? HIDDEN : layer_shapes[kind].k;
        double t1 = now();
        const cpu_linear_part part = {.y = y, .w = il ? m->il[i] : m->w[i], .w_type = type, .N = n,
                                      .w_interleaved = il};
        cpu_linear_group(&part, 1, x, M, k, NULL);
        if (kind_time) kind_time[kind] += now() - t1;
    }
    return now() - t0;
}

/* A path's name without its -il suffix, and whether it has one. */
static int path_base(const char *path, char base[16]) {
    snprintf(base, 16, "%s", path);
    char *il = strstr(base, "-il");
    if (il) *il = 0;
    return il != NULL;
}

/* Selects a path: an ISA, or "bf16" (AVX-512 and 16-bit compute), then
 * -il for interleaved weights; returns that flag. */
static int use_path(const char *path) {
    char base[16];
    const int il = path_base(path, base), bf16 = strcmp(base, "bf16") == 0;
    cpu_kernels_force_isa(bf16 ? "avx512" : base);
    cpu_kernels_set_16bit_compute(bf16);
    return il;
}

static int path_runs(const char *path) {
    char base[16];
    path_base(path, base);
    use_path(path);
    const int ok = strcmp(base, "bf16") == 0 ? cpu_has_bf16_dot() : strcmp(cpu_kernels_isa(), base) == 0;
    use_path("avx512");
    return ok;
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
    const int peaks_only = argc > 1 && strcmp(argv[1], "peaks") == 0;
    int runs = argc > 1 && !peaks_only ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 16) runs = 5;
    const char *isas[MAX_ISAS] = {"avx2", "avx2-il", "avx512", "avx512-il", "bf16", "bf16-il"};
    int n_isas = 6;
    if (argc > 2) n_isas = 0;
    for (int i = 2; i < argc && n_isas < MAX_ISAS; i++) isas[n_isas++] = argv[i];
    int kept = 0; /* the paths this CPU runs */
    for (int i = 0; i < n_isas; i++)
        if (path_runs(isas[i])) isas[kept++] = isas[i];
    n_isas = kept;
    if (n_isas == 0) {
        fprintf(stderr, "no requested path runs on this CPU\n");
        return 1;
    }
    printf("%d threads, median of %d runs (3 for M=128), paths alternating within each run; best run last\n",
           omp_get_max_threads(), runs);
    print_load("before");
    double bw1 = read_bandwidth_gbs(runs, 1), bw4 = read_bandwidth_gbs(runs, 4);
    const double bw = bw1 > bw4 ? bw1 : bw4;
    printf("read bandwidth over 1 GB (%s loads): 1 stream a thread %.2f GB/s, 4 streams a thread %.2f GB/s\n",
           has_avx512() ? "AVX-512" : "AVX2", bw1, bw4);
    double peak[MAX_ISAS];
    for (int i = 0; i < n_isas; i++) {
        char base[16];
        path_base(isas[i], base);
        int same = -1; /* a path of the same ISA measured already */
        for (int j = 0; j < i && same < 0; j++) {
            char other[16];
            path_base(isas[j], other);
            if (strcmp(other, base) == 0) same = j;
        }
        if (same >= 0) {
            peak[i] = peak[same];
            continue;
        }
        peak[i] = fma_peak_gflops(strcmp(base, "bf16") == 0 ? 32 : strcmp(base, "avx512") == 0 ? 16 : 8);
        printf("%s peak, %s path: %.1f GFLOP/s\n", strcmp(base, "bf16") == 0 ? "vdpbf16ps" : "FMA", base, peak[i]);
    }
    printf("\n");
    if (peaks_only) return 0;

    float *x = aligned_alloc(64, sizeof(float) * 128 * INTER), *y = aligned_alloc(64, sizeof(float) * 128 * VOCAB);
    for (int i = 0; i < 128 * INTER; i++) x[i] = (float)((i * 37) % 101 - 50) / 100.0f;
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16, LLMRT_DTYPE_F32};
    static const char *const type_names[] = {"f16", "bf16", "f32"};
    static const int64_t Ms[] = {1, 4, 8, 16, 128};
    printf("%-5s %4s %-9s %9s %8s %8s %9s %8s %9s\n", "w", "M", "path", "s/pass", "GB/s", "of bw", "GFLOP/s",
           "of peak", "best s");
    for (int t = 0; t < 3; t++) {
        model m;
        model_create(&m, types[t]);
        double kind_time[MAX_ISAS][NUM_KINDS] = {{0}};
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            const int64_t M = Ms[mi];
            if (types[t] != LLMRT_DTYPE_F16 && M != 1 && M != 128 && !(types[t] == LLMRT_DTYPE_BF16 && M == 8))
                continue;
            const int r_count = M == 128 ? (runs < 3 ? runs : 3) : runs;
            double times[MAX_ISAS][16];
#define SKIP_PATH(i)                                                                                        \
    ((strncmp(isas[i], "bf16", 4) == 0 && types[t] != LLMRT_DTYPE_BF16) ||                                  \
     (strstr(isas[i], "-il") && types[t] == LLMRT_DTYPE_F32))
            for (int i = 0; i < n_isas; i++) { /* warm: page tables, scratch */
                if (SKIP_PATH(i)) continue;
                model_pass(&m, types[t], use_path(isas[i]), M, x, y, NULL);
            }
            for (int r = 0; r < r_count; r++)
                for (int i = 0; i < n_isas; i++) {
                    if (SKIP_PATH(i)) continue;
                    const int il = use_path(isas[i]);
                    times[i][r] = model_pass(&m, types[t], il, M, x, y, M == 1 ? kind_time[i] : NULL);
                }
            for (int i = 0; i < n_isas; i++) {
                if (SKIP_PATH(i)) continue;
                double best = times[i][0];
                for (int r = 1; r < r_count; r++) best = times[i][r] < best ? times[i][r] : best;
                const double s = median(times[i], r_count);
                const double gbs = m.bytes / s / 1e9, gflops = 2.0 * M * m.params / s / 1e9;
                printf("%-5s %4lld %-9s %9.4f %8.2f %7.1f%% %9.1f %7.1f%% %9.4f\n", type_names[t], (long long)M,
                       isas[i], s, gbs, 100 * gbs / bw, gflops, 100 * gflops / peak[i], best);
            }
        }
        for (int i = 0; i < n_isas; i++) {
            if (SKIP_PATH(i)) continue;
            printf("      M=1 %s, GB/s per shape (mean over runs):", isas[i]);
            for (int k = 0; k < NUM_KINDS; k++) {
                int64_t n = k == 7 ? VOCAB : layer_shapes[k].n, kk = k == 7 ? HIDDEN : layer_shapes[k].k;
                double bytes = (double)n * kk * (types[t] == LLMRT_DTYPE_F32 ? 4 : 2) * (k == 7 ? 1 : LAYERS) * runs;
                printf(" %s %.1f", k == 7 ? "lm_head" : layer_shapes[k].name, bytes / kind_time[i][k] / 1e9);
            }
            printf("\n");
        }
        model_free(&m);
#undef SKIP_PATH
    }
    print_load("after");
    free(x), free(y);
    return 0;
}
