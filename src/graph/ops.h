/* The op set of llmrt graphs and plans. Functional ops are what layers write;
 * fused ops are produced only by compiler passes, never by layers. Every
 * backend implements every op in this list (a plan may contain any of them). */
#ifndef LLMRT_GRAPH_OPS_H
#define LLMRT_GRAPH_OPS_H

typedef enum llmrt_op {
    /* leaves */
    LLMRT_OP_INPUT,
    LLMRT_OP_WEIGHT,
    LLMRT_OP_CONSTANT,
    /* functional ops */
    LLMRT_OP_MATMUL,   /* iattr[0] = transpose_b */
    LLMRT_OP_ADD,
    LLMRT_OP_SUB,
    LLMRT_OP_MUL,
    LLMRT_OP_DIV,
    LLMRT_OP_POW,      /* fattr[0] = exponent */
    LLMRT_OP_NEG,
    LLMRT_OP_EXP,
    LLMRT_OP_SQRT,
    LLMRT_OP_RSQRT,
    LLMRT_OP_TANH,
    LLMRT_OP_ERF,
    LLMRT_OP_SIGMOID,
    LLMRT_OP_RELU,
    LLMRT_OP_GELU,
    LLMRT_OP_SUM,      /* last axis, keepdim */
    LLMRT_OP_MEAN,     /* last axis, keepdim */
    LLMRT_OP_SOFTMAX,  /* last axis */
    LLMRT_OP_GATHER,   /* inputs: table [rows, D], indices [n]; iattr[0] = row offset added to each index */
    LLMRT_OP_CONCAT,   /* iattr[0] = axis */
    LLMRT_OP_SLICE,    /* iattr[0] = axis, [1] = start, [2] = length */
    LLMRT_OP_VIEW,     /* shares its input's buffer */
    LLMRT_OP_PERMUTE,  /* iattr[0..ndim) = perm */
    LLMRT_OP_CAST,
    /* plugin ops */
    LLMRT_OP_ATTENTION, /* inputs q, k, v[, inv_freq]; iattr: layer, heads, kv_heads, head_dim,
                           rotary_dim, rope_neox, [6] non_causal, [7] sliding_window; fattr[0] = scale,
                           [1] logit_softcap, [2] alibi_max_bias */
    LLMRT_OP_MOE,       /* inputs x, router_logits, w_gate, w_up, w_down; iattr: num_experts, top_k */
    LLMRT_OP_PLUGIN,    /* a registered plugin (llmrt/plugin.h): name = plugin name, iattr[0] = its
                           version, plugin_params = its parameter blob */
    /* collective ops (tensor parallelism): the backend calls its communicator */
    LLMRT_OP_ALL_REDUCE,  /* Σ over the iattr[0] ranks, same shape */
    LLMRT_OP_ALL_GATHER,  /* [...] → [ranks, ...]: rank r's tensor at r; iattr[0] = ranks */
    /* pipeline parallelism: iattr[0] = peer rank, iattr[1] = ranks */
    LLMRT_OP_SEND,        /* x to the peer; the output is x (orders what follows) */
    LLMRT_OP_RECV,        /* a tensor of the node's shape from the peer; input: a value it comes after */
    /* fused ops (compiler output) */
    LLMRT_OP_LINEAR,      /* x · Wᵀ (+ bias): inputs x, W[, bias] */
    LLMRT_OP_RMSNORM,     /* inputs x, weight; fattr[0] = eps, [1] = weight offset (x̂·(w + offset)) */
    LLMRT_OP_LAYERNORM,   /* inputs x, weight[, bias]; fattr[0] = eps */
    LLMRT_OP_SILU,        /* x · sigmoid(x) */
    LLMRT_OP_SILU_MUL,    /* silu(gate) · up: inputs gate, up */
    LLMRT_OP_GELU_TANH,   /* 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) */
    /* calibration plans only (never in an engine file) */
    LLMRT_OP_OBSERVE,     /* input x [..., K] → f32 [K]: max |x[:, k]| over every step since the backend
                             was created, in a buffer the backend owns (not the arena); read back with
                             the backend's read_observer */
    LLMRT_OP_COUNT
} llmrt_op;

/* The attention node's iattr slot of its non_causal flag ([7] holds the
 * sliding window). */
enum { LLMRT_ATTENTION_NON_CAUSAL = 6 };

/* "matmul", "add", ... ; NULL for an out-of-range value. */
const char *llmrt_op_name(llmrt_op op);
/* The op named `name`, or LLMRT_OP_COUNT. */
llmrt_op llmrt_op_from_name(const char *name);
/* 1 for the elementwise unary ops (one input, same shape). */
int llmrt_op_is_unary(llmrt_op op);
/* 1 for the elementwise binary ops with broadcasting. */
int llmrt_op_is_binary(llmrt_op op);

#endif
