/* Loaded engines: the engine image, a backend instance, and single-request
 * generation (prefill in chunks of max_num_tokens, then one token per step).
 * The batching scheduler of the runtime issue replaces the one-sequence path
 * here; the backend interface already takes packed multi-sequence steps. */
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/log.h"
#include "engine/engine_file.h"
#include "llmrt/llmrt.h"
#include "runtime/sampler.h"

struct llmrt_engine {
    llmrt_engine_image *image;
    llmrt_backend backend;
    int32_t block_size;
    int32_t blocks_per_seq;
    int32_t *block_table;  /* sequence 0's blocks: [blocks_per_seq] */
    float *logits;         /* [max_num_tokens, vocab] */
    void *sampler_scratch; /* 2 × vocab */
};

const char *llmrt_version(void) { return LLMRT_VERSION_STRING; }
void llmrt_free(void *ptr) { free(ptr); }
void llmrt_set_log_level(int level) {
    llmrt_log_set_level(level <= 0 ? LLMRT_LOG_ERROR : level >= 3 ? LLMRT_LOG_DEBUG : (llmrt_log_level)level);
}

void llmrt_engine_options_init(llmrt_engine_options *o) {
    memset(o, 0, sizeof *o);
    o->verify_checksum = 1;
    o->kv_block_size = 16;
    o->kv_cache_fraction = 0.9f;
}

void llmrt_sampling_params_init(llmrt_sampling_params *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 16;
    p->top_p = 1.0f;
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
    double start = llmrt_now_seconds();
    llmrt_engine *e = calloc(1, sizeof *e);
    if (!e) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = llmrt_engine_image_open(path, options->verify_checksum, &e->image);
    const llmrt_backend_ops *ops = NULL;
    if (s == LLMRT_OK) s = llmrt_backend_lookup(e->image->backend, &ops);
    if (s == LLMRT_OK) {
        const llmrt_plan *plan = e->image->plan;
        e->block_size = options->kv_block_size;
        e->blocks_per_seq = (plan->max_seq_len + e->block_size - 1) / e->block_size;
        e->block_table = malloc((size_t)e->blocks_per_seq * sizeof *e->block_table);
        e->logits = malloc((size_t)plan->max_num_tokens * (size_t)plan->vocab_size * sizeof *e->logits);
        e->sampler_scratch = malloc((size_t)plan->vocab_size * 2 * sizeof(float) * 2);
        if (!e->block_table || !e->logits || !e->sampler_scratch)
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int32_t i = 0; s == LLMRT_OK && i < e->blocks_per_seq; i++) e->block_table[i] = i;
    }
    if (s == LLMRT_OK) {
        llmrt_backend_config config = {
            .num_threads = options->num_threads,
            .device = options->device,
            .kv_block_size = e->block_size,
            .kv_num_blocks = strcmp(ops->name, "cpu") == 0 ? e->blocks_per_seq * e->image->plan->max_batch : 0,
            .kv_cache_fraction = options->kv_cache_fraction,
        };
        e->backend.ops = ops;
        e->backend.plan = e->image->plan;
        s = ops->create(e->image->plan, &config, &e->backend.state);
        if (s != LLMRT_OK) llmrt_error_context(s, "%s: starting the %s backend", path, ops->name);
    }
    if (s != LLMRT_OK) {
        llmrt_engine_free(e);
        return s;
    }
    LLMRT_INFO("loaded %s (%s, %s backend) in %.2f s", path, e->image->config.architecture, ops->name,
               llmrt_now_seconds() - start);
    *out = e;
    return LLMRT_OK;
}

void llmrt_engine_free(llmrt_engine *e) {
    if (!e) return;
    if (e->backend.ops && e->backend.state) e->backend.ops->destroy(e->backend.state);
    llmrt_engine_image_close(e->image);
    free(e->block_table);
    free(e->logits);
    free(e->sampler_scratch);
    free(e);
}

int32_t llmrt_engine_vocab_size(const llmrt_engine *e) { return e->image->plan->vocab_size; }
int32_t llmrt_engine_max_seq_len(const llmrt_engine *e) { return e->image->plan->max_seq_len; }
const char *llmrt_engine_backend(const llmrt_engine *e) { return e->image->backend; }

const char *llmrt_engine_tokenizer_json(const llmrt_engine *e, size_t *size) {
    if (size) *size = e->image->tokenizer.size;
    return e->image->tokenizer.data;
}

int32_t llmrt_engine_eos_ids(const llmrt_engine *e, const int32_t **ids) {
    *ids = e->image->config.eos_token_ids;
    return e->image->config.num_eos_tokens;
}

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

/* Runs tokens [first, first + count) of one sequence (positions = indices);
 * logits for the last `want_logits` rows (count rows when want_all). */
static llmrt_status run_chunk(llmrt_engine *e, const int32_t *ids, int32_t first, int32_t count, int want_all,
                              int32_t *positions, int32_t *logit_rows) {
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
        .num_logits = want_all ? count : 1,
        .logits_indices = want_all ? logit_rows : &logit_rows[count - 1],
    };
    return e->backend.ops->forward(e->backend.state, &step, e->logits);
}

llmrt_status llmrt_prompt_logits(llmrt_engine *e, const int32_t *ids, int32_t n, float *logits) {
    LLMRT_TRY(check_prompt(e, ids, n));
    const llmrt_plan *plan = e->image->plan;
    int32_t chunk_cap = plan->max_num_tokens;
    int32_t *positions = malloc((size_t)chunk_cap * sizeof *positions);
    int32_t *rows = malloc((size_t)chunk_cap * sizeof *rows);
    llmrt_status s = positions && rows ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t first = 0; s == LLMRT_OK && first < n; first += chunk_cap) {
        int32_t count = n - first < chunk_cap ? n - first : chunk_cap;
        s = run_chunk(e, ids, first, count, 1, positions, rows);
        if (s == LLMRT_OK)
            memcpy(logits + (size_t)first * plan->vocab_size, e->logits,
                   (size_t)count * (size_t)plan->vocab_size * sizeof *logits);
    }
    free(positions);
    free(rows);
    return s;
}

static int is_stop(const llmrt_engine *e, const llmrt_sampling_params *p, int32_t token) {
    if (!p->ignore_eos)
        for (int32_t i = 0; i < e->image->config.num_eos_tokens; i++)
            if (token == e->image->config.eos_token_ids[i]) return 1;
    for (int32_t i = 0; i < p->num_stop_ids; i++)
        if (token == p->stop_ids[i]) return 1;
    return 0;
}

llmrt_status llmrt_generate(llmrt_engine *e, const int32_t *prompt, int32_t n, const llmrt_sampling_params *params,
                            llmrt_token_callback callback, void *user_data, llmrt_generation *out) {
    memset(out, 0, sizeof *out);
    llmrt_sampling_params defaults;
    if (!params) {
        llmrt_sampling_params_init(&defaults);
        params = &defaults;
    }
    if (params->max_tokens < 0 || params->temperature < 0 || params->top_p <= 0 || params->top_p > 1 ||
        params->top_k < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "sampling: max_tokens >= 0, temperature >= 0, 0 < top_p <= 1, top_k >= 0");
    LLMRT_TRY(check_prompt(e, prompt, n));
    const llmrt_plan *plan = e->image->plan;
    int32_t budget = plan->max_seq_len - n;
    int32_t max_new = params->max_tokens < budget ? params->max_tokens : budget;
    int32_t total = n + max_new;
    int32_t *ids = malloc(((size_t)total + 1) * sizeof *ids);
    int32_t chunk_cap = plan->max_num_tokens;
    int32_t *positions = malloc((size_t)chunk_cap * sizeof *positions);
    int32_t *rows = malloc((size_t)chunk_cap * sizeof *rows);
    llmrt_status s = ids && positions && rows ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    out->prompt_tokens = n;
    out->finish_reason = "length";
    llmrt_rng rng;
    llmrt_rng_seed(&rng, params->seed);
    llmrt_sampler_config sampler = {params->temperature, params->top_k, params->top_p};
    double start = llmrt_now_seconds(), first_token = start;
    if (s == LLMRT_OK) memcpy(ids, prompt, (size_t)n * sizeof *ids);
    int32_t length = n, produced = 0, cursor = 0; /* cursor: tokens already in the KV cache */
    while (s == LLMRT_OK && produced < max_new) {
        /* feed everything not yet cached: the prompt in chunks, then one token */
        while (s == LLMRT_OK && cursor < length) {
            int32_t count = length - cursor < chunk_cap ? length - cursor : chunk_cap;
            s = run_chunk(e, ids, cursor, count, 0, positions, rows);
            cursor += count;
        }
        if (s != LLMRT_OK) break;
        int32_t token = llmrt_sample(e->logits, plan->vocab_size, &sampler, &rng, e->sampler_scratch);
        if (produced == 0) first_token = llmrt_now_seconds();
        if (is_stop(e, params, token)) {
            out->finish_reason = "stop";
            break;
        }
        ids[length++] = token;
        produced++;
        if (callback && callback(user_data, token)) {
            out->finish_reason = "cancelled";
            break;
        }
    }
    double end = llmrt_now_seconds();
    free(positions);
    free(rows);
    if (s != LLMRT_OK) {
        free(ids);
        return s;
    }
    if (produced == 0) first_token = end;
    out->output_ids = malloc(((size_t)produced + 1) * sizeof *out->output_ids);
    if (!out->output_ids) {
        free(ids);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    memcpy(out->output_ids, ids + n, (size_t)produced * sizeof *ids);
    out->num_output = produced;
    out->prefill_seconds = first_token - start;
    out->decode_seconds = end - first_token;
    free(ids);
    return LLMRT_OK;
}

void llmrt_generation_free(llmrt_generation *g) {
    free(g->output_ids);
    g->output_ids = NULL;
    g->num_output = 0;
}
