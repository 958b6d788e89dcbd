/* --ranks N and --gpus LIST: the commands that load an engine (run, bench,
 * serve, perplexity) start a split engine's ranks themselves, on this host,
 * by replacing this process with OpenMPI's mpirun running the same command
 * once per rank. Being mpirun, the launcher forwards SIGINT / SIGTERM to the
 * ranks and exits with the job's status; nothing of llmrt stays between. */
#ifndef LLMRT_TOOLS_LAUNCH_H
#define LLMRT_TOOLS_LAUNCH_H

#include <stdint.h>

#include "cli_args.h"

enum { LAUNCH_MAX_RANKS = 64, LAUNCH_MAX_OPTIONS = 8 };

typedef struct cli_launch {
    int32_t ranks;                    /* --ranks; 0: not given */
    int32_t gpus[LAUNCH_MAX_RANKS];   /* --gpus: rank r runs on GPU gpus[r] */
    int32_t num_gpus;                 /* 0: not given */
    /* The argv ranges [from, to) these options took: the ranks' command
     * line is the command's without them. */
    int dropped[LAUNCH_MAX_OPTIONS][2];
    int num_dropped;
} cli_launch;

/* Consumes --ranks or --gpus into l (returns 1); any other option: 0. */
int cli_launch_option(cli_args *a, const char *option, cli_launch *l);

#define CLI_LAUNCH_HELP                                                                                  \
    "  --ranks N           start the N ranks of a split engine (built with --tp/--pp; N = tp x pp) on\n" \
    "                      this host, through mpirun (OpenMPI) on PATH; instead of mpirun -np N llmrt ...\n" \
    "  --gpus LIST         CUDA ranks, rank r on GPU LIST[r] (e.g. 0,1); N defaults to the list's length\n"

/* Called once the command line is parsed and checked. Without --ranks and
 * --gpus, returns -1: the command runs in this process. Otherwise checks
 * them against the engine (engine_path; NULL: the demo model, never split),
 * the environment and this host, then execs mpirun -np N on this program
 * with the same arguments less --ranks / --gpus (one rank: this program
 * alone, without mpirun), adding per rank --backend cuda --device GPU with
 * --gpus, and --threads (usable CPUs / N) when the command had none
 * (num_threads 0), as N thread pools would otherwise share every core.
 * Returns only if that cannot happen, having said why: 2 for a bad command
 * line, 1 when it cannot launch. argv[0] is the subcommand ("run"). */
int cli_launch_ranks(const cli_launch *l, const char *command, int argc, char **argv, const char *engine_path,
                     const char *backend, int32_t num_threads);

#endif
