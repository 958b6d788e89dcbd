/* Memory planning: every activation gets a byte offset in one arena sized
 * for the engine's max_num_tokens. Views share their source's buffer. A
 * buffer lives from the node that writes it to the last node that reads it
 * (through any view); buffers are placed greedily, in execution order, at
 * the lowest offset that overlaps no live buffer (first fit over the sorted
 * live set). Step inputs (token ids, positions) are activations too: the
 * executor writes them before the first node runs. */
#include <stdlib.h>
#include <string.h>

#include "compiler/passes.h"

enum { ARENA_ALIGNMENT = 256 }; /* GPU-friendly; also a multiple of any vector width */

typedef struct live_buffer {
    int64_t offset, size;
    int32_t last_use;
} live_buffer;

/* An OBSERVE node's statistics outlive the step: the backend keeps them. */
static int is_activation(const llmrt_node *n) {
    return n->op != LLMRT_OP_WEIGHT && n->op != LLMRT_OP_CONSTANT && n->op != LLMRT_OP_OBSERVE;
}

static int compare_offset(const void *a, const void *b) {
    const live_buffer *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

llmrt_status llmrt_pass_plan_memory(llmrt_graph *g, llmrt_pass_context *ctx) {
    llmrt_plan *plan = ctx->plan;
    int32_t n = g->num_nodes;
    int64_t tokens = plan->max_num_tokens, logits = plan->max_num_tokens;
    int32_t *last_use = malloc(((size_t)n + 1) * sizeof *last_use);
    live_buffer *live = malloc(((size_t)n + 1) * sizeof *live);
    if (!last_use || !live) {
        free(last_use);
        free(live);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "memory planner: out of memory");
    }
    /* Resolve views to their root buffer. */
    for (int32_t i = 0; i < n; i++) {
        llmrt_node *node = &g->nodes[i];
        node->alias_of = LLMRT_NO_VALUE;
        node->arena_offset = -1;
        if (node->op == LLMRT_OP_VIEW) {
            llmrt_value src = node->inputs[0];
            const llmrt_node *s = &g->nodes[src];
            node->alias_of = s->alias_of >= 0 ? s->alias_of : src;
        }
        /* Step inputs stay live all step: kernels such as attention read the
         * positions buffer without naming it as an input. */
        last_use[i] = node->op == LLMRT_OP_INPUT ? n : i;
    }
    for (int32_t i = 0; i < n; i++) {
        const llmrt_node *node = &g->nodes[i];
        for (int32_t j = 0; j < node->num_inputs; j++) {
            llmrt_value in = node->inputs[j];
            if (in < 0) continue;
            llmrt_value root = g->nodes[in].alias_of >= 0 ? g->nodes[in].alias_of : in;
            if (last_use[root] < i) last_use[root] = i;
        }
        if (node->is_output) {
            llmrt_value root = node->alias_of >= 0 ? node->alias_of : i;
            last_use[root] = n; /* read by the executor after the last node */
        }
    }

    int32_t num_live = 0;
    int64_t arena = 0, naive = 0;
    for (int32_t i = 0; i < n; i++) {
        llmrt_node *node = &g->nodes[i];
        if (!is_activation(node) || node->alias_of >= 0) continue;
        int64_t size = (int64_t)llmrt_node_bytes(node, tokens, logits);
        size = (size + ARENA_ALIGNMENT - 1) / ARENA_ALIGNMENT * ARENA_ALIGNMENT;
        if (size == 0) size = ARENA_ALIGNMENT;
        naive += size;
        /* Free buffers whose last reader ran before this node. Inputs of this
         * node stay live until it has run, so outputs never overlap inputs. */
        int32_t kept = 0;
        for (int32_t k = 0; k < num_live; k++)
            if (live[k].last_use >= i) live[kept++] = live[k];
        num_live = kept;
        qsort(live, (size_t)num_live, sizeof *live, compare_offset);
        int64_t offset = 0;
        for (int32_t k = 0; k < num_live; k++) {
            if (live[k].offset >= offset + size) break;
            int64_t end = live[k].offset + live[k].size;
            if (end > offset) offset = end;
        }
        node->arena_offset = offset;
        live[num_live++] = (live_buffer){offset, size, last_use[i]};
        if (offset + size > arena) arena = offset + size;
        ctx->rewrites++;
    }
    for (int32_t i = 0; i < n; i++) {
        llmrt_node *node = &g->nodes[i];
        if (node->alias_of >= 0) node->arena_offset = g->nodes[node->alias_of].arena_offset;
    }
    plan->arena_bytes = (size_t)arena;
    plan->naive_arena_bytes = (size_t)naive;
    free(last_use);
    free(live);
    return LLMRT_OK;
}
