#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "llmrt/llmrt.h"
#include "llmrt/plugin.h"

int cmd_inspect(int argc, char **argv) {
    /* FILE.engine, then --plugin LIB.so for each plugin the engine uses and
     * --backend B to show it as it runs on B */
    int usable = argc >= 2 && argc % 2 == 0 && strcmp(argv[1], "--help") != 0;
    const char *backend = NULL;
    for (int i = 2; usable && i < argc; i += 2) {
        usable = strcmp(argv[i], "--plugin") == 0 || strcmp(argv[i], "--backend") == 0;
        if (strcmp(argv[i], "--backend") == 0) backend = argv[i + 1];
    }
    if (!usable) {
        int help = argc == 2;
        fprintf(help ? stdout : stderr, "usage: llmrt inspect FILE.engine [--plugin LIB.so]... [--backend cpu|cuda]\n"
                                        "  --backend B   show the plan as it runs on B (default: as built)\n");
        return help ? 0 : 2;
    }
    if (backend && strcmp(backend, "cpu") != 0 && strcmp(backend, "cuda") != 0) {
        fprintf(stderr, "llmrt inspect: --backend '%s': expected cpu or cuda\n", backend);
        return 2;
    }
    for (int i = 2; i < argc; i += 2)
        if (strcmp(argv[i], "--plugin") == 0 && llmrt_plugin_load(argv[i + 1]) != LLMRT_OK)
            return report_failure("inspect");
    char *text;
    if (llmrt_engine_describe_on(argv[1], backend, &text) != LLMRT_OK) return report_failure("inspect");
    fputs(text, stdout);
    llmrt_free(text);
    return 0;
}
