#include "core/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"

int llmrt_dtype_is_quantized(llmrt_dtype dtype) {
    return dtype == LLMRT_DTYPE_INT8_WO || dtype == LLMRT_DTYPE_INT4_WO;
}

int llmrt_dtype_is_packed(llmrt_dtype dtype) {
    return llmrt_dtype_is_quantized(dtype) || dtype == LLMRT_DTYPE_FP8_W8A8 || dtype == LLMRT_DTYPE_INT8_W8A8;
}

int llmrt_quant_bits(llmrt_dtype dtype) {
    return dtype == LLMRT_DTYPE_INT8_WO ? 8 : dtype == LLMRT_DTYPE_INT4_WO ? 4 : 0;
}

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

llmrt_status llmrt_qweight_layout(llmrt_dtype dtype, int64_t rows, int64_t cols, int64_t group_size, int permuted,
                                  llmrt_qweight_header *out) {
    memset(out, 0, sizeof *out);
    const int bits = llmrt_quant_bits(dtype);
    if (!bits) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "quantized weight: dtype %s", llmrt_dtype_name(dtype));
    if (rows <= 0 || cols <= 0 || rows > ((int64_t)1 << 32) || cols > ((int64_t)1 << 32) || group_size < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "quantized weight: shape [%lld, %lld], group %lld",
                           (long long)rows, (long long)cols, (long long)group_size);
    if (group_size == 0 || group_size > cols) group_size = cols;
    out->magic = LLMRT_QWEIGHT_MAGIC;
    out->bits = (uint16_t)bits;
    out->flags = permuted ? LLMRT_QWEIGHT_PERMUTED : 0;
    out->rows = rows;
    out->cols = cols;
    out->group_size = group_size;
    out->groups = (cols + group_size - 1) / group_size;
    const int64_t padded = (cols + LLMRT_QWEIGHT_BLOCK - 1) / LLMRT_QWEIGHT_BLOCK * LLMRT_QWEIGHT_BLOCK;
    const uint64_t panels = (uint64_t)((rows + LLMRT_QWEIGHT_PANEL - 1) / LLMRT_QWEIGHT_PANEL);
    out->panel_bytes = padded / (bits == 8 ? 4 : 8) * 64;
    const uint64_t per_group = panels * LLMRT_QWEIGHT_PANEL * (uint64_t)out->groups;
    const uint64_t scales = align64(LLMRT_QWEIGHT_HEADER_BYTES + panels * (uint64_t)out->panel_bytes);
    const uint64_t zeros = align64(scales + per_group * 2);
    const uint64_t total = align64(zeros + per_group) + (permuted ? align64((uint64_t)cols * 4) : 0);
    if (zeros > UINT32_MAX || total > ((uint64_t)1 << 48))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "quantized weight [%lld, %lld] is too large", (long long)rows,
                           (long long)cols);
    out->scales_offset = (uint32_t)scales;
    out->zeros_offset = (uint32_t)zeros;
    out->total_bytes = total;
    return LLMRT_OK;
}

size_t llmrt_qweight_bytes(llmrt_dtype dtype, int64_t rows, int64_t cols, int64_t group_size, int permuted) {
    llmrt_qweight_header h;
    if (!llmrt_quant_bits(dtype) || rows <= 0 || cols <= 0 || group_size < 0) return 0;
    if (llmrt_qweight_layout(dtype, rows, cols, group_size, permuted, &h) != LLMRT_OK) return 0;
    return (size_t)h.total_bytes;
}

llmrt_status llmrt_qweight_check(const void *blob, size_t nbytes, llmrt_dtype dtype, int64_t rows, int64_t cols,
                                 int64_t group_size, int permuted, const char *what) {
    llmrt_qweight_header want, got;
    LLMRT_TRY(llmrt_qweight_layout(dtype, rows, cols, group_size, permuted, &want));
    if (!blob || nbytes < sizeof got || nbytes != want.total_bytes)
        return llmrt_error(LLMRT_ERR_FORMAT, "quantized weight '%s': %zu bytes, its layout needs %llu", what, nbytes,
                           (unsigned long long)want.total_bytes);
    memcpy(&got, blob, sizeof got);
    if (memcmp(&got, &want, sizeof got) != 0)
        return llmrt_error(LLMRT_ERR_FORMAT,
                           "quantized weight '%s': its header disagrees with the plan's [%lld, %lld] %s, group %lld",
                           what, (long long)rows, (long long)cols, llmrt_dtype_name(dtype), (long long)want.group_size);
    if (permuted) { /* each input exactly once */
        uint8_t *seen = calloc((size_t)cols, 1);
        if (!seen) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        const uint8_t *perm = (const uint8_t *)blob + llmrt_qweight_perm_offset(&want);
        int ok = 1;
        for (int64_t j = 0; j < cols && ok; j++) {
            int32_t k;
            memcpy(&k, perm + j * 4, 4);
            ok = k >= 0 && k < cols && !seen[k];
            if (ok) seen[k] = 1;
        }
        free(seen);
        if (!ok) return llmrt_error(LLMRT_ERR_FORMAT, "quantized weight '%s': its input order is not a permutation", what);
    }
    return LLMRT_OK;
}

void llmrt_qweight_init(void *blob, const llmrt_qweight_header *layout) {
    memset(blob, 0, (size_t)layout->total_bytes);
    memcpy(blob, layout, sizeof *layout);
}

void llmrt_quantize_row(void *blob, int64_t n, const float *w, int asymmetric) {
    const llmrt_qweight_header *h = blob;
    const int bits = (int)h->bits;
    const int qmax = (1 << bits) - 1, mid = 1 << (bits - 1);
    uint16_t *scales = (uint16_t *)((uint8_t *)blob + h->scales_offset);
    uint8_t *zeros = (uint8_t *)blob + h->zeros_offset;
    for (int64_t g = 0; g < h->groups; g++) {
        const int64_t k0 = g * h->group_size, k1 = k0 + h->group_size < h->cols ? k0 + h->group_size : h->cols;
        float lo = 0.0f, hi = 0.0f, amax = 0.0f;
        for (int64_t k = k0; k < k1; k++) {
            lo = fminf(lo, w[k]);
            hi = fmaxf(hi, w[k]);
            amax = fmaxf(amax, fabsf(w[k]));
        }
        /* the scale is rounded to its stored f16 first, so codes are chosen
         * against the value the kernels will multiply by */
        float scale = asymmetric ? (hi - lo) / (float)qmax : amax / (float)(mid - 1);
        uint16_t stored = llmrt_f32_to_f16(scale);
        scale = llmrt_f16_to_f32(stored);
        int zero = mid;
        if (asymmetric && scale > 0.0f) {
            zero = (int)lrintf(-lo / scale);
            zero = zero < 0 ? 0 : zero > qmax ? qmax : zero;
        }
        scales[llmrt_qweight_group_index(h, n, g)] = stored;
        zeros[llmrt_qweight_group_index(h, n, g)] = (uint8_t)zero;
        for (int64_t k = k0; k < k1; k++) {
            int q = scale > 0.0f ? (int)lrintf(w[k] / scale) + zero : zero;
            q = q < 0 ? 0 : q > qmax ? qmax : q;
            llmrt_qweight_set(blob, n, k, (unsigned)q);
        }
    }
}

void llmrt_dequantize_row(const void *blob, int64_t n, float *out) {
    const llmrt_qweight_header *h = blob;
    const uint16_t *scales = llmrt_qweight_scales(blob);
    const uint8_t *zeros = llmrt_qweight_zeros(blob);
    const int32_t *perm = llmrt_qweight_perm(blob);
    for (int64_t g = 0; g < h->groups; g++) {
        const size_t at = llmrt_qweight_group_index(h, n, g);
        const float s = llmrt_f16_to_f32(scales[at]);
        const int z = zeros[at];
        const int64_t k1 = (g + 1) * h->group_size < h->cols ? (g + 1) * h->group_size : h->cols;
        for (int64_t k = g * h->group_size; k < k1; k++)
            out[perm ? perm[k] : k] = s * (float)((int)llmrt_qweight_get(blob, n, k) - z);
    }
}

/* index[i] = the full tensor's index of the shard's i-th entry along the
 * cut axis (size `count`), from the pieces; 0 when they do not add up to
 * count or leave [0, full_size). */
static int piece_index(int64_t *index, const int64_t (*pieces)[2], int32_t num_pieces, int64_t count,
                       int64_t full_size) {
    int64_t at = 0;
    for (int32_t p = 0; p < num_pieces; p++) {
        if (pieces[p][0] < 0 || pieces[p][1] < 0 || pieces[p][0] + pieces[p][1] > full_size ||
            at + pieces[p][1] > count)
            return 0;
        for (int64_t i = 0; i < pieces[p][1]; i++) index[at++] = pieces[p][0] + i;
    }
    return at == count;
}

llmrt_status llmrt_qweight_cut(const void *full, void *shard, int axis, const int64_t (*pieces)[2],
                               int32_t num_pieces, const char *what) {
    const llmrt_qweight_header *f = full, *s = shard;
    if (f->bits != s->bits || (axis == 0 ? f->cols != s->cols : f->rows != s->rows) || axis < 0 || axis > 1)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "'%s': a [%lld, %lld] shard is no cut of [%lld, %lld] along "
                           "axis %d", what, (long long)s->rows, (long long)s->cols, (long long)f->rows,
                           (long long)f->cols, axis);
    if (axis == 1 && (f->flags & LLMRT_QWEIGHT_PERMUTED))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "'%s' holds act-order (permuted) codes: its inputs cannot be split "
                           "across tensor-parallel ranks", what);
    if ((f->flags & LLMRT_QWEIGHT_PERMUTED) != (s->flags & LLMRT_QWEIGHT_PERMUTED))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "'%s': the shard and the full matrix disagree on act-order",
                           what);
    const int64_t count = axis == 0 ? s->rows : s->cols;
    int64_t *index = malloc((size_t)count * sizeof *index + 1);
    if (!index) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory cutting '%s'", what);
    if (!piece_index(index, pieces, num_pieces, count, axis == 0 ? f->rows : f->cols)) {
        free(index);
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "'%s': %d pieces along axis %d are not its shard's %lld", what,
                           (int)num_pieces, axis, (long long)count);
    }
    /* each shard group inside one full group: its scale and zero carry over */
    for (int64_t k = 0; axis == 1 && k < s->cols; k++) {
        if (index[k] / f->group_size == index[k / s->group_size * s->group_size] / f->group_size) continue;
        free(index);
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "'%s': input %lld of the shard falls outside the quantization "
                           "group (size %lld) of its group's first input", what, (long long)k,
                           (long long)f->group_size);
    }
    const uint16_t *full_scales = llmrt_qweight_scales(full);
    const uint8_t *full_zeros = llmrt_qweight_zeros(full);
    uint16_t *scales = (uint16_t *)((uint8_t *)shard + s->scales_offset);
    uint8_t *zeros = (uint8_t *)shard + s->zeros_offset;
    for (int64_t n = 0; n < s->rows; n++) {
        const int64_t fn = axis == 0 ? index[n] : n;
        for (int64_t k = 0; k < s->cols; k++)
            llmrt_qweight_set(shard, n, k, llmrt_qweight_get(full, fn, axis == 1 ? index[k] : k));
        for (int64_t g = 0; g < s->groups; g++) {
            const int64_t first = g * s->group_size, fg = (axis == 1 ? index[first] : first) / f->group_size;
            scales[llmrt_qweight_group_index(s, n, g)] = full_scales[llmrt_qweight_group_index(f, fn, fg)];
            zeros[llmrt_qweight_group_index(s, n, g)] = full_zeros[llmrt_qweight_group_index(f, fn, fg)];
        }
    }
    if (s->flags & LLMRT_QWEIGHT_PERMUTED) /* rows only: the input order is the whole matrix's */
        memcpy((uint8_t *)shard + llmrt_qweight_perm_offset(s), llmrt_qweight_perm(full), (size_t)s->cols * 4);
    free(index);
    return LLMRT_OK;
}
