/* Shape inference of plugin nodes, shared by the graph API (when a node is
 * placed) and the plan verifier (when an engine is loaded). */
#ifndef LLMRT_GRAPH_PLUGIN_OP_H
#define LLMRT_GRAPH_PLUGIN_OP_H

#include "graph/graph.h"
#include "llmrt/plugin.h"

/* The shape of `n` (an LLMRT_OP_PLUGIN node of `g`) as its plugin infers it
 * from its inputs and params. Fails naming the plugin when it is not
 * registered, is of another version, or rejects the inputs. */
llmrt_status llmrt_plugin_node_infer(const llmrt_graph *g, const llmrt_node *n, const llmrt_plugin **plugin,
                                     llmrt_plugin_shape *out);

/* The shape of value `v`, with symbolic dims as the plugin API spells them. */
llmrt_plugin_shape llmrt_plugin_shape_of(const llmrt_node *n);

#endif
