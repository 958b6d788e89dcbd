/* The built-in attention op, registered through the plugin interface like
 * any user op. Its enqueue functions are the backends' existing attention
 * paths (paged KV cache, RoPE, split-K decode), reached through
 * backend_context; resolving the plugin happens once per backend start, so
 * a step pays one indirect call per attention node and nothing else. */
#include <pthread.h>

#include "backends/backend.h"
#include "plugins/plugin_registry.h"

/* q: [T, heads*D], k, v: [T, kv_heads*D][, inv_freq] → [T, heads*D]; the
 * head geometry rides in the node's attributes (graph.h), not in params. */
static llmrt_status attention_infer_shape(const void *params, size_t params_size, const llmrt_plugin_shape *inputs,
                                          int32_t num_inputs, llmrt_plugin_shape *output) {
    if (num_inputs < 3 || num_inputs > 4 || inputs[0].ndim != 2) return LLMRT_ERR_INVALID_ARGUMENT;
    *output = inputs[0];
    return LLMRT_OK;
}

static const llmrt_plugin attention_plugin = {
    .abi_version = LLMRT_PLUGIN_ABI_VERSION,
    .name = "attention",
    .version = 1,
    .infer_shape = attention_infer_shape,
    .enqueue_cpu = llmrt_cpu_attention_enqueue,
#ifdef LLMRT_HAVE_CUDA
    .enqueue_cuda = llmrt_cuda_attention_enqueue,
#endif
};

static pthread_once_t registered = PTHREAD_ONCE_INIT;
static llmrt_status register_status;

static void register_builtins(void) { register_status = llmrt_plugin_register_builtin(&attention_plugin); }

llmrt_status llmrt_builtin_attention_plugin(const llmrt_plugin **out) {
    pthread_once(&registered, register_builtins);
    if (register_status != LLMRT_OK) return llmrt_error(register_status, "registering the built-in attention plugin");
    return llmrt_plugin_require(attention_plugin.name, attention_plugin.version, out);
}
