/* The mixture-of-experts kernels (moe.cu) against their CPU twins
 * (cpu_kernels_moe.c): routing with ties, k = 1 and k = E, the grouped
 * expert GEMMs for each float type at decode and prefill sizes, odd sizes
 * (the scalar path), and a decode step that must not read the experts no
 * token chose (their weights are NaN). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cuda/cuda_kernels.h"
#include "cuda_test_util.h"

static uint64_t rng = 0x0e0e0e0e12345678ull;
static const llmrt_dtype float_types[3] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_BF16, LLMRT_DTYPE_F16};
static int moe_pdl = 0; /* launch with programmatic dependent launch (Hopper) */

static void route_case(llmrt_dtype lt, int64_t T, int64_t E, int64_t k, int ties) {
    float *logits = rand_floats((size_t)(T * E), &rng, 3.0f);
    for (int64_t t = 0; ties && t < T; t++) /* every token: ties, all or some */
        for (int64_t e = t % 2; e < E; e += 1 + (t % 3 == 0)) logits[t * E + e] = 0.75f;
    round_to(logits, (size_t)(T * E), lt);
    int32_t *want = malloc((size_t)(T * k) * sizeof *want), *got = malloc((size_t)(T * k) * sizeof *got);
    float *want_w = malloc((size_t)(T * k) * sizeof *want_w), *got_w = malloc((size_t)(T * k) * sizeof *got_w);
    cpu_moe_route(want, want_w, logits, T, E, k);
    void *dl = dev_from_f32(logits, (size_t)(T * E), lt), *dids = dev_poisoned((size_t)(T * k) * 4),
         *dw = dev_poisoned((size_t)(T * k) * 4);
    CUDA_CHECK(cuda_moe_route(dids, dw, dl, lt, T, E, k, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaMemcpy(got, dids, (size_t)(T * k) * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(got_w, dw, (size_t)(T * k) * 4, cudaMemcpyDeviceToHost);
    int same = 1;
    double worst = 0.0;
    for (int64_t i = 0; i < T * k; i++) {
        same &= got[i] == want[i];
        worst = fmax(worst, fabs(got_w[i] - want_w[i]));
    }
    CHECK_MSG(same && worst < 1e-5, "route %s T=%lld E=%lld k=%lld ties=%d: ids %s, weights off by %.3g",
              llmrt_dtype_name(lt), (long long)T, (long long)E, (long long)k, ties, same ? "equal" : "differ", worst);
    cudaFree(dl), cudaFree(dids), cudaFree(dw);
    free(logits), free(want), free(got), free(want_w), free(got_w);
}

static void test_route(void) {
    for (int ti = 0; ti < 3; ti++) {
        route_case(float_types[ti], 1, 8, 2, 1);
        route_case(float_types[ti], 33, 8, 2, 1);
        route_case(float_types[ti], 17, 5, 1, 1);
        route_case(float_types[ti], 17, 5, 5, 1);
        route_case(float_types[ti], 40, 64, 6, 0);
        route_case(float_types[ti], 9, 40, 40, 1);
    }
}

/* poison_unused: every expert no token of the step chose has NaN weights. */
static void moe_case(llmrt_dtype t, int64_t T, int64_t H, int64_t I, int64_t E, int64_t k, int poison_unused) {
    const size_t nx = (size_t)(T * H), nl = (size_t)(T * E), nw = (size_t)(E * I * H);
    float *x = rand_floats(nx, &rng, 1.0f), *logits = rand_floats(nl, &rng, 2.0f);
    for (int64_t t0 = 0; t0 < T; t0 += 3) /* some tokens with tied experts */
        for (int64_t e = 0; e < E; e++) logits[t0 * E + e] = 0.5f;
    float *wg = rand_floats(nw, &rng, 1.0f / sqrtf((float)H)), *wu = rand_floats(nw, &rng, 1.0f / sqrtf((float)H));
    float *wd = rand_floats(nw, &rng, 1.0f / sqrtf((float)I));
    round_to(x, nx, t), round_to(logits, nl, t), round_to(wg, nw, t), round_to(wu, nw, t), round_to(wd, nw, t);
    float *want = malloc(nx * sizeof *want), *got = malloc(nx * sizeof *got);
    void *scratch = malloc(cpu_moe_scratch_bytes(T, H, I, E, k));
    cpu_moe(want, x, logits, wg, wu, wd, LLMRT_DTYPE_F32, T, H, I, E, k, scratch);
    if (poison_unused) {
        int32_t *ids = malloc((size_t)(T * k) * sizeof *ids);
        float *w = malloc((size_t)(T * k) * sizeof *w);
        cpu_moe_route(ids, w, logits, T, E, k);
        for (int64_t e = 0; e < E; e++) {
            int used = 0;
            for (int64_t a = 0; a < T * k; a++) used |= ids[a] == e;
            if (used) continue;
            for (int64_t i = 0; i < I * H; i++) wg[e * I * H + i] = wu[e * I * H + i] = wd[e * I * H + i] = NAN;
        }
        free(ids), free(w);
    }
    void *dx = dev_from_f32(x, nx, t), *dl = dev_from_f32(logits, nl, t), *dg = dev_from_f32(wg, nw, t),
         *du = dev_from_f32(wu, nw, t), *dd = dev_from_f32(wd, nw, t), *dy = dev_poisoned(nx * 4);
    void *ws = dev_poisoned(cuda_moe_workspace_bytes(T, H, I, E, k, t));
    CUDA_CHECK(cuda_moe(dy, dx, dl, t, dg, du, dd, t, T, H, I, E, k, ws, moe_pdl, 0));
    dev_to_f32(got, dy, nx, t);
    /* 16-bit: the GPU rounds gate, up, silu, h and each expert's output to t, as HF does */
    const double tol = t == LLMRT_DTYPE_F32 ? 1e-5 : t == LLMRT_DTYPE_F16 ? 4e-3 : 2e-2;
    CHECK_CLOSE(got, want, nx, tol, "moe %s T=%lld H=%lld I=%lld E=%lld k=%lld%s", llmrt_dtype_name(t), (long long)T,
                (long long)H, (long long)I, (long long)E, (long long)k, poison_unused ? " (unused experts NaN)" : "");
    cudaFree(dx), cudaFree(dl), cudaFree(dg), cudaFree(du), cudaFree(dd), cudaFree(dy), cudaFree(ws);
    free(x), free(logits), free(wg), free(wu), free(wd), free(want), free(got), free(scratch);
}

static void test_moe(void) {
    for (int ti = 0; ti < 3; ti++) {
        const llmrt_dtype t = float_types[ti];
        moe_case(t, 1, 256, 192, 8, 2, 1);   /* decode: only the two chosen experts are read */
        moe_case(t, 3, 512, 344, 8, 2, 1);
        moe_case(t, 37, 128, 96, 8, 2, 0);   /* prefill: several row tiles per expert */
        moe_case(t, 300, 64, 48, 4, 2, 0);
        moe_case(t, 11, 64, 40, 4, 1, 0);    /* k = 1 */
        moe_case(t, 9, 64, 40, 4, 4, 0);     /* k = E */
        moe_case(t, 5, 36, 20, 3, 2, 0);     /* sizes off the 16-byte vectors */
        moe_case(t, 2, 64, 48, 1, 1, 0);     /* one expert: a dense MLP */
    }
}

int main(void) {
    int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    RUN_TEST(test_route);
    RUN_TEST(test_moe);
    int major = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
    if (major >= 9) { /* again as a decode step launches them */
        moe_pdl = 1;
        RUN_TEST(test_moe);
        moe_pdl = 0;
    }
    CUDA_CHECK(cudaGetLastError());
    return test_finish();
}
