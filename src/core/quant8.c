#include "core/quant8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"

int llmrt_dtype_is_q8(llmrt_dtype dtype) {
    return dtype == LLMRT_DTYPE_FP8_W8A8 || dtype == LLMRT_DTYPE_INT8_W8A8;
}

float llmrt_q8_qmax(llmrt_dtype dtype) {
    return dtype == LLMRT_DTYPE_FP8_W8A8 ? LLMRT_FP8_E4M3_MAX : dtype == LLMRT_DTYPE_INT8_W8A8 ? LLMRT_INT8_QMAX : 0.0f;
}

static int kind_of(llmrt_dtype dtype) {
    return dtype == LLMRT_DTYPE_FP8_W8A8 ? LLMRT_Q8_FP8 : dtype == LLMRT_DTYPE_INT8_W8A8 ? LLMRT_Q8_INT8 : 0;
}

static float kind_qmax(int kind) { return kind == LLMRT_Q8_FP8 ? LLMRT_FP8_E4M3_MAX : LLMRT_INT8_QMAX; }

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

llmrt_status llmrt_q8weight_layout(llmrt_dtype dtype, int64_t rows, int64_t cols, llmrt_q8weight_header *out) {
    memset(out, 0, sizeof *out);
    const int kind = kind_of(dtype);
    if (!kind) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "8-bit weight: dtype %s", llmrt_dtype_name(dtype));
    if (rows <= 0 || cols <= 0 || rows > ((int64_t)1 << 32) || cols > ((int64_t)1 << 32))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "8-bit weight: shape [%lld, %lld]", (long long)rows,
                           (long long)cols);
    const uint64_t scales = align64(LLMRT_Q8WEIGHT_HEADER_BYTES + (uint64_t)rows * (uint64_t)cols);
    const uint64_t total = align64(scales + (uint64_t)rows * 4);
    if (scales > UINT32_MAX || total > ((uint64_t)1 << 48))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "8-bit weight [%lld, %lld] is too large", (long long)rows,
                           (long long)cols);
    out->magic = LLMRT_Q8WEIGHT_MAGIC;
    out->kind = (uint16_t)kind;
    out->rows = rows;
    out->cols = cols;
    out->scales_offset = (uint32_t)scales;
    out->total_bytes = total;
    return LLMRT_OK;
}

size_t llmrt_q8weight_bytes(llmrt_dtype dtype, int64_t rows, int64_t cols) {
    llmrt_q8weight_header h;
    if (!kind_of(dtype) || rows <= 0 || cols <= 0) return 0;
    if (llmrt_q8weight_layout(dtype, rows, cols, &h) != LLMRT_OK) return 0;
    return (size_t)h.total_bytes;
}

void llmrt_q8weight_init(void *blob, const llmrt_q8weight_header *layout) {
    uint8_t *b = blob;
    memcpy(b, layout, sizeof *layout);
    const uint64_t end = LLMRT_Q8WEIGHT_HEADER_BYTES + (uint64_t)layout->rows * (uint64_t)layout->cols;
    memset(b + end, 0, layout->scales_offset - end);
    const uint64_t scales_end = layout->scales_offset + (uint64_t)layout->rows * 4;
    memset(b + scales_end, 0, layout->total_bytes - scales_end);
}

llmrt_status llmrt_q8weight_check(const void *blob, size_t nbytes, llmrt_dtype dtype, int64_t rows, int64_t cols,
                                  const char *what) {
    llmrt_q8weight_header want, got;
    LLMRT_TRY(llmrt_q8weight_layout(dtype, rows, cols, &want));
    if (!blob || nbytes != want.total_bytes)
        return llmrt_error(LLMRT_ERR_FORMAT, "8-bit weight '%s': %zu bytes, its layout needs %llu", what, nbytes,
                           (unsigned long long)want.total_bytes);
    memcpy(&got, blob, sizeof got);
    if (got.magic != want.magic || got.kind != want.kind || got.rows != rows || got.cols != cols ||
        got.scales_offset != want.scales_offset || got.total_bytes != want.total_bytes ||
        (got.flags & ~(LLMRT_Q8_STATIC_INPUT | LLMRT_Q8_PER_TENSOR)))
        return llmrt_error(LLMRT_ERR_FORMAT, "8-bit weight '%s': its header does not describe a %s [%lld, %lld] matrix",
                           what, llmrt_dtype_name(dtype), (long long)rows, (long long)cols);
    if (got.flags & LLMRT_Q8_STATIC_INPUT) {
        if (!(isfinite(got.input_scale) && got.input_scale > 0))
            return llmrt_error(LLMRT_ERR_FORMAT, "8-bit weight '%s': static input scale %g is not finite and positive",
                               what, (double)got.input_scale);
    } else if (got.input_scale != 0) {
        return llmrt_error(LLMRT_ERR_FORMAT, "8-bit weight '%s': an input scale without the static flag", what);
    }
    const float *scales = llmrt_q8weight_scales(blob);
    for (int64_t n = 0; n < rows; n++) {
        float s;
        memcpy(&s, scales + n, sizeof s); /* the blob may be unaligned in a mapped file */
        if (!(isfinite(s) && s > 0))
            return llmrt_error(LLMRT_ERR_FORMAT, "8-bit weight '%s': row %lld's scale %g is not finite and positive",
                               what, (long long)n, (double)s);
    }
    return LLMRT_OK;
}

uint8_t llmrt_fp8_e4m3_encode(float x) {
    if (isnan(x)) return 0x7f;
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    const float a = fabsf(x);
    if (a >= LLMRT_FP8_E4M3_MAX) return sign | 0x7e;
    if (a < 0x1p-6f) {
        /* subnormals are multiples of 2^-9; code 8 (2^-6) is the smallest
         * normal, so rounding up into it needs no special case */
        return sign | (uint8_t)rintf(a * 0x1p9f);
    }
    int e;
    const float f = frexpf(a, &e); /* a = f · 2^e, f in [0.5, 1) */
    unsigned m = (unsigned)rintf((f * 2.0f - 1.0f) * 8.0f);
    int exponent = e - 1 + 7;
    if (m == 8) m = 0, exponent++;
    const unsigned code = (unsigned)exponent << 3 | m;
    return sign | (uint8_t)(code > 0x7e ? 0x7e : code);
}

float llmrt_fp8_e4m3_decode(uint8_t code) {
    const int e = code >> 3 & 15, m = code & 7;
    float v;
    if (e == 15 && m == 7) v = NAN;
    else if (e == 0) v = ldexpf((float)m, -9);
    else v = ldexpf((float)(8 + m), e - 10);
    return code & 0x80 ? -v : v;
}

int8_t llmrt_int8_encode(float x) {
    if (isnan(x)) return 0;
    const float r = rintf(x);
    return (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : r);
}

static float amax_of(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void quantize_row(uint8_t *codes, const float *w, int64_t cols, float scale, int kind) {
    for (int64_t k = 0; k < cols; k++) codes[k] = llmrt_q8_encode(kind, w[k] / scale);
}

void llmrt_q8_quantize_matrix(void *blob, const float *w, int per_tensor) {
    llmrt_q8weight_header *h = blob;
    const int64_t N = h->rows, K = h->cols;
    const float qmax = kind_qmax(h->kind);
    float *scales = (float *)((uint8_t *)blob + h->scales_offset);
    uint8_t *codes = (uint8_t *)blob + LLMRT_Q8WEIGHT_HEADER_BYTES;
    float tensor_scale = 0;
    if (per_tensor) {
        tensor_scale = amax_of(w, N * K) / qmax;
        if (!(tensor_scale > 0) || !isfinite(tensor_scale)) tensor_scale = 1;
        h->flags |= LLMRT_Q8_PER_TENSOR;
    }
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        float s = tensor_scale;
        if (!per_tensor) {
            s = amax_of(w + n * K, K) / qmax;
            if (!(s > 0) || !isfinite(s)) s = 1;
        }
        scales[n] = s;
        quantize_row(codes + n * K, w + n * K, K, s, h->kind);
    }
}

void llmrt_q8_dequantize_row(const void *blob, int64_t n, float *out) {
    const llmrt_q8weight_header *h = blob;
    const uint8_t *codes = llmrt_q8weight_codes(blob) + n * h->cols;
    float s;
    memcpy(&s, llmrt_q8weight_scales(blob) + n, sizeof s);
    for (int64_t k = 0; k < h->cols; k++) out[k] = s * llmrt_q8_decode(h->kind, codes[k]);
}

float llmrt_q8_quantize_activation(int kind, const float *x, int64_t cols, float static_scale, uint8_t *codes) {
    float s = static_scale;
    if (!(s > 0)) {
        s = amax_of(x, cols) / kind_qmax(kind);
        if (!(s > 0) || !isfinite(s)) s = 1;
    }
    quantize_row(codes, x, cols, s, kind);
    return s;
}

void llmrt_q8_linear_reference(float *y, const float *x, int64_t M, const void *blob, const float *bias) {
    const llmrt_q8weight_header *h = blob;
    const int64_t N = h->rows, K = h->cols;
    const float static_scale = h->flags & LLMRT_Q8_STATIC_INPUT ? h->input_scale : 0;
    uint8_t *xq = malloc((size_t)K);
    if (!xq) abort(); /* a test-only reference: no caller can recover */
    for (int64_t m = 0; m < M; m++) {
        const float sx = llmrt_q8_quantize_activation(h->kind, x + m * K, K, static_scale, xq);
        for (int64_t n = 0; n < N; n++) {
            const uint8_t *wq = llmrt_q8weight_codes(blob) + n * K;
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)llmrt_q8_decode(h->kind, xq[k]) * (double)llmrt_q8_decode(h->kind, wq[k]);
            float sw;
            memcpy(&sw, llmrt_q8weight_scales(blob) + n, sizeof sw);
            y[m * N + n] = (float)(acc * sx * sw) + (bias ? bias[n] : 0.0f);
        }
    }
    free(xq);
}

llmrt_status llmrt_q8weight_cut(const void *full, void *shard, int axis, const int64_t (*pieces)[2],
                                int32_t num_pieces, const char *what) {
    const llmrt_q8weight_header *f = full;
    llmrt_q8weight_header *s = shard;
    const int64_t count = axis == 0 ? s->rows : s->cols, full_size = axis == 0 ? f->rows : f->cols;
    int64_t total = 0;
    int ok = f->kind == s->kind && (axis == 0 ? f->cols == s->cols : axis == 1 && f->rows == s->rows);
    for (int32_t p = 0; ok && p < num_pieces; p++) {
        ok = pieces[p][0] >= 0 && pieces[p][1] >= 0 && pieces[p][0] + pieces[p][1] <= full_size;
        total += pieces[p][1];
    }
    if (!ok || total != count)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "'%s': a [%lld, %lld] shard is no cut of [%lld, %lld] along "
                           "axis %d", what, (long long)s->rows, (long long)s->cols, (long long)f->rows,
                           (long long)f->cols, axis);
    s->flags = f->flags;
    s->input_scale = f->input_scale;
    const uint8_t *full_codes = llmrt_q8weight_codes(full);
    const float *full_scales = llmrt_q8weight_scales(full);
    uint8_t *codes = (uint8_t *)shard + LLMRT_Q8WEIGHT_HEADER_BYTES;
    float *scales = (float *)((uint8_t *)shard + s->scales_offset);
    int64_t at = 0;
    for (int32_t p = 0; p < num_pieces; p++)
        for (int64_t i = pieces[p][0]; i < pieces[p][0] + pieces[p][1]; i++, at++) {
            if (axis == 0) { /* whole rows: their codes and scale */
                memcpy(codes + at * s->cols, full_codes + i * f->cols, (size_t)s->cols);
                scales[at] = full_scales[i];
            } else { /* input i of every row */
                for (int64_t n = 0; n < s->rows; n++) codes[n * s->cols + at] = full_codes[n * f->cols + i];
            }
        }
    if (axis == 1) memcpy(scales, full_scales, (size_t)s->rows * sizeof *scales);
    return LLMRT_OK;
}
