/* Loading an engine: map the file, retarget its plan when it runs on
 * another backend than it was built for, apply the load-time limits, start
 * the backend, and set aside the identity block table llmrt_prompt_logits
 * drives the backend with. The KV cache is the backend's to size (from
 * memory). */
#include "engine/loaded_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/passes.h"
#include "compiler/retarget.h"
#include "comm/comm.h"
#include "core/log.h"
#include "llmrt/tokenizer.h"

/* The load-time limits over the build's: the plan takes them, and its
 * activation arena is planned again when the tokens per step change. */
static llmrt_status apply_limits(llmrt_plan *plan, const llmrt_model_config *config, const llmrt_engine_options *o) {
    const int32_t seq_len = o->max_seq_len > 0 ? o->max_seq_len : plan->max_seq_len;
    const int32_t batch = o->max_batch > 0 ? o->max_batch : plan->max_batch;
    const int32_t tokens = o->max_num_tokens > 0 ? o->max_num_tokens : plan->max_num_tokens;
    if (config->max_position_embeddings > 0 && seq_len > config->max_position_embeddings)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "max_seq_len %d is beyond the model's %d positions "
                                                       "(max_position_embeddings)",
                           seq_len, config->max_position_embeddings);
    if (tokens < batch)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "max_num_tokens %d is below max_batch %d", tokens, batch);
    plan->max_seq_len = seq_len;
    plan->max_batch = batch;
    if (tokens != plan->max_num_tokens) {
        plan->max_num_tokens = tokens;
        llmrt_pass_context ctx = {.plan = plan, .target = NULL};
        LLMRT_TRY(llmrt_pass_plan_memory(plan->graph, &ctx));
    }
    return LLMRT_OK;
}

/* The plan of an engine built for another backend, made to run on `target`
 * (compiler/retarget.h). Its limits stay the build's: that backend's own
 * defaults apply to a build for it, and the load options override both. */
static llmrt_status retarget(llmrt_engine_image *img, const char *path, const char *target) {
    llmrt_status s = llmrt_plan_retarget(img->plan, target);
    if (s != LLMRT_OK) llmrt_error_context(s, "%s: built for %s, cannot run on %s", path, img->backend, target);
    return s;
}

/* Every rank of a split engine says whether it loaded, and on which
 * backend, before any starts its backend: a rank that cannot load (or would
 * run on another backend) fails every rank at once, naming it, where rank 0
 * would otherwise wait on it until the communicator's timeout. */
typedef struct rank_load {
    int32_t status;
    char backend[16];
    char message[236];
} rank_load;

static llmrt_status agree_on_load(llmrt_comm *comm, llmrt_status s, const char *target) {
    rank_load mine = {.status = (int32_t)s};
    snprintf(mine.backend, sizeof mine.backend, "%s", target ? target : "");
    if (s != LLMRT_OK) snprintf(mine.message, sizeof mine.message, "%s", llmrt_last_error());
    rank_load *all = calloc((size_t)comm->size, sizeof *all);
    if (!all) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status g = llmrt_comm_all_gather(comm, &mine, all, (int64_t)(sizeof mine / sizeof(int32_t)), LLMRT_DTYPE_I32);
    if (s != LLMRT_OK) { /* this rank's own error, worded as rank 0 words it (mpirun may end rank 0 first) */
        free(all);
        return llmrt_error(s, "rank %d of %d could not load: %s", (int)comm->rank, (int)comm->size, mine.message);
    }
    for (int32_t r = 0; g == LLMRT_OK && r < comm->size; r++) {
        all[r].backend[sizeof all[r].backend - 1] = all[r].message[sizeof all[r].message - 1] = '\0';
        if (all[r].backend[0] && all[0].backend[0] && strcmp(all[r].backend, all[0].backend) != 0)
            g = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                            "rank %d would run on %s but rank 0 runs on %s: give every rank the same backend", (int)r,
                            all[r].backend, all[0].backend);
    }
    for (int32_t r = 0; g == LLMRT_OK && r < comm->size; r++)
        if (all[r].status != LLMRT_OK)
            g = llmrt_error((llmrt_status)all[r].status, "rank %d of %d could not load: %s", (int)r, (int)comm->size,
                            all[r].message);
    free(all);
    return g;
}

llmrt_status llmrt_loaded_engine_open(const char *path, const llmrt_engine_options *options, llmrt_engine **out) {
    *out = NULL;
    double start = llmrt_now_seconds();
    llmrt_engine *e = calloc(1, sizeof *e);
    if (!e) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = LLMRT_OK;
    char rank_path[4096];
    if (llmrt_comm_have_mpi() && llmrt_comm_launched_by_mpi()) { /* one rank of a split engine */
        s = llmrt_comm_create_mpi(options->comm_timeout_ms, &e->comm);
        if (s == LLMRT_OK && e->comm->size > 1) {
            llmrt_engine_rank_path(path, e->comm->rank, rank_path, sizeof rank_path);
            path = rank_path;
        }
    }
    if (s == LLMRT_OK) {
        s = llmrt_engine_image_open(path, options->verify_checksum, &e->image);
        if (s != LLMRT_OK && e->comm && e->comm->size > 1)
            llmrt_error_context(s, "rank %d of %d (was the engine built with --tp %d or --pp %d?)", (int)e->comm->rank,
                                (int)e->comm->size, (int)e->comm->size, (int)e->comm->size);
    }
    const llmrt_backend_ops *ops = NULL;
    const char *target = NULL;
    if (s == LLMRT_OK) {
        target = options->backend && *options->backend ? options->backend : e->image->backend;
        s = llmrt_backend_lookup(target, &ops);
        if (s != LLMRT_OK) llmrt_error_context(s, "%s (built for %s)", path, e->image->backend);
    }
    const int retargeted = s == LLMRT_OK && strcmp(target, e->image->backend) != 0;
    if (retargeted) s = retarget(e->image, path, target);
    if (s == LLMRT_OK) {
        s = apply_limits(e->image->plan, &e->image->config, options);
        if (s != LLMRT_OK) llmrt_error_context(s, "%s", path);
    }
    if (s == LLMRT_OK && retargeted) {
        const llmrt_plan *plan = e->image->plan;
        LLMRT_INFO("%s: built for %s, retargeted to %s: activations %s -> %s, %.2f MiB arena; max_batch %d, "
                   "max_num_tokens %d (%s)", path, e->image->backend, target, llmrt_dtype_name(e->image->act_dtype),
                   llmrt_dtype_name(plan->graph->act_dtype), (double)plan->arena_bytes / 1048576.0,
                   plan->max_batch, plan->max_num_tokens,
                   options->max_batch > 0 || options->max_num_tokens > 0 ? "given at load" : "the build's");
    }
    if (s == LLMRT_OK) {
        const llmrt_plan *plan = e->image->plan;
        e->block_size = options->kv_block_size;
        e->blocks_per_seq = (plan->max_seq_len + e->block_size - 1) / e->block_size;
        e->block_table = malloc((size_t)e->blocks_per_seq * sizeof *e->block_table);
        if (!e->block_table)
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int32_t i = 0; s == LLMRT_OK && i < e->blocks_per_seq; i++) e->block_table[i] = i;
    }
    if (s == LLMRT_OK && e->comm && e->comm->rank == 0 && e->comm->size > 1) {
        const llmrt_plan *plan = e->image->plan;
        s = llmrt_pp_micro_batches(llmrt_plan_tp_ranks(plan) / llmrt_plan_tp_group(plan), &e->pp_micro_batches);
    }
    if (e->comm && e->comm->size > 1) s = agree_on_load(e->comm, s, target);
    if (s == LLMRT_OK) {
        llmrt_backend_config config = {
            .num_threads = options->num_threads,
            .device = options->device,
            .kv_block_size = e->block_size,
            .kv_cache_fraction = options->kv_cache_fraction,
            .kv_cache_bytes = options->kv_cache_bytes,
            .cpu_fp32 = options->cpu_precision && strcmp(options->cpu_precision, "fp32") == 0,
        };
        e->backend.ops = ops;
        e->backend.plan = e->image->plan;
        e->backend_name = ops->name;
        if (e->comm && e->comm->size > 1)
            s = llmrt_parallel_engine_start(e, ops, &config);
        else
            s = ops->create(e->image->plan, &config, &e->backend.state);
        if (s != LLMRT_OK) llmrt_error_context(s, "%s: starting the %s backend", path, ops->name);
    }
    if (s != LLMRT_OK) {
        llmrt_loaded_engine_close(e);
        return s;
    }
    LLMRT_INFO("loaded %s (%s, %s backend) in %.2f s", path, e->image->config.architecture, ops->name,
               llmrt_now_seconds() - start);
    *out = e;
    return LLMRT_OK;
}

void llmrt_loaded_engine_close(llmrt_engine *e) {
    if (!e) return;
    if (e->backend.ops && e->backend.state) e->backend.ops->destroy(e->backend.state);
    llmrt_comm_free(e->device_tp_comm);
    llmrt_comm_free(e->device_comm);
    llmrt_comm_free(e->tp_comm);
    llmrt_comm_free(e->comm);
    llmrt_engine_image_close(e->image);
    free(e->block_table);
    free(e);
}

llmrt_status llmrt_loaded_engine_tokenizer(const llmrt_engine *e, llmrt_tokenizer **out) {
    *out = NULL;
    const llmrt_engine_image *img = e->image;
    if (!img->tokenizer.data)
        return llmrt_error(LLMRT_ERR_NOT_FOUND, "the engine has no tokenizer (its checkpoint had no tokenizer.json)");
    LLMRT_TRY(llmrt_tokenizer_from_json(img->tokenizer.data, img->tokenizer.size, "the engine's tokenizer.json", out));
    if (img->tokenizer_config.data) {
        llmrt_status s = llmrt_tokenizer_set_config_json(*out, img->tokenizer_config.data, img->tokenizer_config.size);
        if (s != LLMRT_OK) {
            llmrt_tokenizer_free(*out);
            *out = NULL;
            return llmrt_error_context(s, "the engine's tokenizer_config.json");
        }
    }
    return LLMRT_OK;
}

int32_t llmrt_loaded_engine_eos_ids(const llmrt_engine *e, const int32_t **ids) {
    *ids = e->image->config.eos_token_ids;
    return e->image->config.num_eos_tokens;
}

llmrt_backend *llmrt_engine_backend_instance(llmrt_engine *e) { return &e->backend; }

llmrt_status llmrt_engine_acquire(llmrt_engine *e, const char *who) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&e->in_use, &expected, 1))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "engine busy: %s needs the engine's KV cache, which a runtime or another call holds", who);
    return LLMRT_OK;
}

void llmrt_engine_release(llmrt_engine *e) { atomic_store(&e->in_use, 0); }
