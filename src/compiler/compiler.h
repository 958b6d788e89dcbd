/* The builder: model spec + weights → executable plan. */
#ifndef LLMRT_COMPILER_COMPILER_H
#define LLMRT_COMPILER_COMPILER_H

#include <stdint.h>

#include "compiler/plan.h"
#include "core/log.h"
#include "import/quant_checkpoint.h"
#include "import/safetensors.h"
#include "models/model_config.h"

typedef struct llmrt_compile_options {
    const char *target;          /* backend name: "cpu" or "cuda" */
    llmrt_dtype act_dtype;       /* activations */
    llmrt_dtype weight_dtype;    /* weight matrices */
    int32_t max_num_tokens;      /* tokens per step */
    int32_t max_batch;           /* sequences per step */
    int32_t max_seq_len;         /* tokens per sequence */
    const char *disabled_passes; /* comma-separated pass names, or NULL */
    int32_t random_weights;      /* 1: seeded random weights instead of a checkpoint */
    uint64_t seed;
    /* weight-only quantization of the linear layers but the LM head */
    llmrt_dtype quant_dtype;     /* INT8_WO / INT4_WO / FP8_W8A8 / INT8_W8A8; INVALID: none */
    int64_t quant_group_size;    /* inputs per scale; 0: per channel */
    int32_t quant_asymmetric;    /* 1: zero points from each group's range; 0: symmetric */
    const llmrt_quant_config *prequantized; /* the checkpoint's AWQ / GPTQ settings, or NULL */
    /* 8-bit weights and activations (quant_dtype FP8_W8A8 / INT8_W8A8) */
    int32_t quant_per_tensor;    /* fp8: one weight scale per matrix; 0: per output channel */
    int32_t quant_static_input;  /* fp8: static activation scales from `calibration`; 0: per token */
    /* tensor parallelism: the plan of rank tp_rank of tp_size (0 or 1: one rank) */
    int32_t tp_rank, tp_size;
    /* pipeline parallelism: the plan of stage pp_stage of pp_stages (0 or 1: one stage) */
    int32_t pp_stage, pp_stages;
    /* activation statistics from --calib (calibration.h), or NULL: static
     * activation scales and SmoothQuant read them; not owned */
    const struct llmrt_calibration *calibration;
    /* SmoothQuant (smooth.h): 1 migrates activation outliers into the
     * weights with strength smooth_alpha before they are stored; needs
     * calibration */
    int32_t smooth;
    float smooth_alpha;
    /* 1: a calibration plan, an OBSERVE node on every LINEAR's input
     * (observe.c); never written to an engine */
    int32_t observe;
    /* KV cache storage: INVALID = the activation dtype, FP8_E4M3 or I8 */
    llmrt_dtype kv_dtype;
} llmrt_compile_options;

/* Builds the network for `config`, runs the compiler passes and binds the
 * weights from `checkpoint` (NULL with random_weights), converting them to
 * the storage dtypes. The plan owns its weight bytes. */
llmrt_status llmrt_compile(const llmrt_model_config *config, const llmrt_checkpoint *checkpoint,
                           const llmrt_compile_options *options, llmrt_plan **out);

/* The same for a network built elsewhere (the ONNX importer): takes `graph`
 * (freed on failure too) and binds its weights by name from `checkpoint`. */
llmrt_status llmrt_compile_graph(llmrt_graph *graph, const llmrt_checkpoint *checkpoint,
                                 const llmrt_compile_options *options, llmrt_plan **out);

/* Converts the checkpoint tensor a weight node names into `dst` (the node's
 * dtype and layout, llmrt_node_bytes of it) exactly as llmrt_compile binds
 * it; refit uses it on the nodes of a loaded plan. progress may be NULL. */
llmrt_status llmrt_compile_bind_weight(const llmrt_model_config *config, const llmrt_checkpoint *checkpoint,
                                       const llmrt_node *weight, void *dst, llmrt_progress *progress);

/* Fills plan bindings (inputs, output, vocab, KV geometry) from its graph. */
llmrt_status llmrt_plan_resolve_bindings(llmrt_plan *plan);



/* Re-derives every node's shape from its inputs with the same rules the
 * graph API uses and checks the recorded one, its dtype, and the arena and
 * weight annotations, so a plan read from a file cannot make a kernel read
 * or write outside its buffers. */
llmrt_status llmrt_plan_verify(const llmrt_plan *plan);
/* Rebuilds functional node n on `shadow` through the graph API (n's inputs
 * index shadow's nodes): the value it appends, whose shape and dtype are
 * what the graph rules give on shadow, or LLMRT_NO_VALUE with shadow's
 * status saying why. Fused, leaf and calibration ops are not replayed. */
llmrt_value llmrt_plan_replay_node(llmrt_graph *shadow, const llmrt_node *n);
#endif
