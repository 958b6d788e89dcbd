/* llmrt — plugins: custom ops in engines.
 *
 * A plugin is one op described by an llmrt_plugin: its name and version,
 * shape inference, workspace size and one enqueue function per backend. A
 * graph places it with llmrt_plugin_op (src/graph/graph.h) with an opaque
 * parameter blob, which the engine stores verbatim along with the plugin's
 * name and version. Loading an engine needs every plugin it names
 * registered at the version it was built with; otherwise the load fails
 * with a message naming the plugin.
 *
 * A plugin library is a shared object exporting one function,
 *     llmrt_status llmrt_plugin_init(llmrt_plugin_register_fn register_plugin);
 * that calls register_plugin once per op it provides. The library needs no
 * llmrt symbols: it links against nothing but this header.
 *
 * Ownership: llmrt copies the llmrt_plugin struct and its name; the
 * functions must stay valid for the life of the process (a library loaded
 * with llmrt_plugin_load is never unloaded). */
#ifndef LLMRT_PLUGIN_H
#define LLMRT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt/dtype.h"
#include "llmrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMRT_PLUGIN_ABI_VERSION 1
#define LLMRT_PLUGIN_MAX_DIMS 6
#define LLMRT_PLUGIN_MAX_INPUTS 6
#define LLMRT_PLUGIN_MAX_PARAMS_BYTES 4096
/* Shape inference sees the step's token count as this symbol (a dim of
 * size T, known only per step), and the number of logits rows as the
 * other; enqueue sees concrete dims. */
#define LLMRT_PLUGIN_DIM_TOKENS ((int64_t)-1)
#define LLMRT_PLUGIN_DIM_LOGITS ((int64_t)-2)

typedef struct llmrt_plugin_shape {
    llmrt_dtype dtype;
    int32_t ndim;
    int64_t dims[LLMRT_PLUGIN_MAX_DIMS];
} llmrt_plugin_shape;

/* A tensor during enqueue: host memory on the CPU, device memory on CUDA;
 * contiguous, row-major. */
typedef struct llmrt_plugin_tensor {
    void *data;
    llmrt_plugin_shape shape;
} llmrt_plugin_tensor;

/* One execution of a plugin node. */
typedef struct llmrt_plugin_call {
    const void *params;                 /* the node's parameter blob, as placed in the graph */
    size_t params_size;
    const llmrt_plugin_tensor *inputs;  /* [num_inputs] */
    int32_t num_inputs;
    llmrt_plugin_tensor output;
    void *workspace;                    /* workspace_size(...) bytes for the engine's largest step, or NULL */
    size_t workspace_size;
    void *backend_context;              /* the backend's own state: for llmrt's built-in plugins only */
} llmrt_plugin_call;

typedef struct llmrt_plugin {
    uint32_t abi_version;               /* LLMRT_PLUGIN_ABI_VERSION */
    const char *name;                   /* unique, with a '.' (names without one are llmrt's own),
                                           e.g. "acme.scaled_residual" */
    uint32_t version;                   /* bumped when params or semantics change */
    /* The output's shape and dtype from the inputs' (dims may be
     * LLMRT_PLUGIN_DIM_TOKENS) and the params; a status other than LLMRT_OK
     * rejects the node. Required. */
    llmrt_status (*infer_shape)(const void *params, size_t params_size, const llmrt_plugin_shape *inputs,
                                int32_t num_inputs, llmrt_plugin_shape *output);
    /* Scratch bytes for a step of max_tokens tokens; NULL: none. Allocated
     * once when the engine loads, never per step. */
    size_t (*workspace_size)(const void *params, size_t params_size, const llmrt_plugin_shape *inputs,
                             int32_t num_inputs, int64_t max_tokens);
    /* Runs on the CPU backend; NULL: the op has no CPU implementation. */
    llmrt_status (*enqueue_cpu)(const llmrt_plugin_call *call);
    /* Launches on the CUDA backend on `cuda_stream` (a cudaStream_t) without
     * synchronising; NULL: no CUDA implementation. */
    llmrt_status (*enqueue_cuda)(const llmrt_plugin_call *call, void *cuda_stream);
} llmrt_plugin;

typedef llmrt_status (*llmrt_plugin_register_fn)(const llmrt_plugin *plugin);
/* The one symbol a plugin library exports. */
typedef llmrt_status (*llmrt_plugin_init_fn)(llmrt_plugin_register_fn register_plugin);
#define LLMRT_PLUGIN_INIT_SYMBOL "llmrt_plugin_init"

/* Adds a plugin to the process-wide registry. Registering a name again with
 * the same version and functions is a no-op; with anything else it fails. */
llmrt_status llmrt_plugin_register(const llmrt_plugin *plugin);
/* Removes a plugin by name (LLMRT_ERR_NOT_FOUND if absent); built-in ops
 * cannot be removed. Engines loaded before keep running it. */
llmrt_status llmrt_plugin_unregister(const char *name);
/* dlopens `path` and calls its llmrt_plugin_init. */
llmrt_status llmrt_plugin_load(const char *path);

#ifdef __cplusplus
}
#endif
#endif
