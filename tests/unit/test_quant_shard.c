/* Tensor-parallel shards of quantized matrices (llmrt_qweight_cut,
 * llmrt_q8weight_cut): a shard cut from a full matrix dequantizes to
 * exactly the full matrix's values at its rows or inputs (the same codes,
 * scales and zeros), for int8 / int4 weight-only blobs in groups and per
 * channel, act-order blobs by rows, and fp8 / w8a8 blobs per channel and
 * per tensor; cuts that would split a group, or a permuted blob's inputs,
 * fail with a message naming the weight. */
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "core/quant8.h"
#include "test_util.h"

/* index[i]: the full matrix's row or input of the shard's i-th */
static int64_t piece_total(const int64_t (*pieces)[2], int32_t count, int64_t *index) {
    int64_t at = 0;
    for (int32_t p = 0; p < count; p++)
        for (int64_t i = 0; i < pieces[p][1]; i++) index[at++] = pieces[p][0] + i;
    return at;
}

static void *make_qweight(llmrt_dtype dtype, int64_t N, int64_t K, int64_t group, int asym, int permuted,
                          uint64_t *rng) {
    llmrt_qweight_header h;
    if (llmrt_qweight_layout(dtype, N, K, group, permuted, &h) != LLMRT_OK) return NULL;
    void *blob = aligned_alloc(64, (size_t)h.total_bytes);
    llmrt_qweight_init(blob, &h);
    if (permuted) { /* inputs reversed: any permutation will do */
        int32_t *perm = (int32_t *)((uint8_t *)blob + llmrt_qweight_perm_offset(&h));
        for (int64_t k = 0; k < K; k++) perm[k] = (int32_t)(K - 1 - k);
    }
    float *w = malloc(sizeof(float) * (size_t)K);
    for (int64_t n = 0; n < N; n++) {
        test_fill_random(w, (size_t)K, rng, 0.1f);
        w[test_rand_u64(rng) % (uint64_t)K] *= 8.0f; /* groups of different ranges */
        llmrt_quantize_row(blob, n, w, asym);
    }
    free(w);
    return blob;
}

/* Cuts `pieces` along `axis` out of a full [N, K] blob into a shard whose
 * group size is shard_group, and checks every value against the full's. */
static int cut_matches(const void *full, int axis, const int64_t (*pieces)[2], int32_t count, int64_t shard_group) {
    const llmrt_qweight_header *f = full;
    int64_t *index = malloc(sizeof(int64_t) * (size_t)(f->rows + f->cols));
    const int64_t width = piece_total(pieces, count, index);
    const int64_t N = axis == 0 ? width : f->rows, K = axis == 1 ? width : f->cols;
    const llmrt_dtype dtype = f->bits == 8 ? LLMRT_DTYPE_INT8_WO : LLMRT_DTYPE_INT4_WO;
    const int permuted = (f->flags & LLMRT_QWEIGHT_PERMUTED) != 0;
    llmrt_qweight_header h;
    int ok = llmrt_qweight_layout(dtype, N, K, shard_group, permuted, &h) == LLMRT_OK;
    void *shard = ok ? aligned_alloc(64, (size_t)h.total_bytes) : NULL;
    if (ok) llmrt_qweight_init(shard, &h);
    ok = ok && llmrt_qweight_cut(full, shard, axis, pieces, count, "w") == LLMRT_OK;
    ok = ok && llmrt_qweight_check(shard, (size_t)h.total_bytes, dtype, N, K, shard_group, permuted, "w") == LLMRT_OK;
    float *want = malloc(sizeof(float) * (size_t)f->cols), *got = malloc(sizeof(float) * (size_t)K);
    for (int64_t n = 0; ok && n < N; n++) {
        llmrt_dequantize_row(full, axis == 0 ? index[n] : n, want);
        llmrt_dequantize_row(shard, n, got);
        for (int64_t k = 0; ok && k < K; k++) ok = got[k] == want[axis == 1 ? index[k] : k];
    }
    free(want), free(got), free(shard), free(index);
    return ok;
}

static void test_qweight_cut(void) {
    const llmrt_dtype dtypes[] = {LLMRT_DTYPE_INT8_WO, LLMRT_DTYPE_INT4_WO};
    uint64_t rng = 11;
    for (int t = 0; t < 2; t++)
        for (int asym = 0; asym < 2; asym++) {
            const int64_t N = 40, K = 256;
            /* rows: equal halves, and a fused projection's pieces across panels */
            const int64_t half_rows[1][2] = {{20, 20}}, rows[3][2] = {{16, 8}, {0, 5}, {33, 7}};
            /* inputs: the second half, and groups of 32 from two places */
            const int64_t half_inputs[1][2] = {{128, 128}}, inputs[2][2] = {{64, 32}, {192, 64}};
            void *grouped = make_qweight(dtypes[t], N, K, 32, asym, 0, &rng);
            CHECK_MSG(cut_matches(grouped, 0, half_rows, 1, 32) && cut_matches(grouped, 0, rows, 3, 32),
                      "%s asym=%d: rows of groups of 32", llmrt_dtype_name(dtypes[t]), asym);
            CHECK_MSG(cut_matches(grouped, 1, half_inputs, 1, 32) && cut_matches(grouped, 1, inputs, 2, 32),
                      "%s asym=%d: inputs of groups of 32", llmrt_dtype_name(dtypes[t]), asym);
            /* a group of 128 that is the whole shard of inputs */
            void *wide = make_qweight(dtypes[t], N, K, 128, asym, 0, &rng);
            CHECK_MSG(cut_matches(wide, 1, half_inputs, 1, 128), "%s asym=%d: group = the shard's inputs",
                      llmrt_dtype_name(dtypes[t]), asym);
            /* per channel: each shard of inputs keeps the whole row's scale */
            void *channel = make_qweight(dtypes[t], N, K, 0, asym, 0, &rng);
            CHECK_MSG(cut_matches(channel, 1, half_inputs, 1, 0) && cut_matches(channel, 0, rows, 3, 0),
                      "%s asym=%d: per channel", llmrt_dtype_name(dtypes[t]), asym);
            /* a shard of inputs that splits a group of 32 cannot keep its scale */
            const int64_t straddle[1][2] = {{16, 32}};
            CHECK_MSG(!cut_matches(grouped, 1, straddle, 1, 32), "%s: a cut through a group of 32 must fail",
                      llmrt_dtype_name(dtypes[t]));
            free(grouped), free(wide), free(channel);
        }
    /* act-order: rows cut with the whole input order; inputs not at all */
    void *permuted = make_qweight(LLMRT_DTYPE_INT4_WO, 32, 128, 32, 1, 1, &rng);
    const int64_t half_rows[1][2] = {{16, 16}}, half_inputs[1][2] = {{64, 64}};
    CHECK(cut_matches(permuted, 0, half_rows, 1, 32));
    llmrt_qweight_header h;
    CHECK_OK(llmrt_qweight_layout(LLMRT_DTYPE_INT4_WO, 32, 64, 32, 1, &h));
    void *shard = aligned_alloc(64, (size_t)h.total_bytes);
    llmrt_qweight_init(shard, &h);
    CHECK(llmrt_qweight_cut(permuted, shard, 1, half_inputs, 1, "layers.0.down") != LLMRT_OK);
    CHECK(strstr(llmrt_last_error(), "layers.0.down") && strstr(llmrt_last_error(), "act-order"));
    /* pieces that do not add up to the shard */
    const int64_t short_rows[1][2] = {{0, 8}};
    CHECK(llmrt_qweight_cut(permuted, shard, 0, short_rows, 1, "w") != LLMRT_OK);
    free(shard), free(permuted);
}

static void test_q8weight_cut(void) {
    const llmrt_dtype dtypes[] = {LLMRT_DTYPE_FP8_W8A8, LLMRT_DTYPE_INT8_W8A8};
    uint64_t rng = 5;
    for (int t = 0; t < 2; t++)
        for (int per_tensor = 0; per_tensor < 2; per_tensor++)
            for (int axis = 0; axis < 2; axis++) {
                const int64_t N = 24, K = 96;
                llmrt_q8weight_header fh, sh;
                CHECK_OK(llmrt_q8weight_layout(dtypes[t], N, K, &fh));
                fh.flags |= LLMRT_Q8_STATIC_INPUT, fh.input_scale = 0.25f;
                void *full = aligned_alloc(64, (size_t)fh.total_bytes);
                llmrt_q8weight_init(full, &fh);
                float *w = malloc(sizeof(float) * (size_t)(N * K));
                test_fill_random(w, (size_t)(N * K), &rng, 1.0f);
                llmrt_q8_quantize_matrix(full, w, per_tensor);
                const int64_t pieces[2][2] = {{axis ? 48 : 12, axis ? 24 : 6}, {axis ? 8 : 2, axis ? 16 : 4}};
                int64_t index[96];
                const int64_t width = piece_total(pieces, 2, index);
                const int64_t sN = axis == 0 ? width : N, sK = axis == 1 ? width : K;
                CHECK_OK(llmrt_q8weight_layout(dtypes[t], sN, sK, &sh));
                void *shard = aligned_alloc(64, (size_t)sh.total_bytes);
                llmrt_q8weight_init(shard, &sh);
                CHECK_OK(llmrt_q8weight_cut(full, shard, axis, pieces, 2, "w"));
                CHECK_OK(llmrt_q8weight_check(shard, (size_t)sh.total_bytes, dtypes[t], sN, sK, "w"));
                const llmrt_q8weight_header *got = shard;
                CHECK(got->input_scale == 0.25f && (got->flags & LLMRT_Q8_STATIC_INPUT));
                float want[96], row[96];
                int same = 1;
                for (int64_t n = 0; n < sN; n++) {
                    llmrt_q8_dequantize_row(full, axis == 0 ? index[n] : n, want);
                    llmrt_q8_dequantize_row(shard, n, row);
                    for (int64_t k = 0; k < sK; k++) same = same && row[k] == want[axis == 1 ? index[k] : k];
                }
                CHECK_MSG(same, "%s per_tensor=%d axis %d: the shard's values are the full matrix's",
                          llmrt_dtype_name(dtypes[t]), per_tensor, axis);
                const int64_t too_far[1][2] = {{axis ? 90 : 20, width}};
                CHECK(llmrt_q8weight_cut(full, shard, axis, too_far, 1, "w") != LLMRT_OK);
                free(w), free(full), free(shard);
            }
}

int main(void) {
    RUN_TEST(test_qweight_cut);
    RUN_TEST(test_q8weight_cut);
    return test_finish();
}
