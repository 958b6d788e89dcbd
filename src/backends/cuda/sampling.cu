// Token selection on the device, so a decode step copies ids, not logits:
// greedy argmax, and temperature / top-k / top-p / min-p sampling with the
// chosen token's log-probability. One block per row. A row holding a NaN or
// an infinity gets log-probability NaN, which fails its request on the host
// (rt_on_sampled) rather than sampling from garbage.
// Top-k and top-p thresholds are found by bisection on the bit patterns of
// the (positive) probabilities, whose integer order is their float order:
// about 30 passes over the row from L2, no sort, no workspace.
#include "backends/cuda/cuda_device.cuh"

enum { SAMPLE_THREADS = 1024 };

// (value, index) max with the lower index winning ties.
__device__ __forceinline__ void argmax_merge(float &v, int &i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i) || (v != v && ov == ov)) {
        v = ov;
        i = oi;
    }
}

__device__ int block_argmax(const float *row, int64_t vocab, float inv_temp) {
    __shared__ float sv[32];
    __shared__ int si[32];
    float v = -INFINITY;
    int idx = 0x7fffffff;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) argmax_merge(v, idx, row[j] * inv_temp, (int)j);
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        argmax_merge(v, idx, ov, oi);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
        sv[warp] = v;
        si[warp] = idx;
    }
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? sv[lane] : -INFINITY;
    idx = lane < (int)(blockDim.x >> 5) ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        argmax_merge(v, idx, ov, oi);
    }
    return idx == 0x7fffffff ? 0 : idx;
}

__global__ void argmax_kernel(int32_t *ids, const float *logits, int64_t vocab) {
    const int idx = block_argmax(logits + (int64_t)blockIdx.x * vocab, vocab, 1.0f);
    if (threadIdx.x == 0) ids[blockIdx.x] = idx;
}

extern "C" cudaError_t cuda_argmax(int32_t *ids, const float *logits, int64_t rows, int64_t vocab,
                                   cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    argmax_kernel<<<(unsigned)rows, SAMPLE_THREADS, 0, stream>>>(ids, logits, vocab);
    return cudaGetLastError();
}

// Count and mass of probabilities ≥ tau (p_j = exp((x_j − m)/T) ≤ 1, unnormalised).
__device__ void count_mass_at_least(const float *row, int64_t vocab, float inv_temp, float m, float tau, float *count,
                                    float *mass, float *scratch) {
    float c = 0.0f, s = 0.0f;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        const float p = __expf(row[j] * inv_temp - m);
        if (p >= tau) {
            c += 1.0f;
            s += p;
        }
    }
    *count = block_sum(c, scratch);
    *mass = block_sum(s, scratch);
}

// Greedy in one pass: the largest logit (lowest index on ties, NaNs
// skipped) and Σ exp(x − max) kept online, merged across the block.
struct max_sum {
    float m, s;
    int i;
};

__device__ __forceinline__ void max_sum_add(max_sum &a, float x, int j) {
    if (x > a.m) {
        a.s = a.s * __expf(a.m - x) + 1.0f; // a.m = −∞ gives 0 · 0
        a.m = x;
        a.i = j;
    } else if (x == x) {
        a.s += __expf(x - a.m);
        if (x == a.m && j < a.i) a.i = j;
    }
}

__device__ __forceinline__ void max_sum_merge(max_sum &a, const max_sum &b) {
    if (b.m == -INFINITY) return;
    if (a.m == -INFINITY) {
        a = b;
        return;
    }
    const float m = fmaxf(a.m, b.m);
    a.s = a.s * __expf(a.m - m) + b.s * __expf(b.m - m);
    a.i = a.m == b.m ? min(a.i, b.i) : a.m > b.m ? a.i : b.i;
    a.m = m;
}

// *nonfinite: whether any logit of the row is NaN or ±∞ (the same on every thread).
__device__ max_sum block_max_sum(const float *row, int64_t vocab, int *nonfinite) {
    __shared__ max_sum part[32];
    max_sum a = {-INFINITY, 0.0f, 0x7fffffff};
    int bad = 0;
    if (vocab % 4 == 0 && ((uintptr_t)row & 15) == 0) {
        const float4 *r4 = reinterpret_cast<const float4 *>(row);
        for (int64_t q = threadIdx.x; q < vocab / 4; q += blockDim.x) {
            const float4 v = r4[q];
            bad |= !isfinite(v.x) | !isfinite(v.y) | !isfinite(v.z) | !isfinite(v.w);
            max_sum_add(a, v.x, (int)(4 * q));
            max_sum_add(a, v.y, (int)(4 * q + 1));
            max_sum_add(a, v.z, (int)(4 * q + 2));
            max_sum_add(a, v.w, (int)(4 * q + 3));
        }
    } else {
        for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
            bad |= !isfinite(row[j]);
            max_sum_add(a, row[j], (int)j);
        }
    }
    *nonfinite = __syncthreads_or(bad);
    for (int o = 16; o > 0; o >>= 1) {
        const max_sum b = {__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o),
                           __shfl_xor_sync(0xffffffffu, a.i, o)};
        max_sum_merge(a, b);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = a;
    __syncthreads();
    a = lane < (int)(blockDim.x >> 5) ? part[lane] : max_sum{-INFINITY, 0.0f, 0x7fffffff};
    for (int o = 16; o > 0; o >>= 1) {
        const max_sum b = {__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o),
                           __shfl_xor_sync(0xffffffffu, a.i, o)};
        max_sum_merge(a, b);
    }
    if (a.i == 0x7fffffff) a.i = 0;
    return a;
}

// log Σ exp(row): the normaliser of the raw distribution, given its max.
__device__ float block_logsumexp(const float *row, int64_t vocab, float max_logit, float *scratch) {
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) s += __expf(row[j] - max_logit);
    return max_logit + __logf(block_sum(s, scratch));
}

__global__ void sample_kernel(int32_t *ids, float *logprobs, const float *logits, int64_t vocab,
                              const cuda_sample_row *params) {
    __shared__ float scratch[32];
    __shared__ float warp_tot[32];
    __shared__ int chosen;
    const int r = blockIdx.x;
    const cuda_sample_row prm = params[r];
    if (prm.skip) return;
    const float *row = logits + (int64_t)r * vocab;
    if (!(prm.temperature > 0.0f) || prm.top_k == 1) {
        int nonfinite;
        const max_sum best = block_max_sum(row, vocab, &nonfinite);
        if (threadIdx.x == 0) {
            ids[r] = nonfinite ? 0 : best.i;
            if (logprobs) logprobs[r] = nonfinite ? NAN : -__logf(best.s); // x_best − (x_best + log Σ e^{x − x_best})
        }
        return;
    }
    const float inv_temp = 1.0f / prm.temperature;
    float raw_max = -INFINITY;
    int bad = 0;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
        bad |= !isfinite(row[j]);
        raw_max = fmaxf(raw_max, row[j]);
    }
    if (__syncthreads_or(bad)) { // block-uniform: every thread leaves here
        if (threadIdx.x == 0) {
            ids[r] = 0;
            if (logprobs) logprobs[r] = NAN;
        }
        return;
    }
    raw_max = block_max(raw_max, scratch);
    const float m = raw_max * inv_temp; // the largest scaled logit: its probability is 1 unnormalised

    // Top-k: the largest tau with count(p ≥ tau) ≥ k.
    float tau = 0.0f, cnt, mass;
    const int k = prm.top_k;
    if (k > 0 && k < vocab) {
        uint32_t lo = 0, hi = __float_as_uint(1.0f) + 1;
        while (hi - lo > 1) {
            const uint32_t mid = lo + (hi - lo) / 2;
            count_mass_at_least(row, vocab, inv_temp, m, __uint_as_float(mid), &cnt, &mass, scratch);
            if (cnt >= (float)k) lo = mid;
            else hi = mid;
        }
        tau = __uint_as_float(lo);
    }
    count_mass_at_least(row, vocab, inv_temp, m, tau, &cnt, &mass, scratch);
    // Top-p on the renormalised top-k set: the largest tau' ≥ tau whose kept mass still reaches p·mass.
    const float p = prm.top_p;
    if (p < 1.0f) {
        const float target = p * mass;
        uint32_t lo = __float_as_uint(tau), hi = __float_as_uint(1.0f) + 1;
        while (hi - lo > 1) {
            const uint32_t mid = lo + (hi - lo) / 2;
            float c2, s2;
            count_mass_at_least(row, vocab, inv_temp, m, __uint_as_float(mid), &c2, &s2, scratch);
            if (s2 >= target) lo = mid;
            else hi = mid;
        }
        tau = __uint_as_float(lo);
    }
    // Min-p: probabilities relative to the top one, which is 1 here.
    if (prm.min_p > 0.0f) tau = fmaxf(tau, prm.min_p);
    count_mass_at_least(row, vocab, inv_temp, m, tau, &cnt, &mass, scratch);

    // Inverse CDF in vocabulary order: each thread owns a contiguous chunk;
    // a block scan of chunk masses finds the chunk holding u·mass.
    const float target = prm.uniform * mass;
    const int64_t chunk = (vocab + blockDim.x - 1) / blockDim.x;
    const int64_t begin = threadIdx.x * chunk, end = min(begin + chunk, vocab);
    float local = 0.0f;
    int last_kept = -1;
    for (int64_t j = begin; j < end; j++) {
        const float pj = __expf(row[j] * inv_temp - m);
        if (pj >= tau) {
            local += pj;
            last_kept = (int)j;
        }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float incl = local;
    for (int o = 1; o < 32; o <<= 1) {
        const float up = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += up;
    }
    if (threadIdx.x == 0) chosen = -1;
    if (lane == 31) warp_tot[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (int)(blockDim.x >> 5) ? warp_tot[lane] : 0.0f;
        for (int o = 1; o < 32; o <<= 1) {
            const float up = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += up;
        }
        warp_tot[lane] = w; // inclusive over warps
    }
    __syncthreads();
    const float excl = incl - local + (warp > 0 ? warp_tot[warp - 1] : 0.0f);
    if (local > 0.0f && excl <= target && target < excl + local) {
        float acc = excl;
        int pick = last_kept;
        for (int64_t j = begin; j < end; j++) {
            const float pj = __expf(row[j] * inv_temp - m);
            if (pj >= tau) {
                acc += pj;
                if (target < acc) {
                    pick = (int)j;
                    break;
                }
            }
        }
        chosen = pick;
    }
    // Rounding can leave u·mass past the last chunk: take the last kept token.
    int fallback = (int)block_max((float)last_kept, scratch); // exact for ids < 2^24
    __syncthreads();
    const int id = chosen >= 0 ? chosen : fallback;
    const float lse = logprobs ? block_logsumexp(row, vocab, raw_max, scratch) : 0.0f;
    if (threadIdx.x == 0) {
        ids[r] = id;
        if (logprobs) logprobs[r] = row[id] - lse;
    }
}

extern "C" cudaError_t cuda_sample(int32_t *ids, float *logprobs, const float *logits, int64_t rows, int64_t vocab,
                                   const cuda_sample_row *params, cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    if (vocab >= (1 << 24)) return cudaErrorInvalidValue;
    sample_kernel<<<(unsigned)rows, SAMPLE_THREADS, 0, stream>>>(ids, logprobs, logits, vocab, params);
    return cudaGetLastError();
}
