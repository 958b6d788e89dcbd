#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "llmrt/llmrt.h"
#include "llmrt/plugin.h"

int cmd_inspect(int argc, char **argv) {
    /* FILE.engine, then --plugin LIB.so for each plugin the engine uses */
    int usable = argc >= 2 && argc % 2 == 0 && strcmp(argv[1], "--help") != 0;
    for (int i = 2; usable && i < argc; i += 2) usable = strcmp(argv[i], "--plugin") == 0;
    if (!usable) {
        int help = argc == 2;
        fprintf(help ? stdout : stderr, "usage: llmrt inspect FILE.engine [--plugin LIB.so]...\n");
        return help ? 0 : 2;
    }
    for (int i = 3; i < argc; i += 2)
        if (llmrt_plugin_load(argv[i]) != LLMRT_OK) return report_failure("inspect");
    char *text;
    if (llmrt_engine_describe(argv[1], &text) != LLMRT_OK) return report_failure("inspect");
    fputs(text, stdout);
    llmrt_free(text);
    return 0;
}
