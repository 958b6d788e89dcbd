/* Weight-only quantization at bind time (quantize.c). */
#ifndef LLMRT_COMPILER_QUANTIZE_H
#define LLMRT_COMPILER_QUANTIZE_H

#include "graph/graph.h"
#include "import/quant_checkpoint.h"

/* Quantizes the f32 matrix `values` [N, K] of quantized weight node `w`
 * (dtype, group size and scheme from the node) into `blob`
 * (llmrt_node_bytes(w) bytes), rows in parallel. */
llmrt_status llmrt_quantize_matrix(const llmrt_node *w, const float *values, void *blob);

/* The group size a weight-only matrix `w` ([N, K], unsharded) is quantized
 * with: the checkpoint's for a packed tensor of a prequantized build, else
 * `requested`; K (per channel) when that is 0 or K or more. */
int64_t llmrt_quant_full_group(const llmrt_quant_config *prequantized, const llmrt_checkpoint *checkpoint,
                               int64_t requested, const llmrt_node *w);

#endif
