/* Linears with int8-wo / int4-wo weights: the dispatcher, the run-time
 * quantization of x, and the portable paths (integer and exact). The SIMD
 * bodies live in cpu_kernels_quant_avx2.c and cpu_kernels_quant_avx512.c. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels_quant.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

#define PARALLEL_MIN_WORK (1 << 16)
#define ROW_ALIGN 16

/* ---- settings ------------------------------------------------------------------- */

static atomic_int integer_setting = -1; /* -1 until read from the environment */

void cpu_qlinear_set_integer(int on) { atomic_store_explicit(&integer_setting, on, memory_order_relaxed); }

static int integer_path_on(void) {
    int on = atomic_load_explicit(&integer_setting, memory_order_relaxed);
    if (on < 0) {
        const char *env = getenv("LLMRT_CPU_QUANT_ACTIVATIONS");
        on = !(env && strcmp(env, "0") == 0);
        atomic_store_explicit(&integer_setting, on, memory_order_relaxed);
    }
    return on;
}

static int has_vnni(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

int cpu_qlinear_path(void) {
    static atomic_int vnni = -1;
    int v = atomic_load_explicit(&vnni, memory_order_relaxed);
    if (v < 0) atomic_store_explicit(&vnni, v = has_vnni(), memory_order_relaxed);
    const int level = cpu_isa_level();
    return level >= CPU_ISA_AVX512 && v ? 2 : level >= CPU_ISA_AVX2 ? 1 : 0;
}

/* ---- run-time quantization of x ------------------------------------------------ */

/* One row: blocks of 32 with scale max|x| / 127. nearbyintf (round half to
 * even) vectorises to vroundps, so every target gives the same codes. */
static inline __attribute__((always_inline)) void quantize_row(const cpu_qact *a, const float *x, int64_t m) {
    int8_t *q = a->q + m * a->K;
    float *d = a->d + m * a->nb, *sd = a->sd + m * a->nb;
    for (int64_t b = 0; b < a->nb; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
        const float inverse = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            q[b * 32 + i] = (int8_t)nearbyintf(xb[i] * inverse);
            sum += q[b * 32 + i];
        }
        d[b] = amax / 127.0f;
        sd[b] = d[b] * (float)sum;
    }
}

/* x points at row m0. */
static CPU_TARGET_AVX512 void quantize_rows_avx512(cpu_qact *a, const float *x, int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) quantize_row(a, x + (m - m0) * a->K, m);
}
static CPU_TARGET_AVX2 void quantize_rows_avx2(cpu_qact *a, const float *x, int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) quantize_row(a, x + (m - m0) * a->K, m);
}

void cpu_qact_quantize_rows(cpu_qact *a, const float *x, int64_t m0, int64_t m1, int level) {
    if (level >= CPU_ISA_AVX512) quantize_rows_avx512(a, x, m0, m1);
    else if (level == CPU_ISA_AVX2) quantize_rows_avx2(a, x, m0, m1);
    else
        for (int64_t m = m0; m < m1; m++) quantize_row(a, x + (m - m0) * a->K, m);
}

static void sum_groups(cpu_qact *a, int64_t group) {
    const int64_t per = group / 32;
    a->group = group;
    a->groups = (a->nb + per - 1) / per;
    for (int64_t m = 0; m < a->M; m++)
        for (int64_t g = 0; g < a->groups; g++) {
            float s = 0.0f;
            for (int64_t b = g * per; b < (g + 1) * per && b < a->nb; b++) s += a->sd[m * a->nb + b];
            a->gsum[m * a->groups + g] = s;
        }
}

/* ---- the portable integer path ---------------------------------------------------- */

void cpu_qlinear_rows_portable(float *y, int64_t N, const void *blob, const float *bias, const cpu_qact *a,
                               int64_t n_begin, int64_t n_end) {
    const llmrt_qweight_header *h = blob;
    const int64_t per = h->group_size / 32;
    const uint16_t *scales = llmrt_qweight_scales(blob);
    const uint8_t *zeros = llmrt_qweight_zeros(blob);
    for (int64_t n = n_begin; n < n_end; n++)
        for (int64_t m = 0; m < a->M; m++) {
            const int8_t *q = a->q + m * a->K;
            const float *d = a->d + m * a->nb;
            float total = 0.0f;
            for (int64_t g = 0; g < h->groups; g++) {
                const size_t at = llmrt_qweight_group_index(h, n, g);
                float part = 0.0f;
                for (int64_t b = g * per; b < (g + 1) * per && b < a->nb; b++) {
                    int32_t dot = 0;
                    for (int64_t k = b * 32; k < b * 32 + 32; k++) dot += (int32_t)llmrt_qweight_get(blob, n, k) * q[k];
                    part += d[b] * (float)dot;
                }
                total += llmrt_f16_to_f32(scales[at]) * (part - (float)zeros[at] * a->gsum[m * a->groups + g]);
            }
            y[m * N + n] = (bias ? bias[n] : 0.0f) + total;
        }
}

/* ---- the exact path ---------------------------------------------------------------------- */

static void qlinear_rows_exact(float *y, int64_t N, const void *blob, const float *bias, const float *x, int64_t M,
                               int64_t n_begin, int64_t n_end) {
    const llmrt_qweight_header *h = blob;
    const int64_t K = h->cols;
    float *row = cpu_thread_scratch(sizeof(float) * (size_t)K);
    for (int64_t n = n_begin; n < n_end; n++) {
        if (row) llmrt_dequantize_row(blob, n, row);
        for (int64_t m = 0; m < M; m++) {
            const float *xm = x + m * K;
            float s[8] = {0};
            int64_t k = 0;
            if (row) {
                for (; k + 8 <= K; k += 8)
                    for (int i = 0; i < 8; i++) s[i] += xm[k + i] * row[k + i];
                for (; k < K; k++) s[0] += xm[k] * row[k];
            } else { /* no scratch memory: dequantize element by element */
                for (; k < K; k++) {
                    const size_t at = llmrt_qweight_group_index(h, n, k / h->group_size);
                    s[0] += xm[k] * llmrt_f16_to_f32(llmrt_qweight_scales(blob)[at]) *
                            (float)((int)llmrt_qweight_get(blob, n, k) - (int)llmrt_qweight_zeros(blob)[at]);
                }
            }
            const float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
            y[m * N + n] = (bias ? bias[n] : 0.0f) + total;
        }
    }
}

/* ---- the dispatcher ------------------------------------------------------------------- */

static size_t act_size(int64_t M, int64_t K) {
    const int64_t nb = K / 32;
    return (((size_t)(M * K) + 63) & ~(size_t)63) + (size_t)(M * nb) * 3 * sizeof(float) + 64;
}

static void act_carve(cpu_qact *a, char *base, int64_t M, int64_t K) {
    a->M = M, a->K = K, a->nb = K / 32, a->group = 0, a->groups = 0;
    a->q = (int8_t *)base;
    float *f = (float *)(base + (((size_t)(M * K) + 63) & ~(size_t)63));
    a->d = f;
    a->sd = f + M * a->nb;
    a->gsum = f + 2 * M * a->nb;
}

typedef struct quantize_job {
    cpu_qact *a;
    const float *x;
    const int32_t *perm; /* or NULL: quantize x[perm[j]] as input j */
    int level;
    int failed;
} quantize_job;

static void quantize_chunk(void *ctx, int64_t begin, int64_t end) {
    quantize_job *j = ctx;
    if (!j->perm) {
        cpu_qact_quantize_rows(j->a, j->x + begin * j->a->K, begin, end, j->level);
        return;
    }
    const int64_t K = j->a->K;
    float *row = cpu_thread_scratch(sizeof(float) * (size_t)K);
    if (!row) {
        j->failed = 1;
        return;
    }
    for (int64_t m = begin; m < end; m++) {
        for (int64_t k = 0; k < K; k++) row[k] = j->x[m * K + j->perm[k]];
        cpu_qact_quantize_rows(j->a, row, m, m + 1, j->level);
    }
}

static int same_perm(const int32_t *a, const int32_t *b, int64_t K) {
    return a == b || (a && b && memcmp(a, b, sizeof *a * (size_t)K) == 0);
}

enum { PART_FLOAT = 0, PART_EXACT, PART_INTEGER };

typedef struct qlinear_job {
    const cpu_linear_part *parts;
    int count, path;
    int kind[3];
    const cpu_qact *act[3];
    int64_t start[3];
    const float *x;
    int64_t M, K;
} qlinear_job;

static void qlinear_chunk(void *ctx, int64_t begin, int64_t end) {
    const qlinear_job *j = ctx;
    for (int i = 0; i < j->count; i++) {
        const cpu_linear_part *p = &j->parts[i];
        int64_t b = begin - j->start[i], e = end - j->start[i];
        b = b > 0 ? b : 0, e = e < p->N ? e : p->N;
        if (b >= e || j->kind[i] == PART_FLOAT) continue;
        if (j->kind[i] == PART_EXACT) {
            qlinear_rows_exact(p->y, p->N, p->w, p->bias, j->x, j->M, b, e);
        } else {
            cpu_qlinear_rows_fn *rows = j->path == 2   ? cpu_qlinear_rows_avx512vnni
                                        : j->path == 1 ? cpu_qlinear_rows_avx2
                                                       : cpu_qlinear_rows_portable;
            rows(p->y, p->N, p->w, p->bias, j->act[i], b, e);
        }
    }
}

void cpu_qlinear_group(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K, float *gated) {
    if (M <= 0 || K <= 0 || count <= 0 || count > 3) return;
    qlinear_job job = {.parts = parts, .count = count, .path = cpu_qlinear_path(), .x = x, .M = M, .K = K};
    cpu_qact act;
    char *buffer = NULL;
    double work = 0;
    int64_t rows = 0;
    for (int i = 0; i < count; i++) {
        const cpu_linear_part *p = &parts[i];
        job.start[i] = rows;
        job.act[i] = &act;
        if (!llmrt_dtype_is_quantized(p->w_type)) {
            job.kind[i] = PART_FLOAT;
            cpu_linear(p->y, x, p->w, p->w_type, p->bias, M, p->N, K);
            continue;
        }
        rows += (p->N + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
        work += (double)M * p->N * K;
        const llmrt_qweight_header *h = p->w;
        job.kind[i] = integer_path_on() && K % 32 == 0 && h->group_size % 32 == 0 ? PART_INTEGER : PART_EXACT;
        if (job.kind[i] == PART_INTEGER && !buffer && !(buffer = cpu_thread_buffer(1, act_size(M, K))))
            job.kind[i] = PART_EXACT; /* no memory for quantized x: the exact path needs none */
    }
    if (buffer) act_carve(&act, buffer, M, K);
    /* Parts run in passes of one (group size, input order): the parts of a
     * group share K and, in practice, both; x is re-quantized or re-summed
     * only when a pass needs another. The exact parts run in the first. */
    int prepared = 0;
    const int32_t *prepared_perm = NULL;
    for (int pass = 0; pass <= count; pass++) {
        qlinear_job one = job;
        int64_t group = 0;
        const int32_t *perm = NULL;
        int any = 0;
        for (int i = 0; i < count; i++) {
            const llmrt_qweight_header *h = parts[i].w;
            int now = job.kind[i] == PART_EXACT;
            if (job.kind[i] == PART_INTEGER) {
                const int32_t *p = llmrt_qweight_perm(parts[i].w);
                if (!group) group = h->group_size, perm = p;
                now = h->group_size == group && same_perm(p, perm, K);
            }
            one.kind[i] = now ? job.kind[i] : PART_FLOAT;
            if (now) job.kind[i] = PART_FLOAT, any = 1;
        }
        if (!any) break;
        if (group && (!prepared || !same_perm(perm, prepared_perm, K))) {
            quantize_job qj = {.a = &act, .x = x, .perm = perm, .level = cpu_isa_level()};
            llmrt_parallel_for(M, 1, M >= 8, quantize_chunk, &qj);
            if (qj.failed) /* no scratch to gather x: these parts take the exact path */
                for (int i = 0; i < count; i++)
                    if (one.kind[i] == PART_INTEGER) one.kind[i] = PART_EXACT;
            prepared = !qj.failed, prepared_perm = perm, act.group = 0;
        }
        if (group && prepared && act.group != group) sum_groups(&act, group);
        llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, ROW_ALIGN), work >= PARALLEL_MIN_WORK, qlinear_chunk, &one);
    }
    if (gated) cpu_silu_mul(gated, parts[0].y, parts[1].y, M * parts[0].N);
}
