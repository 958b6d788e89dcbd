#include "backends/backend.h"

#include <string.h>

llmrt_status llmrt_backend_lookup(const char *name, const llmrt_backend_ops **out) {
    *out = NULL;
    if (strcmp(name, "cpu") == 0) {
        *out = &llmrt_cpu_backend_ops;
        return LLMRT_OK;
    }
    if (strcmp(name, "cuda") == 0) {
#ifdef LLMRT_HAVE_CUDA
        *out = &llmrt_cuda_backend_ops;
        return LLMRT_OK;
#else
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "this llmrt was built without the CUDA backend");
#endif
    }
    return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "unknown backend '%s' (cpu, cuda)", name);
}
