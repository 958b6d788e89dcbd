/* The executable plan: what the compiler produces, the engine file stores,
 * and a backend runs. The node list is an llmrt_graph in execution order,
 * annotated by the compiler: activations carry byte offsets into one arena
 * sized for max_num_tokens tokens; weights and constants carry slots in the
 * weight table, whose bytes are views into the mmapped engine file. */
#ifndef LLMRT_COMPILER_PLAN_H
#define LLMRT_COMPILER_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"

typedef struct llmrt_plan_weight {
    char *name;           /* owned: checkpoint name, or "const.<label>" */
    llmrt_dtype dtype;
    int32_t ndim;
    int64_t dims[LLMRT_GRAPH_MAX_DIMS];
    const void *data;     /* view (engine mmap) or owned_data */
    size_t nbytes;
    void *owned_data;     /* non-NULL when the plan owns the bytes (at build time) */
    uint64_t file_offset; /* offset in the engine's weights section */
} llmrt_plan_weight;

typedef struct llmrt_plan {
    llmrt_graph *graph;   /* owned */
    llmrt_plan_weight *weights;
    int32_t num_weights;
    size_t arena_bytes;        /* activation arena, planned for max_num_tokens */
    size_t naive_arena_bytes;  /* sum of all activation buffers (no reuse), for inspect */
    int32_t max_num_tokens;    /* T bound per step (also bounds L) */
    int32_t max_batch;         /* sequences per step */
    int32_t max_seq_len;       /* tokens per sequence (KV cache length) */
    /* KV cache geometry (every attention layer alike) */
    int32_t num_kv_layers;
    int32_t kv_heads;
    int32_t head_dim;
    /* > 0: every attention layer sees at most this many keys (a sliding
     * window), so the blocks before a sequence's window may be freed: -1 in
     * its block table, never read */
    int32_t kv_window;
    /* What the KV cache stores: INVALID = the activation dtype; FP8_E4M3
     * or I8 = one-byte codes with an f32 scale per (token, kv head), see
     * backends/kv_cache8.h */
    llmrt_dtype kv_dtype;
    /* bindings */
    llmrt_value input_token_ids;      /* [T] i32 */
    llmrt_value input_positions;      /* [T] i32 */
    llmrt_value input_logits_indices; /* [L] i32 */
    llmrt_value output_logits;        /* [L, vocab] */
    llmrt_value input_token_type_ids; /* [T] i32, encoders only; -1 when absent */
    int32_t vocab_size;
} llmrt_plan;

void llmrt_plan_free(llmrt_plan *plan);
/* Index of the weight named `name`, or -1. */
int32_t llmrt_plan_find_weight(const llmrt_plan *plan, const char *name);
/* Total bytes of weights, and by dtype (bytes_by_dtype[LLMRT_DTYPE_COUNT], may be NULL). */
uint64_t llmrt_plan_weight_bytes(const llmrt_plan *plan, uint64_t *bytes_by_dtype);

#endif
