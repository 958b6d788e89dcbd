/* Fuzz target: engine files. Random damage mostly trips the checksums, so the
 * target also re-seals every checksum of the mutated bytes and parses again:
 * that drives mutations into the metadata JSON, the plan decoder and the
 * plan verifier. Whatever opens must also run: a forward step on the CPU
 * backend must either succeed or fail with a message, never read outside
 * its buffers (the sanitizer build checks that). A plan built for another
 * backend is retargeted to the CPU first, as loading it there does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "backends/backend.h"
#include "compiler/retarget.h"
#include "core/log.h"
#include "engine/engine_file.h"

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Recomputes section and header checksums and the file size in place. */
static void reseal(uint8_t *data, size_t size) {
    if (size < LLMRT_ENGINE_HEADER_BYTES) return;
    put_u64(data + 16, size);
    uint32_t count = data[12] | (uint32_t)data[13] << 8;
    if (count > 8) count = 8;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *sec = data + 32 + 48 * i;
        uint64_t offset = get_u64(sec + 24), length = get_u64(sec + 32);
        if (offset <= size && length <= size - offset) put_u64(sec + 40, XXH3_64bits(data + offset, (size_t)length));
    }
    put_u64(data + 24, 0);
    put_u64(data + 24, XXH3_64bits(data, LLMRT_ENGINE_HEADER_BYTES));
}

static void exercise(llmrt_engine_image *img) {
    const llmrt_plan *plan = img->plan;
    if (strcmp(img->backend, "cpu") != 0 && llmrt_plan_retarget(img->plan, "cpu") != LLMRT_OK) {
        if (llmrt_last_error()[0] == '\0') abort();
        return;
    }
    if (plan->max_num_tokens < 3 || plan->max_seq_len > 4096) return;
    /* keep the fuzzer's allocations bounded */
    if (plan->arena_bytes > (64u << 20) || plan->kv_heads * plan->head_dim > 4096 || plan->num_kv_layers > 64) return;
    llmrt_backend_config config = {.num_threads = 1, .kv_block_size = 16, .kv_num_blocks = 4};
    void *state = NULL;
    if (llmrt_cpu_backend_ops.create(plan, &config, &state) != LLMRT_OK) return;
    int32_t ids[3] = {1, 2, 3}, positions[3] = {0, 1, 2}, seq_start[2] = {0, 3}, blocks[4] = {0, 1, 2, 3};
    int32_t rows[1] = {2};
    llmrt_step step = {.num_tokens = 3, .token_ids = ids, .positions = positions, .num_seqs = 1,
                       .seq_start = seq_start, .block_tables = blocks, .max_blocks_per_seq = 4,
                       .num_logits = 1, .logits_indices = rows};
    float *logits = malloc((size_t)plan->vocab_size * sizeof *logits);
    if (logits) llmrt_cpu_backend_ops.forward(state, &step, logits);
    free(logits);
    llmrt_cpu_backend_ops.destroy(state);
}

static void try_open(const uint8_t *data, size_t size) {
    llmrt_engine_image *img = NULL;
    llmrt_error_clear();
    llmrt_status s = llmrt_engine_image_open_memory(data, size, "fuzz.engine", 1, &img);
    if (s != LLMRT_OK) {
        if (img != NULL || llmrt_last_error()[0] == '\0') abort();
        return;
    }
    exercise(img);
    llmrt_engine_image_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_log_set_level(LLMRT_LOG_ERROR);
    try_open(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    reseal(copy, size);
    try_open(copy, size);
    free(copy);
    return 0;
}
