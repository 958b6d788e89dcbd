/* The embedded default model: the small KJV-trained LLaMA in models/demo.
 * `llmrt run` without --engine uses it; its engine is built on first use
 * into the cache folder ($LLMRT_CACHE_DIR, else $XDG_CACHE_HOME/llmrt, else
 * ~/.cache/llmrt) and reused after. The engine's name carries the llmrt
 * version and the checkpoint's size and mtime, so a rebuilt llmrt or a
 * retrained model never picks up a stale engine. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "core/log.h"
#include "llmrt/llmrt.h"

#ifndef LLMRT_DEMO_MODEL_DIR
#define LLMRT_DEMO_MODEL_DIR "models/demo"
#endif

static llmrt_status make_dirs(const char *path) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cache path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return llmrt_error(LLMRT_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return llmrt_error(LLMRT_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
    return LLMRT_OK;
}

const char *llmrt_default_model_dir(void) {
    const char *env = getenv("LLMRT_DEMO_MODEL");
    return env && *env ? env : LLMRT_DEMO_MODEL_DIR;
}

llmrt_status llmrt_default_engine(char **out_path) {
    *out_path = NULL;
    const char *model = llmrt_default_model_dir();
    char weights[1024], cache[1024], path[1200];
    snprintf(weights, sizeof weights, "%s/model.safetensors", model);
    struct stat st;
    if (stat(weights, &st) != 0)
        return llmrt_error(LLMRT_ERR_NOT_FOUND,
                           "the default model is missing (%s): pass --engine FILE, or set LLMRT_DEMO_MODEL to its folder",
                           weights);
    const char *dir = getenv("LLMRT_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (dir && *dir) snprintf(cache, sizeof cache, "%s", dir);
    else if (xdg && *xdg) snprintf(cache, sizeof cache, "%s/llmrt", xdg);
    else snprintf(cache, sizeof cache, "%s/.cache/llmrt", home && *home ? home : "/tmp");
    LLMRT_TRY(make_dirs(cache));
    snprintf(path, sizeof path, "%s/demo-%s-%llx-%llx.engine", cache, llmrt_version(), (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtime);
    if (!llmrt_file_exists(path)) {
        fprintf(stderr, "llmrt: building the default model's engine into %s (first use only)\n", path);
        llmrt_build_options o;
        llmrt_build_options_init(&o);
        o.model_dir = model;
        o.output_path = path;
        o.max_seq_len = 1024;
        LLMRT_TRY(llmrt_build(&o));
    }
    *out_path = strdup(path);
    return *out_path ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
}
