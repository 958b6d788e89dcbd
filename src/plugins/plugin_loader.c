/* User plugins from shared libraries: dlopen, then the library's one
 * exported function registers its ops. Libraries stay loaded for the life
 * of the process, since registered functions point into them. */
#include <dlfcn.h>

#include "plugins/plugin_registry.h"

llmrt_status llmrt_plugin_load(const char *path) {
    if (!path || !*path) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "plugin load: no library path");
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        return llmrt_error(LLMRT_ERR_IO, "plugin library %s: %s", path, why ? why : "cannot be loaded");
    }
    /* the POSIX idiom: a data pointer converted to a function pointer */
    llmrt_plugin_init_fn init;
    *(void **)&init = dlsym(library, LLMRT_PLUGIN_INIT_SYMBOL);
    if (!init) {
        dlclose(library);
        return llmrt_error(LLMRT_ERR_NOT_FOUND, "plugin library %s exports no %s function", path,
                           LLMRT_PLUGIN_INIT_SYMBOL);
    }
    llmrt_error_clear();
    llmrt_status status = init(llmrt_plugin_register);
    if (status == LLMRT_OK) return LLMRT_OK;
    /* a failed registration left a message; a plugin's own failure did not */
    if (*llmrt_last_error()) return llmrt_error_context(status, "plugin library %s", path);
    return llmrt_error(status, "plugin library %s: %s failed (%s)", path, LLMRT_PLUGIN_INIT_SYMBOL,
                       llmrt_status_name(status));
}
