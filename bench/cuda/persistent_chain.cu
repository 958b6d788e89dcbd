// What a GEMV -> GEMV boundary costs, and whether a persistent kernel would
// save it: a chain of L dependent decode GEMVs (y_l = W_l · y_{l-1}, 4096 ×
// 4096 bf16, batch 1, each W 32 MB and a copy of its own so that L2 holds
// none), timed four ways against one GEMV of the same L·4096 rows (no
// boundary at all) and against the copy rate:
//   pdl, 2/SM  one launch a GEMV with programmatic dependent launch, two
//              blocks an SM fit: the next GEMV's blocks sit beside the
//              running ones and have their first weights in flight;
//   pdl, 1/SM  the same with one block an SM (as the resident GEMVs of the
//              decode step, whose registers fill the SM): the next blocks
//              are placed only when the running ones exit;
//   persistent one cooperative launch for the chain, a grid barrier
//              between GEMVs, each warp issuing its first weights of the
//              next GEMV before the barrier (prefetch) or after it.
// The GEMV is the decode step's: a warp streams rows a grid apart, 16-byte
// chunks, 4 a lane a batch, the next batch in flight.
//
// usage: bench_persistent_chain [L]
#include <algorithm>
#include <vector>

#include "backends/cuda/cuda_device.cuh"
#include "bench_check.h"

enum { N = 4096, K = 4096, WARPS = 16, U = 4, CHUNKS = K / 8, STEP = 32 * U };
typedef __nv_bfloat16 bf16;

__device__ __forceinline__ void load_batch(uint4 (&v)[U], const uint4 *row, int c0) {
#pragma unroll
    for (int u = 0; u < U; u++) v[u] = __ldcs(row + c0 + u * 32);
}

__device__ __forceinline__ float dot_batch(const uint4 (&v)[U], const bf16 *x, int c0) {
    float s = 0.0f;
#pragma unroll
    for (int u = 0; u < U; u++) {
        const uint4 xr = __ldcg(reinterpret_cast<const uint4 *>(x) + c0 + u * 32);
        const bf16 *w = reinterpret_cast<const bf16 *>(&v[u]), *xe = reinterpret_cast<const bf16 *>(&xr);
#pragma unroll
        for (int j = 0; j < 8; j++) s = fmaf(__bfloat162float(w[j]), __bfloat162float(xe[j]), s);
    }
    return s;
}

// The warp's rows of one GEMV of `rows` rows, its first batch already in
// `first` (loaded by the caller: before a wait or a barrier).
__device__ __forceinline__ void gemv_warp(const bf16 *W, const bf16 *x, bf16 *y, int rows, uint4 (&first)[U]) {
    const int lane = threadIdx.x & 31, G = gridDim.x * WARPS;
    uint4 cur[U], next[U];
#pragma unroll
    for (int u = 0; u < U; u++) cur[u] = first[u];
    for (int row = (threadIdx.x >> 5) * gridDim.x + blockIdx.x; row < rows; row += G) {
        const uint4 *wr = reinterpret_cast<const uint4 *>(W + (size_t)row * K);
        float acc = 0.0f;
        for (int c0 = lane; c0 < CHUNKS; c0 += STEP) {
            const bool last = c0 + STEP >= CHUNKS;
            if (!last) load_batch(next, wr, c0 + STEP);
            else if (row + G < rows) load_batch(next, wr + (size_t)G * K / 8, lane);
            acc += dot_batch(cur, x, c0);
#pragma unroll
            for (int u = 0; u < U; u++) cur[u] = next[u];
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) y[row] = __float2bfloat16(acc);
    }
}

__device__ __forceinline__ void first_batch(const bf16 *W, int rows, uint4 (&v)[U]) {
    const int row = (threadIdx.x >> 5) * gridDim.x + blockIdx.x;
    if (row < rows) load_batch(v, reinterpret_cast<const uint4 *>(W + (size_t)row * K), threadIdx.x & 31);
}

__global__ void __launch_bounds__(WARPS * 32) gemv_pdl(const bf16 *W, const bf16 *x, bf16 *y, int rows) {
    pdl_trigger();
    uint4 v[U];
    first_batch(W, rows, v);
    pdl_wait();
    gemv_warp(W, x, y, rows, v);
}

// Every block adds itself, then waits for `target` (barriers counted on
// from zero: no reset between them).
__device__ __forceinline__ void grid_barrier(int32_t *bar, int32_t target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        red_release_add(bar, 1);
        while (ld_acquire(bar) < target) {
        }
    }
    __syncthreads();
}

// xs[l] is GEMV l's input, xs[l + 1] its output.
__global__ void __launch_bounds__(WARPS * 32) gemv_persistent(const bf16 *const *W, bf16 *const *xs, int L,
                                                              int32_t *bar, int prefetch) {
    uint4 v[U];
    first_batch(W[0], N, v);
    for (int l = 0; l < L; l++) {
        if (l > 0 && !prefetch) first_batch(W[l], N, v);
        gemv_warp(W[l], xs[l], xs[l + 1], N, v);
        if (l + 1 < L) {
            if (prefetch) first_batch(W[l + 1], N, v);
            grid_barrier(bar, (int32_t)((l + 1) * gridDim.x));
        }
    }
}

static float median(std::vector<float> t) {
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

int main(int argc, char **argv) {
    const int L = argc > 1 ? atoi(argv[1]) : 32;
    if (L < 2 || L > 256) {
        fprintf(stderr, "usage: bench_persistent_chain [L in 2..256]\n");
        return 2;
    }
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("no CUDA device: benchmark skipped\n");
        return 77;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const int sms = prop.multiProcessorCount;
    const size_t wbytes = (size_t)N * K * sizeof(bf16);
    bf16 *wall, *xall;
    CK(cudaMalloc(&wall, wbytes * L));
    CK(cudaMalloc(&xall, (size_t)(L + 1) * K * sizeof(bf16) + (size_t)L * N * sizeof(bf16)));
    {
        std::vector<bf16> h(N * (size_t)K);
        for (size_t i = 0; i < h.size(); i++) h[i] = __float2bfloat16(((int)(i * 2654435761u % 2001) - 1000) * 1e-5f);
        for (int l = 0; l < L; l++) CK(cudaMemcpy(wall + (size_t)l * N * K, h.data(), wbytes, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(xall, h.data(), (size_t)K * sizeof(bf16), cudaMemcpyHostToDevice));
    }
    std::vector<const bf16 *> hw(L);
    std::vector<bf16 *> hx(L + 1);
    for (int l = 0; l < L; l++) hw[l] = wall + (size_t)l * N * K;
    for (int l = 0; l <= L; l++) hx[l] = xall + (size_t)l * K;
    bf16 *ybig = xall + (size_t)(L + 1) * K;
    const bf16 **dw;
    bf16 **dx;
    int32_t *bar;
    CK(cudaMalloc(&dw, L * sizeof *dw));
    CK(cudaMalloc(&dx, (L + 1) * sizeof *dx));
    CK(cudaMalloc(&bar, sizeof *bar));
    CK(cudaMemcpy(dw, hw.data(), L * sizeof *dw, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, hx.data(), (L + 1) * sizeof *dx, cudaMemcpyHostToDevice));
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    // the copy rate (read + write), as the decode floor counts it
    float copy_ms;
    {
        std::vector<float> t;
        for (int r = 0; r < 12; r++) {
            CK(cudaEventRecord(a, s));
            CK(cudaMemcpyAsync(wall + wbytes / 2 * L / sizeof(bf16), wall, wbytes * L / 2, cudaMemcpyDeviceToDevice, s));
            CK(cudaEventRecord(b, s));
            CK(cudaEventSynchronize(b));
            float ms;
            CK(cudaEventElapsedTime(&ms, a, b));
            t.push_back(ms);
        }
        copy_ms = median(t);
        // the copy overwrote the second half of the weights with the first: same values, fine
    }
    const double bw = 2.0 * (wbytes * L / 2) / (copy_ms * 1e-3);
    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_persistent, WARPS * 32, 0));
    printf("device: %s, %d SMs; copy %.0f GB/s; GEMV %dx%d bf16 (%.1f MB), chain of %d; persistent fits %d/SM\n",
           prop.name, sms, bw / 1e9, N, K, wbytes / 1e6, L, per_sm);
    // one block an SM for every variant (the same rows a warp); "1/SM" pads
    // the PDL kernel's shared memory so that a second block cannot fit
    const size_t pad = (size_t)prop.sharedMemPerMultiprocessor / 2 + 1024;
    CK(cudaFuncSetAttribute(gemv_pdl, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)pad));
    auto launch = [&](const bf16 *W, const bf16 *x, bf16 *y, int rows, size_t smem) {
        launch_pdl_smem(gemv_pdl, dim3(sms), dim3(WARPS * 32), smem, 1, s, W, x, y, rows);
        CK(cudaGetLastError());
    };
    const char *names[5] = {"one GEMV of L x 4096 rows", "pdl, 2 blocks/SM fit", "pdl, 1 block/SM",
                            "persistent, prefetch", "persistent, no prefetch"};
    float per_gemv[5];
    std::vector<unsigned short> ref(K), got(K); // the first output of the PDL chain, of the persistent one
    for (int v = 0; v < 5; v++) {
        std::vector<float> t;
        for (int r = 0; r < 15; r++) {
            CK(cudaMemsetAsync(bar, 0, sizeof *bar, s));
            CK(cudaEventRecord(a, s));
            if (v == 0) {
                launch(wall, hx[0], ybig, N * L, 0);
            } else if (v <= 2) {
                for (int l = 0; l < L; l++) launch(hw[l], hx[l], hx[l + 1], N, v == 2 ? pad : 0);
            } else {
                int prefetch = v == 3, LL = L;
                void *args[] = {&dw, &dx, &LL, &bar, &prefetch};
                CK(cudaLaunchCooperativeKernel((void *)gemv_persistent, dim3(sms), dim3(WARPS * 32), args, 0, s));
            }
            CK(cudaEventRecord(b, s));
            CK(cudaEventSynchronize(b));
            float ms;
            CK(cudaEventElapsedTime(&ms, a, b));
            if (r >= 3) t.push_back(ms);
        }
        per_gemv[v] = median(t) * 1e3f / L;
        if (v == 1 || v == 3) { // the chains agree bit for bit (the same sums in the same order)
            CK(cudaMemcpy((v == 1 ? ref : got).data(), hx[1], K * sizeof(bf16), cudaMemcpyDeviceToHost));
            if (v == 3 && got != ref) {
                fprintf(stderr, "persistent chain's first output differs from the PDL chain's\n");
                return 1;
            }
        }
    }
    const double floor_us = wbytes / bw * 1e6;
    printf("%-28s %12s %8s %16s\n", "variant", "us/GEMV", "GB/s", "over the floor");
    for (int v = 0; v < 5; v++)
        printf("%-28s %12.2f %8.0f %13.2f us\n", names[v], per_gemv[v], wbytes / (per_gemv[v] * 1e-6) / 1e9,
               per_gemv[v] - floor_us);
    printf("floor (32 MB at the copy rate): %.2f us\n", floor_us);
    return 0;
}
