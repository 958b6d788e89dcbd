#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "llmrt/llmrt.h"

int cmd_inspect(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc == 2 ? stdout : stderr, "usage: llmrt inspect FILE.engine\n");
        return argc == 2 ? 0 : 2;
    }
    char *text;
    if (llmrt_engine_describe(argv[1], &text) != LLMRT_OK) return report_failure("inspect");
    fputs(text, stdout);
    llmrt_free(text);
    return 0;
}
