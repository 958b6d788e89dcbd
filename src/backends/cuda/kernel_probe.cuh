// The decode kernels' block timeline, for a diagnostic build only
// (-DLLMRT_CUDA_PROBE=ON). Each block of the decode GEMVs records when it
// started, when its x was ready (after the PDL wait and the norm prologue)
// and when its last warp finished; each live block of the decode attention
// when it started, when its wait ended, when its partials were counted
// (mid) and when it finished (the merge, for the partition that merges).
// A record carries the SM and a tag (the launch's weight or K-cache
// pointer). CUPTI sees kernels; this sees the SMs inside them (which
// finish early, how long the start waits), the figures a kernel boundary
// is made of. Without the option every PROBE_ macro is empty: no cost, no
// registers.
//
// Device symbols are per translation unit (no relocatable device code), so
// every .cu that probes says PROBE_BIND(name): a host function that points
// that unit's probe_st at the one buffer (kernel_probe.cu). Host side:
// cuda_probe_start / cuda_probe_dump, the backend's LLMRT_CUDA_PROBE_OUT,
// bench/cuda/probe_summary.py.
#ifndef LLMRT_CUDA_KERNEL_PROBE_CUH
#define LLMRT_CUDA_KERNEL_PROBE_CUH

#include "backends/cuda/cuda_device.cuh"

enum { PROBE_KIND_GEMV = 0, PROBE_KIND_ATTENTION = 1 };

struct probe_record {
    unsigned long long tag, start, ready, mid, end; // ns (%globaltimer); mid 0 where none
    unsigned long long qdone, loopdone;             // the attention's: q made, rows attended (0: GEMVs)
    unsigned sm, block, blocks, warps, kind;
};

struct probe_state {
    probe_record *buf;
    unsigned cap, cursor;
};

#ifdef LLMRT_CUDA_PROBE
static __device__ probe_state *probe_st;

#define PROBE_BIND(name)                                                       \
    extern "C" cudaError_t name(void *state) {                                 \
        return cudaMemcpyToSymbol(probe_st, &state, sizeof state);             \
    }

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

__device__ __forceinline__ void probe_write(const probe_record &r) {
    probe_state *ps = probe_st;
    if (!ps) return;
    const unsigned slot = atomicAdd(&ps->cursor, 1u);
    if (slot < ps->cap) ps->buf[slot] = r;
}

// Every warp of the block calls it once, last; the last one writes the record.
__device__ __forceinline__ void probe_warp_done(probe_block &pb, const void *tag) {
    if ((threadIdx.x & 31) != 0) return;
    atomicMax(&pb.end, probe_now());
    __threadfence_block();
    if (atomicAdd(&pb.done, 1u) != blockDim.x / 32 - 1) return;
    probe_record r;
    r.tag = (unsigned long long)(uintptr_t)tag;
    r.start = pb.start;
    r.ready = pb.ready;
    r.mid = r.qdone = r.loopdone = 0;
    r.end = atomicMax(&pb.end, 0ull);
    r.sm = probe_smid();
    r.block = blockIdx.x;
    r.blocks = gridDim.x;
    r.warps = blockDim.x / 32;
    r.kind = PROBE_KIND_GEMV;
    probe_write(r);
}

// The block's timeline, one per block of each probed GEMV.
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

// The attention's: thread 0 keeps the times in shared memory (registers
// would change what fits beside the q/k/v GEMV) and writes the record
// itself (blocks leave at several points).
enum { PROBE_T0, PROBE_T1, PROBE_T2, PROBE_T3, PROBE_T4, PROBE_MARKS };
__device__ __forceinline__ unsigned long long *probe_marks() {
    __shared__ unsigned long long marks[PROBE_MARKS];
    return marks;
}
#define PROBE_ATTN_DECL                                                                          \
    do {                                                                                         \
        if (threadIdx.x == 0) {                                                                  \
            probe_marks()[PROBE_T0] = probe_now();                                               \
            for (int i_ = 1; i_ < PROBE_MARKS; i_++) probe_marks()[i_] = 0;                      \
        }                                                                                        \
    } while (0)
#define PROBE_ATTN_MARK(var)                                                                     \
    do {                                                                                         \
        if (threadIdx.x == 0) probe_marks()[var] = probe_now();                                  \
    } while (0)
#define PROBE_ATTN_RECORD(tag_)                                                                  \
    do {                                                                                         \
        if (threadIdx.x == 0) {                                                                  \
            const unsigned long long *m_ = probe_marks();                                        \
            probe_record r;                                                                      \
            r.tag = (unsigned long long)(uintptr_t)(tag_);                                       \
            r.start = m_[PROBE_T0];                                                              \
            r.ready = m_[PROBE_T1];                                                              \
            r.mid = m_[PROBE_T2];                                                                \
            r.qdone = m_[PROBE_T3];                                                              \
            r.loopdone = m_[PROBE_T4];                                                           \
            r.end = probe_now();                                                                 \
            r.sm = probe_smid();                                                                 \
            r.block = blockIdx.y * gridDim.x + blockIdx.x;                                       \
            r.blocks = gridDim.x * gridDim.y;                                                    \
            r.warps = blockDim.x / 32;                                                           \
            r.kind = PROBE_KIND_ATTENTION;                                                       \
            probe_write(r);                                                                      \
        }                                                                                        \
    } while (0)
#else
#define PROBE_BIND(name)
#define PROBE_BEGIN() ((void)0)
#define PROBE_READY() ((void)0)
#define PROBE_WARP_DONE(tag) ((void)0)
#define PROBE_ATTN_DECL ((void)0)
#define PROBE_ATTN_MARK(var) ((void)0)
#define PROBE_ATTN_RECORD(tag) ((void)0)
#endif

#endif
