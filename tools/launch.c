/* --ranks / --gpus: single-host launching of split engines (launch.h).
 *
 * Standard pieces only: mpirun starts the ranks and carries their signals
 * and exit status, and the ranks meet in MPI as they do when a user types
 * mpirun -np N llmrt ... . Exec'ing mpirun in place (rather than fork and
 * wait) leaves no llmrt process between the user and mpirun to swallow a
 * Ctrl-C or to misreport a rank's exit.
 *
 * mpirun's options:
 *   --oversubscribe      OpenMPI counts one slot per core and refuses more
 *                        ranks than slots; GPU ranks need little CPU, and
 *                        CPU ranks share the cores through --threads.
 *   --bind-to none       its default binds each rank to one core when N ≤ 2,
 *                        which would leave a CPU rank's thread pool one core.
 *   --allow-run-as-root  only when llmrt itself runs as root (containers):
 *                        mpirun refuses root otherwise.
 * With --gpus each rank is its own application context (mpirun's MPMD form,
 * "-np 1 CMD --device 0 : -np 1 CMD --device 1"), so rank r's command line
 * names its GPU. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "launch.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmrt/llmrt.h"

int cli_launch_option(cli_args *a, const char *option, cli_launch *l) {
    const int is_ranks = strcmp(option, "--ranks") == 0;
    if (!is_ranks && strcmp(option, "--gpus") != 0) return 0;
    const int from = a->index - 1; /* cli_next has stepped past the option */
    if (is_ranks) {
        int64_t x;
        if (cli_int(a, option, 1, LAUNCH_MAX_RANKS, &x)) l->ranks = (int32_t)x;
    } else {
        const char *v = cli_value(a, option);
        int32_t *ids = NULL, n = 0;
        if (v && cli_int_list(a, option, v, &ids, &n)) {
            if (n > LAUNCH_MAX_RANKS) cli_fail(a, "--gpus %s: %d GPUs, at most %d", v, (int)n, LAUNCH_MAX_RANKS);
            for (int32_t i = 0; !a->failed && i < n; i++)
                if (ids[i] < 0) cli_fail(a, "--gpus %s: GPU ordinals are 0 or more", v);
            if (!a->failed) {
                memcpy(l->gpus, ids, (size_t)n * sizeof *ids);
                l->num_gpus = n;
            }
            free(ids);
        }
    }
    if (l->num_dropped == LAUNCH_MAX_OPTIONS) {
        cli_fail(a, "--ranks and --gpus given more than %d times", LAUNCH_MAX_OPTIONS);
    } else {
        l->dropped[l->num_dropped][0] = from;
        l->dropped[l->num_dropped][1] = a->index;
        l->num_dropped++;
    }
    return 1;
}

/* The environment variable of an MPI launcher that started this process
 * (the ones llmrt_engine_load looks for), or NULL. */
static const char *mpi_launcher_variable(void) {
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (getenv(names[i])) return names[i];
    return NULL;
}

/* The CPUs this process may run on: a container's or taskset's share, not
 * the host's. */
static int usable_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* out = the first executable `name` in $PATH's folders (as execvp searches). */
static int find_on_path(const char *name, char *out, size_t size) {
    const char *dirs = getenv("PATH");
    if (!dirs || !*dirs) dirs = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = dirs;;) {
        size_t len = strcspn(p, ":");
        int n = snprintf(out, size, "%.*s/%s", (int)len, len ? p : ".", name); /* "" is the current folder */
        if (n > 0 && (size_t)n < size && access(out, X_OK) == 0) return 1;
        if (!p[len]) return 0;
        p += len + 1;
    }
}

/* Checks --ranks / --gpus; returns the rank count, or -(exit code). */
static int32_t check_ranks(const cli_launch *l, const char *command, const char *engine_path, const char *backend) {
    const char *variable = mpi_launcher_variable();
    if (variable) {
        fprintf(stderr, "%s: --ranks / --gpus start the ranks themselves, but this process is already one of an "
                        "MPI job (%s is set): use either mpirun or --ranks / --gpus\n", command, variable);
        return -2;
    }
    const int32_t ranks = l->ranks ? l->ranks : l->num_gpus;
    if (l->ranks && l->num_gpus && l->ranks != l->num_gpus) {
        fprintf(stderr, "%s: --ranks %d but --gpus lists %d GPU%s: one GPU per rank\n", command, (int)l->ranks,
                (int)l->num_gpus, l->num_gpus == 1 ? "" : "s");
        return -2;
    }
    if (l->num_gpus) {
        if (backend && strcmp(backend, "cuda") != 0) {
            fprintf(stderr, "%s: --gpus runs CUDA ranks, but --backend is %s\n", command, backend);
            return -2;
        }
        int32_t count = 0;
        if (llmrt_gpu_count(&count) != LLMRT_OK) {
            fprintf(stderr, "%s: --gpus: %s\n", command, llmrt_last_error());
            return -1;
        }
        if (count == 0) {
            fprintf(stderr, "%s: --gpus: no CUDA device is available on this host\n", command);
            return -1;
        }
        for (int32_t r = 0; r < l->num_gpus; r++)
            if (l->gpus[r] >= count) {
                fprintf(stderr, "%s: --gpus: there is no GPU %d (this host has %d CUDA device%s, 0 to %d)\n",
                        command, (int)l->gpus[r], (int)count, count == 1 ? "" : "s", (int)count - 1);
                return -2;
            }
    }
    int32_t built = 1; /* the demo model is never split */
    if (engine_path && llmrt_engine_file_ranks(engine_path, &built) != LLMRT_OK) {
        fprintf(stderr, "%s: %s\n", command, llmrt_last_error());
        return -1;
    }
    if (built != ranks) {
        char what[64];
        if (l->ranks) snprintf(what, sizeof what, "--ranks %d", (int)ranks);
        else snprintf(what, sizeof what, "--gpus lists %d GPU%s", (int)ranks, ranks == 1 ? "" : "s");
        fprintf(stderr, "%s: %s, but %s is built for %d rank%s (tp x pp)%s\n", command, what,
                engine_path ? engine_path : "the demo model", (int)built, built == 1 ? "" : "s",
                l->num_gpus ? ": one GPU per rank" : "");
        return -2;
    }
    return ranks;
}

int cli_launch_ranks(const cli_launch *l, const char *command, int argc, char **argv, const char *engine_path,
                     const char *backend, int32_t num_threads) {
    if (!l->ranks && !l->num_gpus) return -1;
    const int32_t ranks = check_ranks(l, command, engine_path, backend);
    if (ranks < 0) return (int)-ranks;
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        fprintf(stderr, "%s: cannot find this program to start its ranks (/proc/self/exe): %s\n", command,
                strerror(errno));
        return 1;
    }
    self[len] = '\0';
    char mpirun[PATH_MAX];
    if (ranks > 1 && !find_on_path("mpirun", mpirun, sizeof mpirun)) {
        fprintf(stderr, "%s: --ranks / --gpus need mpirun (OpenMPI) on PATH, and there is none (Debian: apt-get install "
                        "openmpi-bin), or launch it yourself: mpirun -np %d llmrt %s ...\n",
                command, (int)ranks, argv[0]);
        return 1;
    }
    /* Every rank's arguments: this program, the subcommand, the rest less
     * --ranks / --gpus, then its own --threads and GPU. */
    char count[16], threads[16], devices[LAUNCH_MAX_RANKS][16];
    snprintf(count, sizeof count, "%d", (int)ranks);
    const int cpus_per_rank = usable_cpus() / (int)ranks;
    snprintf(threads, sizeof threads, "%d", cpus_per_rank > 0 ? cpus_per_rank : 1);
    const size_t per_rank = (size_t)argc + 12;
    char **out = calloc(per_rank * (size_t)ranks + 8, sizeof *out);
    if (!out) {
        fprintf(stderr, "%s: out of memory\n", command);
        return 1;
    }
    size_t n = 0;
    if (ranks > 1) {
        out[n++] = mpirun;
        out[n++] = "--oversubscribe";
        out[n++] = "--bind-to";
        out[n++] = "none";
        if (geteuid() == 0) out[n++] = "--allow-run-as-root";
    }
    /* One application context for all ranks, or one per rank with --gpus. */
    const int32_t contexts = l->num_gpus && ranks > 1 ? ranks : 1;
    for (int32_t c = 0; c < contexts; c++) {
        if (c > 0) out[n++] = ":";
        if (ranks > 1) {
            out[n++] = "-np";
            out[n++] = contexts > 1 ? "1" : count;
        }
        out[n++] = self;
        for (int i = 0; i < argc; i++) {
            int dropped = 0;
            for (int k = 0; k < l->num_dropped; k++)
                if (i >= l->dropped[k][0] && i < l->dropped[k][1]) dropped = 1;
            if (!dropped) out[n++] = argv[i];
        }
        if (ranks > 1 && num_threads == 0) {
            out[n++] = "--threads";
            out[n++] = threads;
        }
        if (l->num_gpus) {
            snprintf(devices[c], sizeof devices[c], "%d", (int)l->gpus[c]);
            out[n++] = "--backend";
            out[n++] = "cuda";
            out[n++] = "--device";
            out[n++] = devices[c];
        }
    }
    out[n] = NULL;
    fflush(NULL);
    execv(out[0], out);
    fprintf(stderr, "%s: cannot run %s: %s\n", command, out[0], strerror(errno));
    free(out);
    return 1;
}
