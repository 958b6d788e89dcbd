// The grouped GEMVs' norm prologue (gemv.cu, gemv_ring.cu): x made in the
// block's shared memory from the residual stream, as the add + RMSNorm
// kernel would make it.
#ifndef LLMRT_BACKENDS_CUDA_GEMV_NORM_CUH
#define LLMRT_BACKENDS_CUDA_GEMV_NORM_CUH

#include "backends/cuda/cuda_device.cuh"

// The NORM prologue: x = RMSNorm(a (+ b)) for the M rows, into the block's
// shared memory, rounded as the add + RMSNorm kernel rounds (the sum to T,
// then T(v · inv · w)); block 0 also stores the sum. A thread normalises the
// chunks it summed, so only the final barrier is needed.
// Every thread of the block calls it (WARPS = blockDim.x / 32); x lands at
// the start of the dynamic shared memory.
template <typename T, int M, int WARPS> struct x_rmsnorm {
    const cuda_gemv_norm &n;
    int64_t K;
    __device__ __forceinline__ const T *operator()(const T *) const {
        extern __shared__ __align__(16) unsigned char gemv_smem[];
        __shared__ float partial[M][WARPS];
        T *xs = reinterpret_cast<T *>(gemv_smem);
        const T *a = (const T *)n.a, *b = (const T *)n.b;
        T *sum = blockIdx.x == 0 ? (T *)n.sum : nullptr;
        const int64_t chunks = K / 8;
        float ss[M];
#pragma unroll
        for (int m = 0; m < M; m++) {
            ss[m] = 0.0f;
            for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
                const int64_t at = m * K + c * 8;
                uint4 ra = *reinterpret_cast<const uint4 *>(a + at), rs = ra;
                if (b) {
                    const uint4 rb = *reinterpret_cast<const uint4 *>(b + at);
                    const T *pa = reinterpret_cast<const T *>(&ra), *pb = reinterpret_cast<const T *>(&rb);
                    T *ps = reinterpret_cast<T *>(&rs);
#pragma unroll
                    for (int i = 0; i < 8; i++) ps[i] = from_float<T>(to_float<T>(pa[i]) + to_float<T>(pb[i]));
                    if (sum) *reinterpret_cast<uint4 *>(sum + at) = rs;
                }
                const T *ps = reinterpret_cast<const T *>(&rs);
#pragma unroll
                for (int i = 0; i < 8; i++) ss[m] += to_float<T>(ps[i]) * to_float<T>(ps[i]);
                *reinterpret_cast<uint4 *>(xs + at) = rs;
            }
        }
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
        for (int m = 0; m < M; m++) {
            const float v = warp_sum(ss[m]);
            if (lane == 0) partial[m][warp] = v;
        }
        __syncthreads();
#pragma unroll
        for (int m = 0; m < M; m++) {
            float t = 0.0f;
#pragma unroll
            for (int w = 0; w < WARPS; w++) t += partial[m][w];
            const float inv = rsqrtf(t / (float)K + n.eps);
            for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
                const int64_t at = m * K + c * 8;
                float v[8];
                load16_float(v, xs + at);
                const float4 w0 = *reinterpret_cast<const float4 *>(n.w + c * 8);
                const float4 w1 = *reinterpret_cast<const float4 *>(n.w + c * 8 + 4);
                const float g[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
                for (int i = 0; i < 8; i++) v[i] = v[i] * inv * g[i];
                store16_float(xs + at, v);
            }
        }
        __syncthreads();
        return xs;
    }
};

#endif
