/* Reads the CUDA backend's settings from the environment (the table is in
 * cuda_settings.h). */
#define _POSIX_C_SOURCE 200809L
#include "backends/cuda/cuda_settings.h"

#include <stdlib.h>
#include <string.h>

/* A 0/1 switch: unset or empty gives `fallback`. */
static llmrt_status read_switch(const char *name, int fallback, int *out) {
    const char *s = getenv(name);
    if (!s || !*s) {
        *out = fallback;
        return LLMRT_OK;
    }
    if (strcmp(s, "0") == 0 || strcmp(s, "1") == 0) {
        *out = s[0] == '1';
        return LLMRT_OK;
    }
    return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: %s=\"%s\": expected 0 or 1", name, s);
}

llmrt_status cuda_settings_read(cuda_settings *out) {
    memset(out, 0, sizeof *out);
    LLMRT_TRY(read_switch("LLMRT_CUDA_GRAPHS", 1, &out->graphs));
    LLMRT_TRY(read_switch("LLMRT_CUDA_GEMV", 1, &out->gemv));
    LLMRT_TRY(read_switch("LLMRT_CUDA_GEMV_GROUPS", 1, &out->gemv_groups));
    LLMRT_TRY(read_switch("LLMRT_CUDA_GEMV_RESIDENT", 1, &out->gemv_resident));
    LLMRT_TRY(read_switch("LLMRT_CUDA_FUSE_NORM", 1, &out->fuse_norm));
    LLMRT_TRY(read_switch("LLMRT_CUDA_FUSE_ROPE", 1, &out->fuse_rope));
    LLMRT_TRY(read_switch("LLMRT_CUDA_PREFILL_KERNEL", 1, &out->prefill_kernel));
    LLMRT_TRY(read_switch("LLMRT_CUDA_ATTN_WIDE", 1, &out->attn_wide));
    LLMRT_TRY(read_switch("LLMRT_CUDA_ATTN_EARLY", 1, &out->attn_early));
    LLMRT_TRY(read_switch("LLMRT_CUDA_PDL", 1, &out->pdl));
    LLMRT_TRY(read_switch("LLMRT_CUDA_GEMM_AUTOTUNE", 0, &out->gemm_autotune));
    const char *probe = getenv("LLMRT_CUDA_PROBE_OUT");
    out->probe_out = probe && *probe ? probe : NULL;
    return LLMRT_OK;
}
