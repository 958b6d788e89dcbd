/* The compiler's pass framework. A pass rewrites or annotates the graph in
 * place; passes run in a fixed pipeline (compiler.c) and each can be turned
 * off by name for tests and debugging (LLMRT_DISABLE_PASSES=fuse_rmsnorm,...),
 * so every fusion can be checked against the unfused plan. */
#ifndef LLMRT_COMPILER_PASSES_H
#define LLMRT_COMPILER_PASSES_H

#include <stdint.h>

#include "compiler/plan.h"
#include "graph/graph.h"
#include "import/quant_checkpoint.h"

typedef struct llmrt_pass_context {
    llmrt_plan *plan;        /* being built; weights may not be bound yet */
    const char *target;      /* backend name: "cpu", "cuda" */
    /* quantize_weights: what to store the linear layers' weights in */
    llmrt_dtype quant_dtype;                /* INVALID: leave them */
    int64_t quant_group_size;               /* 0: per channel */
    int32_t quant_asymmetric;
    const llmrt_checkpoint *checkpoint;     /* with prequantized: where the packed weights are */
    const llmrt_quant_config *prequantized; /* an AWQ / GPTQ checkpoint's settings, or NULL */
    int32_t quant_per_tensor;               /* fp8 / w8a8: one weight scale per matrix */
    int32_t quant_static_input;             /* fp8: input scales from `calibration` */
    const struct llmrt_calibration *calibration; /* --calib statistics, or NULL */
    int32_t observe;         /* observe_linear_inputs: 1 in a calibration compile */
    int32_t rewrites;        /* set by the pass: how many rewrites it made */
} llmrt_pass_context;

typedef struct llmrt_pass {
    const char *name;
    llmrt_status (*run)(llmrt_graph *g, llmrt_pass_context *ctx);
} llmrt_pass;

/* Use counts of every value (how many node inputs name it; outputs count 1). */
int32_t *llmrt_graph_use_counts(const llmrt_graph *g);

/* Removes nodes no output depends on and renumbers values (keeping order). */
llmrt_status llmrt_pass_dead_code(llmrt_graph *g, llmrt_pass_context *ctx);
/* Conv1D-layout weights ([in, out], matmul without transpose) become
 * nn.Linear layout at bind time, so every backend sees one layout. */
llmrt_status llmrt_pass_weight_layout(llmrt_graph *g, llmrt_pass_context *ctx);
/* Pattern-matching fusions (fusion.c). */
llmrt_status llmrt_pass_fuse_rmsnorm(llmrt_graph *g, llmrt_pass_context *ctx);
llmrt_status llmrt_pass_fuse_layernorm(llmrt_graph *g, llmrt_pass_context *ctx);
llmrt_status llmrt_pass_fuse_activations(llmrt_graph *g, llmrt_pass_context *ctx);
llmrt_status llmrt_pass_fuse_silu_mul(llmrt_graph *g, llmrt_pass_context *ctx);
llmrt_status llmrt_pass_fuse_linear(llmrt_graph *g, llmrt_pass_context *ctx);
/* Weight-only quantization (quantize.c): the weights of LINEARs (but the
 * LM head's) become int8-wo / int4-wo; binding fills them. */
llmrt_status llmrt_pass_quantize_weights(llmrt_graph *g, llmrt_pass_context *ctx);
/* Calibration compiles (observe.c): an OBSERVE node on the input of every
 * LINEAR but the plan's output, just before its first reader. */
llmrt_status llmrt_pass_observe_linear_inputs(llmrt_graph *g, llmrt_pass_context *ctx);
/* Liveness-based arena planning (memory_planner.c). */
llmrt_status llmrt_pass_plan_memory(llmrt_graph *g, llmrt_pass_context *ctx);

/* The pipeline in order. */
extern const llmrt_pass llmrt_default_passes[];
extern const int32_t llmrt_default_pass_count;

/* Runs the pipeline, skipping passes named in `disabled` (comma-separated,
 * may be NULL). */
llmrt_status llmrt_run_passes(llmrt_graph *g, llmrt_pass_context *ctx, const char *disabled);

#endif
