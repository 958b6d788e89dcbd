/* ONNX import: a decoder-only transformer exported by torch.onnx.export
 * (opset 13–17, with or without past key/value inputs and outputs) → an
 * llmrt network graph and a checkpoint view of its initializers.
 *
 * The graph keeps the ONNX graph's primitive ops (MatMul, Pow, ReduceMean,
 * Sigmoid, ...) so that the compiler's fusion passes find RMSNorm, SwiGLU
 * and the linears in it as they do in a native model. The attention is the
 * exception: the packed step (tokens of many sequences, no batch axis, the
 * KV cache paged) cannot express QKᵀ·mask·softmax·V per sequence, so the
 * importer recognises that subgraph in the ONNX graph itself (QKᵀ, scale,
 * additive or Where mask, softmax, ·V, with RoPE on q and k and the past
 * K/V concatenation when present) and emits the paged-attention op in its
 * place. The mask, position and RoPE-table subgraphs then have no reader
 * and are not lowered; the present K/V outputs are the paged cache's job. */
#ifndef LLMRT_IMPORT_ONNX_IMPORT_H
#define LLMRT_IMPORT_ONNX_IMPORT_H

#include <stdint.h>

#include "graph/graph.h"
#include "import/safetensors.h"
#include "models/model_config.h"

/* What the importer found, for `llmrt build`'s report and the model spec. */
typedef struct llmrt_onnx_report {
    int64_t opset;
    int32_t onnx_nodes;        /* nodes in the file */
    int32_t lowered_nodes;     /* ONNX nodes turned into graph ops */
    int32_t folded_nodes;      /* ONNX nodes evaluated at import (shapes, constants) */
    int32_t skipped_nodes;     /* nodes nothing needed (mask, RoPE tables, present K/V) */
    int32_t attention_sites;   /* attention subgraphs replaced by the paged-attention op */
    int32_t rope_sites;        /* of them, with RoPE on q and k */
    int32_t kv_cache_inputs;   /* 1: the graph took past key/values */
    int32_t graph_nodes;       /* graph ops after import (before the compiler's passes) */
} llmrt_onnx_report;

/* Parses `path` and builds the network in `g` (inputs token_ids, positions,
 * logits_indices → logits [L, vocab] marked as output). `config` is filled
 * with what the graph says (vocab, hidden, layers, heads, head_dim, RoPE);
 * fields it holds already (from a config.json: eos ids, rope_theta, eps) are
 * kept where the graph does not say. *weights views the model's
 * initializers; free it with llmrt_checkpoint_close, then the model with
 * llmrt_onnx_close. */
typedef struct llmrt_onnx_file llmrt_onnx_file;
llmrt_status llmrt_onnx_import(const char *path, llmrt_model_config *config, llmrt_graph *g,
                               llmrt_onnx_file **file, llmrt_checkpoint **weights, llmrt_onnx_report *report);
/* The same from an image in memory (the fuzz target). */
llmrt_status llmrt_onnx_import_memory(const uint8_t *data, size_t size, const char *source,
                                      llmrt_model_config *config, llmrt_graph *g, llmrt_onnx_file **file,
                                      llmrt_checkpoint **weights, llmrt_onnx_report *report);
void llmrt_onnx_close(llmrt_onnx_file *file);

#endif
