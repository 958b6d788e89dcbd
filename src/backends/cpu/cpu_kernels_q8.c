/* Linears with fp8 / w8a8 weights (cpu_kernels_q8.h): the dispatcher, the
 * run-time quantization of x and the portable dot products. */
#include "backends/cpu/cpu_kernels_q8.h"

#include <stdatomic.h>
#include <string.h>

#include "core/quant8.h"
#include "core/thread_pool.h"

#define PARALLEL_MIN_WORK (1 << 16)
#define ROW_ALIGN 16
#define MT 4 /* rows of x per dot call: each weight load serves four */
#define NT 2 /* fp8: weight rows per dot call: each load of x serves two */

static atomic_int simd_setting = 1;

void cpu_q8linear_set_simd(int on) { atomic_store_explicit(&simd_setting, on, memory_order_relaxed); }

static int use_avx2(void) {
    return atomic_load_explicit(&simd_setting, memory_order_relaxed) && cpu_isa_level() >= CPU_ISA_AVX2;
}

/* Every E4M3 code's value (built once; decode is exact, so any thread
 * building it concurrently writes the same bits). */
static const float *fp8_table(void) {
    static float table[256];
    static atomic_int ready = 0;
    if (!atomic_load_explicit(&ready, memory_order_acquire)) {
        for (int c = 0; c < 256; c++) table[c] = llmrt_fp8_e4m3_decode((uint8_t)c);
        atomic_store_explicit(&ready, 1, memory_order_release);
    }
    return table;
}

/* ---- portable dot products ------------------------------------------------------- */

static void dot_i8_portable(const int8_t *w, const int8_t *x, int64_t stride, int mt, int64_t K, int32_t *out) {
    for (int i = 0; i < mt; i++) {
        const int8_t *xi = x + i * stride;
        int32_t s = 0;
        for (int64_t k = 0; k < K; k++) s += (int32_t)w[k] * xi[k];
        out[i] = s;
    }
}

static void dot_f32_portable(const float *w, int nt, const float *x, int mt, int64_t K, float *out) {
    for (int r = 0; r < nt; r++)
        for (int i = 0; i < mt; i++) {
            const float *wr = w + r * K, *xi = x + i * K;
            float s[8] = {0};
            int64_t k = 0;
            for (; k + 8 <= K; k += 8)
                for (int j = 0; j < 8; j++) s[j] += wr[k + j] * xi[k + j];
            for (; k < K; k++) s[0] += wr[k] * xi[k];
            out[r * MT + i] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        }
}

/* ---- x, quantized once per row ------------------------------------------------------ */

/* x's codes [M, K] (int8 as stored; fp8 decoded to f32 [M, K]) and scales. */
typedef struct q8_act {
    int kind;
    float static_scale; /* 0: per token */
    uint8_t *codes;
    float *decoded; /* fp8 only */
    float *scale;   /* [M] */
} q8_act;

typedef struct quantize_job {
    q8_act *a;
    const float *x;
    int64_t K;
} quantize_job;

static void quantize_chunk(void *ctx, int64_t begin, int64_t end) {
    const quantize_job *j = ctx;
    const q8_act *a = j->a;
    const float *table = fp8_table();
    for (int64_t m = begin; m < end; m++) {
        uint8_t *codes = a->codes + m * j->K;
        a->scale[m] = llmrt_q8_quantize_activation(a->kind, j->x + m * j->K, j->K, a->static_scale, codes);
        if (a->decoded)
            for (int64_t k = 0; k < j->K; k++) a->decoded[m * j->K + k] = table[codes[k]];
    }
}

/* ---- rows of y ----------------------------------------------------------------------- */

typedef struct q8_job {
    const cpu_linear_part *parts;
    int count;
    int run[3];       /* 1: this pass computes part i */
    int64_t start[3]; /* part i's first row in the pass's range */
    const q8_act *a;
    int64_t M, K;
    int simd;
} q8_job;

static float scale_at(const void *blob, int64_t n) {
    float s;
    memcpy(&s, (const uint8_t *)llmrt_q8weight_scales(blob) + n * sizeof s, sizeof s); /* may be unaligned */
    return s;
}

/* int8: exact int32 dot products, then the reference's order, (Σ · sx) ·
 * sw in f64, and the bias. */
static void rows_int8(const q8_job *j, const cpu_linear_part *p, int64_t n0, int64_t n1) {
    const q8_act *a = j->a;
    const int64_t M = j->M, K = j->K, N = p->N;
    for (int64_t n = n0; n < n1; n++) {
        const int8_t *wn = (const int8_t *)llmrt_q8weight_codes(p->w) + n * K;
        const double sw = scale_at(p->w, n);
        const float b = p->bias ? p->bias[n] : 0.0f;
        for (int64_t m = 0; m < M; m += MT) {
            const int mt = M - m < MT ? (int)(M - m) : MT;
            int32_t dot[MT];
            (j->simd ? cpu_q8_dot_i8_avx2 : dot_i8_portable)(wn, (const int8_t *)a->codes + m * K, K, mt, K, dot);
            for (int i = 0; i < mt; i++) p->y[(m + i) * N + n] = (float)((double)dot[i] * a->scale[m + i] * sw) + b;
        }
    }
}

/* fp8: NT weight rows decoded into scratch at a time, so each load of x
 * serves NT of them; f32 sums of exact products. */
static void rows_fp8(const q8_job *j, const cpu_linear_part *p, int64_t n0, int64_t n1) {
    const q8_act *a = j->a;
    const int64_t M = j->M, K = j->K, N = p->N;
    const float *table = fp8_table();
    if (M <= MT && j->simd) { /* a decode step: each row once, decoded in registers */
        for (int64_t n = n0; n < n1; n++) {
            float dot[MT];
            cpu_q8_dot_fp8_avx2(table, llmrt_q8weight_codes(p->w) + n * K, a->decoded, (int)M, K, dot);
            const double sw = scale_at(p->w, n);
            const float b = p->bias ? p->bias[n] : 0.0f;
            for (int64_t i = 0; i < M; i++) p->y[i * N + n] = (float)((double)dot[i] * a->scale[i] * sw) + b;
        }
        return;
    }
    float *rows = cpu_thread_scratch(sizeof(float) * (size_t)(NT * K));
    for (int64_t n = n0; n < n1; n += NT) {
        const int nt = n1 - n < NT ? (int)(n1 - n) : NT;
        const uint8_t *wn = llmrt_q8weight_codes(p->w) + n * K;
        if (rows)
            for (int r = 0; r < nt; r++) {
                if (j->simd) cpu_q8_decode_avx2(table, wn + r * K, K, rows + r * K);
                else
                    for (int64_t k = 0; k < K; k++) rows[r * K + k] = table[wn[r * K + k]];
            }
        for (int64_t m = 0; m < M; m += MT) {
            const int mt = M - m < MT ? (int)(M - m) : MT;
            float dot[NT * MT];
            if (rows) {
                (j->simd ? cpu_q8_dot_f32_avx2 : dot_f32_portable)(rows, nt, a->decoded + m * K, mt, K, dot);
            } else { /* no scratch memory: decode as we go */
                for (int r = 0; r < nt; r++)
                    for (int i = 0; i < mt; i++) {
                        float s = 0;
                        for (int64_t k = 0; k < K; k++) s += table[wn[r * K + k]] * a->decoded[(m + i) * K + k];
                        dot[r * MT + i] = s;
                    }
            }
            for (int r = 0; r < nt; r++) {
                const double sw = scale_at(p->w, n + r);
                const float b = p->bias ? p->bias[n + r] : 0.0f;
                for (int i = 0; i < mt; i++)
                    p->y[(m + i) * N + n + r] = (float)((double)dot[r * MT + i] * a->scale[m + i] * sw) + b;
            }
        }
    }
}

static void q8_chunk(void *ctx, int64_t begin, int64_t end) {
    const q8_job *j = ctx;
    for (int i = 0; i < j->count; i++) {
        if (!j->run[i]) continue;
        const cpu_linear_part *p = &j->parts[i];
        int64_t b = begin - j->start[i], e = end - j->start[i];
        b = b > 0 ? b : 0, e = e < p->N ? e : p->N;
        if (b < e) (j->a->kind == LLMRT_Q8_INT8 ? rows_int8 : rows_fp8)(j, p, b, e);
    }
}

/* ---- the dispatcher ------------------------------------------------------------------ */

static float static_scale_of(const void *blob) {
    const llmrt_q8weight_header *h = blob;
    return h->flags & LLMRT_Q8_STATIC_INPUT ? h->input_scale : 0.0f;
}

/* x quantized for `kind` and `static_scale`, in slot 1's buffer (held
 * across the row pass, whose chunks use slot 0). */
static int quantize_x(q8_act *a, int kind, float static_scale, const float *x, int64_t M, int64_t K) {
    const size_t codes = ((size_t)(M * K) + 63) & ~(size_t)63;
    const size_t decoded = kind == LLMRT_Q8_FP8 ? (size_t)(M * K) * sizeof(float) : 0;
    char *buffer = cpu_thread_buffer(1, codes + decoded + (size_t)M * sizeof(float));
    if (!buffer) return 0;
    *a = (q8_act){.kind = kind, .static_scale = static_scale, .codes = (uint8_t *)buffer,
                  .decoded = decoded ? (float *)(buffer + codes) : NULL,
                  .scale = (float *)(buffer + codes + decoded)};
    quantize_job qj = {.a = a, .x = x, .K = K};
    llmrt_parallel_for(M, 1, (double)M * K >= PARALLEL_MIN_WORK, quantize_chunk, &qj);
    return 1;
}

/* When x cannot be quantized into a buffer (out of memory), row by row
 * through the reference, which needs only K bytes. */
static void reference_rows(const cpu_linear_part *p, const float *x, int64_t M) {
    llmrt_q8_linear_reference(p->y, x, M, p->w, p->bias);
}

void cpu_q8linear_group(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K, float *gated) {
    if (M <= 0 || K <= 0 || count <= 0 || count > 3) return;
    int pending[3] = {0};
    for (int i = 0; i < count; i++) {
        pending[i] = llmrt_dtype_is_q8(parts[i].w_type);
        /* other dtypes first: their path may use the buffer x's codes take */
        if (!pending[i]) cpu_linear(parts[i].y, x, parts[i].w, parts[i].w_type, parts[i].bias, M, parts[i].N, K);
    }
    /* Parts run in passes of one (kind, static scale): x is quantized once
     * for a fused group (one weight) or a gate/up pair of the same scales. */
    for (;;) {
        int first = -1;
        for (int i = 0; i < count && first < 0; i++)
            if (pending[i]) first = i;
        if (first < 0) break;
        const llmrt_q8weight_header *h0 = parts[first].w;
        const float s0 = static_scale_of(parts[first].w);
        q8_job job = {.parts = parts, .count = count, .M = M, .K = K, .simd = use_avx2()};
        int64_t rows = 0;
        double work = 0;
        for (int i = 0; i < count; i++) {
            const llmrt_q8weight_header *h = parts[i].w;
            if (!pending[i] || h->kind != h0->kind || static_scale_of(parts[i].w) != s0) continue;
            job.run[i] = 1, pending[i] = 0;
            job.start[i] = rows;
            rows += (parts[i].N + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
            work += (double)M * parts[i].N * K;
        }
        q8_act act;
        if (!quantize_x(&act, h0->kind, s0, x, M, K)) {
            for (int i = 0; i < count; i++)
                if (job.run[i]) reference_rows(&parts[i], x, M);
            continue;
        }
        job.a = &act;
        llmrt_parallel_for(rows, llmrt_parallel_chunk(rows, ROW_ALIGN), work >= PARALLEL_MIN_WORK, q8_chunk, &job);
    }
    if (gated) cpu_silu_mul(gated, parts[0].y, parts[1].y, M * parts[0].N);
}
