#include <stdio.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "llmrt/llmrt.h"

static void refit_usage(FILE *out) {
    fprintf(out,
            "usage: llmrt refit --engine FILE.engine --model DIR [--output FILE.engine] [options]\n\n"
            "Replaces the engine's weights by name with the checkpoint's, converted as a build would\n"
            "(layout, storage dtype), without recompiling. The plan, limits and tokenizer stay the\n"
            "engine's. Every weight must be in the checkpoint with the engine's shape and a float\n"
            "dtype; on any error the engine is left untouched. A split engine (--tp/--pp) is refit\n"
            "whole: FILE and every FILE.rank<r>, all or none.\n\n"
            "  --engine FILE          the engine to refit\n"
            "  --model DIR            HuggingFace checkpoint with the new weights (*.safetensors)\n"
            "  --output FILE          write the refit engine here (default: replace --engine in place)\n"
            "  --allow-nonfinite      refit even if a weight holds NaN or Inf (by default an error naming it)\n"
            "  --ignore-extra-tensors refit even if the checkpoint has tensors the engine does not use\n"
            "  --quiet                no progress lines\n");
}

int cmd_refit(int argc, char **argv) {
    llmrt_refit_options o;
    llmrt_refit_options_init(&o);
    cli_args a;
    cli_begin(&a, "llmrt refit", argc, argv);
    int quiet = 0;
    const char *opt;
    while ((opt = cli_next(&a))) {
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            refit_usage(stdout);
            return 0;
        } else if (strcmp(opt, "--engine") == 0) o.engine_path = cli_value(&a, opt);
        else if (strcmp(opt, "--model") == 0) o.model_dir = cli_value(&a, opt);
        else if (strcmp(opt, "--output") == 0 || strcmp(opt, "-o") == 0) o.output_path = cli_value(&a, opt);
        else if (strcmp(opt, "--allow-nonfinite") == 0) o.allow_nonfinite = 1;
        else if (strcmp(opt, "--ignore-extra-tensors") == 0) o.ignore_extra_tensors = 1;
        else if (strcmp(opt, "--quiet") == 0) quiet = 1;
        else cli_fail(&a, "unknown option '%s' (see llmrt refit --help)", opt);
    }
    if (a.failed) return 2;
    if (!o.engine_path || !o.model_dir) {
        fprintf(stderr, "llmrt refit: --engine and --model are required\n\n");
        refit_usage(stderr);
        return 2;
    }
    llmrt_set_log_level(quiet ? 1 : 2);
    if (llmrt_refit(&o) != LLMRT_OK) {
        report_failure("refit");
        if (o.output_path && strcmp(o.output_path, o.engine_path) != 0)
            fprintf(stderr, "llmrt refit: %s was not written\n", o.output_path);
        else fprintf(stderr, "llmrt refit: %s is unchanged\n", o.engine_path);
        return 1;
    }
    return 0;
}
