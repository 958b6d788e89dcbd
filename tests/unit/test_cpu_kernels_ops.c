/* Norms, softmax, activations and embedding lookup against double
 * references, on every SIMD path this machine has, odd sizes, 1 vs 2
 * threads where the kernel is threaded. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "test_util.h"

static const char *const isa_names[] = {"portable", "avx2", "avx512"};

static int use_isa(const char *isa) {
    cpu_kernels_force_isa(isa);
    if (strcmp(cpu_kernels_isa(), isa) == 0) return 1;
    cpu_kernels_force_isa(NULL);
    return 0;
}

static void test_norms(void) {
    static const int64_t shapes[][2] = {{1, 2048}, {3, 33}, {17, 257}, {129, 100}, {2, 1}};
    uint64_t rng = 5;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t rows = shapes[s][0], dim = shapes[s][1], n = rows * dim;
        float *x = malloc(sizeof(float) * n), *res = malloc(sizeof(float) * n), *res0 = malloc(sizeof(float) * n);
        float *w = malloc(sizeof(float) * dim), *b = malloc(sizeof(float) * dim), *y = malloc(sizeof(float) * n);
        float *ref = malloc(sizeof(float) * n), *ref_res = malloc(sizeof(float) * n);
        test_fill_random(x, (size_t)n, &rng, 3.0f);
        test_fill_random(res0, (size_t)n, &rng, 3.0f);
        test_fill_random(w, (size_t)dim, &rng, 1.0f);
        test_fill_random(b, (size_t)dim, &rng, 1.0f);
        for (int64_t i = 0; i < n; i++) x[i] += 5.0f; /* a large mean tests LayerNorm's variance */
        const float eps = 1e-5f;
        for (int pass = 0; pass < 4; pass++) {
            /* 0 rmsnorm, 1 add_rmsnorm, 2 layernorm + bias, 3 layernorm without bias */
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * dim;
                double in[2048 + 257], sum = 0.0, sum_sq = 0.0;
                for (int64_t i = 0; i < dim; i++) {
                    in[i] = pass == 1 ? (double)(float)(res0[r * dim + i] + xr[i]) : xr[i];
                    if (pass == 1) ref_res[r * dim + i] = (float)in[i];
                    sum += in[i];
                }
                double mean = sum / dim;
                for (int64_t i = 0; i < dim; i++) sum_sq += pass >= 2 ? (in[i] - mean) * (in[i] - mean) : in[i] * in[i];
                double inv = 1.0 / sqrt(sum_sq / dim + eps);
                for (int64_t i = 0; i < dim; i++)
                    ref[r * dim + i] = (float)(pass >= 2 ? (in[i] - mean) * inv * w[i] + (pass == 2 ? b[i] : 0.0)
                                                         : in[i] * inv * w[i]);
            }
            for (int threads = 1; threads <= 2; threads++) {
                omp_set_num_threads(threads);
                if (pass == 0) cpu_rmsnorm(y, x, w, rows, dim, eps);
                if (pass == 1) {
                    memcpy(res, res0, sizeof(float) * n);
                    cpu_add_rmsnorm(y, res, x, w, rows, dim, eps);
                    CHECK(memcmp(res, ref_res, sizeof(float) * n) == 0);
                    /* the out-of-place form: the same bits, also in place on an input */
                    float *y2 = malloc(sizeof(float) * n), *sum = malloc(sizeof(float) * n);
                    cpu_add_rmsnorm_to(y2, sum, res0, x, w, rows, dim, eps);
                    CHECK(memcmp(sum, ref_res, sizeof(float) * n) == 0 && memcmp(y2, y, sizeof(float) * n) == 0);
                    memcpy(sum, res0, sizeof(float) * n);
                    cpu_add_rmsnorm_to(y2, sum, sum, x, w, rows, dim, eps);
                    CHECK(memcmp(sum, ref_res, sizeof(float) * n) == 0 && memcmp(y2, y, sizeof(float) * n) == 0);
                    free(y2), free(sum);
                }
                if (pass >= 2) cpu_layernorm(y, x, w, pass == 2 ? b : NULL, rows, dim, eps);
                double err = test_rel_l2(y, ref, (size_t)n);
                CHECK_MSG(err < 1e-6, "norm %d rows=%lld dim=%lld threads=%d: rel err %g", pass, (long long)rows,
                          (long long)dim, threads, err);
            }
        }
        free(x), free(res), free(res0), free(w), free(b), free(y), free(ref), free(ref_res);
    }
    omp_set_num_threads(2);
}

static void test_softmax(void) {
    static const int64_t shapes[][2] = {{1, 32000}, {3, 33}, {17, 257}, {5, 1}};
    uint64_t rng = 6;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t rows = shapes[s][0], dim = shapes[s][1], n = rows * dim;
        float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
        test_fill_random(x, (size_t)n, &rng, 30.0f); /* a wide range: stability matters */
        for (int64_t r = 0; r < rows; r++) {
            double max = -INFINITY, sum = 0.0;
            for (int64_t i = 0; i < dim; i++) max = fmax(max, x[r * dim + i]);
            for (int64_t i = 0; i < dim; i++) sum += exp(x[r * dim + i] - max);
            for (int64_t i = 0; i < dim; i++) ref[r * dim + i] = (float)(exp(x[r * dim + i] - max) / sum);
        }
        cpu_softmax(y, x, rows, dim);
        double err = test_rel_l2(y, ref, (size_t)n);
        CHECK_MSG(err < 1e-6, "softmax rows=%lld dim=%lld: rel err %g", (long long)rows, (long long)dim, err);
        cpu_softmax(x, x, rows, dim); /* in place */
        CHECK(memcmp(x, y, sizeof(float) * n) == 0);
        free(x), free(y), free(ref);
    }
}

/* SiLU (kind 0, 1): every element within 2e-6 relative, as SiLU has no
 * cancellation (absolute below 1e-30, where the result underflows anyway).
 * GELU (kind 2, 3) follows PyTorch's float formula, whose 1 + erf / 1 + tanh
 * cancels for x ≪ 0, so it is held to relative L2 like the other kernels. */
static int activation_close(int kind, const float *y, const double *ref, int64_t n, double *worst) {
    *worst = 0.0;
    if (kind >= 2) {
        double num = 0.0, den = 0.0;
        for (int64_t i = 0; i < n; i++) {
            num += ((double)y[i] - ref[i]) * ((double)y[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        *worst = sqrt(num / den);
        return *worst < 1e-6;
    }
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)y[i] - ref[i]);
        if (!(err <= 2e-6 * fabs(ref[i]) + 1e-30)) return 0;
        if (fabs(ref[i]) > 1e-30 && err / fabs(ref[i]) > *worst) *worst = err / fabs(ref[i]);
    }
    return 1;
}

static void test_activations(void) {
    const int64_t n = 100003; /* odd: vector tails; > the threading threshold */
    float *x = malloc(sizeof(float) * n), *up = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    float *y1 = malloc(sizeof(float) * n);
    double *ref = malloc(sizeof(double) * n);
    uint64_t rng = 7;
    test_fill_random(x, (size_t)n, &rng, 30.0f);
    test_fill_random(up, (size_t)n, &rng, 2.0f);
    static const float extremes[] = {-200.0f, -104.0f, -88.5f, -87.0f, -1e-30f, 0.0f, 1e-30f, 87.0f, 88.5f, 104.0f, 200.0f};
    memcpy(x, extremes, sizeof extremes);
    for (int kind = 0; kind < 4; kind++) {
        /* 0 silu, 1 silu_mul, 2 gelu_erf, 3 gelu_tanh */
        for (int64_t i = 0; i < n; i++) {
            double v = x[i];
            if (kind <= 1) ref[i] = v / (1.0 + exp(-v)) * (kind == 1 ? up[i] : 1.0);
            if (kind == 2) ref[i] = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            if (kind == 3) ref[i] = 0.5 * v * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
        }
        for (size_t i = 0; i < 3; i++) {
            if (!use_isa(isa_names[i])) continue;
            for (int threads = 2; threads >= 1; threads--) {
                omp_set_num_threads(threads);
                float *out = threads == 2 ? y : y1;
                if (kind == 0) cpu_silu(out, x, n);
                if (kind == 1) cpu_silu_mul(out, x, up, n);
                if (kind == 2) cpu_gelu_erf(out, x, n);
                if (kind == 3) cpu_gelu_tanh(out, x, n);
            }
            double worst;
            CHECK_MSG(activation_close(kind, y, ref, n, &worst), "activation %d on %s", kind, isa_names[i]);
            CHECK_MSG(memcmp(y, y1, sizeof(float) * n) == 0, "activation %d on %s: 1 vs 2 threads differ", kind,
                      isa_names[i]);
            fprintf(stderr, "   activation %d %-8s worst error %.2g (elementwise relative for SiLU, L2 for GELU)\n", kind, isa_names[i], worst);
            /* short rows exercise the tails alone, in place */
            for (int64_t len = 1; len <= 37; len += 3) {
                memcpy(y1, x + 11, sizeof(float) * len);
                if (kind == 0) cpu_silu(y1, y1, len);
                if (kind == 1) cpu_silu_mul(y1, y1, up + 11, len);
                if (kind == 2) cpu_gelu_erf(y1, y1, len);
                if (kind == 3) cpu_gelu_tanh(y1, y1, len);
                CHECK_MSG(activation_close(kind, y1, ref + 11, len, &worst), "activation %d on %s, n=%lld", kind,
                          isa_names[i], (long long)len);
            }
        }
        cpu_kernels_force_isa(NULL);
    }
    omp_set_num_threads(2);
    free(x), free(up), free(y), free(y1), free(ref);
}

static void test_embedding(void) {
    const int64_t rows = 50, dim = 37;
    static const llmrt_dtype types[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_F16, LLMRT_DTYPE_BF16};
    uint64_t rng = 8;
    float *exact = malloc(sizeof(float) * rows * dim), *out = malloc(sizeof(float) * 6 * dim);
    for (size_t t = 0; t < 3; t++) {
        test_fill_random(exact, (size_t)(rows * dim), &rng, 1.0f);
        void *table = malloc((size_t)(rows * dim) * llmrt_dtype_size(types[t]));
        llmrt_convert_from_f32(table, types[t], exact, (size_t)(rows * dim));
        llmrt_convert_to_f32(exact, table, types[t], (size_t)(rows * dim));
        const int32_t ids[] = {3, 49, 0, 3, 17, 22};
        CHECK(cpu_embedding(out, table, types[t], rows, dim, ids, 6) == -1);
        int ok = 1;
        for (int i = 0; i < 6; i++) ok &= memcmp(out + i * dim, exact + ids[i] * dim, sizeof(float) * dim) == 0;
        CHECK_MSG(ok, "embedding %s", llmrt_dtype_name(types[t]));
        const int32_t bad[] = {1, 50, -1, 2};
        CHECK(cpu_embedding(out, table, types[t], rows, dim, bad, 4) == 1);
        int zero = 1;
        for (int64_t i = 0; i < dim; i++) zero &= out[dim + i] == 0.0f && out[2 * dim + i] == 0.0f;
        CHECK(zero);
        CHECK(memcmp(out + 3 * dim, exact + 2 * dim, sizeof(float) * dim) == 0);
        free(table);
    }
    free(exact), free(out);
}

int main(void) {
    RUN_TEST(test_norms);
    RUN_TEST(test_softmax);
    RUN_TEST(test_activations);
    RUN_TEST(test_embedding);
    return test_finish();
}
