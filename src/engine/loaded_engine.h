/* A loaded engine: an engine file's image started on its backend. This is
 * the object behind the public llmrt_engine handle; src/api/engine.c is the
 * public layer over it, and the runtime (which sits above this module and
 * below the API) uses it directly: the backend instance, and exclusive use
 * of the backend's KV cache (one runtime, or one llmrt_generate /
 * llmrt_prompt_logits call, at a time). */
#ifndef LLMRT_ENGINE_LOADED_ENGINE_H
#define LLMRT_ENGINE_LOADED_ENGINE_H

#include <stdatomic.h>

#include "backends/backend.h"
#include "engine/engine_file.h"
#include "llmrt/llmrt.h"

struct llmrt_engine {
    llmrt_engine_image *image;
    llmrt_backend backend;
    const char *backend_name; /* what it runs on ("cpu", "cuda"; static): backend.ops may wrap it */
    int32_t block_size;
    int32_t blocks_per_seq;
    int32_t *block_table;  /* llmrt_prompt_logits' sequence: [blocks_per_seq] */
    atomic_int in_use;     /* the KV cache has a user (llmrt_engine_acquire) */
    struct llmrt_comm *comm; /* tensor/pipeline parallelism: the MPI world (owned), or NULL */
    struct llmrt_comm *tp_comm; /* tp × pp: this stage's tensor-parallel ranks (owned), or NULL */
    /* CUDA ranks each on a GPU of its own: NCCL over comm and tp_comm,
     * which the backend's collectives take (owned), or NULL */
    struct llmrt_comm *device_comm, *device_tp_comm;
    int32_t pp_micro_batches; /* rank 0 of a pipeline: most pieces a step is split into (1: none) */
};

/* Tensor parallelism (parallel_engine.c): rank r's engine file, and the
 * backend started on it — rank 0's wrapped to broadcast each step to the
 * others, which replay them in llmrt_engine_follow. */
void llmrt_engine_rank_path(const char *path, int32_t rank, char *out, size_t size);
llmrt_status llmrt_parallel_engine_start(llmrt_engine *engine, const llmrt_backend_ops *ops,
                                         const llmrt_backend_config *config);
/* Rank 0 of a pipeline of `stages`: how many micro-batches a step may be
 * split into, LLMRT_PP_MICRO_BATCHES or two a stage; an error names a bad
 * value. */
llmrt_status llmrt_pp_micro_batches(int32_t stages, int32_t *out);

/* Maps and validates the engine file at `path` and starts its backend.
 * `options` are checked by the caller (llmrt_engine_load). The engine owns
 * everything it holds; llmrt_loaded_engine_close releases it. */
llmrt_status llmrt_loaded_engine_open(const char *path, const llmrt_engine_options *options, llmrt_engine **out);
void llmrt_loaded_engine_close(llmrt_engine *engine);

/* A tokenizer from the image's tokenizer.json with its tokenizer_config.json
 * attached, owned by the caller; LLMRT_ERR_NOT_FOUND when the checkpoint had
 * no tokenizer.json. */
llmrt_status llmrt_loaded_engine_tokenizer(const llmrt_engine *engine, llmrt_tokenizer **out);
/* The end-of-sequence ids from the model's config (a view into the image). */
int32_t llmrt_loaded_engine_eos_ids(const llmrt_engine *engine, const int32_t **ids);

llmrt_backend *llmrt_engine_backend_instance(llmrt_engine *engine);
/* Takes the engine's KV cache for the caller; fails with "engine busy"
 * while another holder has it. */
llmrt_status llmrt_engine_acquire(llmrt_engine *engine, const char *who);
void llmrt_engine_release(llmrt_engine *engine);

#endif
