/* llmrt — the command-line program. Dispatches to one file per subcommand;
 * all logic lives in the library behind include/llmrt/. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "llmrt/llmrt.h"

int report_failure(const char *command) {
    fprintf(stderr, "llmrt %s: %s\n", command, llmrt_last_error());
    return 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "llmrt %s — compile and run LLMs\n\n"
            "usage: llmrt <command> [options]   (llmrt <command> --help for its options)\n\n"
            "commands:\n"
            "  build     compile a HuggingFace checkpoint (or a config with random weights) into an engine\n"
            "  refit     replace an engine's weights with a checkpoint's, without recompiling\n"
            "  run       generate from an engine (token ids or text; --requests FILE.jsonl for many at once)\n"
            "  serve     HTTP server: OpenAI-compatible and KServe v2 APIs, metrics, a chat page\n"
            "  bench     serving throughput and latency (TTFT, TPOT, ITL) through the runtime\n"
            "  inspect   summarise an engine file\n"
            "  tokenize  encode text with a tokenizer.json or an engine's tokenizer\n"
            "  perplexity  perplexity of a text under an engine\n"
            "  embed     embeddings (and classifier logits) of an input under an encoder engine (BERT)\n",
            llmrt_version());
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("llmrt %s\n", llmrt_version());
        return 0;
    }
    static const struct { const char *name; int (*run)(int, char **); } commands[] = {
        {"build", cmd_build},
        {"refit", cmd_refit},
        {"run", cmd_run},
        {"inspect", cmd_inspect},
        {"tokenize", cmd_tokenize},
        {"perplexity", cmd_perplexity},
        {"bench", cmd_bench},
        {"serve", cmd_serve},
        {"embed", cmd_embed},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "llmrt: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
