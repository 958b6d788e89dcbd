// A kernel timeline without nsys: a CUPTI injection library. Loaded by the
// CUDA driver into any program (no change to the program):
//
//   CUDA_INJECTION64_PATH=libllmrt_cupti_trace.so LLMRT_TRACE_OUT=trace.csv llmrt bench ...
//
// It records every kernel (graph nodes included) and memory copy with its
// GPU start and end times and writes one CSV line each at exit:
//   kind,start_ns,end_ns,graph_id,name
// bench/cuda/trace_summary.py turns that into per-kernel times inside
// decode steps (how far each kernel moved the timeline, and the gaps).
#include <cupti.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TRACE_BUFFER_BYTES = 8 << 20, TRACE_ALIGN = 8 };

static FILE *trace_out;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    uint8_t *b = (uint8_t *)aligned_alloc(TRACE_ALIGN, TRACE_BUFFER_BYTES);
    *buffer = b;
    *size = b ? TRACE_BUFFER_BYTES : 0;
    *max_records = 0;
}

static void write_record(const CUpti_Activity *r) {
    if (r->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || r->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)r;
        fprintf(trace_out, "K,%llu,%llu,%u,%s\n", (unsigned long long)k->start, (unsigned long long)k->end,
                k->graphId, k->name ? k->name : "?");
    } else if (r->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
        const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)r;
        fprintf(trace_out, "M,%llu,%llu,%u,memcpy-kind%u-%llub\n", (unsigned long long)m->start,
                (unsigned long long)m->end, m->graphId, (unsigned)m->copyKind, (unsigned long long)m->bytes);
    }
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
    (void)ctx;
    (void)stream;
    (void)size;
    CUpti_Activity *r = NULL;
    while (trace_out && cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) write_record(r);
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS && dropped)
        fprintf(stderr, "cupti_trace: %zu records dropped\n", dropped);
    free(buffer);
}

static void trace_finish(void) {
    cuptiActivityFlushAll(1);
    if (trace_out) fclose(trace_out);
    trace_out = NULL;
}

// Called by the CUDA driver when it loads this library (CUDA_INJECTION64_PATH).
int InitializeInjection(void) {
    const char *path = getenv("LLMRT_TRACE_OUT");
    trace_out = fopen(path && *path ? path : "cupti_trace.csv", "w");
    if (!trace_out) {
        fprintf(stderr, "cupti_trace: cannot write %s\n", path ? path : "cupti_trace.csv");
        return 0;
    }
    if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) != CUPTI_SUCCESS) {
        fprintf(stderr, "cupti_trace: could not enable activity tracing\n");
        return 0;
    }
    atexit(trace_finish);
    fprintf(stderr, "cupti_trace: tracing kernels and copies to %s\n", path && *path ? path : "cupti_trace.csv");
    return 1;
}
