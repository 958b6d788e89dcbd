/* ONNX model reader: a ModelProto (protobuf-c, generated from onnx.proto)
 * checked and flattened into plain structs the importer walks. Everything a
 * later stage relies on is validated here: the opset (13–17), every tensor's
 * type, shape and byte count, every node input defined exactly once (graph
 * input, initializer or an earlier node's output), no cycles. Nodes are
 * returned in topological order. Errors name the node (op type and name),
 * tensor or field at fault. */
#ifndef LLMRT_IMPORT_ONNX_MODEL_H
#define LLMRT_IMPORT_ONNX_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

enum { ONNX_MAX_DIMS = 8 };

/* A dim of a graph input or output: >= 0, or symbolic (ONNX_DIM_SYMBOL,
 * with its dim_param name kept). */
#define ONNX_DIM_SYMBOL ((int64_t)-1)

typedef struct onnx_tensor {
    const char *name;
    llmrt_dtype dtype;
    int32_t ndim;
    int64_t dims[ONNX_MAX_DIMS];
    const uint8_t *data; /* little-endian elements, numel * dtype size bytes; owned by the model */
    size_t nbytes;
} onnx_tensor;

typedef struct onnx_value_info {
    const char *name;
    llmrt_dtype dtype;
    int32_t ndim;       /* -1: no shape given */
    int64_t dims[ONNX_MAX_DIMS];
    const char *dim_names[ONNX_MAX_DIMS]; /* dim_param of symbolic dims, else NULL */
} onnx_value_info;

typedef enum onnx_attr_kind { ONNX_ATTR_NONE, ONNX_ATTR_INT, ONNX_ATTR_FLOAT, ONNX_ATTR_INTS,
                              ONNX_ATTR_TENSOR, ONNX_ATTR_STRING, ONNX_ATTR_OTHER } onnx_attr_kind;

typedef struct onnx_attr {
    const char *name;
    onnx_attr_kind kind;
    int64_t i;
    float f;
    int32_t num_ints;
    const int64_t *ints;
    onnx_tensor tensor; /* ONNX_ATTR_TENSOR (the Constant op's value) */
} onnx_attr;

typedef struct onnx_node {
    const char *op_type;
    const char *name;   /* "" when the file gives none */
    int32_t num_inputs, num_outputs, num_attrs;
    const char **inputs;  /* "" for an omitted optional input */
    const char **outputs;
    onnx_attr *attrs;
} onnx_node;

typedef struct onnx_model {
    int64_t opset;        /* of the default domain */
    int32_t num_nodes;
    onnx_node *nodes;     /* topological order */
    int32_t num_initializers;
    onnx_tensor *initializers;
    int32_t num_inputs, num_outputs;
    onnx_value_info *inputs;  /* graph inputs that are not initializers */
    onnx_value_info *outputs;
    void *proto;          /* the unpacked ModelProto (owns the strings) */
    void *owned;          /* decoded typed-field tensors */
} onnx_model;

/* Parses and validates an ONNX model image. `source` names it in messages.
 * Tensors kept in files beside the model (external data: location, offset,
 * length) are mapped from `base_dir` (the model's folder; NULL refuses
 * them); a location must name a file inside that folder, and the bytes must
 * lie within it. */
llmrt_status onnx_model_parse(const uint8_t *data, size_t size, const char *source, const char *base_dir,
                              onnx_model **out);
void onnx_model_free(onnx_model *model);

const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name);
int64_t onnx_attr_int(const onnx_node *node, const char *name, int64_t fallback);
float onnx_attr_float(const onnx_node *node, const char *name, float fallback);
const onnx_tensor *onnx_model_initializer(const onnx_model *model, const char *name);
int64_t onnx_tensor_numel(const onnx_tensor *t);
/* FNV-1a of a value name, for the name tables of the reader and importer. */
uint64_t onnx_name_hash(const char *name);

#endif
