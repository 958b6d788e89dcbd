/* Weight-only quantization at bind time (quantize.c). */
#ifndef LLMRT_COMPILER_QUANTIZE_H
#define LLMRT_COMPILER_QUANTIZE_H

#include "graph/graph.h"

/* Quantizes the f32 matrix `values` [N, K] of quantized weight node `w`
 * (dtype, group size and scheme from the node) into `blob`
 * (llmrt_node_bytes(w) bytes), rows in parallel. */
llmrt_status llmrt_quantize_matrix(const llmrt_node *w, const float *values, void *blob);

#endif
