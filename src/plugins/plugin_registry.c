/* The plugin registry: a short list of entries under a mutex. Entries are
 * never freed, so a backend may keep a pointer to one for as long as it
 * runs; unregistering only hides an entry from later lookups. */
#include "plugins/plugin_registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct registry_entry {
    llmrt_plugin plugin;
    char *name;       /* owned copy of plugin.name */
    int builtin;
    int removed;
    struct registry_entry *next;
} registry_entry;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static registry_entry *registry_head;

static registry_entry *find_locked(const char *name) {
    for (registry_entry *e = registry_head; e; e = e->next)
        if (!e->removed && strcmp(e->name, name) == 0) return e;
    return NULL;
}

static int same_plugin(const llmrt_plugin *a, const llmrt_plugin *b) {
    return a->version == b->version && a->infer_shape == b->infer_shape && a->workspace_size == b->workspace_size &&
           a->enqueue_cpu == b->enqueue_cpu && a->enqueue_cuda == b->enqueue_cuda;
}

static int valid_name(const char *name) {
    if (!name || !*name || strlen(name) > 127) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.' || *p == '-'))
            return 0;
    return 1;
}

static llmrt_status add(const llmrt_plugin *plugin, int builtin) {
    if (!plugin) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "plugin register: NULL plugin");
    if (plugin->abi_version != LLMRT_PLUGIN_ABI_VERSION)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "plugin '%s': ABI version %u, this llmrt speaks %d",
                           valid_name(plugin->name) ? plugin->name : "?", plugin->abi_version,
                           LLMRT_PLUGIN_ABI_VERSION);
    if (!valid_name(plugin->name))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "plugin register: name must be 1..127 characters of [A-Za-z0-9_.-]");
    if (!builtin && !strchr(plugin->name, '.'))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "plugin '%s': names without a '.' are llmrt's own; use a prefix (\"acme.%s\")", plugin->name,
                           plugin->name);
    if (!plugin->infer_shape)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "plugin '%s': no infer_shape function", plugin->name);
    if (!plugin->enqueue_cpu && !plugin->enqueue_cuda)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "plugin '%s': no enqueue function for any backend",
                           plugin->name);
    pthread_mutex_lock(&registry_lock);
    llmrt_status status = LLMRT_OK;
    registry_entry *existing = find_locked(plugin->name);
    if (existing) {
        if (!same_plugin(&existing->plugin, plugin))
            status = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                                 "plugin '%s' version %u: a plugin of that name (version %u) is already registered",
                                 plugin->name, plugin->version, existing->plugin.version);
    } else {
        registry_entry *e = calloc(1, sizeof *e);
        char *name = strdup(plugin->name);
        if (!e || !name) {
            free(e);
            free(name);
            status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "plugin register: out of memory");
        } else {
            e->plugin = *plugin;
            e->plugin.name = e->name = name;
            e->builtin = builtin;
            e->next = registry_head;
            registry_head = e;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return status;
}

llmrt_status llmrt_plugin_register(const llmrt_plugin *plugin) { return add(plugin, 0); }

llmrt_status llmrt_plugin_register_builtin(const llmrt_plugin *plugin) { return add(plugin, 1); }

llmrt_status llmrt_plugin_unregister(const char *name) {
    if (!name) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "plugin unregister: NULL name");
    pthread_mutex_lock(&registry_lock);
    registry_entry *e = find_locked(name);
    llmrt_status status = LLMRT_OK;
    if (!e) status = llmrt_error(LLMRT_ERR_NOT_FOUND, "plugin '%s' is not registered", name);
    else if (e->builtin) status = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "plugin '%s' is built in", name);
    else e->removed = 1;
    pthread_mutex_unlock(&registry_lock);
    return status;
}

const llmrt_plugin *llmrt_plugin_find(const char *name) {
    if (!name) return NULL;
    pthread_mutex_lock(&registry_lock);
    registry_entry *e = find_locked(name);
    pthread_mutex_unlock(&registry_lock);
    return e ? &e->plugin : NULL;
}

llmrt_status llmrt_plugin_require(const char *name, uint32_t version, const llmrt_plugin **out) {
    const llmrt_plugin *p = llmrt_plugin_find(name);
    if (!p)
        return llmrt_error(LLMRT_ERR_NOT_FOUND,
                           "plugin '%s' (version %u) is not loaded: load its library with --plugin LIB.so "
                           "(llmrt_plugin_load)",
                           name ? name : "?", version);
    if (p->version != version)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "plugin '%s': the engine was built with version %u, the loaded plugin is version %u", name,
                           version, p->version);
    *out = p;
    return LLMRT_OK;
}
