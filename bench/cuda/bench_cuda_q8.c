/* Microbenchmark of the 8-bit (fp8, w8a8) LINEARs against bf16, on the
 * LLaMA-2-7B shapes 4096×4096 and 11008×4096 (N × K):
 *   - decode, M = 1: the whole LINEAR (activation quantization + GEMV) for
 *     fp8 and int8 weights, and our bf16 GEMV, each rotating over enough
 *     weight copies to defeat L2; GB/s of weight bytes, the time against
 *     the floor weight bytes / measured copy bandwidth, and the speedup
 *     over bf16 (the 8-bit weights are half the bytes: ideally 2×); with
 *     and without programmatic dependent launch (the backend's default on
 *     Hopper, which overlaps the GEMV's first weight loads with the
 *     quantization kernel);
 *   - prefill, M = 2048: the whole LINEAR through cuBLASLt (fp8 with the
 *     scales in its epilogue where the GPU has the outer-vector mode, fp8
 *     unscaled + our epilogue kernel, int8 IMMA + epilogue) against the
 *     bf16 cuBLASLt GEMM; TFLOP/s and the speedup over bf16.
 * x and y are bf16 throughout. Prints one table.
 *
 * usage: bench_cuda_q8 */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_gemm.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_q8.h"
#include "bench_check.h"
#include "core/dtype.h"
#include "core/quant8.h"

#define OK(call)                                                                                \
    do {                                                                                        \
        if ((call) != LLMRT_OK) {                                                               \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, llmrt_last_error()); \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

enum { PREFILL_M = 2048, REPS = 15 };
static const llmrt_dtype BF16 = LLMRT_DTYPE_BF16;
static cudaStream_t stream;
static cuda_gemm *gemm;
static cuda_q8linear *q8;

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void *dmalloc(size_t bytes) {
    void *p = NULL;
    CK(cudaMalloc(&p, bytes));
    return p;
}

static float *host_random(size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = ((float)(s >> 40) / 16777216.0f - 0.5f) * scale;
    }
    return x;
}

/* A device bf16 copy of n random values. */
static void *dev_bf16(size_t n, float scale) {
    float *h = host_random(n, scale);
    uint16_t *b = malloc(n * 2);
    for (size_t i = 0; i < n; i++) b[i] = llmrt_f32_to_bf16(h[i]);
    void *d = dmalloc(n * 2);
    CK(cudaMemcpy(d, b, n * 2, cudaMemcpyHostToDevice));
    free(h), free(b);
    return d;
}

/* `copies` device copies (each 256-byte aligned, `stride` bytes apart) of
 * a per-channel blob of random weights; *h its header. */
static void *dev_blobs(llmrt_dtype dtype, int64_t N, int64_t K, int copies, size_t *stride, llmrt_q8weight_header *h) {
    OK(llmrt_q8weight_layout(dtype, N, K, h));
    void *blob = malloc((size_t)h->total_bytes);
    llmrt_q8weight_init(blob, h);
    float *w = host_random((size_t)(N * K), 0.04f);
    llmrt_q8_quantize_matrix(blob, w, 0);
    memcpy(h, blob, sizeof *h);
    *stride = ((size_t)h->total_bytes + 255) & ~(size_t)255;
    unsigned char *d = dmalloc(*stride * copies);
    for (int c = 0; c < copies; c++)
        CK(cudaMemcpy(d + c * *stride, blob, (size_t)h->total_bytes, cudaMemcpyHostToDevice));
    free(w), free(blob);
    return d;
}

/* Median ms of one call, each timed run making `calls` calls (over
 * rotating weight copies) after 3 warm-up runs. */
typedef struct bench_call {
    int kind; /* 0: bf16 (GEMV at M = 1, cuBLASLt above), 1: q8 LINEAR */
    void *y, *x;
    const unsigned char *w;
    size_t stride;
    int copies;
    llmrt_q8weight_header h;
    int64_t M, N, K;
    cuda_q8_path want, used;
    int pdl; /* the q8 LINEAR's two kernels with programmatic dependent launch (as the backend on Hopper) */
} bench_call;

static void run_once(bench_call *b, int c) {
    const void *w = b->w + (size_t)c * b->stride;
    if (b->kind == 0 && b->M == 1) CK(cuda_gemv_out(b->y, BF16, b->x, w, BF16, NULL, 1, b->N, b->K, 0, stream));
    else if (b->kind == 0) OK(cuda_gemm_run(gemm, b->y, b->x, w, BF16, 1, NULL, b->M, b->N, b->K, stream));
    else OK(cuda_q8linear_forward(q8, b->y, BF16, b->x, BF16, b->M, w, &b->h, NULL, b->pdl, stream, b->want, &b->used));
}

static float time_call(bench_call *b) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float t[REPS + 3];
    for (int r = 0; r < REPS + 3; r++) {
        CK(cudaEventRecord(e0, stream));
        for (int c = 0; c < b->copies; c++) run_once(b, c);
        CK(cudaEventRecord(e1, stream));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[r], e0, e1));
    }
    qsort(t + 3, REPS, sizeof(float), cmp_float);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return t[3 + REPS / 2] / b->copies;
}

static const char *path_name(cuda_q8_path p) {
    static const char *names[] = {"auto", "gemv", "cublaslt-scaled", "cublaslt+epilogue", "tiled"};
    return (unsigned)p < 5 ? names[p] : "?";
}

int main(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("no CUDA device: benchmark skipped\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    OK(cuda_gemm_create(&gemm, 32 << 20, 0));
    OK(cuda_q8linear_create(&q8, gemm, PREFILL_M, 11008, 11008, 0));
    printf("device: %s (sm_%d%d), %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);

    /* the bandwidth ceiling: device-to-device copy, bytes read + written */
    const size_t copy_bytes = (size_t)1 << 30;
    void *src = dmalloc(copy_bytes), *dst = dmalloc(copy_bytes);
    CK(cudaMemset(src, 1, copy_bytes));
    float tc[REPS];
    for (int r = 0; r < REPS; r++) {
        cudaEvent_t e0, e1;
        CK(cudaEventCreate(&e0));
        CK(cudaEventCreate(&e1));
        CK(cudaEventRecord(e0, stream));
        CK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, stream));
        CK(cudaEventRecord(e1, stream));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&tc[r], e0, e1));
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }
    qsort(tc, REPS, sizeof(float), cmp_float);
    const double bw = 2.0 * copy_bytes / (tc[REPS / 2] * 1e-3);
    cudaFree(src), cudaFree(dst);
    printf("copy D2D: %.0f GB/s (read+write)\n\n", bw / 1e9);

    const int64_t shapes[2][2] = {{4096, 4096}, {11008, 4096}};
    void *x = dev_bf16((size_t)PREFILL_M * 11008, 2.0f), *y = dmalloc((size_t)PREFILL_M * 11008 * 2);
    printf("%-28s %9s %9s %9s %9s   %s\n", "decode M=1 (x, y bf16)", "us", "GB/s", "/floor", "vs bf16", "path");
    for (int s = 0; s < 2; s++) {
        const int64_t N = shapes[s][0], K = shapes[s][1];
        const size_t wbytes16 = (size_t)(N * K) * 2;
        const int copies = (int)((768u << 20) / wbytes16) + 2; /* > L2 over the 16-bit copies */
        bench_call b16 = {.kind = 0, .y = y, .x = x, .stride = wbytes16, .copies = copies, .M = 1, .N = N, .K = K};
        b16.w = dev_bf16(wbytes16 / 2 * copies, 0.04f);
        const float t16 = time_call(&b16);
        printf("%-28s %9.2f %9.0f %9.2f %9s   %s\n", s ? "bf16 GEMV 11008x4096" : "bf16 GEMV 4096x4096", t16 * 1e3,
               wbytes16 / (t16 * 1e-3) / 1e9, t16 * 1e-3 / (wbytes16 / bw), "1.00", "cuda_gemv");
        cudaFree((void *)b16.w);
        for (int d = 0; d < 2; d++) {
            const llmrt_dtype dtype = d ? LLMRT_DTYPE_INT8_W8A8 : LLMRT_DTYPE_FP8_W8A8;
            bench_call b = {.kind = 1, .y = y, .x = x, .copies = 2 * copies, .M = 1, .N = N, .K = K};
            b.w = dev_blobs(dtype, N, K, b.copies, &b.stride, &b.h);
            /* x quantized inside the GEMV (one launch), without and with
             * PDL, then the two-launch form for comparison */
            for (int v = 0; v < 3; v++) {
                b.pdl = v > 0;
                b.want = v == 2 ? CUDA_Q8_PATH_GEMV_SPLIT : CUDA_Q8_PATH_AUTO;
                if (b.pdl && prop.major < 9) continue; /* PDL exists from Hopper on */
                const float t = time_call(&b);
                const double bytes = (double)b.h.total_bytes;
                char name[64];
                snprintf(name, sizeof name, "%s %lldx%lld%s%s", d ? "int8" : "fp8", (long long)N, (long long)K,
                         b.pdl ? " pdl" : "", v == 2 ? " split" : "");
                printf("%-28s %9.2f %9.0f %9.2f %9.2f   %s\n", name, t * 1e3, bytes / (t * 1e-3) / 1e9,
                       t * 1e-3 / (bytes / bw), t16 / t, path_name(b.used));
            }
            cudaFree((void *)b.w);
        }
    }

    printf("\n%-28s %9s %9s %9s   %s\n", "prefill M=2048 (x, y bf16)", "us", "TFLOP/s", "vs bf16", "path");
    for (int s = 0; s < 2; s++) {
        const int64_t N = shapes[s][0], K = shapes[s][1];
        const double flop = 2.0 * PREFILL_M * (double)N * (double)K;
        bench_call b16 = {.kind = 0, .y = y, .x = x, .stride = 0, .copies = 1, .M = PREFILL_M, .N = N, .K = K};
        b16.w = dev_bf16((size_t)(N * K), 0.04f);
        const float t16 = time_call(&b16);
        printf("%-28s %9.1f %9.0f %9s   %s\n", s ? "bf16 GEMM 11008x4096" : "bf16 GEMM 4096x4096", t16 * 1e3,
               flop / (t16 * 1e-3) / 1e12, "1.00", "cublaslt bf16");
        cudaFree((void *)b16.w);
        for (int v = 0; v < 3; v++) {
            const llmrt_dtype dtype = v == 2 ? LLMRT_DTYPE_INT8_W8A8 : LLMRT_DTYPE_FP8_W8A8;
            bench_call b = {.kind = 1, .y = y, .x = x, .copies = 1, .M = PREFILL_M, .N = N, .K = K,
                            .want = v == 1 ? CUDA_Q8_PATH_LT_EPILOGUE : CUDA_Q8_PATH_AUTO};
            b.w = dev_blobs(dtype, N, K, 1, &b.stride, &b.h);
            const float t = time_call(&b);
            char name[64];
            snprintf(name, sizeof name, "%s %lldx%lld", v == 2 ? "int8" : "fp8", (long long)N, (long long)K);
            printf("%-28s %9.1f %9.0f %9.2f   %s (incl. activation quantization)\n", name, t * 1e3,
                   flop / (t * 1e-3) / 1e12, t16 / t, path_name(b.used));
            cudaFree((void *)b.w);
        }
    }
    printf("\n(/floor: time over weight bytes / copy bandwidth; vs bf16: bf16 time / this time)\n");
    cudaFree(x), cudaFree(y);
    cuda_q8linear_destroy(q8);
    cuda_gemm_free(gemm);
    return 0;
}
