/* The public layer over a loaded engine (src/engine/loaded_engine.c): its
 * options and accessors; llmrt_generate as one request through a runtime of
 * its own (one generation path), and llmrt_prompt_logits, which needs every
 * row's logits and so drives the backend directly with the engine's identity
 * block table. The backend's KV cache has one user at a time
 * (llmrt_engine_acquire). */
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "compiler/retarget.h"
#include "core/log.h"
#include "engine/loaded_engine.h"
#include "llmrt/llmrt.h"
#include "llmrt/runtime.h"

const char *llmrt_version(void) { return LLMRT_VERSION_STRING; }
void llmrt_free(void *ptr) { free(ptr); }
void llmrt_set_log_level(int level) {
    llmrt_log_set_level(level <= 0 ? LLMRT_LOG_ERROR : level >= 3 ? LLMRT_LOG_DEBUG : (llmrt_log_level)level);
}

llmrt_status llmrt_gpu_count(int32_t *out_count) {
    *out_count = 0;
#ifdef LLMRT_HAVE_CUDA
    *out_count = llmrt_cuda_device_count();
    return LLMRT_OK;
#else
    return llmrt_error(LLMRT_ERR_UNSUPPORTED, "this llmrt was built without the CUDA backend (-DLLMRT_CUDA=ON)");
#endif
}

void llmrt_engine_options_init(llmrt_engine_options *o) {
    memset(o, 0, sizeof *o);
    o->verify_checksum = 1;
    o->kv_block_size = 16;
}

llmrt_status llmrt_engine_load(const char *path, const llmrt_engine_options *options, llmrt_engine **out) {
    *out = NULL;
    llmrt_engine_options defaults;
    if (!options) {
        llmrt_engine_options_init(&defaults);
        options = &defaults;
    }
    if (options->kv_block_size < 1 || options->kv_block_size > 4096)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "kv block size %d (1..4096)", options->kv_block_size);
    if (!(options->kv_cache_fraction >= 0 && options->kv_cache_fraction <= 1))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "kv cache fraction %g (0..1; 0 = the backend's default)",
                           (double)options->kv_cache_fraction);
    if (options->max_seq_len < 0 || options->max_batch < 0 || options->max_num_tokens < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "max_seq_len, max_batch and max_num_tokens must be >= 0 "
                                                       "(0 = the build's)");
    if (options->backend && *options->backend && !llmrt_target_known(options->backend))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "unknown backend '%s' (cpu, cuda)", options->backend);
    if (options->cpu_precision && *options->cpu_precision && strcmp(options->cpu_precision, "auto") != 0 &&
        strcmp(options->cpu_precision, "fp32") != 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cpu precision '%s' (auto, fp32)", options->cpu_precision);
    return llmrt_loaded_engine_open(path, options, out);
}

void llmrt_engine_free(llmrt_engine *e) { llmrt_loaded_engine_close(e); }

int32_t llmrt_engine_vocab_size(const llmrt_engine *e) { return e->image->plan->vocab_size; }
int32_t llmrt_engine_max_seq_len(const llmrt_engine *e) { return e->image->plan->max_seq_len; }
const char *llmrt_engine_backend(const llmrt_engine *e) { return e->backend_name; }
llmrt_dtype llmrt_engine_kv_cache_dtype(const llmrt_engine *e) {
    const llmrt_plan *plan = e->image->plan;
    return plan->kv_dtype != LLMRT_DTYPE_INVALID ? plan->kv_dtype : plan->graph->act_dtype;
}

const char *llmrt_engine_tokenizer_json(const llmrt_engine *e, size_t *size) {
    if (size) *size = e->image->tokenizer.size;
    return e->image->tokenizer.data;
}

llmrt_status llmrt_engine_tokenizer(const llmrt_engine *e, llmrt_tokenizer **out) {
    return llmrt_loaded_engine_tokenizer(e, out);
}

int32_t llmrt_engine_eos_ids(const llmrt_engine *e, const int32_t **ids) { return llmrt_loaded_engine_eos_ids(e, ids); }

void llmrt_engine_memory(const llmrt_engine *e, uint64_t *weights, uint64_t *activations, uint64_t *kv_cache) {
    llmrt_memory_report report = {0};
    e->backend.ops->memory_report(e->backend.state, &report);
    if (weights) *weights = report.weight_bytes;
    if (activations) *activations = report.activation_bytes;
    if (kv_cache) *kv_cache = report.kv_cache_bytes;
}

static llmrt_status check_prompt(const llmrt_engine *e, const int32_t *ids, int32_t n) {
    const llmrt_plan *plan = e->image->plan;
    if (n < 1) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "the prompt is empty");
    if (n > plan->max_seq_len)
        return llmrt_error(LLMRT_ERR_CAPACITY, "the prompt has %d tokens; the engine's max_seq_len is %d", n,
                           plan->max_seq_len);
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= plan->vocab_size)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "prompt token %d at index %d is outside the vocabulary [0, %d)",
                               ids[i], i, plan->vocab_size);
    return LLMRT_OK;
}

/* Runs tokens [first, first + count) of one sequence (positions = indices)
 * and writes every row's logits to logits: [count, vocab]. */
static llmrt_status run_chunk(llmrt_engine *e, const int32_t *ids, int32_t first, int32_t count, int32_t *positions,
                              int32_t *logit_rows, float *logits) {
    for (int32_t i = 0; i < count; i++) {
        positions[i] = first + i;
        logit_rows[i] = i;
    }
    int32_t seq_start[2] = {0, count};
    llmrt_step step = {
        .num_tokens = count,
        .token_ids = ids + first,
        .positions = positions,
        .num_seqs = 1,
        .seq_start = seq_start,
        .block_tables = e->block_table,
        .max_blocks_per_seq = e->blocks_per_seq,
        .num_logits = count,
        .logits_indices = logit_rows,
    };
    return e->backend.ops->forward(e->backend.state, &step, logits);
}

llmrt_status llmrt_prompt_logits(llmrt_engine *e, const int32_t *ids, int32_t n, float *logits) {
    if (llmrt_engine_is_encoder(e))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s is an encoder: it has no logits over a vocabulary (use "
                           "llmrt_encode)", e->image->config.architecture);
    LLMRT_TRY(check_prompt(e, ids, n));
    LLMRT_TRY(llmrt_engine_acquire(e, "llmrt_prompt_logits"));
    const llmrt_plan *plan = e->image->plan;
    int32_t chunk_cap = plan->max_num_tokens;
    int32_t *positions = malloc((size_t)chunk_cap * sizeof *positions);
    int32_t *rows = malloc((size_t)chunk_cap * sizeof *rows);
    llmrt_status s = positions && rows ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t first = 0; s == LLMRT_OK && first < n; first += chunk_cap) {
        int32_t count = n - first < chunk_cap ? n - first : chunk_cap;
        s = run_chunk(e, ids, first, count, positions, rows, logits + (size_t)first * plan->vocab_size);
    }
    free(positions);
    free(rows);
    llmrt_engine_release(e);
    return s;
}

typedef struct generate_bridge {
    llmrt_token_callback callback;
    void *user_data;
} generate_bridge;

static int bridge_event(void *user, const llmrt_token_event *ev) {
    const generate_bridge *b = user;
    return ev->token_id >= 0 && b->callback(b->user_data, ev->token_id);
}

llmrt_status llmrt_generate(llmrt_engine *e, const int32_t *prompt, int32_t n, const llmrt_sampling_params *params,
                            llmrt_token_callback callback, void *user_data, llmrt_generation *out) {
    memset(out, 0, sizeof *out);
    llmrt_request req;
    llmrt_request_init(&req);
    if (params) req.sampling = *params;
    req.prompt_ids = prompt;
    req.num_prompt_ids = n;
    req.detokenize = 0;
    generate_bridge bridge = {callback, user_data};
    if (callback) {
        req.callback = bridge_event;
        req.user_data = &bridge;
    }
    LLMRT_TRY(check_prompt(e, prompt, n));
    llmrt_runtime_options options;
    llmrt_runtime_options_init(&options);
    options.background = 0; /* this thread steps; nothing else shares the runtime */
    options.prefix_caching = 0;
    llmrt_runtime *rt = NULL;
    LLMRT_TRY(llmrt_runtime_create(e, &options, &rt));
    llmrt_request_id id = 0;
    llmrt_result result = {0};
    int done = 0;
    llmrt_status s = llmrt_runtime_submit(rt, &req, &id);
    if (s == LLMRT_OK) s = llmrt_runtime_wait(rt, id, -1, &result, &done);
    if (s == LLMRT_OK && result.status != LLMRT_OK)
        s = llmrt_error(result.status, "%s", result.error ? result.error : "generation failed");
    if (s == LLMRT_OK && result.num_sequences == 1) {
        llmrt_sequence_output *o = &result.sequences[0];
        out->output_ids = o->output_ids; /* handed over */
        o->output_ids = NULL;
        out->num_output = o->num_output;
        out->finish_reason = o->finish_reason;
        out->prompt_tokens = result.prompt_tokens;
        out->prefill_seconds = o->num_output > 0 ? result.ttft_seconds : result.e2e_seconds;
        out->decode_seconds = result.e2e_seconds - out->prefill_seconds;
    } else if (s == LLMRT_OK) {
        s = llmrt_error(LLMRT_ERR_INTERNAL, "generate: %d sequences returned", result.num_sequences);
    }
    llmrt_result_free(&result);
    llmrt_runtime_free(rt);
    return s;
}

void llmrt_generation_free(llmrt_generation *g) {
    free(g->output_ids);
    g->output_ids = NULL;
    g->num_output = 0;
}
