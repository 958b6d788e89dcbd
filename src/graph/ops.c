#include "graph/ops.h"

#include <string.h>

static const char *const op_names[LLMRT_OP_COUNT] = {
    [LLMRT_OP_INPUT] = "input",       [LLMRT_OP_WEIGHT] = "weight",
    [LLMRT_OP_CONSTANT] = "constant", [LLMRT_OP_MATMUL] = "matmul",
    [LLMRT_OP_ADD] = "add",           [LLMRT_OP_SUB] = "sub",
    [LLMRT_OP_MUL] = "mul",           [LLMRT_OP_DIV] = "div",
    [LLMRT_OP_POW] = "pow",           [LLMRT_OP_NEG] = "neg",
    [LLMRT_OP_EXP] = "exp",           [LLMRT_OP_SQRT] = "sqrt",
    [LLMRT_OP_RSQRT] = "rsqrt",       [LLMRT_OP_TANH] = "tanh",
    [LLMRT_OP_ERF] = "erf",           [LLMRT_OP_SIGMOID] = "sigmoid",
    [LLMRT_OP_RELU] = "relu",         [LLMRT_OP_GELU] = "gelu",
    [LLMRT_OP_SUM] = "sum",           [LLMRT_OP_MEAN] = "mean",
    [LLMRT_OP_SOFTMAX] = "softmax",   [LLMRT_OP_GATHER] = "gather",
    [LLMRT_OP_CONCAT] = "concat",     [LLMRT_OP_SLICE] = "slice",
    [LLMRT_OP_VIEW] = "view",         [LLMRT_OP_PERMUTE] = "permute",
    [LLMRT_OP_CAST] = "cast",         [LLMRT_OP_ATTENTION] = "attention",
    [LLMRT_OP_MOE] = "moe",
    [LLMRT_OP_PLUGIN] = "plugin",
    [LLMRT_OP_LINEAR] = "linear",     [LLMRT_OP_RMSNORM] = "rmsnorm",
    [LLMRT_OP_LAYERNORM] = "layernorm", [LLMRT_OP_SILU] = "silu",
    [LLMRT_OP_SILU_MUL] = "silu_mul", [LLMRT_OP_GELU_TANH] = "gelu_tanh",
    [LLMRT_OP_ALL_REDUCE] = "all_reduce", [LLMRT_OP_ALL_GATHER] = "all_gather",
    [LLMRT_OP_SEND] = "send",         [LLMRT_OP_RECV] = "recv",
    [LLMRT_OP_OBSERVE] = "observe",
};

const char *llmrt_op_name(llmrt_op op) {
    if ((unsigned)op >= LLMRT_OP_COUNT) return NULL;
    return op_names[op];
}

llmrt_op llmrt_op_from_name(const char *name) {
    for (int i = 0; i < LLMRT_OP_COUNT; i++)
        if (op_names[i] && strcmp(op_names[i], name) == 0) return (llmrt_op)i;
    return LLMRT_OP_COUNT;
}

int llmrt_op_is_unary(llmrt_op op) {
    switch (op) {
    case LLMRT_OP_POW: case LLMRT_OP_NEG: case LLMRT_OP_EXP: case LLMRT_OP_SQRT:
    case LLMRT_OP_RSQRT: case LLMRT_OP_TANH: case LLMRT_OP_ERF: case LLMRT_OP_SIGMOID:
    case LLMRT_OP_RELU: case LLMRT_OP_GELU: case LLMRT_OP_SILU: case LLMRT_OP_GELU_TANH:
        return 1;
    default: return 0;
    }
}

int llmrt_op_is_binary(llmrt_op op) {
    return op == LLMRT_OP_ADD || op == LLMRT_OP_SUB || op == LLMRT_OP_MUL || op == LLMRT_OP_DIV;
}
