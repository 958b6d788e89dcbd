/* Shared state of the ONNX importer's stages (onnx_import.c drives them):
 *   onnx_shapes.c     shape inference and constant folding over every node
 *   onnx_attention.c  recognition of the attention subgraph (and its RoPE)
 *   onnx_ops.c        lowering of the needed nodes onto the graph API
 *
 * Values are ONNX tensors by name, indexed 0..num_values. A value's dims are
 * concrete, or one of the symbols below: the batch is fixed at 1 (the packed
 * step has no batch axis), the sequence is the step's tokens T, and with a KV
 * cache the past P and total P+T lengths appear. Shape tensors are folded
 * with these symbols as elements. */
#ifndef LLMRT_IMPORT_ONNX_INTERNAL_H
#define LLMRT_IMPORT_ONNX_INTERNAL_H

#include <stdint.h>

#include "graph/graph.h"
#include "import/onnx_import.h"
#include "import/onnx_model.h"

#define SYM_BASE (INT64_MIN / 2)
#define SYM_T (SYM_BASE + 1)     /* tokens of the step (the sequence axis) */
#define SYM_P (SYM_BASE + 2)     /* past length */
#define SYM_TOTAL (SYM_BASE + 3) /* P + T */
#define SYM_ANY (SYM_BASE + 4)   /* some length not tracked */
static inline int sym_is(int64_t x) { return x >= SYM_BASE && x <= SYM_BASE + 16; }

enum { FOLD_MAX_ELEMENTS = 1 << 16 };

typedef struct ival {
    const char *name;
    int32_t producer;       /* node index, -1 for graph inputs and initializers */
    int32_t uses;           /* how many node inputs (and graph outputs) read it */
    llmrt_dtype dtype;      /* INVALID when not known */
    int32_t ndim;           /* -1 when not known */
    int64_t dims[ONNX_MAX_DIMS];
    /* known contents: small folded tensors (ints as int64, floats as f32) or
     * an initializer viewed in place */
    const onnx_tensor *init;
    int64_t *ints;          /* owned */
    float *floats;          /* owned */
    /* lowering */
    int32_t needed;
    llmrt_value gv;         /* the graph value once lowered (LLMRT_NO_VALUE before) */
    int32_t attention;      /* index+1 of the attention site this value is the output of */
} ival;

typedef struct attention_site {
    int32_t output;         /* value: [1, T, heads*D] after the heads merge */
    int32_t xq, xk, xv;     /* values: the projections [1, T, heads*D], [1, T, kv_heads*D] */
    int32_t softmax_node;
    int32_t num_heads, num_kv_heads, head_dim;
    int32_t rope;           /* 1: rotate_half RoPE found on q and k */
    int32_t inv_freq;       /* value of the inverse frequencies, or -1 */
    int32_t past_k, past_v; /* graph inputs of the cache, or -1 */
    float scale;
} attention_site;

typedef struct onnx_ctx {
    const onnx_model *model;
    const char *source;
    int32_t num_values;
    ival *values;
    int32_t *node_out;      /* first output value of node i (outputs are consecutive) */
    int32_t *node_in;       /* value of each node input, -1 for an omitted one */
    int32_t *node_in_start; /* node i's inputs are node_in[node_in_start[i] ...] */
    int32_t num_sites;
    attention_site *sites;
    llmrt_graph *g;
    llmrt_value token_ids, positions, logits_indices;
    llmrt_model_config *config;
    llmrt_onnx_report *report;
} onnx_ctx;

/* value of input k of node n, or -1 */
static inline int32_t node_input(const onnx_ctx *c, int32_t n, int32_t k) {
    return k < c->model->nodes[n].num_inputs ? c->node_in[c->node_in_start[n] + k] : -1;
}
static inline int32_t node_output(const onnx_ctx *c, int32_t n, int32_t k) { return c->node_out[n] + k; }
/* the node producing value v if its op type is `op`, else -1 */
int32_t onnx_producer_is(const onnx_ctx *c, int32_t v, const char *op);
int32_t onnx_find_value(const onnx_ctx *c, const char *name);
/* 1 for the op types the importer knows (lowers, folds or replaces). */
int onnx_op_known(const char *op);
/* "node 'name' (Op)" for messages */
const char *onnx_node_label(const onnx_ctx *c, int32_t n, char *buf, size_t size);

/* Known element i of v as a number (folded ints, floats or an initializer). */
int onnx_value_known(const ival *v);
int64_t onnx_value_int(const ival *v, int64_t i);
double onnx_value_float(const ival *v, int64_t i);
int64_t onnx_value_numel(const ival *v); /* -1 with a symbolic or unknown dim */
/* 1 when both shapes are known and equal (symbols included). */
int onnx_same_shape(const ival *a, const ival *b);
/* 1 and *out when v is a known scalar (or one-element tensor). */
int onnx_scalar(const ival *v, double *out);

llmrt_status onnx_infer_shapes(onnx_ctx *c);
llmrt_status onnx_find_attention(onnx_ctx *c);
llmrt_status onnx_lower(onnx_ctx *c);

#endif
