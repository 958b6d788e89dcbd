/* The element-wise, row and matrix CUDA kernels against their CPU twins
 * (src/backends/cpu/cpu_kernels.h) or a plain host reference, on fresh
 * random inputs with odd sizes, outputs poisoned with NaN before each run.
 * Attention and sampling: test_cuda_attention.c. Exits 77 (skipped)
 * without a GPU. */
#include <math.h>
#include <stdint.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cuda/cuda_gemm.h"
#include "backends/cuda/cuda_kernels.h"
#include "cuda_test_util.h"
#include "graph/ops.h"

static uint64_t rng = 0x1234567887654321ull;
static const llmrt_dtype float_types[3] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_BF16, LLMRT_DTYPE_F16};

static float ref_unary(int op, float x, float p) {
    switch (op) {
    case LLMRT_OP_POW: return powf(x, p);
    case LLMRT_OP_NEG: return -x;
    case LLMRT_OP_EXP: return expf(x);
    case LLMRT_OP_SQRT: return sqrtf(x);
    case LLMRT_OP_RSQRT: return 1.0f / sqrtf(x);
    case LLMRT_OP_TANH: return tanhf(x);
    case LLMRT_OP_ERF: return erff(x);
    case LLMRT_OP_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case LLMRT_OP_RELU: return x > 0 ? x : 0;
    default: return NAN;
    }
}

static void test_unary(void) {
    const int ops[] = {LLMRT_OP_POW, LLMRT_OP_NEG, LLMRT_OP_EXP, LLMRT_OP_SQRT, LLMRT_OP_RSQRT, LLMRT_OP_TANH,
                       LLMRT_OP_ERF, LLMRT_OP_SIGMOID, LLMRT_OP_RELU, LLMRT_OP_GELU, LLMRT_OP_SILU, LLMRT_OP_GELU_TANH};
    const int64_t n = 1031;
    for (int ti = 0; ti < 3; ti++)
        for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
            const llmrt_dtype t = float_types[ti];
            const int op = ops[oi];
            float *x = rand_floats(n, &rng, 3.0f), *ref = malloc(n * 4), *got = malloc(n * 4);
            if (op == LLMRT_OP_SQRT || op == LLMRT_OP_RSQRT || op == LLMRT_OP_POW)
                for (int64_t i = 0; i < n; i++) x[i] = fabsf(x[i]) + 0.1f;
            round_to(x, n, t);
            const float p = op == LLMRT_OP_POW ? 2.5f : 0.0f;
            if (op == LLMRT_OP_GELU) cpu_gelu_erf(ref, x, n);
            else if (op == LLMRT_OP_SILU) cpu_silu(ref, x, n);
            else if (op == LLMRT_OP_GELU_TANH) cpu_gelu_tanh(ref, x, n);
            else for (int64_t i = 0; i < n; i++) ref[i] = ref_unary(op, x[i], p);
            void *dx = dev_from_f32(x, n, t), *dy = dev_poisoned(n * 4);
            CUDA_CHECK(cuda_unary(op, dy, t, dx, t, n, p, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, t == LLMRT_DTYPE_F32 ? 2e-5 : tol_for(t), "%s %s", llmrt_op_name(op),
                        llmrt_dtype_name(t));
            cudaFree(dx);
            cudaFree(dy);
            free(x);
            free(ref);
            free(got);
        }
}

static void test_binary(void) {
    /* out [3, 5, 37] with b of several broadcast shapes; a mixed-type case (b f32) too */
    const int64_t od[3] = {3, 5, 37};
    const int64_t bshapes[5][3] = {{3, 5, 37}, {1, 1, 37}, {1, 5, 1}, {3, 1, 37}, {1, 1, 1}};
    const int bnd[5] = {3, 1, 2, 3, 0};
    const int ops[4] = {LLMRT_OP_ADD, LLMRT_OP_SUB, LLMRT_OP_MUL, LLMRT_OP_DIV};
    const int64_t n = 3 * 5 * 37;
    for (int ti = 0; ti < 3; ti++)
        for (int bi = 0; bi < 5; bi++)
            for (int oi = 0; oi < 4; oi++) {
                const llmrt_dtype t = float_types[ti], tb = bi == 3 ? LLMRT_DTYPE_F32 : t;
                int64_t bdims[3] = {1, 1, 1}, bn = 1;
                for (int d = 0; d < 3; d++) {
                    bdims[d] = bshapes[bi][d];
                    bn *= bdims[d];
                }
                float *a = rand_floats(n, &rng, 2.0f), *b = rand_floats(bn, &rng, 2.0f);
                for (int64_t i = 0; i < bn; i++) b[i] += b[i] >= 0 ? 0.5f : -0.5f; /* away from 0 for div */
                round_to(a, n, t);
                round_to(b, bn, tb);
                float *ref = malloc(n * 4), *got = malloc(n * 4);
                for (int64_t i0 = 0; i0 < 3; i0++)
                    for (int64_t i1 = 0; i1 < 5; i1++)
                        for (int64_t i2 = 0; i2 < 37; i2++) {
                            const int64_t o = (i0 * 5 + i1) * 37 + i2;
                            const int64_t j = ((bdims[0] > 1 ? i0 : 0) * bdims[1] + (bdims[1] > 1 ? i1 : 0)) * bdims[2] +
                                              (bdims[2] > 1 ? i2 : 0);
                            const float x = a[o], y = b[j];
                            ref[o] = oi == 0 ? x + y : oi == 1 ? x - y : oi == 2 ? x * y : x / y;
                        }
                /* b's own rank: drop leading dims as numpy would see them */
                const int64_t *bd = bdims + (3 - bnd[bi]);
                cuda_broadcast bc;
                CHECK(cuda_broadcast_init(&bc, 3, od, 3, od, bnd[bi], bd) == 0);
                void *da = dev_from_f32(a, n, t), *db = dev_from_f32(b, bn, tb), *dy = dev_poisoned(n * 4);
                CUDA_CHECK(cuda_binary(ops[oi], dy, t, da, t, db, tb, &bc, 0));
                dev_to_f32(got, dy, n, t);
                CHECK_CLOSE(got, ref, n, tol_for(t), "binary op %d %s bshape %d", oi, llmrt_dtype_name(t), bi);
                cudaFree(da);
                cudaFree(db);
                cudaFree(dy);
                free(a);
                free(b);
                free(ref);
                free(got);
            }
}

/* POW of signed inputs with integer exponents (the unfused GELU-tanh's x³,
 * LayerNorm's square): the kernels build with --use_fast_math, whose powf
 * is NaN for x < 0. Non-integer exponents on positive inputs. */
static void test_pow_signed(void) {
    const float exps[7] = {2.0f, 3.0f, 4.0f, 1.0f, -1.0f, -2.0f, 0.5f};
    const int64_t n = 1031;
    for (int ti = 0; ti < 3; ti++)
        for (int ei = 0; ei < 7; ei++) {
            const llmrt_dtype t = float_types[ti];
            const float p = exps[ei];
            float *x = rand_floats(n, &rng, 3.0f), *ref = malloc(n * 4), *got = malloc(n * 4);
            for (int64_t i = 0; i < n; i++) {
                if (p < 0) x[i] += x[i] >= 0 ? 0.25f : -0.25f; /* away from 0 */
                if (p == 0.5f) x[i] = fabsf(x[i]);
            }
            round_to(x, n, t);
            for (int64_t i = 0; i < n; i++) ref[i] = powf(x[i], p);
            void *dx = dev_from_f32(x, n, t), *dy = dev_poisoned(n * 4);
            CUDA_CHECK(cuda_unary(LLMRT_OP_POW, dy, t, dx, t, n, p, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, t == LLMRT_DTYPE_F32 ? 2e-5 : tol_for(t), "pow %g %s", p, llmrt_dtype_name(t));
            cudaFree(dx);
            cudaFree(dy);
            free(x);
            free(ref);
            free(got);
        }
}

/* A norm's statistic [T, 1] and a gain [D] have the same element count
 * when T == D; broadcasting must follow the shapes, not the counts. */
static void test_binary_square(void) {
    const int64_t D = 48, od[2] = {D, D}, col[2] = {D, 1}, row[1] = {D};
    for (int ti = 0; ti < 3; ti++)
        for (int shape = 0; shape < 2; shape++) {
            const llmrt_dtype t = float_types[ti], tb = shape ? LLMRT_DTYPE_F32 : t;
            float *a = rand_floats(D * D, &rng, 2.0f), *b = rand_floats(D, &rng, 2.0f), *ref = malloc(D * D * 4),
                  *got = malloc(D * D * 4);
            round_to(a, D * D, t);
            round_to(b, D, tb);
            for (int64_t r = 0; r < D; r++)
                for (int64_t c = 0; c < D; c++) ref[r * D + c] = a[r * D + c] - b[shape ? c : r];
            cuda_broadcast bc;
            CHECK(cuda_broadcast_init(&bc, 2, od, 2, od, shape ? 1 : 2, shape ? row : col) == 0);
            void *da = dev_from_f32(a, D * D, t), *db = dev_from_f32(b, D, tb), *dy = dev_poisoned(D * D * 4);
            CUDA_CHECK(cuda_binary(LLMRT_OP_SUB, dy, t, da, t, db, tb, &bc, 0));
            dev_to_f32(got, dy, D * D, t);
            CHECK_CLOSE(got, ref, D * D, tol_for(t), "[%lld,%lld] - %s %s", (long long)D, (long long)D,
                        shape ? "[D]" : "[T,1]", llmrt_dtype_name(t));
            cudaFree(da);
            cudaFree(db);
            cudaFree(dy);
            free(a);
            free(b);
            free(ref);
            free(got);
        }
}

static void test_silu_mul(void) {
    const int64_t sizes[2] = {4099, 11008};
    for (int ti = 0; ti < 3; ti++)
        for (int si = 0; si < 2; si++) {
            const llmrt_dtype t = float_types[ti];
            const int64_t n = sizes[si];
            float *g = rand_floats(n, &rng, 4.0f), *u = rand_floats(n, &rng, 2.0f), *ref = malloc(n * 4),
                  *got = malloc(n * 4);
            round_to(g, n, t);
            round_to(u, n, t);
            cpu_silu_mul(ref, g, u, n);
            void *dg = dev_from_f32(g, n, t), *du = dev_from_f32(u, n, t), *dy = dev_poisoned(n * 4);
            CUDA_CHECK(cuda_silu_mul(dy, dg, du, t, n, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, tol_for(t), "silu_mul %s n=%lld", llmrt_dtype_name(t), (long long)n);
            cudaFree(dg);
            cudaFree(du);
            cudaFree(dy);
            free(g);
            free(u);
            free(ref);
            free(got);
        }
}

static void test_rows(void) {
    /* 1000, 64, 4096: the 16-bit vector RMSNorm path; 4099 the row kernel */
    const int64_t rows = 7, dims[4] = {1000, 4099, 64, 4096};
    for (int ti = 0; ti < 3; ti++)
        for (int di = 0; di < 4; di++) {
            const llmrt_dtype t = float_types[ti];
            const int64_t dim = dims[di], n = rows * dim;
            float *x = rand_floats(n, &rng, 3.0f), *x2 = rand_floats(n, &rng, 1.0f), *w = rand_floats(dim, &rng, 1.0f),
                  *bias = rand_floats(dim, &rng, 0.5f);
            for (int64_t i = 0; i < n; i++) x[i] += 0.3f; /* a non-zero mean for layernorm */
            round_to(x, n, t);
            round_to(x2, n, t);
            float *ref = malloc(n * 4), *got = malloc(n * 4), *ref2 = malloc(n * 4);
            void *dx = dev_from_f32(x, n, t), *dx2 = dev_from_f32(x2, n, t), *dw = dev_from_f32(w, dim, LLMRT_DTYPE_F32),
                 *db = dev_from_f32(bias, dim, LLMRT_DTYPE_F32), *dy = dev_poisoned(n * 4), *ds = dev_poisoned(n * 4);
            const double tol = t == LLMRT_DTYPE_F32 ? 2e-5 : tol_for(t);

            /* sum, mean */
            for (int op = 0; op < 2; op++) {
                for (int64_t r = 0; r < rows; r++) {
                    double s = 0;
                    for (int64_t i = 0; i < dim; i++) s += x[r * dim + i];
                    ref[r] = (float)(op ? s / dim : s);
                }
                dev_poison(dy, n * 4);
                CUDA_CHECK(cuda_reduce_last(op ? LLMRT_OP_MEAN : LLMRT_OP_SUM, dy, LLMRT_DTYPE_F32, dx, t, rows, dim, 0));
                dev_to_f32(got, dy, rows, LLMRT_DTYPE_F32);
                CHECK_CLOSE(got, ref, rows, 1e-5, "%s %s dim %lld", op ? "mean" : "sum", llmrt_dtype_name(t),
                            (long long)dim);
            }
            /* softmax */
            cpu_softmax(ref, x, rows, dim);
            dev_poison(dy, n * 4);
            CUDA_CHECK(cuda_softmax(dy, t, dx, t, rows, dim, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, tol, "softmax %s dim %lld", llmrt_dtype_name(t), (long long)dim);
            /* rmsnorm */
            cpu_rmsnorm(ref, x, w, rows, dim, 1e-5f);
            dev_poison(dy, n * 4);
            CUDA_CHECK(cuda_rmsnorm(dy, dx, t, dw, LLMRT_DTYPE_F32, rows, dim, 1e-5f, 0, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, tol, "rmsnorm %s dim %lld", llmrt_dtype_name(t), (long long)dim);
            /* Gemma's gain 1 + w */
            cpu_rmsnorm_offset(ref, x, w, rows, dim, 1e-5f, 1.0f);
            dev_poison(dy, n * 4);
            CUDA_CHECK(cuda_rmsnorm_offset(dy, dx, t, dw, LLMRT_DTYPE_F32, rows, dim, 1e-5f, 1.0f, 0, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, tol, "rmsnorm (1 + w) %s dim %lld", llmrt_dtype_name(t), (long long)dim);
            /* layernorm, with and without bias */
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                cpu_layernorm(ref, x, w, with_bias ? bias : NULL, rows, dim, 1e-5f);
                dev_poison(dy, n * 4);
                CUDA_CHECK(cuda_layernorm(dy, dx, t, dw, with_bias ? db : NULL, LLMRT_DTYPE_F32, rows, dim, 1e-5f, 0));
                dev_to_f32(got, dy, n, t);
                CHECK_CLOSE(got, ref, n, tol, "layernorm %s dim %lld bias %d", llmrt_dtype_name(t), (long long)dim,
                            with_bias);
            }
            /* residual-fused: sum = x + x2 (rounded to t), y = rmsnorm(sum) */
            for (int64_t i = 0; i < n; i++) ref2[i] = x[i] + x2[i];
            round_to(ref2, n, t);
            cpu_rmsnorm(ref, ref2, w, rows, dim, 1e-5f);
            dev_poison(dy, n * 4);
            dev_poison(ds, n * 4);
            CUDA_CHECK(cuda_add_rmsnorm(dy, ds, dx, dx2, t, dw, LLMRT_DTYPE_F32, rows, dim, 1e-5f, 0, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, tol, "add_rmsnorm y %s dim %lld", llmrt_dtype_name(t), (long long)dim);
            dev_to_f32(got, ds, n, t);
            CHECK_CLOSE(got, ref2, n, 1e-6, "add_rmsnorm sum %s dim %lld", llmrt_dtype_name(t), (long long)dim);
            /* in place: the residual stream overwritten with the sum */
            CUDA_CHECK(cuda_add_rmsnorm(dy, dx, dx, dx2, t, dw, LLMRT_DTYPE_F32, rows, dim, 1e-5f, 0, 0));
            dev_to_f32(got, dy, n, t);
            CHECK_CLOSE(got, ref, n, tol, "add_rmsnorm in place %s", llmrt_dtype_name(t));
            cudaFree(dx);
            cudaFree(dx2);
            cudaFree(dw);
            cudaFree(db);
            cudaFree(dy);
            cudaFree(ds);
            free(x);
            free(x2);
            free(w);
            free(bias);
            free(ref);
            free(ref2);
            free(got);
        }
}

static void test_copies(void) {
    /* cast between every float pair */
    const int64_t n = 999;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            float *x = rand_floats(n, &rng, 5.0f), *got = malloc(n * 4);
            round_to(x, n, float_types[a]);
            float *ref = malloc(n * 4);
            memcpy(ref, x, n * 4);
            round_to(ref, n, float_types[b]);
            void *dx = dev_from_f32(x, n, float_types[a]), *dy = dev_poisoned(n * 4);
            CUDA_CHECK(cuda_cast(dy, float_types[b], dx, float_types[a], n, 0));
            dev_to_f32(got, dy, n, float_types[b]);
            CHECK_CLOSE(got, ref, n, 1e-7, "cast %s -> %s", llmrt_dtype_name(float_types[a]),
                        llmrt_dtype_name(float_types[b]));
            cudaFree(dx);
            cudaFree(dy);
            free(x);
            free(ref);
            free(got);
        }
    /* permute [4, 6, 9] by (2, 0, 1) and slice axis 1 [2, 5) */
    const int64_t d0 = 4, d1 = 6, d2 = 9, m = d0 * d1 * d2;
    float *x = rand_floats(m, &rng, 1.0f), *ref = malloc(m * 4), *got = malloc(m * 4);
    for (int64_t i = 0; i < d0; i++)
        for (int64_t j = 0; j < d1; j++)
            for (int64_t k = 0; k < d2; k++) ref[(k * d0 + i) * d1 + j] = x[(i * d1 + j) * d2 + k];
    void *dx = dev_from_f32(x, m, LLMRT_DTYPE_F32), *dy = dev_poisoned(m * 4);
    cuda_copy_desc c;
    memset(&c, 0, sizeof c);
    c.ndim = 3;
    c.dims[0] = d2, c.dims[1] = d0, c.dims[2] = d1;
    c.x_strides[0] = 1, c.x_strides[1] = d1 * d2, c.x_strides[2] = d2;
    c.y_strides[0] = d0 * d1, c.y_strides[1] = d1, c.y_strides[2] = 1;
    CUDA_CHECK(cuda_strided_copy(dy, LLMRT_DTYPE_F32, dx, LLMRT_DTYPE_F32, &c, 0));
    dev_to_f32(got, dy, m, LLMRT_DTYPE_F32);
    CHECK_CLOSE(got, ref, m, 0.0, "%s", "permute");
    for (int64_t i = 0; i < d0; i++)
        for (int64_t j = 0; j < 3; j++)
            for (int64_t k = 0; k < d2; k++) ref[(i * 3 + j) * d2 + k] = x[(i * d1 + j + 2) * d2 + k];
    memset(&c, 0, sizeof c);
    c.ndim = 3;
    c.dims[0] = d0, c.dims[1] = 3, c.dims[2] = d2;
    c.x_strides[0] = d1 * d2, c.x_strides[1] = d2, c.x_strides[2] = 1;
    c.y_strides[0] = 3 * d2, c.y_strides[1] = d2, c.y_strides[2] = 1;
    c.x_offset = 2 * d2;
    dev_poison(dy, m * 4);
    CUDA_CHECK(cuda_strided_copy(dy, LLMRT_DTYPE_F32, dx, LLMRT_DTYPE_F32, &c, 0));
    dev_to_f32(got, dy, d0 * 3 * d2, LLMRT_DTYPE_F32);
    CHECK_CLOSE(got, ref, d0 * 3 * d2, 0.0, "%s", "slice");
    cudaFree(dx);
    cudaFree(dy);
    free(x);
    free(ref);
    free(got);
}

static void test_embedding(void) {
    const int64_t rows = 101, count = 13;
    const int64_t dims[2] = {72, 77};
    for (int ti = 0; ti < 3; ti++)
        for (int di = 0; di < 2; di++) {
            const llmrt_dtype t = float_types[ti];
            const int64_t dim = dims[di];
            float *table = rand_floats(rows * dim, &rng, 1.0f), *ref = malloc(count * dim * 4),
                  *got = malloc(count * dim * 4);
            round_to(table, rows * dim, t);
            int32_t ids[13];
            for (int i = 0; i < count; i++) ids[i] = (int32_t)(test_rand_u64(&rng) % rows);
            ids[9] = (int32_t)rows; /* out of range: zero row, reported */
            ids[11] = -3;
            const int64_t bad = cpu_embedding(ref, table, LLMRT_DTYPE_F32, rows, dim, ids, count);
            CHECK(bad == 9);
            void *dt = dev_from_f32(table, rows * dim, t), *di_ = dev_from_bytes(ids, sizeof ids),
                 *dy = dev_poisoned(count * dim * 4);
            int32_t init = INT32_MAX, got_bad = 0;
            int32_t *dbad = dev_from_bytes(&init, 4);
            CUDA_CHECK(cuda_embedding(dy, t, dt, t, rows, dim, di_, count, dbad, 0));
            dev_to_f32(got, dy, count * dim, t);
            cudaMemcpy(&got_bad, dbad, 4, cudaMemcpyDeviceToHost);
            CHECK_CLOSE(got, ref, count * dim, 0.0, "embedding %s dim %lld", llmrt_dtype_name(t), (long long)dim);
            CHECK_MSG(got_bad == 9, "bad index %d", got_bad);
            cudaFree(dt);
            cudaFree(di_);
            cudaFree(dy);
            cudaFree(dbad);
            free(table);
            free(ref);
            free(got);
        }
}

/* cuBLASLt, the decode GEMV and the generic product, against cpu_linear. */
static void test_gemm(void) {
    cuda_gemm *gemm = NULL;
    CHECK_OK(cuda_gemm_create(&gemm, 32 << 20, 0));
    if (!gemm) return;
    const int64_t shapes[][3] = {{1, 257, 64},  {3, 300, 136},  {4, 1000, 4096}, {2, 77, 2056},
                                 {37, 515, 72}, {64, 512, 256}, {129, 96, 1000}};
    for (int ti = 0; ti < 3; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int variant = 0; variant < 6; variant++) {
                /* variant: 0 cuBLASLt, 1 cuBLASLt + bias, 2 cuBLASLt W [K,N], 3 GEMV (+bias) or generic mixed,
                 * 4 cuBLASLt + bias with an f32 y, 5 GEMV + bias with an f32 y (the logits paths) */
                const llmrt_dtype t = float_types[ti];
                const int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                float *x = rand_floats(M * K, &rng, 1.0f), *w = rand_floats(N * K, &rng, 0.1f),
                      *bias = rand_floats(N, &rng, 1.0f), *ref = malloc(M * N * 4), *got = malloc(M * N * 4);
                round_to(x, M * K, t);
                round_to(w, N * K, t);
                const int with_bias = variant == 1 || variant >= 3;
                const llmrt_dtype ty = variant >= 4 ? LLMRT_DTYPE_F32 : t;
                if (variant == 5 && !cuda_gemv_supported(t, M, K, NULL, NULL, NULL)) {
                    free(x);
                    free(w);
                    free(bias);
                    free(ref);
                    free(got);
                    continue;
                }
                cpu_linear(ref, x, w, LLMRT_DTYPE_F32, with_bias ? bias : NULL, M, N, K);
                float *wt = malloc(N * K * 4); /* [K, N] */
                for (int64_t n = 0; n < N; n++)
                    for (int64_t k = 0; k < K; k++) wt[k * N + n] = w[n * K + k];
                void *dx = dev_from_f32(x, M * K, t), *dw = dev_from_f32(variant == 2 ? wt : w, N * K, t),
                     *db = dev_from_f32(bias, N, LLMRT_DTYPE_F32), *dy = dev_poisoned(M * N * 4);
                const char *what = "cublaslt";
                if (variant <= 2) {
                    CHECK_OK(cuda_gemm_run(gemm, dy, dx, dw, t, variant != 2, with_bias ? db : NULL, M, N, K, 0));
                } else if (variant == 4) {
                    what = "cublaslt f32 out";
                    CHECK_OK(cuda_gemm_run_out(gemm, dy, ty, dx, dw, t, 1, db, M, N, K, 0));
                } else if (variant == 5) {
                    what = "gemv f32 out";
                    CUDA_CHECK(cuda_gemv_out(dy, ty, dx, dw, t, db, M, N, K, 0, 0));
                } else if (cuda_gemv_supported(t, M, K, dy, dx, dw)) {
                    what = "gemv";
                    CUDA_CHECK(cuda_gemv(dy, dx, dw, t, db, M, N, K, 0, 0));
                } else {
                    /* generic: x in t, W in f32 (the mixed-type path) */
                    what = "generic";
                    void *dwf = dev_from_f32(w, N * K, LLMRT_DTYPE_F32);
                    CUDA_CHECK(cuda_matmul_generic(dy, t, dx, t, dwf, LLMRT_DTYPE_F32, 1, db, M, N, K, 0));
                    CUDA_CHECK(cudaDeviceSynchronize());
                    cudaFree(dwf);
                }
                dev_to_f32(got, dy, M * N, ty);
                /* f32 out: only the inputs were rounded, as in ref */
                const double tol = ty == LLMRT_DTYPE_F32 ? 1e-5 : tol_for(t);
                CHECK_CLOSE(got, ref, M * N, tol, "%s %s M=%lld N=%lld K=%lld variant %d", what, llmrt_dtype_name(t),
                            (long long)M, (long long)N, (long long)K, variant);
                cudaFree(dx);
                cudaFree(dw);
                cudaFree(db);
                cudaFree(dy);
                free(x);
                free(w);
                free(wt);
                free(bias);
                free(ref);
                free(got);
            }
    CHECK(cuda_gemm_cached_shapes(gemm) > 0);
    cuda_gemm_free(gemm);
}

/* x = RMSNorm(a (+ b)) with gain g, rounded as the add + RMSNorm kernel
 * rounds (the sum to t, then the output); the sum to `sum`. */
static void ref_add_rmsnorm(float *x, float *sum, const float *a, const float *b, const float *g, int64_t M, int64_t K,
                            float eps, llmrt_dtype t) {
    for (int64_t m = 0; m < M; m++) {
        double ss = 0;
        for (int64_t k = 0; k < K; k++) {
            sum[m * K + k] = a[m * K + k] + (b ? b[m * K + k] : 0.0f);
            round_to(&sum[m * K + k], 1, t);
            ss += (double)sum[m * K + k] * sum[m * K + k];
        }
        const float inv = (float)(1.0 / sqrt(ss / K + eps));
        for (int64_t k = 0; k < K; k++) x[m * K + k] = sum[m * K + k] * inv * g[k];
    }
    round_to(x, M * K, t);
}

/* One grouped GEMV case: 2-3 parts sharing x (with and without biases), or
 * the gated pair against gate/up rounded to the type, then silu·mul; x as
 * given, or made in the prologue as RMSNorm(a) or RMSNorm(a + b).
 * variant % 3: 0 three parts, 1 two parts + biases, 2 gated pair (+ bias
 * when M is odd); variant / 3: x given, RMSNorm(a), RMSNorm(a + b). With
 * `signal` (not gated, M = 1) the first part_n[0] - 3 rows of part 0 are
 * signalled, and the counter must end at exactly that. */
/* How test_gemv_multi launches its cases (cuda_gemv_multi's resident_blocks
 * and pdl); main runs it under several. */
static int gemv_resident_blocks = 0, gemv_pdl = 0;

static void gemv_multi_case(llmrt_dtype t, int64_t M, int64_t K, int variant, const int64_t part_n[3], int signal) {
    const int norm = variant / 3, parts = variant % 3 == 0 ? 3 : 2, gated = variant % 3 == 2;
    const int with_bias = variant % 3 == 1 || (gated && M % 2);
    signal = signal && !gated && M == 1;
    float *x = rand_floats(M * K, &rng, 1.0f);
    round_to(x, M * K, t);
    float *na = rand_floats(M * K, &rng, 2.0f), *nb = rand_floats(M * K, &rng, 1.0f), *gain = rand_floats(K, &rng, 1.0f),
          *sum = malloc(M * K * 4);
    round_to(na, M * K, t);
    round_to(nb, M * K, t);
    if (norm) ref_add_rmsnorm(x, sum, na, norm == 2 ? nb : NULL, gain, M, K, 1e-5f, t);
    void *dx = dev_from_f32(x, M * K, t), *dna = dev_from_f32(na, M * K, t), *dnb = dev_from_f32(nb, M * K, t),
         *dgain = dev_from_f32(gain, K, LLMRT_DTYPE_F32), *dsum = dev_poisoned(M * K * 4);
    const cuda_gemv_norm nrm = {dna, norm == 2 ? dnb : NULL, norm == 2 ? dsum : NULL, dgain, 1e-5f};
    cuda_gemv_part p[3];
    float *w[3], *bias[3], *ref[3];
    void *dw[3], *db[3], *dy[3];
    for (int i = 0; i < parts; i++) {
        const int64_t N = gated ? part_n[1] : part_n[i];
        w[i] = rand_floats(N * K, &rng, 0.1f);
        round_to(w[i], N * K, t);
        bias[i] = rand_floats(N, &rng, 1.0f);
        ref[i] = malloc(M * N * 4);
        cpu_linear(ref[i], x, w[i], LLMRT_DTYPE_F32, with_bias ? bias[i] : NULL, M, N, K);
        dw[i] = dev_from_f32(w[i], N * K, t);
        db[i] = dev_from_f32(bias[i], N, LLMRT_DTYPE_F32);
        dy[i] = dev_poisoned(M * N * 4);
        p[i] = (cuda_gemv_part){dy[i], dw[i], with_bias ? db[i] : NULL, N};
    }
    if (gated) {
        const int64_t n = M * part_n[1];
        round_to(ref[0], n, t);
        round_to(ref[1], n, t);
        cpu_silu_mul(ref[0], ref[0], ref[1], n);
        p[1].y = p[0].y;
    }
    int32_t *counter = NULL;
    const int32_t signal_rows = (int32_t)(part_n[0] > 3 ? part_n[0] - 3 : part_n[0]);
    if (signal) {
        CUDA_CHECK(cudaMalloc((void **)&counter, sizeof *counter));
        CUDA_CHECK(cudaMemset(counter, 0, sizeof *counter));
        const cuda_gemv_signal sig = {counter, signal_rows};
        CUDA_CHECK(cuda_gemv_multi_signal(p, parts, gated, norm ? NULL : dx, norm ? &nrm : NULL, &sig, t, M, K,
                                          gemv_resident_blocks, gemv_pdl, 0));
    } else {
        CUDA_CHECK(cuda_gemv_multi(p, parts, gated, norm ? NULL : dx, norm ? &nrm : NULL, t, M, K, gemv_resident_blocks,
                                   gemv_pdl, 0));
    }
    if (norm == 2) { /* the residual sum, exactly */
        float *got = malloc(M * K * 4);
        dev_to_f32(got, dsum, M * K, t);
        CHECK_CLOSE(got, sum, M * K, 0.0, "gemv_multi norm sum %s M=%lld K=%lld", llmrt_dtype_name(t), (long long)M,
                    (long long)K);
        free(got);
    }
    for (int i = 0; i < (gated ? 1 : parts); i++) {
        const int64_t N = gated ? part_n[1] : part_n[i];
        float *got = malloc(M * N * 4);
        dev_to_f32(got, dy[i], M * N, t);
        CHECK_CLOSE(got, ref[i], M * N, tol_for(t), "gemv_multi %s M=%lld K=%lld N0=%lld variant %d part %d",
                    llmrt_dtype_name(t), (long long)M, (long long)K, (long long)part_n[0], variant, i);
        free(got);
    }
    if (counter) {
        int32_t got = -1;
        CUDA_CHECK(cudaMemcpy(&got, counter, sizeof got, cudaMemcpyDeviceToHost));
        CHECK_MSG(got == signal_rows, "gemv_multi signal K=%lld variant %d: counter %d, expected %d", (long long)K,
                  variant, got, signal_rows);
        cudaFree(counter);
    }
    for (int i = 0; i < parts; i++) {
        cudaFree(dw[i]);
        cudaFree(db[i]);
        cudaFree(dy[i]);
        free(w[i]);
        free(bias[i]);
        free(ref[i]);
    }
    cudaFree(dx);
    cudaFree(dna);
    cudaFree(dnb);
    cudaFree(dgain);
    cudaFree(dsum);
    free(x);
    free(na);
    free(nb);
    free(gain);
    free(sum);
}

static void test_gemv_multi(void) {
    const int64_t shapes[][2] = {{1, 64}, {2, 136}, {3, 4096}, {4, 1000}, {1, 256}};
    const int64_t part_n[3] = {37, 128, 301};
    for (int ti = 1; ti < 3; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int variant = 0; variant < 3 * 3; variant++)
                gemv_multi_case(float_types[ti], shapes[si][0], shapes[si][1], variant, part_n, variant % 2);
    /* gated needs two equal parts */
    cuda_gemv_part bad[2] = {{NULL, NULL, NULL, 8}, {NULL, NULL, NULL, 9}};
    CHECK(cuda_gemv_multi(bad, 2, 1, NULL, NULL, LLMRT_DTYPE_BF16, 1, 64, 0, 0, 0) == cudaErrorInvalidValue);
}

int main(void) {
    int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    RUN_TEST(test_unary);
    RUN_TEST(test_binary);
    RUN_TEST(test_pow_signed);
    RUN_TEST(test_binary_square);
    RUN_TEST(test_silu_mul);
    RUN_TEST(test_rows);
    RUN_TEST(test_copies);
    RUN_TEST(test_embedding);
    RUN_TEST(test_gemm);
    RUN_TEST(test_gemv_multi);
    { /* again with programmatic dependent launch, where the GPU has it */
        int major = 0;
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
        if (major >= 9) {
            gemv_pdl = 1;
            RUN_TEST(test_gemv_multi);
            gemv_pdl = 0;
        }
        /* resident blocks: 1 and 3 (many rows a warp, across part ends), and as many as fit */
        const int resident[3] = {1, 3, -1};
        for (int i = 0; i < 3; i++) {
            gemv_resident_blocks = resident[i];
            gemv_pdl = major >= 9 && i == 1;
            RUN_TEST(test_gemv_multi);
        }
        gemv_resident_blocks = 0;
        gemv_pdl = 0;
    }
    CUDA_CHECK(cudaGetLastError());
    return test_finish();
}
