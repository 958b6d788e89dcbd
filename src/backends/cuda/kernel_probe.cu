// The host side of the diagnostic block timeline (kernel_probe.cuh): one
// buffer of records, bound into every translation unit that probes, then
// written out as CSV. Without -DLLMRT_CUDA_PROBE=ON: cudaErrorNotSupported.
#include <stdio.h>
#include <stdlib.h>

#include "backends/cuda/kernel_probe.cuh"

#ifdef LLMRT_CUDA_PROBE
extern "C" cudaError_t cuda_probe_bind_gemv(void *state);
extern "C" cudaError_t cuda_probe_bind_attention(void *state);
static probe_state *probe_dev; // the device copy of the state
#endif

extern "C" int cuda_probe_compiled(void) {
#ifdef LLMRT_CUDA_PROBE
    return 1;
#else
    return 0;
#endif
}

extern "C" cudaError_t cuda_probe_start(size_t records) {
#ifdef LLMRT_CUDA_PROBE
    probe_state host = {nullptr, (unsigned)records, 0};
    cudaError_t e = cudaMalloc(&host.buf, records * sizeof(probe_record));
    if (e == cudaSuccess) e = cudaMalloc(&probe_dev, sizeof host);
    if (e == cudaSuccess) e = cudaMemcpy(probe_dev, &host, sizeof host, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cuda_probe_bind_gemv(probe_dev);
    if (e == cudaSuccess) e = cuda_probe_bind_attention(probe_dev);
    return e;
#else
    (void)records;
    return cudaErrorNotSupported;
#endif
}

extern "C" cudaError_t cuda_probe_dump(const char *path) {
#ifdef LLMRT_CUDA_PROBE
    probe_state st;
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess && !probe_dev) return cudaErrorInvalidValue;
    if (e == cudaSuccess) e = cudaMemcpy(&st, probe_dev, sizeof st, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) return e;
    const unsigned used = st.cursor > st.cap ? st.cap : st.cursor;
    probe_record *host = (probe_record *)malloc((size_t)used * sizeof *host + 1);
    FILE *f = fopen(path, "w");
    if (host && f && cudaMemcpy(host, st.buf, (size_t)used * sizeof *host, cudaMemcpyDeviceToHost) == cudaSuccess) {
        fprintf(f, "kind,tag,sm,block,blocks,warps,start,ready,mid,end,qdone,loopdone\n");
        for (unsigned i = 0; i < used; i++)
            fprintf(f, "%s,%llx,%u,%u,%u,%u,%llu,%llu,%llu,%llu,%llu,%llu\n",
                    host[i].kind == PROBE_KIND_ATTENTION ? "attn" : "gemv", host[i].tag, host[i].sm, host[i].block,
                    host[i].blocks, host[i].warps, host[i].start, host[i].ready, host[i].mid, host[i].end,
                    host[i].qdone, host[i].loopdone);
    } else {
        e = cudaErrorUnknown;
    }
    if (f) fclose(f);
    free(host);
    void *none = nullptr;
    cuda_probe_bind_gemv(none);
    cuda_probe_bind_attention(none);
    cudaFree(st.buf);
    cudaFree(probe_dev);
    probe_dev = nullptr;
    return e;
#else
    (void)path;
    return cudaErrorNotSupported;
#endif
}
