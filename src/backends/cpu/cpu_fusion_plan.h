/* Which adjacent nodes the CPU backend runs as one (cpu_fusion_plan.c). */
#ifndef LLMRT_BACKENDS_CPU_FUSION_PLAN_H
#define LLMRT_BACKENDS_CPU_FUSION_PLAN_H

#include <stdint.h>

#include "compiler/plan.h"

/* How forward runs a node: alone, not at all (a fused run covers it), a
 * residual ADD with the RMSNORM after it, or two / three LINEARs of one x
 * (the pair optionally with the SILU_MUL of its outputs). */
enum cpu_run_kind { RUN_NODE = 0, RUN_SKIP, RUN_ADD_NORM, RUN_GROUP2, RUN_GROUP3, RUN_GROUP2_GATED };

/* Fills *run (per node, an enum cpu_run_kind) and *next_exec (per node, the
 * next node that computes, or -1), both malloc'd (the caller frees them,
 * also on failure); 0 when out of memory. */
int cpu_plan_fusions(const llmrt_plan *plan, unsigned char **run, int32_t **next_exec);

#endif
