/* Encoder engines through the public API: one bidirectional forward per
 * input, driven on the backend directly like llmrt_prompt_logits (the
 * engine's identity block table; the KV cache only holds the input while
 * its attention layers read it). The step returns every row, each laid out
 * [hidden | pooled | logits] (src/models/bert.c); the pooled vector and the
 * logits are HF's from the [CLS] row, row 0. */
#include <stdlib.h>
#include <string.h>

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

llmrt_status llmrt_embed(llmrt_engine *e, const int32_t *ids, int32_t n, llmrt_pooling pooling, float *embedding) {
    if (pooling != LLMRT_POOLING_CLS && pooling != LLMRT_POOLING_MEAN)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "pooling %d is not cls (0) or mean (1)", (int)pooling);
    llmrt_encoding enc;
    LLMRT_TRY(llmrt_encode(e, ids, NULL, n, &enc));
    const int32_t d = enc.hidden_size;
    if (pooling == LLMRT_POOLING_CLS) {
        memcpy(embedding, enc.hidden, (size_t)d * sizeof(float));
    } else {
        /* summed in double: a long input's mean is not at the mercy of order */
        for (int32_t i = 0; i < d; i++) {
            double sum = 0.0;
            for (int32_t t = 0; t < n; t++) sum += enc.hidden[(size_t)t * d + i];
            embedding[i] = (float)(sum / n);
        }
    }
    llmrt_encoding_free(&enc);
    return LLMRT_OK;
}
