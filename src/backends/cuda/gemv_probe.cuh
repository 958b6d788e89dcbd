// The decode GEMVs' block timeline, for a diagnostic build only
// (-DLLMRT_CUDA_PROBE=ON): each block records when it started, when its x
// was ready (after the PDL wait and the norm prologue) and when its last
// warp finished, with its SM and the launch's weight pointer as a tag.
// CUPTI sees kernels; this sees the SMs inside them (which finish early,
// how long the start waits), the figures a kernel boundary is made of.
// Without the option every PROBE_ macro is empty: no cost, no registers.
// Host side: cuda_probe_start / cuda_probe_dump (gemv.cu), the backend's
// LLMRT_CUDA_PROBE_OUT, bench/cuda/probe_summary.py.
#ifndef LLMRT_CUDA_GEMV_PROBE_CUH
#define LLMRT_CUDA_GEMV_PROBE_CUH

#include "backends/cuda/cuda_device.cuh"

struct probe_record {
    unsigned long long tag, start, ready, end; // ns (%globaltimer)
    unsigned sm, block, blocks, warps;
};

#ifdef LLMRT_CUDA_PROBE
static __device__ probe_record *probe_buf;
static __device__ unsigned probe_cap, probe_cursor;

struct probe_block {
    unsigned long long start, ready, end;
    unsigned done;
};

__device__ __forceinline__ unsigned long long probe_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__device__ __forceinline__ unsigned probe_smid() {
    unsigned s;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
    return s;
}

// Every warp of the block calls it once, last; the last one writes the record.
__device__ __forceinline__ void probe_warp_done(probe_block &pb, const void *tag) {
    if ((threadIdx.x & 31) != 0) return;
    atomicMax(&pb.end, probe_now());
    __threadfence_block();
    if (atomicAdd(&pb.done, 1u) != blockDim.x / 32 - 1 || !probe_buf) return;
    const unsigned slot = atomicAdd(&probe_cursor, 1u);
    if (slot >= probe_cap) return;
    probe_record r;
    r.tag = (unsigned long long)(uintptr_t)tag;
    r.start = pb.start;
    r.ready = pb.ready;
    r.end = atomicMax(&pb.end, 0ull);
    r.sm = probe_smid();
    r.block = blockIdx.x;
    r.blocks = gridDim.x;
    r.warps = blockDim.x / 32;
    probe_buf[slot] = r;
}

// The block's timeline, one per block of each probed kernel.
__device__ __forceinline__ probe_block &probe_shared() {
    __shared__ probe_block pb;
    return pb;
}

#define PROBE_BEGIN()                                   \
    do {                                                \
        if (threadIdx.x == 0) {                         \
            probe_shared().start = probe_now();         \
            probe_shared().ready = probe_shared().end = 0; \
            probe_shared().done = 0;                    \
        }                                               \
        __syncthreads();                                \
    } while (0)
#define PROBE_READY()                                                \
    do {                                                             \
        if (threadIdx.x == 0) probe_shared().ready = probe_now();    \
    } while (0)
#define PROBE_WARP_DONE(tag) probe_warp_done(probe_shared(), (tag))
#else
#define PROBE_BEGIN() ((void)0)
#define PROBE_READY() ((void)0)
#define PROBE_WARP_DONE(tag) ((void)0)
#endif

#endif
