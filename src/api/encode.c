/* Encoder engines through the public API: bidirectional forwards driven on
 * the backend directly like llmrt_prompt_logits (the KV cache only holds
 * an input while its attention layers read it). llmrt_encode runs one
 * input on the engine's identity block table; llmrt_embed_batch packs
 * inputs into steps, each sequence on a run of blocks of its own. A step
 * returns every row, each laid out [hidden | pooled | logits]
 * (src/models/bert.c); the pooled vector and the logits are HF's from the
 * [CLS] row, a sequence's first. */
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "engine/loaded_engine.h"
#include "llmrt/llmrt.h"
#include "models/models.h"

int llmrt_engine_is_encoder(const llmrt_engine *e) { return llmrt_model_is_encoder(e->image->config.architecture); }

int32_t llmrt_engine_hidden_size(const llmrt_engine *e) {
    return llmrt_engine_is_encoder(e) ? e->image->config.hidden_size : 0;
}

static llmrt_status check_input(const llmrt_engine *e, const int32_t *ids, const int32_t *types, int32_t n) {
    const llmrt_plan *plan = e->image->plan;
    const llmrt_model_config *c = &e->image->config;
    if (!llmrt_engine_is_encoder(e))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s is a decoder: it generates text and has no embeddings",
                           c->architecture);
    if (n < 1) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "the input is empty");
    int32_t limit = plan->max_seq_len < plan->max_num_tokens ? plan->max_seq_len : plan->max_num_tokens;
    if (limit > c->max_position_embeddings) limit = c->max_position_embeddings;
    if (n > limit)
        return llmrt_error(LLMRT_ERR_CAPACITY, "the input has %d tokens; this encoder takes at most %d "
                           "(max_seq_len, max_num_tokens, max_position_embeddings)", n, limit);
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "token %d at index %d is outside the vocabulary [0, %d)",
                               ids[i], i, c->vocab_size);
        if (types && (types[i] < 0 || types[i] >= c->type_vocab_size))
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "token_type_ids[%d] = %d is outside [0, %d)", i, types[i],
                               c->type_vocab_size);
    }
    return LLMRT_OK;
}

/* rows: [n, width] of the step's output. */
static llmrt_status run_encoder(llmrt_engine *e, const int32_t *ids, const int32_t *types, int32_t n, float *rows) {
    int32_t *positions = malloc((size_t)n * sizeof *positions);
    if (!positions) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t i = 0; i < n; i++) positions[i] = i;
    int32_t seq_start[2] = {0, n};
    llmrt_step step = {
        .num_tokens = n,
        .token_ids = ids,
        .positions = positions,
        .num_seqs = 1,
        .seq_start = seq_start,
        .block_tables = e->block_table,
        .max_blocks_per_seq = e->blocks_per_seq,
        .num_logits = n,
        .logits_indices = positions, /* every row */
        .token_type_ids = types,
    };
    llmrt_status s = llmrt_engine_acquire(e, "llmrt_encode");
    if (s == LLMRT_OK) {
        s = e->backend.ops->forward(e->backend.state, &step, rows);
        llmrt_engine_release(e);
    }
    free(positions);
    return s;
}

llmrt_status llmrt_encode(llmrt_engine *e, const int32_t *ids, const int32_t *types, int32_t n, llmrt_encoding *out) {
    memset(out, 0, sizeof *out);
    LLMRT_TRY(check_input(e, ids, types, n));
    const llmrt_encoder_row_layout layout = llmrt_encoder_layout(&e->image->config);
    const size_t width = (size_t)e->image->plan->vocab_size, hidden = (size_t)layout.hidden;
    float *rows = malloc((size_t)n * width * sizeof *rows);
    out->hidden = malloc((size_t)n * hidden * sizeof *out->hidden);
    out->pooled = malloc(hidden * sizeof *out->pooled);
    out->logits = layout.labels > 0 ? malloc((size_t)layout.labels * sizeof *out->logits) : NULL;
    llmrt_status s = rows && out->hidden && out->pooled && (layout.labels == 0 || out->logits)
                         ? run_encoder(e, ids, types, n, rows)
                         : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == LLMRT_OK) {
        for (int32_t t = 0; t < n; t++) memcpy(out->hidden + t * hidden, rows + t * width, hidden * sizeof(float));
        memcpy(out->pooled, rows + hidden, (size_t)layout.pooled * sizeof(float));
        if (layout.labels > 0)
            memcpy(out->logits, rows + hidden + layout.pooled, (size_t)layout.labels * sizeof(float));
        out->num_tokens = n;
        out->hidden_size = layout.hidden;
        out->num_labels = layout.labels;
    } else {
        llmrt_encoding_free(out);
    }
    free(rows);
    return s;
}

void llmrt_encoding_free(llmrt_encoding *enc) {
    if (!enc) return;
    free(enc->hidden);
    free(enc->pooled);
    free(enc->logits);
    memset(enc, 0, sizeof *enc);
}

/* Pools one input's rows [n, width] (hidden state first in each row). */
static void pool_rows(const float *rows, size_t width, int32_t n, int32_t hidden, llmrt_pooling pooling, float *out) {
    if (pooling == LLMRT_POOLING_CLS) {
        memcpy(out, rows, (size_t)hidden * sizeof(float));
        return;
    }
    /* summed in double: a long input's mean is not at the mercy of order */
    for (int32_t i = 0; i < hidden; i++) {
        double sum = 0.0;
        for (int32_t t = 0; t < n; t++) sum += rows[(size_t)t * width + (size_t)i];
        out[i] = (float)(sum / n);
    }
}

llmrt_status llmrt_encoding_pool(const llmrt_encoding *enc, llmrt_pooling pooling, float *embedding) {
    if (pooling != LLMRT_POOLING_CLS && pooling != LLMRT_POOLING_MEAN)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "pooling %d is not cls (0) or mean (1)", (int)pooling);
    if (!enc || !enc->hidden || enc->num_tokens < 1)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_encoding_pool: an empty encoding");
    pool_rows(enc->hidden, (size_t)enc->hidden_size, enc->num_tokens, enc->hidden_size, pooling, embedding);
    return LLMRT_OK;
}

/* One step of inputs [first, first + count): each sequence gets its own
 * run of cache blocks. Every row comes back, or with only_first each
 * sequence's first ([CLS]) row, so the head runs on those alone. */
static llmrt_status run_batch(llmrt_engine *e, const int32_t *const *ids, const int32_t *counts, int32_t first,
                              int32_t count, int32_t tokens, int only_first, int32_t *buf, float *rows) {
    int32_t *token_ids = buf, *positions = token_ids + tokens, *rows_wanted = positions + tokens;
    int32_t *seq_start = rows_wanted + tokens, *tables = seq_start + count + 1;
    int32_t t = 0, block = 0;
    seq_start[0] = 0;
    for (int32_t s = 0; s < count; s++) {
        const int32_t n = counts[first + s];
        memcpy(token_ids + t, ids[first + s], (size_t)n * sizeof(int32_t));
        if (only_first) rows_wanted[s] = t;
        for (int32_t i = 0; i < n; i++, t++) {
            positions[t] = i;
            if (!only_first) rows_wanted[t] = t;
        }
        seq_start[s + 1] = t;
        for (int32_t b = 0; b < e->blocks_per_seq; b++)
            tables[(size_t)s * e->blocks_per_seq + b] = b < (n + e->block_size - 1) / e->block_size ? block++ : 0;
    }
    llmrt_step step = {
        .num_tokens = tokens,
        .token_ids = token_ids,
        .positions = positions,
        .num_seqs = count,
        .seq_start = seq_start,
        .block_tables = tables,
        .max_blocks_per_seq = e->blocks_per_seq,
        .num_logits = only_first ? count : tokens,
        .logits_indices = rows_wanted,
        .token_type_ids = NULL,
    };
    return e->backend.ops->forward(e->backend.state, &step, rows);
}

llmrt_status llmrt_embed_batch(llmrt_engine *e, const int32_t *const *ids, const int32_t *counts, int32_t num_inputs,
                               llmrt_pooling pooling, float *embeddings) {
    if (pooling != LLMRT_POOLING_CLS && pooling != LLMRT_POOLING_MEAN)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "pooling %d is not cls (0) or mean (1)", (int)pooling);
    if (num_inputs < 1) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "no inputs");
    for (int32_t i = 0; i < num_inputs; i++) {
        llmrt_status s = check_input(e, ids[i], NULL, counts[i]);
        if (s != LLMRT_OK) return llmrt_error_context(s, "input %d", (int)i);
    }
    const llmrt_plan *plan = e->image->plan;
    llmrt_memory_report mem = {0};
    e->backend.ops->memory_report(e->backend.state, &mem);
    const int32_t max_tokens = plan->max_num_tokens, max_seqs = plan->max_batch, max_blocks = mem.kv_num_blocks;
    const size_t width = (size_t)plan->vocab_size;
    const int32_t hidden = e->image->config.hidden_size;
    float *rows = malloc((size_t)max_tokens * width * sizeof *rows);
    int32_t *buf = malloc(((size_t)3 * max_tokens + max_seqs + 1 + (size_t)max_seqs * e->blocks_per_seq) *
                          sizeof *buf);
    llmrt_status s = rows && buf ? llmrt_engine_acquire(e, "llmrt_embed_batch")
                                 : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    const int acquired = s == LLMRT_OK;
    for (int32_t first = 0; s == LLMRT_OK && first < num_inputs;) {
        /* greedy: inputs in order while the step has room */
        int32_t count = 0, tokens = 0, blocks = 0;
        while (first + count < num_inputs && count < max_seqs) {
            const int32_t n = counts[first + count], need = (n + e->block_size - 1) / e->block_size;
            if (count > 0 && (tokens + n > max_tokens || blocks + need > max_blocks)) break;
            tokens += n, blocks += need, count++;
        }
        const int only_first = pooling == LLMRT_POOLING_CLS;
        s = run_batch(e, ids, counts, first, count, tokens, only_first, buf, rows);
        for (int32_t k = 0, row = 0; s == LLMRT_OK && k < count; row += only_first ? 1 : counts[first + k], k++)
            pool_rows(rows + (size_t)row * width, width, counts[first + k], hidden, pooling,
                      embeddings + (size_t)(first + k) * hidden);
        first += count;
    }
    if (acquired) llmrt_engine_release(e);
    free(rows);
    free(buf);
    return s;
}

llmrt_status llmrt_embed(llmrt_engine *e, const int32_t *ids, int32_t n, llmrt_pooling pooling, float *embedding) {
    return llmrt_embed_batch(e, &ids, &n, 1, pooling, embedding);
}
