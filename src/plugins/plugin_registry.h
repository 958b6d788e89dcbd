/* The process-wide registry of plugin ops (include/llmrt/plugin.h): the
 * graph API looks plugins up to infer shapes, the engine loader checks that
 * every plugin an engine names is registered at its version, and backends
 * resolve each plugin node to its functions once, when they start. */
#ifndef LLMRT_PLUGINS_PLUGIN_REGISTRY_H
#define LLMRT_PLUGINS_PLUGIN_REGISTRY_H

#include "core/status.h"
#include "llmrt/plugin.h"

/* The registered plugin named `name`, or NULL. The pointer stays valid for
 * the life of the process (unregistering only hides it). */
const llmrt_plugin *llmrt_plugin_find(const char *name);

/* The plugin an engine or graph names, checked: missing, or registered at
 * another version, is an error naming the plugin and both versions. */
llmrt_status llmrt_plugin_require(const char *name, uint32_t version, const llmrt_plugin **out);

/* Registers one of llmrt's own ops (cannot be unregistered). */
llmrt_status llmrt_plugin_register_builtin(const llmrt_plugin *plugin);

#endif
