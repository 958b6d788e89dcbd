/* The llmrt subcommands, one file each. Each returns the process exit code:
 * 0 success, 1 failure of the operation, 2 bad command line. */
#ifndef LLMRT_TOOLS_COMMANDS_H
#define LLMRT_TOOLS_COMMANDS_H

int cmd_build(int argc, char **argv);
int cmd_refit(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_embed(int argc, char **argv);

/* Prints "llmrt <command>: <llmrt_last_error()>" and returns 1. */
int report_failure(const char *command);

#endif
