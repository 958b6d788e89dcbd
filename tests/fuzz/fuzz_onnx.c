/* Fuzz target: an ONNX model image through the whole importer (protobuf-c
 * parse, validation, shape inference, attention matching, lowering). Beyond
 * "no crash", it checks what the importer promises: a failure always comes
 * with a message and leaves nothing allocated to the caller; a success is a
 * graph with no recorded error, logits [L, vocab] marked as output, at least
 * one attention op, and a weight view. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "import/onnx_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_log_set_level(LLMRT_LOG_ERROR);
    llmrt_error_clear();
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    if (!g) return 0;
    llmrt_model_config config;
    memset(&config, 0, sizeof config);
    llmrt_onnx_file *file = NULL;
    llmrt_checkpoint *weights = NULL;
    llmrt_onnx_report report;
    llmrt_status s = llmrt_onnx_import_memory(data, size, "fuzz.onnx", &config, g, &file, &weights, &report);
    if (s != LLMRT_OK) {
        if (file || weights || llmrt_last_error()[0] == '\0') abort();
        llmrt_graph_free(g);
        return 0;
    }
    if (!file || !weights || llmrt_graph_status(g) != LLMRT_OK || report.attention_sites < 1) abort();
    int outputs = 0, attention = 0;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->is_output) {
            outputs++;
            if (n->ndim != 2 || n->dims[0] != LLMRT_DIM_LOGITS || n->dims[1] < 1) abort();
        }
        attention += n->op == LLMRT_OP_ATTENTION;
    }
    if (outputs != 1 || attention != report.attention_sites) abort();
    if (config.num_layers != attention || config.head_dim < 1 || config.num_heads < config.num_kv_heads) abort();
    llmrt_checkpoint_close(weights);
    llmrt_onnx_close(file);
    llmrt_graph_free(g);
    return 0;
}
