/* 8-bit weights and activations (core/quant8.h): E4M3 and int8 encoding
 * (every fp8 code, ties to even, saturation), matrix quantize → dequantize
 * error bounds, the blob check on corrupted headers and scales, the CPU
 * kernels against llmrt_q8_linear_reference (fp8 and w8a8, per token and
 * static, with and without bias, K not a multiple of 32, SIMD and
 * portable, single linears and groups), and the compiler pass with a
 * hand-made calibration table. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_kernels_q8.h"
#include "compiler/calibration.h"
#include "compiler/passes.h"
#include "compiler/quantize.h"
#include "core/dtype.h"
#include "core/quant8.h"
#include "llmrt/llmrt.h"
#include "test_util.h"

static void test_fp8_codes(void) {
    /* every code but NaN decodes to a value that encodes back to it */
    int round_trips = 1;
    for (int c = 0; c < 256; c++) {
        const float v = llmrt_fp8_e4m3_decode((uint8_t)c);
        if ((c & 0x7f) == 0x7f) {
            CHECK(isnan(v));
            continue;
        }
        if (llmrt_fp8_e4m3_encode(v) != c) round_trips = 0, fprintf(stderr, "code 0x%02x → %g\n", c, (double)v);
    }
    CHECK(round_trips);
    CHECK(llmrt_fp8_e4m3_decode(0x7e) == 448.0f);
    CHECK(llmrt_fp8_e4m3_decode(0x08) == 0x1p-6f);
    CHECK(llmrt_fp8_e4m3_decode(0x01) == 0x1p-9f);
    CHECK(llmrt_fp8_e4m3_decode(0x38) == 1.0f);
    CHECK(llmrt_fp8_e4m3_decode(0xb8) == -1.0f);
    /* a midpoint between neighbours goes to the even code; just inside it,
     * to the nearer one */
    int ties = 1;
    for (int c = 0; c < 0x7e; c++) {
        const float lo = llmrt_fp8_e4m3_decode((uint8_t)c), hi = llmrt_fp8_e4m3_decode((uint8_t)(c + 1));
        const float mid = 0.5f * (lo + hi);
        const int even = c % 2 == 0 ? c : c + 1;
        if (llmrt_fp8_e4m3_encode(mid) != even || llmrt_fp8_e4m3_encode(-mid) != (0x80 | even) ||
            llmrt_fp8_e4m3_encode(nextafterf(mid, 0)) != c || llmrt_fp8_e4m3_encode(nextafterf(mid, 1e9f)) != c + 1)
            ties = 0, fprintf(stderr, "tie between 0x%02x and 0x%02x\n", c, c + 1);
    }
    CHECK(ties);
    /* saturation to ±448 (no infinities), NaN to the NaN code */
    CHECK(llmrt_fp8_e4m3_encode(464.0f) == 0x7e);
    CHECK(llmrt_fp8_e4m3_encode(1e6f) == 0x7e);
    CHECK(llmrt_fp8_e4m3_encode(-1e30f) == 0xfe);
    CHECK(llmrt_fp8_e4m3_encode(INFINITY) == 0x7e);
    CHECK(llmrt_fp8_e4m3_encode(-INFINITY) == 0xfe);
    CHECK((llmrt_fp8_e4m3_encode(NAN) & 0x7f) == 0x7f);
    CHECK(llmrt_fp8_e4m3_encode(0x1p-11f) == 0x00); /* below half the smallest subnormal */
}

/* The AVX2 decoders (a shift into f16) give every code's exact value,
 * NaN for the NaN codes. */
static void test_simd_decode(void) {
    if (cpu_isa_level() < CPU_ISA_AVX2) {
        fprintf(stderr, "   no AVX2: skipped\n");
        return;
    }
    float table[256], decoded[256];
    uint8_t codes[256];
    for (int c = 0; c < 256; c++) table[c] = llmrt_fp8_e4m3_decode((uint8_t)c), codes[c] = (uint8_t)c;
    cpu_q8_decode_avx2(table, codes, 256, decoded);
    int same = 1, dot_same = 1;
    for (int c = 0; c < 256; c++) {
        same &= isnan(table[c]) ? isnan(decoded[c]) : decoded[c] == table[c];
        /* the fused dot: code c at input 5 of 32, x one-hot there */
        uint8_t w[32] = {0};
        float x[32] = {0}, out[4];
        w[5] = (uint8_t)c, x[5] = 1.0f;
        cpu_q8_dot_fp8_avx2(table, w, x, 1, 32, out);
        dot_same &= isnan(table[c]) ? isnan(out[0]) : out[0] == table[c];
    }
    CHECK(same);
    CHECK(dot_same);
}

static void test_int8_codes(void) {
    CHECK(llmrt_int8_encode(200.0f) == 127);
    CHECK(llmrt_int8_encode(-200.0f) == -127);
    CHECK(llmrt_int8_encode(-127.6f) == -127);
    CHECK(llmrt_int8_encode(2.5f) == 2);
    CHECK(llmrt_int8_encode(3.5f) == 4);
    CHECK(llmrt_int8_encode(-2.5f) == -2);
    CHECK(llmrt_int8_encode(0.49f) == 0);
    CHECK(llmrt_int8_encode(NAN) == 0);
    CHECK(llmrt_int8_encode(INFINITY) == 127);
}

static void *make_blob(llmrt_dtype dtype, int64_t N, int64_t K, const float *w, int per_tensor, float input_scale) {
    llmrt_q8weight_header h;
    if (llmrt_q8weight_layout(dtype, N, K, &h) != LLMRT_OK) return NULL;
    if (input_scale > 0) h.flags |= LLMRT_Q8_STATIC_INPUT, h.input_scale = input_scale;
    void *blob = aligned_alloc(64, (size_t)h.total_bytes);
    if (!blob) return NULL;
    llmrt_q8weight_init(blob, &h);
    llmrt_q8_quantize_matrix(blob, w, per_tensor);
    return blob;
}

static void fill(float *x, int64_t n, uint64_t *rng, float scale) {
    test_fill_random(x, (size_t)n, rng, scale);
    for (int64_t i = 0; i < n; i += 37) x[i] *= 8.0f; /* outliers, so rows differ in range */
}

/* Dequantized weights lie within half a code step of the originals:
 * E4M3 carries 3 mantissa bits (relative 2^-4), its subnormals step 2^-9
 * of the scale; int8 steps one scale. */
static void test_quantize_error(void) {
    const int64_t N = 24, K = 77;
    uint64_t rng = 11;
    float *w = malloc(sizeof(float) * N * K), *row = malloc(sizeof(float) * K);
    fill(w, N * K, &rng, 0.1f);
    for (int64_t k = 0; k < K; k++) w[3 * K + k] = 0; /* an all-zero row gets scale 1 */
    const llmrt_dtype dtypes[] = {LLMRT_DTYPE_FP8_W8A8, LLMRT_DTYPE_INT8_W8A8};
    for (int t = 0; t < 2; t++)
        for (int per_tensor = 0; per_tensor < 2; per_tensor++) {
            void *blob = make_blob(dtypes[t], N, K, w, per_tensor, 0);
            CHECK(blob != NULL);
            if (!blob) continue;
            CHECK_OK(llmrt_q8weight_check(blob, llmrt_q8weight_bytes(dtypes[t], N, K), dtypes[t], N, K, "w"));
            int within = 1;
            for (int64_t n = 0; n < N; n++) {
                llmrt_q8_dequantize_row(blob, n, row);
                const float s = llmrt_q8weight_scales(blob)[n];
                for (int64_t k = 0; k < K; k++) {
                    const float a = fabsf(w[n * K + k]), err = fabsf(row[k] - w[n * K + k]);
                    const float bound = t == 0 ? fmaxf(a * 0x1p-4f, s * 0x1p-10f) : s * 0.5f;
                    if (err > bound * 1.0001f + 1e-12f) within = 0;
                }
            }
            CHECK_MSG(within, "%s per_tensor %d", llmrt_dtype_name(dtypes[t]), per_tensor);
            CHECK(llmrt_q8weight_scales(blob)[3] == (per_tensor ? llmrt_q8weight_scales(blob)[0] : 1.0f));
            free(blob);
        }
    free(w), free(row);
}

static void test_check(void) {
    const int64_t N = 8, K = 40;
    float w[8 * 40];
    uint64_t rng = 5;
    fill(w, N * K, &rng, 1.0f);
    const size_t bytes = llmrt_q8weight_bytes(LLMRT_DTYPE_FP8_W8A8, N, K);
    void *blob = make_blob(LLMRT_DTYPE_FP8_W8A8, N, K, w, 0, 0.5f);
    CHECK_OK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, "w"));
    CHECK(llmrt_q8weight_check(blob, bytes - 64, LLMRT_DTYPE_FP8_W8A8, N, K, "w") != LLMRT_OK);
    CHECK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_INT8_W8A8, N, K, "w") != LLMRT_OK);
    CHECK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K + 1, "w") != LLMRT_OK);
    llmrt_q8weight_header *h = blob;
    h->magic ^= 1;
    CHECK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, "w") != LLMRT_OK);
    h->magic ^= 1;
    h->input_scale = 0;
    CHECK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, "w") != LLMRT_OK);
    h->input_scale = 0.5f;
    float *scales = (float *)((char *)blob + h->scales_offset);
    const float keep = scales[5];
    scales[5] = -1.0f;
    CHECK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, "w") != LLMRT_OK);
    scales[5] = NAN;
    CHECK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, "w") != LLMRT_OK);
    scales[5] = keep;
    CHECK_OK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, "w"));
    free(blob);
}

/* max |a − b| ≤ tol · max |b| */
static int close_to(const float *a, const float *b, int64_t n, double tol) {
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    if (!(worst <= tol * scale)) fprintf(stderr, "   max error %g of max %g\n", worst, scale);
    return worst <= tol * scale;
}

static void test_kernel_vs_reference(void) {
    static const int64_t shapes[][3] = {{1, 37, 64}, {5, 48, 100}, {7, 19, 33}, {16, 64, 256}, {3, 1, 7}, {9, 33, 96}};
    const llmrt_dtype dtypes[] = {LLMRT_DTYPE_FP8_W8A8, LLMRT_DTYPE_INT8_W8A8};
    uint64_t rng = 7;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), *bias = malloc(sizeof(float) * N);
        float *y = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
        fill(x, M * K, &rng, 2.0f);
        fill(w, N * K, &rng, 0.05f);
        fill(bias, N, &rng, 0.5f);
        for (int t = 0; t < 2; t++)
            for (int mode = 0; mode < 3; mode++) { /* per token; static; static scale too small (saturates) */
                if (mode && t == 1) continue;     /* static scales are fp8's */
                const float input_scale = mode == 1 ? 16.0f / 448 : mode == 2 ? 1.0f / 448 : 0;
                void *blob = make_blob(dtypes[t], N, K, w, 0, input_scale);
                for (int with_bias = 0; with_bias < 2; with_bias++)
                    for (int simd = 0; simd < 2; simd++) {
                        cpu_q8linear_set_simd(simd);
                        llmrt_q8_linear_reference(ref, x, M, blob, with_bias ? bias : NULL);
                        cpu_linear(y, x, blob, dtypes[t], with_bias ? bias : NULL, M, N, K);
                        /* w8a8 sums exactly and scales in the reference's order: to the bit */
                        CHECK_MSG(close_to(y, ref, M * N, t == 1 ? 0.0 : 1e-5),
                                  "%s M %lld N %lld K %lld mode %d bias %d simd %d",
                                  llmrt_dtype_name(dtypes[t]), (long long)M, (long long)N, (long long)K, mode,
                                  with_bias, simd);
                    }
                free(blob);
            }
        free(x), free(w), free(bias), free(y), free(ref);
    }
    cpu_q8linear_set_simd(1);
}

/* A gate/up pair (gated) and a triple whose parts differ in activation
 * scales: each part equals its linear alone. */
static void test_groups(void) {
    const int64_t M = 6, K = 72, N[3] = {40, 40, 24};
    uint64_t rng = 3;
    float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * 40 * K);
    fill(x, M * K, &rng, 1.0f);
    void *blobs[3];
    const float scales[3] = {0, 0.02f, 0};
    const llmrt_dtype types[3] = {LLMRT_DTYPE_FP8_W8A8, LLMRT_DTYPE_FP8_W8A8, LLMRT_DTYPE_INT8_W8A8};
    float *alone[3], *y[3];
    for (int i = 0; i < 3; i++) {
        fill(w, N[i] * K, &rng, 0.1f);
        blobs[i] = make_blob(types[i], N[i], K, w, i == 1, scales[i]);
        alone[i] = malloc(sizeof(float) * M * N[i]);
        y[i] = calloc((size_t)(M * N[i]), sizeof(float));
        llmrt_q8_linear_reference(alone[i], x, M, blobs[i], NULL);
    }
    cpu_linear_part parts[3];
    for (int i = 0; i < 3; i++) parts[i] = (cpu_linear_part){.y = y[i], .w = blobs[i], .w_type = types[i], .N = N[i]};
    cpu_linear_group(parts, 3, x, M, K, NULL);
    for (int i = 0; i < 3; i++) CHECK_MSG(close_to(y[i], alone[i], M * N[i], 1e-5), "group part %d", i);
    float *gated = malloc(sizeof(float) * M * N[0]), *want = malloc(sizeof(float) * M * N[0]);
    cpu_linear_group(parts, 2, x, M, K, gated);
    cpu_silu_mul(want, alone[0], alone[1], M * N[0]);
    CHECK(close_to(gated, want, M * N[0], 1e-5));
    for (int i = 0; i < 3; i++) free(blobs[i]), free(alone[i]), free(y[i]);
    free(x), free(w), free(gated), free(want);
}

/* The pass marks LINEAR weights but the LM head's; static scales come
 * from the calibration entry of the weight's name, and binding writes
 * them into the blob. */
static void test_pass_static_scales(void) {
    const int64_t K = 64, N = 32, V = 50;
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    const int64_t xd[2] = {LLMRT_DIM_TOKENS, K}, wd[2] = {N, K}, hd[2] = {V, N};
    llmrt_value x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, xd);
    llmrt_value h = llmrt_matmul(g, x, llmrt_weight(g, "layer.weight", 2, wd), 1);
    llmrt_value logits = llmrt_matmul(g, h, llmrt_weight(g, "lm_head.weight", 2, hd), 1);
    llmrt_graph_mark_output(g, logits);
    CHECK_OK(llmrt_graph_status(g));
    llmrt_pass_context ctx = {.target = "cpu"};
    CHECK_OK(llmrt_pass_fuse_linear(g, &ctx));

    llmrt_calib_entry entry = {.weight = "layer.weight", .cols = K, .input_amax = 89.6f};
    llmrt_calibration calib = {.count = 1, .entries = &entry};
    for (int step = 0; step < 4; step++) {
        llmrt_graph *copy = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
        for (int32_t i = 0; i < g->num_nodes; i++) {
            llmrt_node n = g->nodes[i];
            n.name = n.name ? strdup(n.name) : NULL;
            llmrt_graph_append(copy, &n);
        }
        llmrt_pass_context q = {.target = "cpu", .quant_dtype = LLMRT_DTYPE_FP8_W8A8, .quant_static_input = 1,
                                .calibration = &calib};
        if (step == 1) q.calibration = NULL;
        if (step == 2) entry.weight = "other.weight";
        if (step == 3) q.quant_dtype = LLMRT_DTYPE_INT8_W8A8;
        const llmrt_status s = llmrt_pass_quantize_weights(copy, &q);
        entry.weight = "layer.weight";
        if (step == 1) CHECK(s != LLMRT_OK && strstr(llmrt_last_error(), "--calib"));
        if (step == 2) CHECK(s != LLMRT_OK && strstr(llmrt_last_error(), "layer.weight"));
        if (step == 3) CHECK(s != LLMRT_OK && strstr(llmrt_last_error(), "fp8"));
        if (step == 0) {
            CHECK_OK(s);
            const llmrt_node *layer = NULL, *head = NULL;
            for (int32_t i = 0; i < copy->num_nodes; i++) {
                const llmrt_node *n = &copy->nodes[i];
                if (n->op == LLMRT_OP_WEIGHT && strcmp(n->name, "layer.weight") == 0) layer = n;
                if (n->op == LLMRT_OP_WEIGHT && strcmp(n->name, "lm_head.weight") == 0) head = n;
            }
            CHECK(layer && layer->dtype == LLMRT_DTYPE_FP8_W8A8 && layer->fattr[0] == 89.6f / 448.0f);
            CHECK(head && head->dtype == LLMRT_DTYPE_F32);
            if (layer) {
                float *w = malloc(sizeof(float) * N * K);
                uint64_t rng = 9;
                fill(w, N * K, &rng, 0.1f);
                const size_t bytes = llmrt_node_bytes(layer, 0, 0);
                void *blob = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
                CHECK_OK(llmrt_quantize_matrix(layer, w, blob));
                CHECK_OK(llmrt_q8weight_check(blob, bytes, LLMRT_DTYPE_FP8_W8A8, N, K, "layer"));
                const llmrt_q8weight_header *hb = blob;
                CHECK((hb->flags & LLMRT_Q8_STATIC_INPUT) && hb->input_scale == 89.6f / 448.0f);
                free(w), free(blob);
            }
        }
        llmrt_graph_free(copy);
    }
    llmrt_graph_free(g);
}

int main(void) {
    RUN_TEST(test_fp8_codes);
    RUN_TEST(test_simd_decode);
    RUN_TEST(test_int8_codes);
    RUN_TEST(test_quantize_error);
    RUN_TEST(test_check);
    RUN_TEST(test_kernel_vs_reference);
    RUN_TEST(test_groups);
    RUN_TEST(test_pass_static_scales);
    return test_finish();
}
