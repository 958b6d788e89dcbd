#include "backends/backend.h"

#include <stdlib.h>
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

void *llmrt_backend_host_alloc(const llmrt_backend *backend, size_t bytes) {
    if (backend->ops->host_alloc) return backend->ops->host_alloc(backend->state, bytes);
    return malloc(bytes);
}

void llmrt_backend_host_free(const llmrt_backend *backend, void *ptr) {
    if (!ptr) return;
    if (backend->ops->host_free) backend->ops->host_free(backend->state, ptr);
    else free(ptr);
}
