/* Fuzz target: a safetensors image from memory. Beyond "no crash", it checks
 * what the reader promises: a failure always comes with a message, and every
 * tensor it accepts is a view inside the image, sized as its shape says, and
 * found again by name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "import/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_checkpoint *cp = NULL;
    llmrt_log_set_level(LLMRT_LOG_ERROR); /* warnings about odd inputs are expected */
    llmrt_error_clear();
    llmrt_status status = llmrt_checkpoint_open_memory(data, size, "fuzz.safetensors", &cp);
    if (status != LLMRT_OK) {
        if (cp != NULL || llmrt_last_error()[0] == '\0') abort();
        return 0;
    }
    size_t count = llmrt_checkpoint_tensor_count(cp);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < count; i++) {
        const llmrt_st_tensor *t = llmrt_checkpoint_tensor(cp, i);
        if (!t || llmrt_checkpoint_find(cp, t->name) != t) abort();
        if (i > 0 && strcmp(llmrt_checkpoint_tensor(cp, i - 1)->name, t->name) >= 0) abort();
        if (t->ndim < 0 || t->ndim > LLMRT_MAX_DIMS) abort();
        uint64_t bytes = llmrt_dtype_size(t->dtype);
        if (bytes == 0) abort();
        for (int32_t d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) abort();
            bytes *= (uint64_t)t->shape[d]; /* validated not to overflow */
        }
        if (bytes != t->nbytes) abort();
        if (t->data < data || t->data > data + size || t->nbytes > (size_t)(data + size - t->data)) abort();
        if (t->nbytes) sink ^= t->data[0] ^ t->data[t->nbytes - 1];
    }
    (void)sink;
    llmrt_checkpoint_close(cp);
    return 0;
}
